// Invariants of the R4 base definitions and resource profiles (conformance.h). Expected issues
// come from the constraints' definitions in the R4 spec (observation.html#invariants,
// datatypes.html, domainresource.html, patient.html, the vital signs profiles in
// observation-vitalsigns.html), each written down beside its case.
#include "fhir_conformance/conformance.h"
#include "fhir_conformance/conformance_defs.h"

#include <string>
#include <vector>

#include "base/str.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::fhir_conformance {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Severity = fhir::ValidationIssue::Severity;

std::string Show(const fhir::ValidationIssue& i) {
  std::string key = i.message.substr(0, i.message.find(':'));
  return (i.severity == Severity::kError ? "E " : "W ") + i.code + " " + key + " @" +
         i.expression;
}

// Issues as "E invariant obs-6 @Observation" (errors only unless `warnings`).
std::vector<std::string> Invariants(std::string_view json, bool warnings = false) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError()) << json;
  std::vector<std::string> out;
  for (const fhir::ValidationIssue& i : CheckInvariants(doc)) {
    if (warnings || i.severity == Severity::kError) out.push_back(Show(i));
  }
  return out;
}

std::vector<std::string> Profile(std::string_view json, std::string_view url,
                                 Severity unknown = Severity::kError) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError()) << json;
  std::vector<std::string> out;
  for (const fhir::ValidationIssue& i : CheckProfile(doc, url, unknown)) out.push_back(Show(i));
  return out;
}

std::string Edit(std::string_view s, std::string_view from, std::string_view to) {
  std::string out(s);
  size_t at = out.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) out.replace(at, from.size(), to);
  return out;
}

// A body weight as the R4 example (observation-example.json, "example"), with narrative (dom-6).
constexpr std::string_view kWeight = R"({
  "resourceType": "Observation",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">w</div>"},
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
  "subject": {"reference": "Patient/example"},
  "effectiveDateTime": "2016-03-28",
  "valueQuantity": {"value": 67.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                    "code": "kg"}
})";

constexpr std::string_view kBodyWeight = "http://hl7.org/fhir/StructureDefinition/bodyweight";

TEST(Invariants, GoodResourcesMeetThem) {
  EXPECT_THAT(Invariants(kWeight, /*warnings=*/true), IsEmpty());
}

