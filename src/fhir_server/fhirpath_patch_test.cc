// FHIRPath Patch: cases reasoned from FHIR R4 fhirpatch.html (its examples: add birthDate,
// insert an identifier at 0, delete and replace birthDate, move identifier 1 to 0; its rules:
// one element per path, delete of nothing is not an error, the value's type must fit).
#include "fhir_server/fhirpath_patch.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::fhir_server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One operation's Parameters: `parts` are the JSON of the parts after `type`.
std::string Op(const std::string& type, const std::string& parts) {
  return R"({"name":"operation","part":[{"name":"type","valueCode":")" + type + R"("},)" +
         parts + "]}";
}
std::string Path(const std::string& p) { return R"({"name":"path","valueString":")" + p + R"("})"; }
std::string Name(const std::string& n) { return R"({"name":"name","valueString":")" + n + R"("})"; }
std::string Int(const std::string& name, int n) {
  return R"({"name":")" + name + R"(","valueInteger":)" + std::to_string(n) + "}";
}
std::string Params(const std::string& ops) {
  return R"({"resourceType":"Parameters","parameter":[)" + ops + "]}";
}

constexpr char kPatient[] =
    R"({"resourceType":"Patient","id":"p","identifier":[{"system":"a","value":"1"},)"
    R"({"system":"b","value":"2"},{"system":"c","value":"3"}],)"
    R"("name":[{"family":"Doe","given":["A","B","C"]}],"birthDate":"1980-02-14"})";

absl::StatusCode Code(const absl::StatusOr<std::string>& r) { return r.status().code(); }

TEST(FhirPathPatch, SpecExampleAddBirthDate) {
  auto r = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("add", Path("Patient") + "," + Name("birthDate") +
                           R"(,{"name":"value","valueDate":"1930-01-01"})")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, R"({"resourceType":"Patient","id":"p","birthDate":"1930-01-01"})");
}

