// The R4 validator against hand-written resources. Expected issues are reasoned from the R4
// spec (json.html, datatypes.html, the StructureDefinitions, terminologies.html): each failing
// case names the one element that breaks a rule, with the FHIR issue type and the element path.
#include "fhir/validator.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::fhir {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// "code@expression" of each issue of `severity` (numbers parsed as text, as the store does).
std::vector<std::string> Issues(
    std::string_view json, ValidationIssue::Severity severity = ValidationIssue::Severity::kError) {
  std::vector<std::string> out;
  for (const ValidationIssue& i : ValidateResourceJson(json)) {
    if (i.severity == severity) out.push_back(i.code + "@" + i.expression);
  }
  return out;
}

// The same with RapidJSON's ordinary parse (numbers as numbers).
std::vector<std::string> IssuesOfDom(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError());
  std::vector<std::string> out;
  for (const ValidationIssue& i : ValidateResource(doc)) {
    if (i.severity == ValidationIssue::Severity::kError) out.push_back(i.code + "@" + i.expression);
  }
  return out;
}

// A Patient using most JSON forms: primitives with `_` siblings (single and in arrays with
// null), a choice, extensions, contained resources, a required binding (gender).
constexpr std::string_view kPatient = R"({
  "resourceType": "Patient",
  "id": "pat-1",
  "meta": {"versionId": "2", "lastUpdated": "2024-01-15T10:30:00.123Z",
           "profile": ["http://example.org/fhir/StructureDefinition/p"]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},
  "contained": [{"resourceType": "Practitioner", "id": "dr",
                 "name": [{"family": "Who"}]}],
  "extension": [{"url": "http://example.org/birthplace", "valueString": "Springfield"},
                {"url": "http://example.org/code", "valueCoding": {"system": "http://x", "code": "a"}}],
  "identifier": [{"use": "official", "system": "urn:oid:2.16.840.1.113883.4.1",
                  "value": "123-45-6789", "period": {"start": "2001-05"}}],
  "active": true,
  "name": [{"use": "official", "family": "Doe", "given": ["Jane", null, "Q"],
            "_given": [null, {"extension": [{"url": "http://example.org/hidden",
                                             "valueBoolean": true}]}, null]}],
  "telecom": [{"system": "phone", "value": "+1 555 0100", "use": "home", "rank": 1}],
  "gender": "female",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "12345"}],
  "multipleBirthInteger": 2,
  "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo=", "size": 8}],
  "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                             "code": "N"}]}],
               "name": {"text": "John Doe"}}],
  "generalPractitioner": [{"reference": "#dr"}],
  "managingOrganization": {"reference": "Organization/1", "display": "Acme"}
})";

constexpr std::string_view kObservation = R"({
  "resourceType": "Observation",
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}], "text": "Weight"},
  "subject": {"reference": "Patient/pat-1"},
  "effectiveDateTime": "2024-01-15T10:30:00+01:00",
  "issued": "2024-01-15T10:31:00Z",
  "valueQuantity": {"value": 72.50, "unit": "kg", "system": "http://unitsofmeasure.org",
                    "code": "kg", "comparator": "<"},
  "referenceRange": [{"low": {"value": 50, "unit": "kg"}, "text": "normal"}],
  "component": [{"code": {"text": "x"}, "valueCodeableConcept": {"text": "high"}},
                {"code": {"text": "t"}, "valueTime": "23:59:60.5"},
                {"code": {"text": "p"}, "valuePeriod": {"start": "2024", "end": "2024-02-29"}}]
})";

constexpr std::string_view kCondition = R"({
  "resourceType": "Condition",
  "clinicalStatus": {"coding": [{"system": "http://example.org/other", "code": "x"},
                                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                 "code": "active"}]},
  "code": {"text": "Asthma"},
  "subject": {"reference": "Patient/pat-1"},
  "onsetAge": {"value": 12, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
})";

constexpr std::string_view kQuestionnaire = R"({
  "resourceType": "Questionnaire",
  "url": "http://example.org/q",
  "status": "draft",
  "item": [{"linkId": "1", "type": "group",
            "item": [{"linkId": "1.1", "type": "string", "text": "Name?",
                      "item": [{"linkId": "1.1.1", "type": "boolean"}]}]}]
})";

