#include "hl7v2/charset.h"

#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

TEST(CharsetTest, MapsTable0211Codes) {
  EXPECT_EQ(CharsetFromMsh18("")->charset, Charset::kUnspecified);
  EXPECT_EQ(CharsetFromMsh18("ASCII")->charset, Charset::kAscii);
  EXPECT_EQ(CharsetFromMsh18("8859/1")->charset, Charset::kLatin1);
  EXPECT_EQ(CharsetFromMsh18("UNICODE UTF-8")->charset, Charset::kUtf8);
  auto l2 = CharsetFromMsh18("8859/2");
  ASSERT_TRUE(l2.ok());
  EXPECT_EQ(l2->iconv_name, "ISO-8859-2");
  EXPECT_FALSE(CharsetFromMsh18("UNICODE UTF-16").ok());
  EXPECT_FALSE(CharsetFromMsh18("KLINGON").ok());
}

TEST(CharsetTest, Latin1ToUtf8) {
  CharsetInfo latin1{Charset::kLatin1, ""};
  EXPECT_EQ(ToUtf8("M\xFCller", latin1), "M\xC3\xBCller");  // Müller
}

TEST(CharsetTest, Latin2ThroughIconv) {
  auto cs = CharsetFromMsh18("8859/2");
  ASSERT_TRUE(cs.ok());
  // 0xB9 in ISO-8859-2 is U+0161 (s with caron).
  EXPECT_EQ(ToUtf8("\xB9", *cs), "\xC5\xA1");
}

TEST(CharsetTest, UndeclaredBytesReadAsUtf8ElseLatin1) {
  CharsetInfo none;
  EXPECT_EQ(ToUtf8("Jos\xC3\xA9", none), "Jos\xC3\xA9");
  EXPECT_EQ(ToUtf8("Jos\xE9", none), "Jos\xC3\xA9");
}

TEST(CharsetTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
}

}  // namespace
}  // namespace isthmus::hl7v2