TEST(Invariants, ResourceLevel) {
  // obs-6: dataAbsentReason SHALL only be present if Observation.value[x] is not present.
  EXPECT_THAT(Invariants(Edit(kWeight, R"("valueQuantity")",
                              R"("dataAbsentReason": {"text": "x"}, "valueQuantity")")),
              ElementsAre("E invariant obs-6 @Observation"));
  // dom-6 (warning): a resource should have narrative.
  EXPECT_THAT(Invariants(Edit(kWeight, R"("text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">w</div>"},)", ""),
                         true),
              ElementsAre("W invariant dom-6 @Observation"));
  // dom-3: a contained resource is referenced from elsewhere in the resource.
  EXPECT_THAT(Invariants(Edit(kWeight, R"("status": "final")",
                              R"("contained": [{"resourceType": "Device", "id": "d1"}], "status": "final")")),
              ElementsAre("E invariant dom-3 @Observation"));
  EXPECT_THAT(Invariants(Edit(Edit(kWeight, R"("status": "final")",
                                   R"("contained": [{"resourceType": "Device", "id": "d1"}], "status": "final")"),
                              R"("subject")", R"("device": {"reference": "#d1"}, "subject")")),
              IsEmpty());
}

TEST(Invariants, BackboneAndDatatypeLevels) {
  // pat-1 (on Patient.contact): a contact has details or a reference to an Organization.
  EXPECT_THAT(Invariants(R"({"resourceType": "Patient", "text": {"status": "generated",
      "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">p</div>"},
      "contact": [{"name": {"family": "A"}}, {"gender": "male"}]})"),
              ElementsAre("E invariant pat-1 @Patient.contact[1]"));
  // per-1 (Period, wherever it is): start <= end.
  EXPECT_THAT(Invariants(Edit(kWeight, R"("effectiveDateTime": "2016-03-28")",
                              R"("effectivePeriod": {"start": "2016-03-28", "end": "2016-03-27"})")),
              ElementsAre("E invariant per-1 @Observation.effectivePeriod"));
  // Inside a backbone element inside a datatype: Observation.component.valuePeriod.
  EXPECT_THAT(Invariants(Edit(kWeight, R"("status": "final")",
                              R"("component": [{"code": {"text": "a"}, "valueString": "x"},
                                  {"code": {"text": "b"}, "valuePeriod": {"start": "2020", "end": "2019"}}],
                                  "status": "final")")),
              ElementsAre("E invariant per-1 @Observation.component[1].valuePeriod"));
  // ref-1 (Reference): a local reference names a contained resource (%rootResource.contained).
  EXPECT_THAT(Invariants(Edit(kWeight, R"("Patient/example")", R"("#nothere")")),
              ElementsAre("E invariant ref-1 @Observation.subject"));
  // ext-1 (Extension): an extension has extensions or a value, not both; in `_name` objects too.
  EXPECT_THAT(Invariants(Edit(kWeight, R"("status": "final")",
                              R"("status": "final", "_status": {"extension": [{"url": "http://x"}]})")),
              ElementsAre("E invariant ext-1 @Observation._status.extension[0]"));
}

TEST(Invariants, NestedResources) {
  // In a Bundle entry, %resource is the entry's resource.
  std::string bad = Edit(kWeight, R"("valueQuantity")",
                         R"("dataAbsentReason": {"text": "x"}, "valueQuantity")");
  std::string bundle = R"({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl":
      "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "resource": )" + bad + "}]}";
  EXPECT_THAT(Invariants(bundle), ElementsAre("E invariant obs-6 @Bundle.entry[0].resource"));
  // bdl-7: fullUrl unique (with the same version); bdl-1: total only in searches or histories.
  EXPECT_THAT(Invariants(R"({"resourceType": "Bundle", "type": "collection", "total": 1})"),
              ElementsAre("E invariant bdl-1 @Bundle"));
}

// An absolute RESTful reference (references.html#literal: `[base]/Type/id`, with an optional
// `/_history/vid`) names its target's type as a relative one does, so it is held to the element's
// Reference(...) types the same way (the validator checks relative ones on every write; these in
// $validate). Observation.subject is Reference(Patient | Group | Device | Location);
// Annotation.author[x] Reference(Practitioner | Patient | RelatedPerson | Organization).
TEST(Invariants, AbsoluteReferenceTargets) {
  auto with_subject = [](std::string_view ref) {
    return Edit(kWeight, R"("reference": "Patient/example")",
                base::StrCat(R"("reference": ")", ref, R"(")"));
  };
  EXPECT_THAT(Invariants(with_subject("http://example.org/fhir/Patient/p1")), IsEmpty());
  EXPECT_THAT(Invariants(with_subject("https://example.org/Group/g.1/_history/2")), IsEmpty());
  EXPECT_THAT(Invariants(with_subject("http://example.org/fhir/Organization/o1")),
              ElementsAre("E structure a reference to a Organization is not allowed here "
                          "@Observation.subject.reference"));
  EXPECT_THAT(Invariants(with_subject("https://example.org/Organization/o1/_history/3")),
              ElementsAre("E structure a reference to a Organization is not allowed here "
                          "@Observation.subject.reference"));
  // No resource type at the end of the URL, another scheme, a query: nothing to check.
  EXPECT_THAT(Invariants(with_subject("http://example.org/fhir/Thing/1")), IsEmpty());
  EXPECT_THAT(Invariants(with_subject("http://example.org/Organization")), IsEmpty());
  EXPECT_THAT(Invariants(with_subject("urn:uuid:6f1c1f9e-2a6b-4c57-9d6e-0b7f3c1e2a11")), IsEmpty());
  EXPECT_THAT(Invariants(with_subject("http://example.org/Organization?name=x")), IsEmpty());
  // Inside a datatype: a note's author.
  std::string note = Edit(kWeight, R"("status": "final")",
                          R"("status": "final", "note": [{"authorReference":
                              {"reference": "http://example.org/Device/d1"}, "text": "t"}])");
  EXPECT_THAT(Invariants(note),
              ElementsAre("E structure a reference to a Device is not allowed here "
                          "@Observation.note[0].authorReference.reference"));
}

TEST(Invariants, NumbersMustBeJsonNumbers) {
  // rng-2: low <= high (Range.low/high are quantities: 9 <= 10 numerically, not as text).
  constexpr std::string_view kRange = R"({"resourceType": "Observation", "text": {"status":
      "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">w</div>"}, "status":
      "final", "code": {"text": "x"}, "valueRange": {"low": {"value": 9}, "high": {"value": 10}}})";
  EXPECT_THAT(Invariants(kRange), IsEmpty());
  EXPECT_THAT(Invariants(Edit(kRange, R"("value": 9})", R"("value": 11})")),
              ElementsAre("E invariant rng-2 @Observation.valueRange"));
  // The store's parse keeps numbers as marked text: WithJsonNumbers turns them back.
  rapidjson::Document marked;
  std::string error;
  ASSERT_TRUE(fhir::ParseFhirJsonKeepingNumbers(Edit(kRange, R"("value": 9})", R"("value": 11})"),
                                                marked, &error));
  rapidjson::Document plain;
  WithJsonNumbers(marked, plain);
  ASSERT_TRUE(plain["valueRange"]["low"]["value"].IsNumber());
  std::vector<fhir::ValidationIssue> issues = CheckInvariants(plain);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(Show(issues[0]), "E invariant rng-2 @Observation.valueRange");
  // The message: key and the constraint's text (from the definitions, no values).
  EXPECT_EQ(issues[0].message, "rng-2: If present, low SHALL have a lower value than high");
}