constexpr std::string_view kBundle = R"({
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
     "resource": {"resourceType": "Patient", "gender": "unknown"},
     "request": {"method": "POST", "url": "Patient"}},
    {"resource": {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
                  "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "IMP"},
                  "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
     "request": {"method": "PUT", "url": "Encounter/e1"}}
  ]
})";

TEST(Validator, GoodResourcesPass) {
  for (std::string_view r : {kPatient, kObservation, kCondition, kQuestionnaire, kBundle}) {
    EXPECT_THAT(ValidateResourceJson(r), IsEmpty()) << r;
    EXPECT_THAT(IssuesOfDom(r), IsEmpty()) << r;
  }
}

// Replaces the first occurrence of `from` in `s` (the test fails if it is absent).
std::string Edit(std::string_view s, std::string_view from, std::string_view to) {
  std::string out(s);
  size_t at = out.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) out.replace(at, from.size(), to);
  return out;
}

TEST(Validator, ResourceType) {
  EXPECT_THAT(Issues(R"({"resourceType": "Patientt"})"),
              ElementsAre("structure@Resource.resourceType"));
  EXPECT_THAT(Issues(R"({"id": "x"})"), ElementsAre("structure@Resource.resourceType"));
  // Abstract types are not resource types of an instance.
  EXPECT_THAT(Issues(R"({"resourceType": "DomainResource"})"),
              ElementsAre("structure@Resource.resourceType"));
  EXPECT_THAT(Issues(R"(["Patient"])"), ElementsAre("structure@"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("resourceType": "Practitioner")", R"("resourceType": 3)")),
              ElementsAre("structure@Patient.contained[0].resourceType"));
  EXPECT_TRUE(IsValidatorResourceType("Observation"));
  EXPECT_FALSE(IsValidatorResourceType("HumanName"));
  EXPECT_FALSE(IsValidatorResourceType("Resource"));
}

TEST(Validator, UnknownElements) {
  EXPECT_THAT(Issues(Edit(kPatient, R"("active": true)", R"("active": true, "foo": 1)")),
              ElementsAre("structure@Patient.foo"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("family": "Doe")", R"("family": "Doe", "middle": "X")")),
              ElementsAre("structure@Patient.name[0].middle"));
  // A choice type the element does not allow; the [x] form itself is not a JSON name.
  EXPECT_THAT(Issues(Edit(kPatient, "deceasedBoolean", "deceasedString")),
              ElementsAre("structure@Patient.deceasedString"));
  EXPECT_THAT(Issues(Edit(kPatient, "deceasedBoolean", "deceased")),
              ElementsAre("structure@Patient.deceased"));
  // `_name` is only for primitives; Element.id has no `_id`.
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("active": true)", R"("active": true, "_name": {"id": "a"})")),
      ElementsAre("structure@Patient._name"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("family": "Doe")",
                          R"("family": "Doe", "id": "n1", "_id": {"id": "b"})")),
              ElementsAre("structure@Patient.name[0]._id"));
  // Inside a primitive's `_` object only id and extension exist.
  EXPECT_THAT(Issues(Edit(kPatient, R"("_birthDate": {)", R"("_birthDate": {"value": "x", )")),
              ElementsAre("structure@Patient.birthDate.value"));
  // resourceType is a member of resources only.
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("family": "Doe")", R"("family": "Doe", "resourceType": "X")")),
      ElementsAre("structure@Patient.name[0].resourceType"));
}

