#include "base/str.h"

#include "gtest/gtest.h"

namespace isthmus::base {
namespace {

TEST(StrTest, CatMixesViewsCharsAndNumbers) {
  std::string_view v = "PID";
  EXPECT_EQ(StrCat(v, '-', 3, "[", size_t{2}, "] ", std::string("x"), -7), "PID-3[2] x-7");
}

TEST(StrTest, ParseIntIsStrict) {
  int v = 0;
  EXPECT_TRUE(ParseInt("42", &v));
  EXPECT_EQ(v, 42);
  EXPECT_FALSE(ParseInt("4 2", &v));
  EXPECT_FALSE(ParseInt("", &v));
  EXPECT_FALSE(ParseInt("x", &v));
  EXPECT_FALSE(ParseInt("99999999999", &v));
}

TEST(StrTest, SplitKeepsEmptyPieces) {
  EXPECT_EQ(Split("a^^b", '^'), (std::vector<std::string_view>{"a", "", "b"}));
  EXPECT_EQ(Split("", '^'), (std::vector<std::string_view>{""}));
}

}  // namespace
}  // namespace isthmus::base