TEST(Invariants, UnsupportedAreListed) {
  // Narrative.div's txt-1 (only allowed XHTML) and txt-2 (non-whitespace content) are both
  // written as htmlChecks(), which the engine refuses (it has no XHTML rules).
  EXPECT_THAT(UnsupportedInvariants(),
              ElementsAre("txt-1 Narrative.div: htmlChecks() needs XHTML rules the engine does "
                          "not implement",
                          "txt-2 Narrative.div: htmlChecks() needs XHTML rules the engine does "
                          "not implement"));
}

TEST(Profiles, BodyWeight) {
  EXPECT_TRUE(IsKnownProfile(kBodyWeight));
  EXPECT_TRUE(IsKnownProfile("http://hl7.org/fhir/StructureDefinition/bodyweight|4.0.1"));
  EXPECT_THAT(Profile(kWeight, kBodyWeight), IsEmpty());
  // The code slice (LOINC 29463-7) is required: min 1.
  EXPECT_THAT(Profile(Edit(kWeight, "29463-7", "3141-9"), kBodyWeight),
              ElementsAre("E structure min @Observation.code.coding:BodyWeightCode"));
  // Fixed: valueQuantity.system is UCUM.
  EXPECT_THAT(Profile(Edit(kWeight, "http://unitsofmeasure.org", "http://example.org/u"),
                      kBodyWeight),
              ElementsAre("E structure fixed @Observation.value[x]:valueQuantity.system"));
  // The vital-signs category (pattern on a slice), subject required (min 1).
  EXPECT_THAT(Profile(Edit(kWeight, R"("subject": {"reference": "Patient/example"},)", ""),
                      kBodyWeight),
              ElementsAre("E structure min @Observation.subject"));
  // vs-1: a dateTime effective[x] is at least a day (`toString().length() >= 8`): a year is not,
  // nor a month ("2016-03" is 7 characters; toString() wrote "2016-03T" before, which passed).
  EXPECT_THAT(Profile(Edit(kWeight, "2016-03-28", "2016"), kBodyWeight),
              ElementsAre("E invariant vs-1 @Observation.effective[x]"));
  EXPECT_THAT(Profile(Edit(kWeight, "2016-03-28", "2016-03"), kBodyWeight),
              ElementsAre("E invariant vs-1 @Observation.effective[x]"));
  // The vital-signs category slice (pattern on category.coding system and code), min 1.
  EXPECT_THAT(Profile(Edit(kWeight, R"("code": "vital-signs")", R"("code": "laboratory")"),
                      kBodyWeight),
              ElementsAre("E structure min @Observation.category:VSCat"));
  // bodyweight's value[x] is only a Quantity.
  EXPECT_THAT(Profile(Edit(kWeight, R"("valueQuantity": {"value": 67.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                    "code": "kg"})", R"("valueString": "heavy")"), kBodyWeight),
              ElementsAre("E structure type @Observation.value[x]"));
  // vs-2: without component or hasMember, a value or a dataAbsentReason.
  EXPECT_THAT(Profile(Edit(kWeight, R"("valueQuantity": {"value": 67.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                    "code": "kg"})", R"("issued": "2016-03-28T10:00:00Z")"), kBodyWeight),
              ElementsAre("E invariant vs-2 @Observation"));
}