TEST(Validator, JsonKinds) {
  // Repeating elements are arrays, single ones are not.
  EXPECT_THAT(
      Issues(Edit(
          kPatient,
          R"("address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "12345"}])",
          R"("address": {"city": "Springfield"})")),
      ElementsAre("structure@Patient.address"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("gender": "female")", R"("gender": ["female"])")),
              ElementsAre("structure@Patient.gender"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("line": ["1 Main St"])", R"("line": "1 Main St")")),
              ElementsAre("structure@Patient.address[0].line"));
  // Primitive JSON kinds.
  EXPECT_THAT(Issues(Edit(kPatient, R"("active": true)", R"("active": "true")")),
              ElementsAre("structure@Patient.active"));
  EXPECT_THAT(Issues(Edit(kObservation, R"("value": 72.50)", R"("value": "72.50")")),
              ElementsAre("structure@Observation.valueQuantity.value"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("city": "Springfield")", R"("city": 12)")),
              ElementsAre("structure@Patient.address[0].city"));
  // Complex types are objects.
  EXPECT_THAT(Issues(Edit(kPatient, R"("name": {"text": "John Doe"})", R"("name": "John Doe")")),
              ElementsAre("structure@Patient.contact[0].name"));
  // No empty objects or arrays, no null outside primitive arrays.
  EXPECT_THAT(Issues(Edit(kPatient, R"("period": {"start": "2001-05"})", R"("period": {})")),
              ElementsAre("structure@Patient.identifier[0].period"));
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("period": {"start": "2001-05"})", R"("period": {"id": "p"})")),
      ElementsAre("structure@Patient.identifier[0].period"));
  EXPECT_THAT(Issues(R"({"resourceType": "Patient", "id": "x"})"), IsEmpty());
  EXPECT_THAT(Issues(Edit(kPatient, R"("line": ["1 Main St"])", R"("line": [])")),
              ElementsAre("structure@Patient.address[0].line"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("gender": "female")", R"("gender": null)")),
              ElementsAre("structure@Patient.gender"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("Jane", null, "Q"])", R"("Jane", "X", null])")),
              ElementsAre("structure@Patient.name[0].given[2]"));
  // `_` arrays pair with their values.
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("_given": [null, {)", R"("_given": [{)")),
      ElementsAre("structure@Patient.name[0].given[1]", "structure@Patient.name[0]._given"));
  EXPECT_THAT(Issues(R"({"resourceType": "Patient", "birthDate": "1970",
                         "_birthDate": [{"id": "a"}]})"),
              ElementsAre("structure@Patient.birthDate"));
  EXPECT_THAT(Issues(R"({"resourceType": "Patient", "name": [{"given": ["a"],
                         "_given": {"id": "a"}}]})"),
              ElementsAre("structure@Patient.name[0]._given"));
}

