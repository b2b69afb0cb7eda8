#include "fhir_server/json_patch.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::fhir_server {
namespace {

using ::testing::HasSubstr;

// Equal as JSON values (object member order does not matter, as in RFC 6902's examples).
void ExpectJsonEq(const std::string& actual, const std::string& expected) {
  rapidjson::Document a, e;
  a.Parse(actual.c_str());
  e.Parse(expected.c_str());
  ASSERT_FALSE(a.HasParseError()) << actual;
  ASSERT_FALSE(e.HasParseError()) << expected;
  EXPECT_TRUE(a == e) << actual << "\n  expected: " << expected;
}

void ExpectPatch(const char* doc, const char* patch, const char* expected) {
  absl::StatusOr<std::string> out = ApplyJsonPatch(doc, patch);
  ASSERT_TRUE(out.ok()) << out.status() << "\n  patch: " << patch;
  ExpectJsonEq(*out, expected);
}

absl::StatusCode PatchError(const char* doc, const char* patch) {
  absl::StatusOr<std::string> out = ApplyJsonPatch(doc, patch);
  EXPECT_FALSE(out.ok()) << *out;
  return out.status().code();
}

// RFC 6902 Appendix A, example by example.
TEST(JsonPatchRfc6902, A1AddingAnObjectMember) {
  ExpectPatch(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux"}])",
              R"({"baz":"qux","foo":"bar"})");
}
TEST(JsonPatchRfc6902, A2AddingAnArrayElement) {
  ExpectPatch(R"({"foo":["bar","baz"]})", R"([{"op":"add","path":"/foo/1","value":"qux"}])",
              R"({"foo":["bar","qux","baz"]})");
}
TEST(JsonPatchRfc6902, A3RemovingAnObjectMember) {
  ExpectPatch(R"({"baz":"qux","foo":"bar"})", R"([{"op":"remove","path":"/baz"}])",
              R"({"foo":"bar"})");
}
TEST(JsonPatchRfc6902, A4RemovingAnArrayElement) {
  ExpectPatch(R"({"foo":["bar","qux","baz"]})", R"([{"op":"remove","path":"/foo/1"}])",
              R"({"foo":["bar","baz"]})");
}
TEST(JsonPatchRfc6902, A5ReplacingAValue) {
  ExpectPatch(R"({"baz":"qux","foo":"bar"})", R"([{"op":"replace","path":"/baz","value":"boo"}])",
              R"({"baz":"boo","foo":"bar"})");
}
TEST(JsonPatchRfc6902, A6MovingAValue) {
  ExpectPatch(R"({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}})",
              R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])",
              R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})");
}
TEST(JsonPatchRfc6902, A7MovingAnArrayElement) {
  ExpectPatch(R"({"foo":["all","grass","cows","eat"]})",
              R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])",
              R"({"foo":["all","cows","eat","grass"]})");
}
TEST(JsonPatchRfc6902, A8TestingAValueSuccess) {
  ExpectPatch(R"({"baz":"qux","foo":["a",2,"c"]})",
              R"([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}])",
              R"({"baz":"qux","foo":["a",2,"c"]})");
}
TEST(JsonPatchRfc6902, A9TestingAValueError) {
  EXPECT_EQ(PatchError(R"({"baz":"qux"})", R"([{"op":"test","path":"/baz","value":"bar"}])"),
            absl::StatusCode::kFailedPrecondition);
}
TEST(JsonPatchRfc6902, A10AddingANestedMemberObject) {
  ExpectPatch(R"({"foo":"bar"})", R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])",
              R"({"foo":"bar","child":{"grandchild":{}}})");
}
TEST(JsonPatchRfc6902, A11IgnoringUnrecognizedElements) {
  ExpectPatch(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])",
              R"({"foo":"bar","baz":"qux"})");
}
TEST(JsonPatchRfc6902, A12AddingToANonexistentTarget) {
  EXPECT_EQ(PatchError(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz/bat","value":"qux"}])"),
            absl::StatusCode::kFailedPrecondition);
}
TEST(JsonPatchRfc6902, A13InvalidJsonPatchDocument) {
  EXPECT_EQ(PatchError(R"({"foo":"bar"})",
                       R"([{"op":"add","path":"/baz","value":"qux","op":"remove"}])"),
            absl::StatusCode::kInvalidArgument);
}
TEST(JsonPatchRfc6902, A14TildeEscapeOrdering) {
  ExpectPatch(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":10}])",
              R"({"/":9,"~1":10})");
}
TEST(JsonPatchRfc6902, A15ComparingStringsAndNumbers) {
  EXPECT_EQ(PatchError(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":"10"}])"),
            absl::StatusCode::kFailedPrecondition);
}
TEST(JsonPatchRfc6902, A16AddingAnArrayValue) {
  ExpectPatch(R"({"foo":["bar"]})", R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])",
              R"({"foo":["bar",["abc","def"]]})");
}

