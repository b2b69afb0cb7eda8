#include "fhir/strings.h"

#include "gtest/gtest.h"

namespace isthmus::fhir {
namespace {

TEST(FhirStrings, DisallowedWhitespaceBecomesASpace) {
  std::string s = "Person\xC2\xA0Subject\x0C" "a\xE2\x80\x83" "b\xE3\x80\x80" "c\xEF\xBB\xBF";
  EXPECT_TRUE(HasDisallowedWhitespace(s));
  ReplaceDisallowedWhitespace(&s);
  EXPECT_EQ(s, "Person Subject a b c ");
  EXPECT_FALSE(HasDisallowedWhitespace(s));
}

TEST(FhirStrings, AllowedTextIsUnchanged) {
  // Space, CR, LF, TAB are allowed; other non-ASCII letters and punctuation are not whitespace
  // (U+2010 hyphen, U+00E9, U+201C quote, a truncated sequence at the end).
  std::string s = "a b\r\n\tZo\xC3\xAB \xE2\x80\x90 \xE2\x80\x9Cq\xE2\x80\x9D \xE2\x80";
  const std::string before = s;
  EXPECT_FALSE(HasDisallowedWhitespace(s));
  ReplaceDisallowedWhitespace(&s);
  EXPECT_EQ(s, before);
}

}  // namespace
}  // namespace isthmus::fhir