TEST(Validator, Cardinality) {
  EXPECT_THAT(Issues(Edit(kObservation, R"("status": "final",)", "")),
              ElementsAre("required@Observation.status"));
  EXPECT_THAT(Issues(Edit(kBundle, R"("type": "transaction",)", "")),
              ElementsAre("required@Bundle.type"));
  // Inside backbone elements and datatypes.
  EXPECT_THAT(Issues(Edit(kQuestionnaire, R"("linkId": "1.1.1", )", "")),
              ElementsAre("required@Questionnaire.item[0].item[0].item[0].linkId"));
  EXPECT_THAT(Issues(Edit(kPatient, R"({"url": "http://example.org/birthplace", )", "{")),
              ElementsAre("required@Patient.extension[0].url"));
  // A primitive present only through its extension counts.
  EXPECT_THAT(
      Issues(Edit(kObservation, R"("status": "final",)",
                  R"("_status": {"extension": [{"url": "http://x", "valueCode": "final"}]},)")),
      IsEmpty());
  // Choice elements: at most one type; a required one ([x]) must have one.
  EXPECT_THAT(Issues(Edit(kObservation, R"("valueQuantity")",
                          R"("valueString": "72.5 kg", "valueQuantity")")),
              ElementsAre("structure@Observation.valueQuantity"));
  EXPECT_THAT(Issues(R"({"resourceType": "Patient", "extension": [{"url": "http://x",
                         "valueString": "a", "valueBoolean": true}]})"),
              ElementsAre("structure@Patient.extension[0].valueBoolean"));
  EXPECT_THAT(Issues(R"({"resourceType": "Measure", "status": "draft",
                         "useContext": [{"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                                  "code": "venue"}}]})"),
              ElementsAre("required@Measure.useContext[0].value[x]"));
}

TEST(Validator, PrimitiveFormats) {
  auto one = [](std::string_view base, std::string_view from, std::string_view to) {
    return Issues(Edit(base, from, to));
  };
  // date: real months and days, leap years; dateTime: a time needs a zone; instant: full.
  EXPECT_THAT(one(kPatient, "1974-12-25\"", "1974-13-01\""),
              ElementsAre("value@Patient.birthDate"));
  EXPECT_THAT(one(kPatient, "1974-12-25\"", "1974-02-29\""),
              ElementsAre("value@Patient.birthDate"));
  EXPECT_THAT(one(kPatient, "1974-12-25\"", "1976-02-29\""), IsEmpty());
  EXPECT_THAT(one(kPatient, "1974-12-25\"", "0000\""), ElementsAre("value@Patient.birthDate"));
  EXPECT_THAT(one(kPatient, "1974-12-25\"", "1974-12-25T10:00:00Z\""),
              ElementsAre("value@Patient.birthDate"));
  EXPECT_THAT(one(kObservation, "2024-01-15T10:30:00+01:00", "2024-01-15T10:30:00"),
              ElementsAre("value@Observation.effectiveDateTime"));
  EXPECT_THAT(one(kObservation, "2024-01-15T10:30:00+01:00", "2024-01-15T10:30+01:00"),
              ElementsAre("value@Observation.effectiveDateTime"));
  EXPECT_THAT(one(kObservation, "2024-01-15T10:30:00+01:00", "2024-01-15T24:00:00Z"),
              ElementsAre("value@Observation.effectiveDateTime"));
  EXPECT_THAT(one(kObservation, "2024-01-15T10:30:00+01:00", "2024-01-15T10:30:00+14:30"),
              ElementsAre("value@Observation.effectiveDateTime"));
  EXPECT_THAT(one(kObservation, "2024-01-15T10:30:00+01:00", "2024-01"), IsEmpty());
  EXPECT_THAT(one(kObservation, "2024-01-15T10:31:00Z", "2024-01-15"),
              ElementsAre("value@Observation.issued"));
  EXPECT_THAT(one(kPatient, "2024-01-15T10:30:00.123Z", "2024-01-15T10:30:00.Z"),
              ElementsAre("value@Patient.meta.lastUpdated"));
  EXPECT_THAT(one(kObservation, "23:59:60.5", "23:59"),
              ElementsAre("value@Observation.component[1].valueTime"));
  // id, code, uri, oid, uuid, base64Binary.
  EXPECT_THAT(one(kPatient, R"("id": "pat-1")", R"("id": "pat 1")"),
              ElementsAre("value@Patient.id"));
  EXPECT_THAT(one(kPatient, R"("id": "pat-1")", R"("id": ")" + std::string(65, 'a') + "\""),
              ElementsAre("value@Patient.id"));
  EXPECT_THAT(one(kPatient, R"("id": "dr")", R"("id": "dr_1")"),
              ElementsAre("value@Patient.contained[0].id"));
  EXPECT_THAT(one(kPatient, R"("contentType": "image/png")", R"("contentType": "image/png ")"),
              ElementsAre("value@Patient.photo[0].contentType"));
  EXPECT_THAT(one(kPatient, R"("contentType": "image/png")", R"("contentType": "a  b")"),
              ElementsAre("value@Patient.photo[0].contentType"));
  EXPECT_THAT(one(kPatient, R"("contentType": "image/png")", R"("contentType": "a b")"), IsEmpty());
  EXPECT_THAT(one(kPatient, "urn:oid:2.16.840.1.113883.4.1", "urn:oid:2.16.840.1.113883.4.1 x"),
              ElementsAre("value@Patient.identifier[0].system"));
  EXPECT_THAT(one(kPatient, R"("valueString": "Springfield")", R"("valueOid": "1.2.3")"),
              ElementsAre("value@Patient.extension[0].valueOid"));
  EXPECT_THAT(one(kPatient, R"("valueString": "Springfield")", R"("valueOid": "urn:oid:1.02")"),
              ElementsAre("value@Patient.extension[0].valueOid"));
  EXPECT_THAT(one(kPatient, R"("valueString": "Springfield")", R"("valueOid": "urn:oid:1.2.0.3")"),
              IsEmpty());
  EXPECT_THAT(one(kPatient, R"("valueString": "Springfield")",
                  R"("valueUuid": "urn:uuid:61EBE359-bfdc-4613-8bf2-c5e300945f0a")"),
              ElementsAre("value@Patient.extension[0].valueUuid"));
  EXPECT_THAT(one(kPatient, R"("data": "iVBORw0KGgo=")", R"("data": "iVBORw0KGgo")"),
              ElementsAre("value@Patient.photo[0].data"));
  EXPECT_THAT(one(kPatient, R"("data": "iVBORw0KGgo=")", R"("data": "iVBO\r\nRw0KGgo=")"),
              IsEmpty());
  // Numbers: integer within 32 bits and without a fraction, positiveInt >= 1, unsignedInt >= 0.
  EXPECT_THAT(one(kPatient, R"("multipleBirthInteger": 2)", R"("multipleBirthInteger": 2.0)"),
              ElementsAre("value@Patient.multipleBirthInteger"));
  EXPECT_THAT(
      one(kPatient, R"("multipleBirthInteger": 2)", R"("multipleBirthInteger": 2147483648)"),
      ElementsAre("value@Patient.multipleBirthInteger"));
  EXPECT_THAT(
      one(kPatient, R"("multipleBirthInteger": 2)", R"("multipleBirthInteger": -2147483648)"),
      IsEmpty());
  EXPECT_THAT(one(kPatient, R"("rank": 1)", R"("rank": 0)"),
              ElementsAre("value@Patient.telecom[0].rank"));
  EXPECT_THAT(one(kPatient, R"("size": 8)", R"("size": -1)"),
              ElementsAre("value@Patient.photo[0].size"));
  EXPECT_THAT(one(kPatient, R"("size": 8)", R"("size": 0)"), IsEmpty());
  EXPECT_THAT(
      IssuesOfDom(Edit(kPatient, R"("multipleBirthInteger": 2)", R"("multipleBirthInteger": 2.5)")),
      ElementsAre("value@Patient.multipleBirthInteger"));
  // Strings: never empty; whitespace other than space/tab/CR/LF breaks the regex (U+00A0 here).
  EXPECT_THAT(one(kPatient, R"("family": "Doe")", R"("family": "")"),
              ElementsAre("value@Patient.name[0].family"));
  EXPECT_THAT(one(kPatient, R"("family": "Doe")",
                  "\"family\": \"Do\xC2\xA0"
                  "e\""),
              ElementsAre("value@Patient.name[0].family"));
  EXPECT_THAT(one(kPatient, R"("family": "Doe")", R"("family": "D\u000be")"),
              ElementsAre("value@Patient.name[0].family"));
  EXPECT_THAT(one(kPatient, R"("family": "Doe")", "\"family\": \"D\xC3\xB6 e\\n\""), IsEmpty());
  // ... only whitespace, or control characters: SHOULD rules, warnings.
  std::string blank = Edit(kPatient, R"("family": "Doe")", R"("family": "  ")");
  EXPECT_THAT(Issues(blank), IsEmpty());
  EXPECT_THAT(Issues(blank, ValidationIssue::Severity::kWarning),
              ElementsAre("value@Patient.name[0].family"));
  EXPECT_FALSE(HasErrors(ValidateResourceJson(blank)));
}

TEST(Validator, RequiredBindings) {
  EXPECT_THAT(Issues(Edit(kPatient, R"("gender": "female")", R"("gender": "f")")),
              ElementsAre("code-invalid@Patient.gender"));
  EXPECT_THAT(Issues(Edit(kObservation, R"("status": "final")", R"("status": "done")")),
              ElementsAre("code-invalid@Observation.status"));
  // In datatypes: Quantity.comparator, HumanName.use, ContactPoint.system.
  EXPECT_THAT(Issues(Edit(kObservation, R"("comparator": "<")", R"("comparator": "~")")),
              ElementsAre("code-invalid@Observation.valueQuantity.comparator"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("system": "phone")", R"("system": "cell")")),
              ElementsAre("code-invalid@Patient.telecom[0].system"));
  // Codes are case-sensitive.
  EXPECT_THAT(Issues(Edit(kPatient, R"("gender": "female")", R"("gender": "Female")")),
              ElementsAre("code-invalid@Patient.gender"));
  // A CodeableConcept needs a coding (system and code) from the ValueSet.
  EXPECT_THAT(Issues(Edit(kCondition, "condition-clinical", "condition-ver-status")),
              ElementsAre("code-invalid@Condition.clinicalStatus"));
  EXPECT_THAT(Issues(Edit(kCondition, R"("code": "active")", R"("code": "Active")")),
              ElementsAre("code-invalid@Condition.clinicalStatus"));
  // The Bundle's entries are resources of their own type; so are contained ones.
  EXPECT_THAT(Issues(Edit(kBundle, R"("gender": "unknown")", R"("gender": "u")")),
              ElementsAre("code-invalid@Bundle.entry[0].resource.gender"));
  EXPECT_THAT(Issues(Edit(kBundle, R"("method": "PUT")", R"("method": "put")")),
              ElementsAre("code-invalid@Bundle.entry[1].request.method"));
}

TEST(Validator, NestedResources) {
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("name": [{"family": "Who"}])", R"("name": {"family": "Who"})")),
      ElementsAre("structure@Patient.contained[0].name"));
  EXPECT_THAT(Issues(Edit(kBundle, R"("status": "in-progress",)", "")),
              ElementsAre("required@Bundle.entry[1].resource.status"));
  EXPECT_THAT(
      Issues(Edit(kBundle, R"("resourceType": "Encounter")", R"("resourceType": "Encountre")")),
      ElementsAre("structure@Bundle.entry[1].resource.resourceType"));
  // A Bundle inside a Bundle (Bundle.entry.resource is any resource).
  std::string inner = Edit(kBundle, R"("gender": "unknown")", R"("gender": "u")");
  std::string outer =
      R"({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": )" + inner + "}]}";
  EXPECT_THAT(Issues(outer),
              ElementsAre("code-invalid@Bundle.entry[0].resource.entry[0].resource.gender"));
}