TEST(JsonPatch, KeepsNumbersAndOrderAndComparesByValue) {
  // Numbers keep their text; replace keeps the member's place; 1.50 tests equal to 1.5.
  auto out = ApplyJsonPatch(R"({"a":1.50,"b":2,"c":[1e2]})",
                            R"([{"op":"test","path":"/a","value":1.5},
                                {"op":"replace","path":"/b","value":3.0},
                                {"op":"copy","from":"/c/0","path":"/d"}])");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"({"a":1.50,"b":3.0,"c":[1e2],"d":1e2})");
  // Objects compare regardless of member order; null, booleans by value.
  ExpectPatch(R"({"x":{"p":1,"q":[true,null]}})",
              R"([{"op":"test","path":"/x","value":{"q":[true,null],"p":1}}])",
              R"({"x":{"p":1,"q":[true,null]}})");
  // "" is the whole document.
  ExpectPatch(R"({"a":1})", R"([{"op":"replace","path":"","value":{"b":2}}])", R"({"b":2})");
}

TEST(JsonPatch, MalformedPatchesAre400Class) {
  const char* doc = R"({"foo":["a","b"]})";
  EXPECT_EQ(PatchError(doc, R"({"op":"add"})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PatchError(doc, "[oops"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PatchError(doc, R"([{"op":"frobnicate","path":"/foo"}])"),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PatchError(doc, R"([{"op":"add","path":"/foo/-"}])"),
            absl::StatusCode::kInvalidArgument);  // no value
  EXPECT_EQ(PatchError(doc, R"([{"op":"remove","path":"foo"}])"),
            absl::StatusCode::kInvalidArgument);  // not a pointer
  EXPECT_EQ(PatchError(doc, R"([{"op":"remove","path":"/fo~2o"}])"),
            absl::StatusCode::kInvalidArgument);  // bad escape
  EXPECT_EQ(PatchError(doc, R"([{"op":"move","path":"/x"}])"),
            absl::StatusCode::kInvalidArgument);  // no from
  EXPECT_EQ(PatchError(doc, R"(["remove"])"), absl::StatusCode::kInvalidArgument);
}

TEST(JsonPatch, UnapplicablePatchesFailWhole) {
  const char* doc = R"({"foo":["a","b"],"bar":{"x":1}})";
  EXPECT_EQ(PatchError(doc, R"([{"op":"remove","path":"/foo/2"}])"),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PatchError(doc, R"([{"op":"add","path":"/foo/3","value":"c"}])"),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PatchError(doc, R"([{"op":"remove","path":"/foo/01"}])"),
            absl::StatusCode::kFailedPrecondition);  // leading zero: not an index
  EXPECT_EQ(PatchError(doc, R"([{"op":"replace","path":"/nope","value":1}])"),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PatchError(doc, R"([{"op":"move","from":"/bar","path":"/bar/y"}])"),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PatchError(doc, R"([{"op":"copy","from":"/nope","path":"/y"}])"),
            absl::StatusCode::kFailedPrecondition);
  // The message names the operation and pointer, never values.
  auto r = ApplyJsonPatch(doc, R"([{"op":"add","path":"/z","value":1},
                                   {"op":"test","path":"/bar/x","value":"SECRET"}])");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("patch operation 1 (test /bar/x)"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(HasSubstr("SECRET")));
}

}  // namespace
}  // namespace isthmus::fhir_server