TEST(FhirPathPatch, AddAppendsToAListAndRefusesAPresentSingleElement) {
  auto r = ApplyFhirPathPatch(
      kPatient, Params(Op("add", Path("Patient") + "," + Name("identifier") +
                                     R"(,{"name":"value","valueIdentifier":{"value":"4"}})")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, HasSubstr(R"({"system":"c","value":"3"},{"value":"4"}])"));
  // "Add can be used for non-repeating elements as long as they do not already exist."
  auto present = ApplyFhirPathPatch(
      kPatient, Params(Op("add", Path("Patient") + "," + Name("birthDate") +
                                     R"(,{"name":"value","valueDate":"1930-01-01"})")));
  EXPECT_EQ(Code(present), absl::StatusCode::kFailedPrecondition);
  // An element the type does not have.
  auto unknown = ApplyFhirPathPatch(
      kPatient, Params(Op("add", Path("Patient") + "," + Name("colour") +
                                     R"(,{"name":"value","valueString":"x"})")));
  EXPECT_EQ(Code(unknown), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, TheValuesTypeMustFit) {
  // "The type of the value must be correct for the place at which it will be added/inserted."
  auto wrong = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("add", Path("Patient") + "," + Name("birthDate") +
                           R"(,{"name":"value","valueBoolean":true})")));
  EXPECT_EQ(Code(wrong), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("does not fit"));
  // A code element takes a valueCode, and a valueString (code specializes string).
  auto code = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("add", Path("Patient") + "," + Name("gender") +
                           R"(,{"name":"value","valueString":"female"})")));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_THAT(*code, HasSubstr(R"("gender":"female")"));
  // A choice element's key follows the value: value[x] with a Quantity is valueQuantity.
  auto choice = ApplyFhirPathPatch(
      R"({"resourceType":"Observation","id":"o","status":"final"})",
      Params(Op("add", Path("Observation") + "," + Name("value") +
                           R"(,{"name":"value","valueQuantity":{"value":1.50,"unit":"mg"}})")));
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_THAT(*choice, HasSubstr(R"("valueQuantity":{"value":1.50,"unit":"mg"})"));
  // An Age is a Quantity: in value[x] it is written valueQuantity.
  auto age = ApplyFhirPathPatch(
      R"({"resourceType":"Observation","id":"o","status":"final"})",
      Params(Op("add", Path("Observation") + "," + Name("value") +
                           R"(,{"name":"value","valueAge":{"value":42,"code":"a"}})")));
  ASSERT_TRUE(age.ok()) << age.status();
  EXPECT_THAT(*age, HasSubstr(R"("valueQuantity":{"value":42,"code":"a"})"));
  // ...and a second value[x] of another type is refused (value[x] is 0..1).
  auto second = ApplyFhirPathPatch(
      *choice, Params(Op("add", Path("Observation") + "," + Name("value") +
                                    R"(,{"name":"value","valueString":"high"})")));
  EXPECT_EQ(Code(second), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, AddAnAnonymousElementFromParts) {
  // Patient.contact is a backbone element: the value is given as parts, one per element; each
  // part is typed as its element (telecom repeats: a list even with one part).
  auto r = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("add", Path("Patient") + "," + Name("contact") +
                           R"(,{"name":"value","part":[)"
                           R"({"name":"name","valueHumanName":{"family":"Roe"}},)"
                           R"({"name":"telecom","valueContactPoint":{"system":"phone","value":"1"}},)"
                           R"({"name":"gender","valueCode":"female"}]})")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r,
            R"({"resourceType":"Patient","id":"p","contact":[{"name":{"family":"Roe"},)"
            R"("telecom":[{"system":"phone","value":"1"}],"gender":"female"}]})");
  // An extension: a complex type Parameters cannot hold as a value[x]; its value[x] part named
  // `value` becomes valueString.
  auto ext = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("add", Path("Patient") + "," + Name("extension") +
                           R"(,{"name":"value","part":[)"
                           R"({"name":"url","valueUri":"http://example.org/x"},)"
                           R"({"name":"value","valueString":"y"}]})")));
  ASSERT_TRUE(ext.ok()) << ext.status();
  EXPECT_EQ(*ext, R"({"resourceType":"Patient","id":"p","extension":[)"
                  R"({"url":"http://example.org/x","valueString":"y"}]})");
  // A part the element does not have, a part of the wrong type, twice a single element: 422.
  for (const char* parts : {R"({"name":"colour","valueString":"x"})",
                            R"({"name":"gender","valueBoolean":true})",
                            R"({"name":"gender","valueCode":"male"},{"name":"gender","valueCode":"female"})"}) {
    auto bad = ApplyFhirPathPatch(
        R"({"resourceType":"Patient","id":"p"})",
        Params(Op("add", Path("Patient") + "," + Name("contact") +
                             R"(,{"name":"value","part":[)" + parts + "]}")));
    EXPECT_EQ(Code(bad), absl::StatusCode::kFailedPrecondition) << parts;
  }
  // A primitive element does not take parts.
  auto primitive = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("add", Path("Patient") + "," + Name("gender") +
                           R"(,{"name":"value","part":[{"name":"x","valueCode":"male"}]})")));
  EXPECT_EQ(Code(primitive), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, SpecExampleInsertIdentifierAtZero) {
  auto r = ApplyFhirPathPatch(
      kPatient, Params(Op("insert", Path("Patient.identifier") + "," + Int("index", 0) +
                                        R"(,{"name":"value","valueIdentifier":{"value":"0"}})")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, HasSubstr(R"("identifier":[{"value":"0"},{"system":"a","value":"1"},)"));
  // "The index ... must be equal or less than the number of elements in the list."
  auto at_end = ApplyFhirPathPatch(
      kPatient, Params(Op("insert", Path("Patient.identifier") + "," + Int("index", 3) +
                                        R"(,{"name":"value","valueIdentifier":{"value":"4"}})")));
  ASSERT_TRUE(at_end.ok()) << at_end.status();
  EXPECT_THAT(*at_end, HasSubstr(R"({"system":"c","value":"3"},{"value":"4"}])"));
  auto beyond = ApplyFhirPathPatch(
      kPatient, Params(Op("insert", Path("Patient.identifier") + "," + Int("index", 4) +
                                        R"(,{"name":"value","valueIdentifier":{"value":"5"}})")));
  EXPECT_EQ(Code(beyond), absl::StatusCode::kFailedPrecondition);
  // Into a list that is still empty (index 0).
  auto empty = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p"})",
      Params(Op("insert", Path("Patient.identifier") + "," + Int("index", 0) +
                              R"(,{"name":"value","valueIdentifier":{"value":"1"}})")));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, R"({"resourceType":"Patient","id":"p","identifier":[{"value":"1"}]})");
  // A primitive list: given names.
  auto given = ApplyFhirPathPatch(
      kPatient, Params(Op("insert", Path("Patient.name[0].given") + "," + Int("index", 1) +
                                        R"(,{"name":"value","valueString":"X"})")));
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_THAT(*given, HasSubstr(R"("given":["A","X","B","C"])"));
  // Not a list of that type.
  auto wrong = ApplyFhirPathPatch(
      kPatient, Params(Op("insert", Path("Patient.identifier") + "," + Int("index", 0) +
                                        R"(,{"name":"value","valueCoding":{"code":"x"}})")));
  EXPECT_EQ(Code(wrong), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, SpecExampleDeleteBirthDateAndItsExtensions) {
  auto r = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p","birthDate":"1980-02-14",)"
      R"("_birthDate":{"extension":[{"url":"u","valueString":"x"}]},"active":true})",
      Params(Op("delete", Path("Patient.birthDate"))));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, R"({"resourceType":"Patient","id":"p","active":true})");
}