TEST(Validator, ContainedInvariants) {
  // dom-2: no contained inside contained; dom-4: no versionId/lastUpdated in a contained meta.
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("id": "dr",)",
                  R"("id": "dr", "contained": [{"resourceType": "Organization", "name": "o"}],)")),
      ElementsAre("invariant@Patient.contained[0].contained"));
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("id": "dr",)", R"("id": "dr", "meta": {"versionId": "1"},)")),
      ElementsAre("invariant@Patient.contained[0].meta"));
  EXPECT_THAT(
      Issues(Edit(kPatient, R"("id": "dr",)", R"("id": "dr", "meta": {"source": "urn:x"},)")),
      IsEmpty());
  // Not for Bundle entries, which are resources of their own.
  EXPECT_THAT(Issues(Edit(kBundle, R"("id": "e1",)", R"("id": "e1", "meta": {"versionId": "3"},)")),
              IsEmpty());
}

TEST(Validator, ReferenceTargets) {
  // Observation.subject is Reference(Patient | Group | Device | Location) in R4.
  EXPECT_THAT(Issues(Edit(kObservation, R"("Patient/pat-1")", R"("Practitioner/pr-1")")),
              ElementsAre("structure@Observation.subject.reference"));
  for (std::string_view ok : {R"("Group/g1")", R"("Device/d.1")", R"("Location/l-1")",
                              R"("Patient/p1/_history/2")"}) {
    EXPECT_THAT(Issues(Edit(kObservation, R"("Patient/pat-1")", ok)), IsEmpty()) << ok;
  }
  EXPECT_THAT(Issues(Edit(kObservation, R"("Patient/pat-1")",
                          R"("Practitioner/pr-1/_history/1")")),
              ElementsAre("structure@Observation.subject.reference"));
  // Not relative Type/id: absolute, urn:, contained, unknown types and odd shapes are left alone.
  for (std::string_view other :
       {R"("http://example.org/fhir/Practitioner/1")", R"("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")",
        R"("#pr")", R"("Foo/1")", R"("Practitioner/1/2")", R"("Practitioner")"}) {
    EXPECT_THAT(Issues(Edit(kObservation, R"("Patient/pat-1")", other)), IsEmpty()) << other;
  }
  // Reference.type names the target type too.
  EXPECT_THAT(Issues(Edit(kObservation, R"("reference": "Patient/pat-1")",
                          R"("type": "Practitioner", "identifier": {"value": "x"})")),
              ElementsAre("structure@Observation.subject.type"));
  // The message names the element's targets in the spec's order (observation.html: subject
  // Reference(Patient | Group | Device | Location)), not the reference's text.
  auto issues = ValidateResourceJson(Edit(kObservation, R"("Patient/pat-1")", R"("Medication/secret")"));
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].message,
            "a reference to a Medication is not allowed here: subject is "
            "Reference(Patient | Group | Device | Location)");
  // Reference(Any): Observation.focus takes every type; in backbones and choices too.
  EXPECT_THAT(Issues(Edit(kObservation, R"("issued")",
                          R"("focus": [{"reference": "Medication/m"}], "issued")")),
              IsEmpty());
  EXPECT_THAT(Issues(Edit(kPatient, R"("managingOrganization": {"reference": "Organization/1")",
                          R"("managingOrganization": {"reference": "Patient/1")")),
              ElementsAre("structure@Patient.managingOrganization.reference"));
  EXPECT_THAT(Issues(Edit(kPatient, R"("name": {"text": "John Doe"})",
                          R"("name": {"text": "John Doe"}, "organization": {"reference": "Group/1"})")),
              ElementsAre("structure@Patient.contact[0].organization.reference"));
}

