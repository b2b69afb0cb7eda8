#include "base/yaml_util.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::base {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(YamlUtilTest, SyntaxErrorsNameLineAndColumn) {
  auto n = ParseYaml("a: 1\nb: [1, 2\n", "x.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(n.status().message(), HasSubstr("x.yaml:3:"));
}

TEST(YamlUtilTest, LocationIsOneBased) {
  auto n = ParseYaml("a: 1\nb:\n  c: hello\n", "x.yaml");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(YamlLocation("x.yaml", (*n)["b"]["c"]), "x.yaml:3:6");
  EXPECT_EQ(YamlLocation("x.yaml", (*n)["missing"]), "x.yaml");
}

TEST(YamlUtilTest, CheckKeysReportsUnknownAndDuplicateKeys) {
  auto n = ParseYaml("name: a\nnmae: b\nname: c\n", "x.yaml");
  ASSERT_TRUE(n.ok());
  YamlErrors errors("x.yaml");
  EXPECT_TRUE(CheckKeys(*n, {"name", "type"}, errors, "listener"));
  EXPECT_THAT(errors.messages(),
              ElementsAre("x.yaml:2:1: unknown key 'nmae' in listener (expected one of: name, type)",
                          "x.yaml:3:1: duplicate key 'name' in listener"));
  EXPECT_THAT(errors.ToStatus().message(), HasSubstr("\n"));
}

TEST(YamlUtilTest, ErrorsAreCappedButCounted) {
  YamlErrors errors("x.yaml", 2);
  for (int i = 1; i <= 5; ++i) errors.AddAt(i, 1, "bad");
  EXPECT_EQ(errors.count(), 5u);
  EXPECT_EQ(errors.messages().size(), 2u);
  EXPECT_THAT(errors.ToStatus().message(), HasSubstr("... and 3 more error(s)"));
}

TEST(YamlUtilTest, Bools) {
  bool b = false;
  auto n = ParseYaml("[yes, Off, maybe]", "x.yaml");
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(ParseYamlBool((*n)[0], &b));
  EXPECT_TRUE(b);
  EXPECT_TRUE(ParseYamlBool((*n)[1], &b));
  EXPECT_FALSE(b);
  EXPECT_FALSE(ParseYamlBool((*n)[2], &b));
}

}  // namespace
}  // namespace isthmus::base