TEST(FhirPathPatch, DeleteOneItemNothingOrNotSeveral) {
  auto item = ApplyFhirPathPatch(kPatient, Params(Op("delete", Path("Patient.name.given[1]"))));
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_THAT(*item, HasSubstr(R"("given":["A","C"])"));
  auto where = ApplyFhirPathPatch(
      kPatient, Params(Op("delete", Path("Patient.identifier.where(system = 'b')"))));
  ASSERT_TRUE(where.ok()) << where.status();
  EXPECT_THAT(*where,
              HasSubstr(R"("identifier":[{"system":"a","value":"1"},{"system":"c","value":"3"}])"));
  // The last item of a list: the list goes (FHIR JSON has no empty arrays).
  auto last = ApplyFhirPathPatch(
      R"({"resourceType":"Patient","id":"p","identifier":[{"value":"1"}]})",
      Params(Op("delete", Path("Patient.identifier[0]"))));
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, R"({"resourceType":"Patient","id":"p"})");
  // Delete removes an element "if found": nothing selected, nothing changed.
  auto nothing =
      ApplyFhirPathPatch(kPatient, Params(Op("delete", Path("Patient.deceased"))));
  ASSERT_TRUE(nothing.ok()) << nothing.status();
  EXPECT_EQ(*nothing, kPatient);
  // "Only a single element can be deleted."
  auto several = ApplyFhirPathPatch(kPatient, Params(Op("delete", Path("Patient.name.given"))));
  EXPECT_EQ(Code(several), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, SpecExampleReplaceBirthDate) {
  auto r = ApplyFhirPathPatch(
      kPatient, Params(Op("replace", Path("Patient.birthDate") +
                                         R"(,{"name":"value","valueDate":"1930-01-01"})")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, HasSubstr(R"("birthDate":"1930-01-01")"));
  EXPECT_THAT(*r, Not(HasSubstr("1980")));
  // Nothing to replace, or several: 422.
  auto none = ApplyFhirPathPatch(
      kPatient, Params(Op("replace", Path("Patient.gender") +
                                         R"(,{"name":"value","valueCode":"male"})")));
  EXPECT_EQ(Code(none), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("selects nothing"));
  auto several = ApplyFhirPathPatch(
      kPatient, Params(Op("replace", Path("Patient.identifier.value") +
                                         R"(,{"name":"value","valueString":"9"})")));
  EXPECT_EQ(Code(several), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(several.status().message()), HasSubstr("more than one"));
  // The wrong type.
  auto wrong = ApplyFhirPathPatch(
      kPatient, Params(Op("replace", Path("Patient.birthDate") +
                                         R"(,{"name":"value","valueBoolean":false})")));
  EXPECT_EQ(Code(wrong), absl::StatusCode::kFailedPrecondition);
  // One item of a list, and a complex element.
  auto item = ApplyFhirPathPatch(
      kPatient, Params(Op("replace", Path("Patient.name[0].given[2]") +
                                         R"(,{"name":"value","valueString":"Z"})") +
                       "," +
                       Op("replace", Path("Patient.identifier.where(system='b')") +
                                         R"(,{"name":"value","valueIdentifier":{"value":"B"}})")));
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_THAT(*item, HasSubstr(R"("given":["A","B","Z"])"));
  EXPECT_THAT(*item, HasSubstr(R"({"system":"a","value":"1"},{"value":"B"},{"system":"c")"));
}

TEST(FhirPathPatch, ReplaceAChoiceElementByAnotherTypeAndNumbersKeepTheirText) {
  const std::string obs =
      R"({"resourceType":"Observation","id":"o","status":"final",)"
      R"("valueQuantity":{"value":1.50,"unit":"mg"},"component":[{"code":{"text":"a"},)"
      R"("valueQuantity":{"value":7.0}}]})";
  auto quantity = ApplyFhirPathPatch(
      obs, Params(Op("replace", Path("Observation.value.value") +
                                    R"(,{"name":"value","valueDecimal":2.50})")));
  ASSERT_TRUE(quantity.ok()) << quantity.status();
  EXPECT_THAT(*quantity, HasSubstr(R"("valueQuantity":{"value":2.50,"unit":"mg"})"));
  EXPECT_THAT(*quantity, HasSubstr(R"({"value":7.0})"));  // untouched numbers as written
  // A path may compare numbers (the engine sees real numbers).
  auto by_value = ApplyFhirPathPatch(
      obs, Params(Op("delete", Path("Observation.component.where(value.value > 5)"))));
  ASSERT_TRUE(by_value.ok()) << by_value.status();
  EXPECT_THAT(*by_value, Not(HasSubstr("component")));
  auto text = ApplyFhirPathPatch(
      obs, Params(Op("replace", Path("Observation.value") +
                                    R"(,{"name":"value","valueString":"high"})")));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr(R"("status":"final","valueString":"high","component")"));
  EXPECT_THAT(*text, Not(HasSubstr(R"("valueQuantity":{"value":1.50)")));
  // A type value[x] does not take.
  auto wrong = ApplyFhirPathPatch(
      obs, Params(Op("replace", Path("Observation.value") +
                                    R"(,{"name":"value","valueIdentifier":{"value":"1"}})")));
  EXPECT_EQ(Code(wrong), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, SpecExampleMoveAndListRules) {
  auto r = ApplyFhirPathPatch(kPatient, Params(Op("move", Path("Patient.identifier") + "," +
                                                              Int("source", 1) + "," +
                                                              Int("destination", 0))));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, HasSubstr(R"("identifier":[{"system":"b","value":"2"},)"
                            R"({"system":"a","value":"1"},{"system":"c","value":"3"}])"));
  auto down = ApplyFhirPathPatch(kPatient, Params(Op("move", Path("Patient.name.given") + "," +
                                                                 Int("source", 0) + "," +
                                                                 Int("destination", 2))));
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_THAT(*down, HasSubstr(R"("given":["B","C","A"])"));
  auto out_of_range = ApplyFhirPathPatch(
      kPatient, Params(Op("move", Path("Patient.identifier") + "," + Int("source", 3) + "," +
                                      Int("destination", 0))));
  EXPECT_EQ(Code(out_of_range), absl::StatusCode::kFailedPrecondition);
  // A path to one item is not a list.
  auto item = ApplyFhirPathPatch(
      kPatient, Params(Op("move", Path("Patient.identifier[1]") + "," + Int("source", 0) + "," +
                                      Int("destination", 0))));
  EXPECT_EQ(Code(item), absl::StatusCode::kFailedPrecondition);
}