TEST(Validator, IssuesCarryMessagesWithoutValues) {
  auto issues = ValidateResourceJson(
      Edit(kPatient, R"("birthDate": "1974-12-25")", R"("birthDate": "SECRET-1974")"));
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].expression, "Patient.birthDate");
  EXPECT_EQ(issues[0].message, "not a valid date");
  EXPECT_EQ(issues[0].message.find("SECRET"), std::string::npos);
}

TEST(Validator, MalformedJsonAndLimits) {
  EXPECT_THAT(Issues(R"({"resourceType": "Patient",)"), ElementsAre("structure@"));
  std::string many = R"({"resourceType": "Patient")";
  for (int i = 0; i < 20; ++i) many += ", \"x" + std::to_string(i) + "\": 1";
  many += "}";
  ValidationOptions o;
  o.max_issues = 5;
  auto issues = ValidateResourceJson(many, o);
  ASSERT_EQ(issues.size(), 6u);
  EXPECT_EQ(issues[5].code, "too-costly");
  // Nesting beyond max_depth is reported, not followed.
  std::string deep = R"({"resourceType": "Questionnaire", "status": "draft", "item": )";
  for (int i = 0; i < 10; ++i) deep += R"([{"linkId": "a", "type": "group", "item": )";
  deep += R"([{"linkId": "a", "type": "group"}])";
  for (int i = 0; i < 10; ++i) deep += "}]";
  deep += "}";
  EXPECT_THAT(Issues(deep), IsEmpty());
  o.max_depth = 5;
  EXPECT_THAT(ValidateResourceJson(deep, o),
              ::testing::Contains(::testing::Field(&ValidationIssue::code, "too-costly")));
}