// Required bindings a profile adds (observation-vitalsigns.html): bodyweight's
// valueQuantity.code from ucum-bodyweight (kg, [lb_av], g), every vital sign's component value
// from ucum-vitals-common (% cm [in_i] kg g [lb_av] Cel [degF] mm[Hg] /min kg/m2 m2), a Quantity
// by its system and code; ldlcholesterol's code from ldlcholesterol-codes (LOINC 18262-6,
// 13457-7), a CodeableConcept by at least one coding. The base's own required bindings
// (Quantity.comparator) are the validator's and not repeated here.
TEST(Profiles, RequiredBindings) {
  auto bindings = [](std::string_view json, std::string_view url) {
    std::vector<std::string> out;
    for (const std::string& s : Profile(json, url)) {
      if (s.find("code-invalid") != std::string::npos) out.push_back(s);
    }
    return out;
  };
  EXPECT_THAT(bindings(kWeight, kBodyWeight), IsEmpty());
  std::string pounds = Edit(Edit(kWeight, R"("unit": "kg")", R"("unit": "lb")"),
                            R"("code": "kg")", R"("code": "[lb_av]")");
  EXPECT_THAT(bindings(pounds, kBodyWeight), IsEmpty());
  std::string ounces = Edit(kWeight, R"("code": "kg")", R"("code": "[oz_av]")");
  EXPECT_THAT(bindings(ounces, kBodyWeight),
              ElementsAre("E code-invalid binding @Observation.value[x]:valueQuantity.code"));
  // A component's Quantity: mm[Hg] is in ucum-vitals-common, kPa is not; nor is a Quantity in
  // kg whose system is not UCUM (system and code are the pair).
  auto component = [&](std::string_view quantity) {
    return Edit(kWeight, R"("subject")",
                base::StrCat(R"("component": [{"code": {"text": "c"}, "valueQuantity": )",
                             quantity, R"(}], "subject")"));
  };
  EXPECT_THAT(bindings(component(R"({"value": 1, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"})"),
                       kBodyWeight),
              IsEmpty());
  EXPECT_THAT(bindings(component(R"({"value": 1, "system": "http://unitsofmeasure.org", "code": "kPa"})"),
                       kBodyWeight),
              ElementsAre("E code-invalid binding @Observation.component.value[x]"));
  EXPECT_THAT(bindings(component(R"({"value": 1, "system": "http://example.org/units", "code": "kg"})"),
                       kBodyWeight),
              ElementsAre("E code-invalid binding @Observation.component.value[x]"));
  // A CodeableConcept: one coding from the ValueSet is enough; none is an issue.
  constexpr std::string_view kLdl = "http://hl7.org/fhir/StructureDefinition/ldlcholesterol";
  std::string ldl = Edit(kWeight, "29463-7", "18262-6");
  EXPECT_THAT(bindings(ldl, kLdl), IsEmpty());
  EXPECT_THAT(bindings(Edit(ldl, R"({"system": "http://loinc.org", "code": "18262-6"})",
                            R"({"system": "http://loinc.org", "code": "2089-1"},
                               {"system": "http://loinc.org", "code": "13457-7"})"), kLdl),
              IsEmpty());
  EXPECT_THAT(bindings(Edit(kWeight, "29463-7", "2089-1"), kLdl),
              ElementsAre("E code-invalid binding @Observation.code"));
}

TEST(Profiles, UnknownAndWrongType) {
  EXPECT_THAT(Profile(kWeight, "http://example.org/StructureDefinition/nope"),
              ElementsAre("E not-supported unknown profile http @"));
  EXPECT_THAT(Profile(kWeight, "http://example.org/StructureDefinition/nope", Severity::kWarning),
              ElementsAre("W not-supported unknown profile http @"));
  EXPECT_THAT(Profile(kWeight, "http://hl7.org/fhir/StructureDefinition/Patient"),
              ElementsAre("E invalid the profile http @resourceType"));
  // A base resource definition is a profile with no more rules.
  EXPECT_THAT(Profile(kWeight, "http://hl7.org/fhir/StructureDefinition/Observation"), IsEmpty());
}

// Every rule of every profile compiles and evaluates on a bare resource of its type (what cannot
// be turned into rules at all is listed in the generated kCSkipped and reported as warnings).
TEST(Profiles, EveryRuleCompilesAndEvaluates) {
  int profiles = 0;
  for (int i = 0; i < internal::kCProfileCount; ++i) {
    const internal::CProfile& p = internal::kCProfiles[i];
    std::string bare = R"({"resourceType": ")" + std::string(p.type) + R"("})";
    rapidjson::Document doc;
    doc.Parse(bare.c_str());
    for (const fhir::ValidationIssue& issue : CheckProfile(doc, p.url, Severity::kError)) {
      EXPECT_NE(issue.code, "processing") << p.url << ": " << issue.message;
      EXPECT_EQ(issue.message.find("does not compile"), std::string::npos)
          << p.url << ": " << issue.message;
    }
    ++profiles;
  }
  EXPECT_EQ(profiles, 189);  // 145 R4 resource types + 44 profiles of profiles-others.json
}

TEST(Profiles, MetaProfile) {
  std::string with = Edit(kWeight, R"("status": "final")",
                          R"("meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/bodyweight",
                              "http://example.org/p"]}, "status": "final")");
  rapidjson::Document doc;
  doc.Parse(with.c_str());
  std::vector<std::string> shown;
  for (const auto& i : CheckMetaProfiles(doc)) shown.push_back(Show(i));
  EXPECT_THAT(shown, ElementsAre("W not-supported unknown profile http @"));
  // A profile's rules apply through meta.profile as through $validate?profile=.
  doc.Parse(Edit(with, "29463-7", "3141-9").c_str());
  shown.clear();
  for (const auto& i : CheckMetaProfiles(doc)) shown.push_back(Show(i));
  EXPECT_THAT(shown, ElementsAre("E structure min @Observation.code.coding:BodyWeightCode",
                                 "W not-supported unknown profile http @"));
}

}  // namespace
}  // namespace isthmus::fhir_conformance