TEST(FhirPathPatch, OperationsApplyInOrderAndAllOrNothing) {
  auto r = ApplyFhirPathPatch(
      kPatient,
      Params(Op("insert", Path("Patient.identifier") + "," + Int("index", 0) +
                              R"(,{"name":"value","valueIdentifier":{"value":"0"}})") +
             "," + Op("replace", Path("Patient.identifier[0].value") +
                                     R"(,{"name":"value","valueString":"zero"})")));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, HasSubstr(R"("identifier":[{"value":"zero"},{"system":"a")"));
}

TEST(FhirPathPatch, MalformedPatchesAreInvalidArguments) {
  const auto bad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(Code(ApplyFhirPathPatch(kPatient, R"({"resourceType":"Patient"})")), bad);
  EXPECT_EQ(Code(ApplyFhirPathPatch(kPatient, "[1,2]")), bad);
  EXPECT_EQ(Code(ApplyFhirPathPatch(
                kPatient, Params(R"({"name":"op","part":[{"name":"type","valueCode":"delete"}]})"))),
            bad);
  EXPECT_EQ(Code(ApplyFhirPathPatch(kPatient, Params(Op("remove", Path("Patient.birthDate"))))),
            bad);
  EXPECT_EQ(Code(ApplyFhirPathPatch(kPatient, Params(Op("replace", Path("Patient.birthDate"))))),
            bad);  // no value
  EXPECT_EQ(Code(ApplyFhirPathPatch(kPatient, Params(Op("delete", Path("Patient.name.(("))))),
            bad);  // not FHIRPath
  EXPECT_EQ(Code(ApplyFhirPathPatch(
                kPatient, Params(Op("insert", Path("Patient.identifier") + "," +
                                                  R"({"name":"index","valueString":"0"})" +
                                                  R"(,{"name":"value","valueIdentifier":{}})")))),
            bad);  // index is an integer
  // A path to something that is not an element of the resource.
  EXPECT_EQ(Code(ApplyFhirPathPatch(kPatient, Params(Op("delete", Path("Patient.name.count()"))))),
            absl::StatusCode::kFailedPrecondition);
  // No operations: the resource unchanged.
  auto none = ApplyFhirPathPatch(kPatient, R"({"resourceType":"Parameters"})");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, kPatient);
}

TEST(FhirPathPatch, IsParametersBody) {
  EXPECT_TRUE(IsParametersBody(R"({"resourceType":"Parameters"})"));
  EXPECT_FALSE(IsParametersBody(R"({"resourceType":"Patient"})"));
  EXPECT_FALSE(IsParametersBody("[]"));
  EXPECT_FALSE(IsParametersBody("not json"));
}

}  // namespace
}  // namespace isthmus::fhir_server