TEST(Validator, ParseKeepsNumbersAsWritten) {
  rapidjson::Document d;
  std::string error;
  ASSERT_TRUE(ParseFhirJsonKeepingNumbers(R"({"a": 1.50, "b": [-0, 1e3], "c": "x"})", d, &error));
  EXPECT_EQ(std::string(d["a"].GetString(), d["a"].GetStringLength()),
            "\xFF"
            "1.50");
  EXPECT_EQ(std::string(d["b"][1].GetString(), d["b"][1].GetStringLength()),
            "\xFF"
            "1e3");
  EXPECT_STREQ(d["c"].GetString(), "x");
  EXPECT_FALSE(ParseFhirJsonKeepingNumbers(R"({"a": })", d, &error));
  EXPECT_NE(error.find("offset 6"), std::string::npos) << error;
  EXPECT_FALSE(ParseFhirJsonKeepingNumbers("\"\xFF\"", d, &error));  // not UTF-8
}

TEST(Validator, OperationOutcome) {
  auto issues = ValidateResourceJson(Edit(kPatient, R"("gender": "female")", R"("gender": "f")"));
  rapidjson::Document d;
  d.Parse(ValidationOutcomeJson(issues).c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["resourceType"].GetString(), "OperationOutcome");
  ASSERT_EQ(d["issue"].Size(), 1u);
  EXPECT_STREQ(d["issue"][0]["severity"].GetString(), "error");
  EXPECT_STREQ(d["issue"][0]["code"].GetString(), "code-invalid");
  EXPECT_STREQ(d["issue"][0]["expression"][0].GetString(), "Patient.gender");
  d.Parse(ValidationOutcomeJson({}).c_str());
  EXPECT_STREQ(d["issue"][0]["severity"].GetString(), "information");
}

}  // namespace
}  // namespace isthmus::fhir
