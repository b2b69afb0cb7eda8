#include "hl7v2/escape.h"

#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

const Delimiters kStd;

TEST(EscapeTest, DecodesDelimiterEscapes) {
  EXPECT_EQ(Unescape(R"(a\F\b\S\c\T\d\R\e\E\f)", kStd), "a|b^c&d~e\\f");
}

TEST(EscapeTest, DecodesHexAndLineBreaks) {
  EXPECT_EQ(Unescape(R"(caf\XC3A9\ x\.br\y)", kStd), "caf\xC3\xA9 x\ny");
  EXPECT_EQ(Unescape(R"(a\.sp2\b)", kStd), "a\n\nb");
}

TEST(EscapeTest, DropsHighlightingAndFormatting) {
  EXPECT_EQ(Unescape(R"(\H\bold\N\ \.in+4\x)", kStd), "bold x");
}

TEST(EscapeTest, KeepsUnknownAndUnterminatedSequences) {
  EXPECT_EQ(Unescape(R"(\Zfoo\ a)", kStd), R"(\Zfoo\ a)");
  EXPECT_EQ(Unescape(R"(\C2842\x)", kStd), R"(\C2842\x)");
  EXPECT_EQ(Unescape(R"(50\ off)", kStd), R"(50\ off)");
  EXPECT_EQ(Unescape(R"(\XZZ\)", kStd), R"(\XZZ\)");
  EXPECT_EQ(Unescape(R"(a\\b)", kStd), R"(a\\b)");
}

TEST(EscapeTest, TruncationEscapeUsesMshCharacter) {
  Delimiters d;
  d.truncation = '#';
  EXPECT_EQ(Unescape(R"(a\P\b)", d), "a#b");
  EXPECT_EQ(Escape("a#b", d), R"(a\P\b)");
}

TEST(EscapeTest, EscapeIsInverseOfUnescape) {
  const std::string text = "Smith|Jones^Jr&Co~x\\y\nline2";
  std::string escaped = Escape(text, kStd);
  EXPECT_EQ(escaped, R"(Smith\F\Jones\S\Jr\T\Co\R\x\E\y\.br\line2)");
  EXPECT_EQ(Unescape(escaped, kStd), text);
}

TEST(EscapeTest, NonStandardDelimiters) {
  auto d = Delimiters::FromMsh('!', "@%$*");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Unescape("a$F$b$S$c", *d), "a!b@c");
  EXPECT_EQ(Escape("a!b@c", *d), "a$F$b$S$c");
}

// Found by hl7v2_escape_fuzzer (fuzz/regressions/escape-dot-delimiter): with '.' as a delimiter,
// \.br\ would put a component separator inside the escape; a line break is written as \X0A\.
TEST(EscapeTest, LineBreakWhenDotIsADelimiter) {
  auto d = Delimiters::FromMsh('|', ".~\\&");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Escape("a\nb\r\nc", *d), "a\\X0A\\b\\X0A\\c");
  EXPECT_EQ(Unescape(Escape("a\nb", *d), *d), "a\nb");
}

}  // namespace
}  // namespace isthmus::hl7v2
