#include <algorithm>
#include <filesystem>

#include "base/status_macros.h"
#include "base/str.h"
#include "db/sqlite.h"
#include "fhir_search/extract.h"
#include "fhir_search/indexer.h"
#include "fhir_search/registry.h"
#include "fhir_search/search.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/schema.h"

namespace isthmus::fhir_search {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const Registry& Reg() {
  static const std::shared_ptr<const Registry> reg = std::move(Registry::Build()).value();
  return *reg;
}

TEST(RegistryTest, OfficialParametersCompiledPerType) {
  const SearchParam* p = Reg().Find("Patient", "birthdate");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->type, ParamType::kDate);
  EXPECT_EQ(p->expression, "Patient.birthDate");
  EXPECT_TRUE(p->supported);
  const SearchParam* id = Reg().Find("Observation", "_id");
  ASSERT_NE(id, nullptr);
  EXPECT_TRUE(id->resource_column);
  const SearchParam* comp = Reg().Find("Observation", "code-value-quantity");
  ASSERT_NE(comp, nullptr);
  EXPECT_TRUE(comp->supported);
  ASSERT_EQ(comp->components.size(), 2u);
  EXPECT_EQ(comp->components[0].code, "code");
  EXPECT_EQ(comp->components[0].type, ParamType::kToken);
  EXPECT_EQ(comp->components[1].type, ParamType::kQuantity);
  // R4's `value.as(Quantity)`, read as ofType (CollectionSafeCasts).
  EXPECT_EQ(comp->components[1].expression, "value.ofType(Quantity)");
  // The R4 erratum (relatesto and relation swapped) is corrected at generation.
  const SearchParam* rel = Reg().Find("DocumentReference", "relationship");
  ASSERT_NE(rel, nullptr);
  ASSERT_EQ(rel->components.size(), 2u);
  EXPECT_EQ(rel->components[0].code, "relatesto");
  EXPECT_EQ(rel->components[0].expression, "target");
  EXPECT_EQ(rel->components[1].expression, "code");
  EXPECT_FALSE(Reg().Find("Location", "near")->supported);  // special
  EXPECT_NE(Reg().Find("Patient", "_tag"), nullptr);
  EXPECT_EQ(Reg().Find("Patient", "nonsense"), nullptr);
  std::vector<std::string> codes;
  for (const SearchParam* s : Reg().Supported("Patient")) codes.push_back(s->code);
  EXPECT_THAT(codes, ::testing::IsSupersetOf({"_id", "_lastUpdated", "birthdate", "family",
                                              "identifier", "name", "organization"}));
}

// A parameter whose expression repeats another's, or is the union of others' (same type, same
// components), has no rows of its own: theirs answer it (R4 expressions below).
TEST(RegistryTest, ParametersRepeatingOthersAreStoredAsThem) {
  auto stored_as = [](std::string_view type, std::string_view code) {
    return Reg().Find(type, code)->stored_as;
  };
  // Patient.name for both; family (Patient.name.family) and given are parts of it: HumanName
  // strings that a string search on a HumanName reads (R4 search.html#string), so name is also
  // answered from their rows, and phonetic, answered from name's, too.
  EXPECT_THAT(stored_as("Patient", "phonetic"), ElementsAre("name", "family", "given"));
  EXPECT_THAT(stored_as("Patient", "name"), ElementsAre("name", "family", "given"));
  EXPECT_THAT(stored_as("Practitioner", "name"), ElementsAre("name", "family", "given"));
  // Address parts (Patient.address.city...); address-use is a token, not part of the string.
  EXPECT_THAT(stored_as("Patient", "address"),
              ElementsAre("address", "address-city", "address-country", "address-postalcode",
                          "address-state"));
  // A where() filter of the same items: phone = telecom.where(system='phone').
  EXPECT_THAT(stored_as("Patient", "telecom"), ElementsAre("telecom", "email", "phone"));
  EXPECT_THAT(stored_as("Patient", "family"), ElementsAre("family"));
  // Organization.name is a string, not a HumanName: no parts.
  EXPECT_THAT(stored_as("Organization", "name"), ElementsAre("name"));
  // Observation.code | Observation.component.code.
  EXPECT_THAT(stored_as("Observation", "combo-code"),
              UnorderedElementsAre("code", "component-code"));
  EXPECT_THAT(stored_as("Observation", "combo-value-quantity"),
              UnorderedElementsAre("value-quantity", "component-value-quantity"));
  // Composites over Observation | Observation.component with the same components.
  EXPECT_THAT(stored_as("Observation", "combo-code-value-quantity"),
              UnorderedElementsAre("code-value-quantity", "component-code-value-quantity"));
  EXPECT_THAT(stored_as("Observation", "code-value-quantity"), ElementsAre("code-value-quantity"));
  // A where() filter keeps its own rows, except resolve() is T on another reference parameter
  // (the subject rows that name a Patient).
  EXPECT_THAT(stored_as("Patient", "phone"), ElementsAre("phone"));
  EXPECT_THAT(stored_as("Observation", "patient"), ElementsAre("subject"));
  EXPECT_EQ(Reg().Find("Observation", "patient")->stored_target, "Patient");
  EXPECT_THAT(stored_as("Encounter", "patient"), ElementsAre("subject"));
  EXPECT_THAT(stored_as("AllergyIntolerance", "patient"), ElementsAre("patient"));  // own element
  std::vector<std::string> extracted;
  for (const SearchParam* p : Reg().Extracted("Observation")) extracted.push_back(p->code);
  EXPECT_THAT(extracted, ::testing::IsSupersetOf({"code", "component-code", "value-quantity",
                                                  "component-code-value-quantity", "subject"}));
  // Composites over the whole Observation are answered from code and value-* rows (group 0);
  // combo- from those and the component composite's groups.
  const SearchParam* cvq = Reg().Find("Observation", "code-value-quantity");
  EXPECT_THAT(cvq->component_rows, ElementsAre("code", "value-quantity"));
  EXPECT_THAT(Reg().Find("Observation", "code-value-concept")->component_rows,
              ElementsAre("code", "value-concept"));
  EXPECT_THAT(Reg().Find("Observation", "combo-code-value-quantity")->component_params,
              ElementsAre(ElementsAre("code", "component-code-value-quantity$0"),
                          ElementsAre("value-quantity", "component-code-value-quantity$1")));
  EXPECT_TRUE(Reg().Find("Observation", "component-code-value-quantity")->component_rows.empty());
  for (const char* alias : {"combo-code", "combo-value-quantity", "combo-code-value-quantity",
                            "code-value-quantity", "patient"}) {
    EXPECT_THAT(extracted, ::testing::Not(::testing::Contains(alias)));
  }
  // A union is split only at its top level, and only when nothing looser than | is there.
  auto a = Extract(Reg(), "Observation", R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
                  "valueQuantity":{"value":120,"system":"http://unitsofmeasure.org",
                                   "code":"mm[Hg]"}}]})");
  ASSERT_TRUE(a.ok());
  for (const auto& t : a->tokens) EXPECT_FALSE(t.param.starts_with("combo-")) << t.param;
  for (const auto& q : a->quantities) EXPECT_FALSE(q.param.starts_with("combo-")) << q.param;
}

TEST(RegistryTest, ReduceExpressionKeepsTheTypesAlternatives) {
  EXPECT_EQ(ReduceExpression("Patient.name | Practitioner.name", "Practitioner"),
            "Practitioner.name");
  EXPECT_EQ(ReduceExpression("(Patient.deceased as dateTime) | Person.x", "Patient"),
            "(Patient.deceased as dateTime)");
  EXPECT_EQ(ReduceExpression("a.where(x = 'p|q')", "Patient"), "a.where(x = 'p|q')");
  EXPECT_EQ(Reg().Find("Encounter", "date")->expression, "Encounter.period");
}

TEST(ExtractTest, NormalizeFoldsCaseAndAccents) {
  EXPECT_EQ(NormalizeString("Müller-ÉLODIE Łukasz"), "muller-elodie lukasz");
  EXPECT_EQ(NormalizeString("Ærø"), "aero");
}

TEST(ExtractTest, NarrativeWithoutTagsAndContentStrings) {
  EXPECT_EQ(StripTags("<div><p>a&lt;b</p>&#233;t&#xE9;</div>"), "a<b \u00e9t\u00e9");
  EXPECT_EQ(StripTags("<td>1</td><td>2</td>\n x &bogus; &"), "1 2 x &bogus; &");
  std::string narrative, content;
  ASSERT_TRUE(ExtractFullText(R"({"resourceType":"Binary","id":"b1","contentType":"text/plain",
      "data":"QUJD","text":{"div":"<div>Hi</div>"},"meta":{"tag":[{"system":"urn:s","code":"x"}],
      "profile":["http://p"]},"securityContext":{"reference":"Patient/p1","display":"Pat"}})",
                              &narrative, &content).ok());
  EXPECT_EQ(narrative, "Hi");
  // No base64 data, no resourceType, narrative, id, system, profile or reference.
  EXPECT_EQ(content, "text/plain x Pat");
  EXPECT_FALSE(ExtractFullText("[1]", &narrative, &content).ok());
}

TEST(ExtractTest, DateRangesFollowPrecision) {
  int64_t lo = 0, hi = 0;
  ASSERT_TRUE(DateRange("2024", &lo, &hi));
  EXPECT_EQ(lo, 1704067200000000);           // 2024-01-01T00:00:00Z
  EXPECT_EQ(hi, 1735689600000000 - 1);       // 2024-12-31T23:59:59.999999Z
  ASSERT_TRUE(DateRange("2024-02", &lo, &hi));
  EXPECT_EQ(hi - lo + 1, int64_t{29} * 86400 * 1000000);  // leap February
  ASSERT_TRUE(DateRange("2024-03-05", &lo, &hi));
  EXPECT_EQ(hi - lo + 1, int64_t{86400} * 1000000);
  ASSERT_TRUE(DateRange("2024-03-05T10:00:00+02:00", &lo, &hi));
  EXPECT_EQ(lo, 1709625600000000);           // 08:00Z
  EXPECT_EQ(hi - lo + 1, 1000000);
  ASSERT_TRUE(DateRange("2024-03-05T10:00:00.250Z", &lo, &hi));
  EXPECT_EQ(hi - lo + 1, 1000);
  EXPECT_FALSE(DateRange("2024-13", &lo, &hi));
  EXPECT_FALSE(DateRange("yesterday", &lo, &hi));
}

TEST(ExtractTest, EveryParameterTypeOfPatientAndObservation) {
  absl::StatusOr<IndexRows> p = Extract(Reg(), "Patient", R"({
    "resourceType": "Patient", "id": "p1", "active": true,
    "identifier": [{"system": "urn:mrn", "value": "12345", "type": {"text": "Medical record"}}],
    "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
    "telecom": [{"system": "phone", "value": "555-1234"}],
    "gender": "female", "birthDate": "1980-02",
    "managingOrganization": {"reference": "Organization/o1"},
    "meta": {"tag": [{"system": "urn:t", "code": "vip"}], "profile": ["http://x/p"]}})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->errors, 0);
  auto strings = [&](std::string_view param) {
    std::vector<std::string> out;
    for (const auto& s : p->strings) if (s.param == param) out.push_back(s.norm);
    return out;
  };
  EXPECT_THAT(strings("family"), ElementsAre("muller"));
  EXPECT_THAT(strings("given"), UnorderedElementsAre("anna", "maria"));
  // name's values are all family or given values: stored once, as those (stored_as).
  EXPECT_THAT(strings("name"), IsEmpty());
  bool identifier = false, gender = false, active = false, phone = false, tag = false;
  for (const auto& t : p->tokens) {
    identifier |= t.param == "identifier" && t.system == "urn:mrn" && t.code == "12345" &&
                  t.text == "medical record";
    gender |= t.param == "gender" && t.code == "female";
    active |= t.param == "active" && t.code == "true";
    phone |= t.param == "phone" && t.code == "555-1234";
    tag |= t.param == "_tag" && t.system == "urn:t" && t.code == "vip";
  }
  EXPECT_TRUE(identifier && gender && active && phone && tag);
  ASSERT_EQ(p->dates.size(), 1u);
  EXPECT_EQ(p->dates[0].param, "birthdate");
  int64_t lo = 0, hi = 0;
  ASSERT_TRUE(DateRange("1980-02", &lo, &hi));
  EXPECT_EQ(p->dates[0].low, lo);
  EXPECT_EQ(p->dates[0].high, hi);
  bool org = false;
  for (const auto& r : p->references) {
    org |= r.param == "organization" && r.target_type == "Organization" && r.target_id == "o1";
  }
  EXPECT_TRUE(org);
  ASSERT_EQ(p->uris.size(), 1u);
  EXPECT_EQ(p->uris[0].param, "_profile");

  absl::StatusOr<IndexRows> o = Extract(Reg(), "Observation", R"({
    "resourceType": "Observation", "id": "o1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
    "subject": {"reference": "Patient/p1"},
    "effectivePeriod": {"start": "2024-01-10T08:00:00Z"},
    "valueQuantity": {"value": 72.5, "unit": "beats/min", "system": "http://unitsofmeasure.org",
                      "code": "/min"}})");
  ASSERT_TRUE(o.ok()) << o.status();
  bool quantity = false;
  for (const auto& q : o->quantities) {
    quantity |= q.param == "value-quantity" && q.value == 72.5 && q.code == "/min";
  }
  EXPECT_TRUE(quantity);
  bool period = false;
  for (const auto& d : o->dates) period |= d.param == "date" && d.high == kMaxMicros;
  EXPECT_TRUE(period);
  bool subject = false, patient = false;
  for (const auto& r : o->references) {
    subject |= r.param == "subject" && r.target_type == "Patient" && r.target_id == "p1";
    patient |= r.param == "patient";
  }
  EXPECT_TRUE(subject);
  EXPECT_FALSE(patient);  // answered from the subject rows (Registry stored_target)
}

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("fhir_search_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    writer_ = std::move(store::Writer::Open((dir_ / "isthmus.db").string())).value();
    registry_ = std::move(Registry::Build()).value();
    indexer_ = std::make_unique<SearchIndexer>(registry_);
    store::FhirStoreOptions o;
    o.clock = &clock_;
    o.indexer = indexer_.get();
    store_ = std::move(store::FhirStore::Open(*writer_, o)).value();
    searcher_ = std::make_unique<Searcher>(*writer_, registry_, &clock_);
  }

  // Search tests use small resources, some not valid R4 on purpose (a dateTime in birthDate to
  // test precision): R4 validation is the store's concern, tested there.
  void Put(std::string_view type, std::string_view id, std::string json) {
    absl::StatusOr<store::FhirWriteResult> w =
        store_->Update(type, id, json, {.validate = false});
    ASSERT_TRUE(w.ok()) << w.status();
  }

  std::vector<std::string> Ids(std::string_view type, Params params, SearchOptions o = {}) {
    absl::StatusOr<SearchResult> r = searcher_->Search(type, params, o);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> out;
    if (r.ok()) {
      for (const auto& v : r->matches) out.push_back(v.id);
    }
    return out;
  }
  std::vector<std::string> Sorted(std::string_view type, Params params) {
    std::vector<std::string> ids = Ids(type, std::move(params));
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  void LoadPatients() {
    Put("Patient", "a", R"({"resourceType":"Patient","id":"a","active":true,
      "identifier":[{"system":"urn:mrn","value":"A1"}],
      "name":[{"family":"Müller","given":["Anna"]}],"gender":"female","birthDate":"1980-02-14",
      "managingOrganization":{"reference":"Organization/org1"}})");
    Put("Patient", "b", R"({"resourceType":"Patient","id":"b","active":false,
      "identifier":[{"system":"urn:other","value":"A1"}],
      "name":[{"family":"Mueller","given":["Bert"]}],"gender":"male","birthDate":"1980",
      "telecom":[{"system":"email","value":"b@example.org"}]})");
    Put("Patient", "c", R"({"resourceType":"Patient","id":"c",
      "identifier":[{"value":"C3"}],
      "name":[{"family":"Smith","given":["Carla"]}],"gender":"female","birthDate":"1990-07-01T10:00:00Z"})");
    Put("Organization", "org1", R"({"resourceType":"Organization","id":"org1","name":"General Hospital",
      "type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov"}],"text":"Healthcare Provider"}]})");
  }

  void LoadObservations() {
    Put("Observation", "o1", R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},
      "subject":{"reference":"Patient/a"},"effectiveDateTime":"2024-01-10T08:00:00Z",
      "valueQuantity":{"value":72,"system":"http://unitsofmeasure.org","code":"/min"}})");
    Put("Observation", "o2", R"({"resourceType":"Observation","id":"o2","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}]},
      "subject":{"reference":"Patient/b"},"effectiveDateTime":"2024-02-01",
      "valueQuantity":{"value":80.5,"system":"http://unitsofmeasure.org","code":"kg"}})");
    Put("Observation", "o3", R"({"resourceType":"Observation","id":"o3","status":"preliminary",
      "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}],"text":"Weight"},
      "subject":{"reference":"Patient/a"},"effectivePeriod":{"start":"2023-12-31","end":"2024-01-02"},
      "valueQuantity":{"value":81000,"system":"http://unitsofmeasure.org","code":"g"}})");
  }

  std::filesystem::path dir_;
  base::FakeClock clock_{absl::FromUnixSeconds(1735689600)};  // 2025-01-01
  std::unique_ptr<store::Writer> writer_;
  std::shared_ptr<const Registry> registry_;
  std::unique_ptr<SearchIndexer> indexer_;
  std::unique_ptr<store::FhirStore> store_;
  std::unique_ptr<Searcher> searcher_;
};

TEST_F(SearchTest, Strings) {
  LoadPatients();
  EXPECT_THAT(Sorted("Patient", {{"family", "mu"}}), ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"family", "MÜLLER"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"family:exact", "Müller"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"family:exact", "müller"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"name:contains", "ell"}}), ElementsAre("b"));
  EXPECT_THAT(Sorted("Patient", {{"name", "carla"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"name", "smith,anna"}}), ElementsAre("a", "c"));  // OR
  EXPECT_THAT(Sorted("Patient", {{"name", "m"}, {"given", "b"}}), ElementsAre("b"));  // AND
  EXPECT_THAT(Sorted("Patient", {{"name:contains", "100%"}}), IsEmpty());
}

// A parameter answered from its parts' rows too (name from family and given, address from
// address-city..., telecom from phone and email) finds every value it found when it had a row
// per value, and the parts still find only their own.
TEST_F(SearchTest, ParametersAnsweredFromTheirPartsToo) {
  Put("Patient", "p", R"({"resourceType":"Patient","id":"p",
    "name":[{"text":"Dr Ann Lee","prefix":["Dr"],"family":"Lee","given":["Ann"]}],
    "address":[{"line":["1 Main St"],"city":"Springfield","postalCode":"12345","country":"US"}],
    "telecom":[{"system":"phone","value":"555-1"},{"system":"email","value":"a@x.org"},
               {"system":"fax","value":"555-2"}]})");
  Put("Patient", "q", R"({"resourceType":"Patient","id":"q","name":[{"family":"Ann"}]})");
  EXPECT_THAT(Sorted("Patient", {{"name", "lee"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"name", "ann"}}), ElementsAre("p", "q"));
  EXPECT_THAT(Sorted("Patient", {{"name", "dr"}}), ElementsAre("p"));  // prefix: name's own
  EXPECT_THAT(Sorted("Patient", {{"name:exact", "Lee"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"phonetic", "lee"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"family", "ann"}}), ElementsAre("q"));
  EXPECT_THAT(Sorted("Patient", {{"given", "lee"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"name:missing", "false"}}), ElementsAre("p", "q"));
  EXPECT_THAT(Sorted("Patient", {{"name:missing", "true"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"address", "springfield"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"address", "1 main"}}), ElementsAre("p"));  // line: own
  EXPECT_THAT(Sorted("Patient", {{"address", "12345"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"address-city", "1 main"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"address:missing", "true"}}), ElementsAre("q"));
  EXPECT_THAT(Sorted("Patient", {{"telecom", "555-1"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"telecom", "a@x.org"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"telecom", "555-2"}}), ElementsAre("p"));  // fax: own
  EXPECT_THAT(Sorted("Patient", {{"telecom", "email|a@x.org"}}), ElementsAre("p"));
  EXPECT_THAT(Sorted("Patient", {{"telecom:not", "555-1"}}), ElementsAre("q"));
  EXPECT_THAT(Sorted("Patient", {{"phone", "a@x.org"}}), IsEmpty());
  // _sort reads the parts' rows too: by the lowest value, r ("abe", its family) comes before s
  // ("ann"); from name's own rows alone ("cy", "bo") it would be the other way round.
  Put("Patient", "r", R"({"resourceType":"Patient","id":"r",
    "name":[{"prefix":["Cy"],"family":"Abe"}]})");
  Put("Patient", "s", R"({"resourceType":"Patient","id":"s",
    "name":[{"text":"Bo","family":"Ann"}]})");
  EXPECT_THAT(Ids("Patient", {{"_id", "r,s"}, {"_sort", "name"}}), ElementsAre("r", "s"));
}

TEST_F(SearchTest, Tokens) {
  LoadPatients();
  EXPECT_THAT(Sorted("Patient", {{"identifier", "A1"}}), ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"identifier", "urn:mrn|A1"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"identifier", "|C3"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"identifier", "urn:other|"}}), ElementsAre("b"));
  EXPECT_THAT(Sorted("Patient", {{"gender:not", "female"}}), ElementsAre("b"));
  EXPECT_THAT(Sorted("Patient", {{"active", "true"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"active:not", "true"}}), ElementsAre("b", "c"));
  EXPECT_THAT(Sorted("Patient", {{"email", "b@example.org"}}), ElementsAre("b"));
  EXPECT_THAT(Sorted("Organization", {{"type:text", "health"}}), ElementsAre("org1"));
  EXPECT_THAT(Sorted("Organization", {{"type:text", "provider"}}), ElementsAre("org1"));
  EXPECT_THAT(Sorted("Organization", {{"type:text", "rovider"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"_id", "a,c"}}), ElementsAre("a", "c"));
  EXPECT_THAT(Sorted("Patient", {{"_id:not", "a"}}), ElementsAre("b", "c"));
}

TEST_F(SearchTest, DatesWithPrefixesAndPrecision) {
  LoadPatients();  // a: 1980-02-14, b: 1980 (the whole year), c: 1990-07-01T10:00Z
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "1980-02-14"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "1980"}}), ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "eq1980-02"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "ne1980"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "gt1980-06"}}), ElementsAre("b", "c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "lt1980-06"}}), ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "ge1980-02-14"}}), ElementsAre("a", "b", "c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "le1980-02-13"}}), ElementsAre("b"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "sa1980-12-31"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "eb1981"}}), ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "ap1990-06-20"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "1990-07-01T10:00:00+02:00"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "1990-07-01T12:00:00+02:00"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "1990-07-01T10:00:00Z"}}), ElementsAre("c"));
  EXPECT_THAT(Sorted("Patient", {{"birthdate", "ge1980"}, {"birthdate", "lt1985"}}),
              ElementsAre("a", "b"));
  absl::StatusOr<SearchResult> bad = searcher_->Search("Patient", {{"birthdate", "xx2020"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  // _lastUpdated: every write was at the fake clock's 2025-01-01.
  EXPECT_THAT(Sorted("Patient", {{"_lastUpdated", "2025-01-01"}}), ElementsAre("a", "b", "c"));
  EXPECT_THAT(Sorted("Patient", {{"_lastUpdated", "gt2025-01-01"}}), IsEmpty());
}

TEST_F(SearchTest, NumbersQuantitiesReferencesAndPeriods) {
  LoadPatients();
  LoadObservations();
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "72"}}), ElementsAre("o1"));
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "gt75"}}), ElementsAre("o2", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "80.5|http://unitsofmeasure.org|kg"}}),
              ElementsAre("o2"));
  // 81000 g is 81 kg: the same quantity in canonical units.
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "ge81|http://unitsofmeasure.org|kg"}}),
              ElementsAre("o3"));
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "ap80|http://unitsofmeasure.org|kg"}}),
              ElementsAre("o2", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "lt100||/min"}}), ElementsAre("o1"));
  EXPECT_THAT(Sorted("Observation", {{"subject", "Patient/a"}}), ElementsAre("o1", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"subject", "b"}}), ElementsAre("o2"));
  EXPECT_THAT(Sorted("Observation", {{"subject:Patient", "b"}}), ElementsAre("o2"));
  EXPECT_THAT(Sorted("Observation", {{"subject:Group", "b"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"patient", "http://example.test/fhir/Patient/a"}}),
              ElementsAre("o1", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"code", "http://loinc.org|29463-7"}}),
              ElementsAre("o2", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"code:text", "weight"}}), ElementsAre("o2", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"code:text", "body"}}), ElementsAre("o2"));
  // date on a Period: o3 runs 2023-12-31 .. 2024-01-02.
  EXPECT_THAT(Sorted("Observation", {{"date", "2024-01"}}), ElementsAre("o1"));
  // ge: the target ends after the search day (o3) or lies within it.
  EXPECT_THAT(Sorted("Observation", {{"date", "ge2024-01-01"}}), ElementsAre("o1", "o2", "o3"));
  EXPECT_THAT(Sorted("Observation", {{"date", "sa2024-01-05"}}), ElementsAre("o1", "o2"));
  EXPECT_THAT(Sorted("Observation", {{"date", "lt2024-01-01"}}), ElementsAre("o3"));
  EXPECT_THAT(Sorted("Observation", {{"date", "eb2024-01-05"}}), ElementsAre("o3"));
  EXPECT_THAT(Sorted("Observation", {{"status", "final"}, {"code", "29463-7"}}),
              ElementsAre("o2"));
  // Chained and reverse chained.
  EXPECT_THAT(Sorted("Observation", {{"subject:Patient.name", "mueller"}}), ElementsAre("o2"));
  EXPECT_THAT(Sorted("Observation", {{"patient.gender", "female"}}), ElementsAre("o1", "o3"));
  EXPECT_THAT(Sorted("Patient", {{"_has:Observation:subject:code", "8867-4"}}), ElementsAre("a"));
}

TEST_F(SearchTest, UriAndMissing) {
  Put("ValueSet", "v1", R"({"resourceType":"ValueSet","id":"v1","status":"active",
    "url":"http://example.org/fhir/ValueSet/a"})");
  Put("ValueSet", "v2", R"({"resourceType":"ValueSet","id":"v2","status":"active",
    "url":"http://example.org/other"})");
  Put("ValueSet", "v3", R"({"resourceType":"ValueSet","id":"v3","status":"draft"})");
  EXPECT_THAT(Sorted("ValueSet", {{"url", "http://example.org/other"}}), ElementsAre("v2"));
  EXPECT_THAT(Sorted("ValueSet", {{"url:below", "http://example.org/fhir"}}), ElementsAre("v1"));
  EXPECT_THAT(Sorted("ValueSet", {{"url:above", "http://example.org/fhir/ValueSet/a/x"}}),
              ElementsAre("v1"));
  EXPECT_THAT(Sorted("ValueSet", {{"url:missing", "true"}}), ElementsAre("v3"));
  EXPECT_THAT(Sorted("ValueSet", {{"url:missing", "false"}}), ElementsAre("v1", "v2"));
}

// Several parameters are ANDed whatever their order and whichever of them drives the query
// (the most selective, e.g. a reference or identifier, drives; the others are checked per
// candidate resource, negations included).
TEST_F(SearchTest, SeveralParametersMatchTheSameResourcesInAnyOrder) {
  LoadPatients();
  LoadObservations();
  auto both_orders = [&](std::string_view type, std::pair<std::string, std::string> x,
                         std::pair<std::string, std::string> y) {
    std::vector<std::string> xy = Sorted(type, {x, y});
    EXPECT_EQ(xy, Sorted(type, {y, x})) << x.first << " & " << y.first;
    return xy;
  };
  // o1: 8867-4 final Patient/a; o2: 29463-7 final Patient/b; o3: 29463-7 preliminary Patient/a.
  EXPECT_THAT(both_orders("Observation", {"code", "29463-7"}, {"subject", "Patient/a"}),
              ElementsAre("o3"));
  EXPECT_THAT(both_orders("Observation", {"code", "http://loinc.org|29463-7"}, {"subject", "Patient/b"}),
              ElementsAre("o2"));
  EXPECT_THAT(both_orders("Observation", {"code", "8867-4"}, {"subject", "Patient/b"}), IsEmpty());
  EXPECT_THAT(both_orders("Observation", {"status", "final"}, {"subject", "Patient/a"}),
              ElementsAre("o1"));
  EXPECT_THAT(both_orders("Observation", {"code:not", "29463-7"}, {"subject", "Patient/a"}),
              ElementsAre("o1"));
  EXPECT_THAT(both_orders("Observation", {"status:not", "final"}, {"code", "29463-7"}),
              ElementsAre("o3"));
  EXPECT_THAT(both_orders("Observation", {"code", "29463-7"}, {"subject:missing", "false"}),
              ElementsAre("o2", "o3"));
  EXPECT_THAT(both_orders("Observation", {"code", "29463-7"}, {"subject:missing", "true"}),
              IsEmpty());
  EXPECT_THAT(both_orders("Observation", {"code", "29463-7"}, {"_id", "o1,o3"}), ElementsAre("o3"));
  // o3's period ends 2024-01-02, before 2024-01-15; o2 is on 2024-02-01.
  EXPECT_THAT(both_orders("Observation", {"code", "29463-7"}, {"date", "ge2024-01-15"}),
              ElementsAre("o2"));
  // A composite (80.5 kg and 81000 g are both above 80 when no unit is given).
  EXPECT_THAT(both_orders("Observation", {"code-value-quantity", "29463-7$gt80"}, {"subject", "Patient/a"}),
              ElementsAre("o3"));
  // Chains: Mueller is b (Müller folds to muller, not mueller); a is the female.
  EXPECT_THAT(both_orders("Observation", {"subject.name", "mueller"}, {"code", "29463-7"}),
              ElementsAre("o2"));
  EXPECT_THAT(both_orders("Observation", {"subject:Patient.gender", "female"}, {"status", "final"}),
              ElementsAre("o1"));
  EXPECT_THAT(both_orders("Patient", {"gender", "female"}, {"identifier", "urn:mrn|A1"}),
              ElementsAre("a"));
  EXPECT_THAT(both_orders("Patient", {"gender", "male"}, {"identifier", "A1"}), ElementsAre("b"));
  EXPECT_THAT(both_orders("Patient", {"name", "m"}, {"gender", "female"}), ElementsAre("a"));
  EXPECT_THAT(both_orders("Patient", {"active", "true"}, {"organization", "Organization/org1"}),
              ElementsAre("a"));
  EXPECT_THAT(both_orders("Patient", {"_has:Observation:subject:code", "29463-7"}, {"gender", "female"}),
              ElementsAre("a"));
  EXPECT_THAT(both_orders("Patient", {"_has:Observation:subject:code", "8867-4"}, {"gender", "male"}),
              IsEmpty());
  // Three parameters, the count agreeing with the page.
  EXPECT_THAT(Sorted("Observation", {{"status", "final"}, {"code", "29463-7,8867-4"},
                                     {"subject", "Patient/a,Patient/b"}}),
              ElementsAre("o1", "o2"));
  absl::StatusOr<SearchResult> count = searcher_->Search(
      "Observation", {{"code", "29463-7"}, {"subject", "Patient/a"}, {"_summary", "count"}});
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->total, 1);
}

TEST_F(SearchTest, UpdatesAndDeletesReplaceIndexRows) {
  LoadPatients();
  Put("Patient", "a", R"({"resourceType":"Patient","id":"a","name":[{"family":"Zeta"}]})");
  EXPECT_THAT(Sorted("Patient", {{"family", "muller"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"family", "zeta"}}), ElementsAre("a"));
  ASSERT_TRUE(store_->Delete("Patient", "a").ok());
  EXPECT_THAT(Sorted("Patient", {{"family", "zeta"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {}), ElementsAre("b", "c"));
  EXPECT_EQ(indexer_->extraction_errors(), 0u);
}

TEST_F(SearchTest, UnknownParametersLenientOrStrict) {
  LoadPatients();
  absl::StatusOr<SearchResult> r = searcher_->Search("Patient", {{"nonsense", "1"}, {"family", "smith"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->matches.size(), 1u);
  ASSERT_EQ(r->issues.size(), 1u);
  EXPECT_THAT(r->issues[0], HasSubstr("nonsense"));
  SearchOptions strict;
  strict.strict = true;
  EXPECT_EQ(searcher_->Search("Patient", {{"nonsense", "1"}}, strict).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(searcher_->Search("Patient", {{"family:below", "x"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// _text searches the narrative (text.div without tags), _content every string value and the
// narrative: whole words, case and accents ignored, every word of an alternative required,
// commas for alternatives. Expected matches follow from the resources' words below.
TEST_F(SearchTest, TextAndContent) {
  Put("Patient", "n1", R"({"resourceType":"Patient","id":"n1","text":{"status":"generated",
      "div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Seen for <b>asthma</b> &amp; cough in Z&#252;rich</p></div>"},
      "name":[{"family":"Lee"}]})");
  Put("Patient", "n2", R"({"resourceType":"Patient","id":"n2","name":[{"family":"Asthma","given":["Renée"]}]})");
  Put("Patient", "n3", R"({"resourceType":"Patient","id":"n3","name":[{"family":"Other"}]})");
  auto ids = [&](Params params) {
    std::vector<std::string> out = Ids("Patient", std::move(params));
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_THAT(ids({{"_text", "asthma"}}), ElementsAre("n1"));  // n2's is a name, not narrative
  EXPECT_THAT(ids({{"_content", "asthma"}}), ElementsAre("n1", "n2"));
  EXPECT_THAT(ids({{"_text", "ZURICH"}}), ElementsAre("n1"));    // &#252; is ü, folded
  EXPECT_THAT(ids({{"_content", "renee"}}), ElementsAre("n2"));
  EXPECT_THAT(ids({{"_text", "cough asthma"}}), ElementsAre("n1"));  // every word
  EXPECT_THAT(ids({{"_text", "asthma cold"}}), IsEmpty());
  EXPECT_THAT(ids({{"_text", "cold,cough"}}), ElementsAre("n1"));    // alternatives
  EXPECT_THAT(ids({{"_text", "asth"}}), IsEmpty());                  // whole words
  EXPECT_THAT(ids({{"_text", "amp"}}), IsEmpty());                   // &amp; is "&"
  EXPECT_THAT(ids({{"_text", "div"}}), IsEmpty());                   // tags are not text
  EXPECT_THAT(ids({{"_content", "lee"}}), ElementsAre("n1"));
  // With another parameter, in either order (one drives, the other is checked per candidate).
  EXPECT_THAT(ids({{"_content", "asthma"}, {"family", "asthma"}}), ElementsAre("n2"));
  EXPECT_THAT(ids({{"family", "asthma"}, {"_content", "asthma"}}), ElementsAre("n2"));
  EXPECT_THAT(ids({{"family", "lee"}, {"_text", "cough"}}), ElementsAre("n1"));
  EXPECT_THAT(ids({{"family", "other"}, {"_content", "asthma"}}), IsEmpty());
  // An update replaces the row, a deletion drops it.
  Put("Patient", "n1", R"({"resourceType":"Patient","id":"n1","text":{"status":"generated",
      "div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Follow-up</div>"},"name":[{"family":"Lee"}]})");
  EXPECT_THAT(ids({{"_text", "asthma"}}), IsEmpty());
  EXPECT_THAT(ids({{"_text", "follow"}}), ElementsAre("n1"));
  EXPECT_THAT(ids({{"_content", "asthma"}}), ElementsAre("n2"));
  ASSERT_TRUE(store_->Delete("Patient", "n2").ok());
  EXPECT_THAT(ids({{"_content", "asthma"}}), IsEmpty());
  int64_t rows = -1;
  ASSERT_TRUE(writer_->Run([&](db::Connection& c) -> absl::Status {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, c.Prepare("SELECT COUNT(*) FROM fhir_text"));
    ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
    if (row) rows = q->ColumnInt64(0);
    return absl::OkStatus();
  }).ok());
  EXPECT_EQ(rows, 2);  // n1's and n3's current versions
  // Malformed: a modifier, no word, a sort.
  for (const Params& bad : std::vector<Params>{{{"_text:exact", "cough"}}, {{"_content", "!!"}},
                                               {{"_sort", "_text"}}, {{"_text.x", "a"}}}) {
    EXPECT_EQ(searcher_->Search("Patient", bad).status().code(),
              absl::StatusCode::kInvalidArgument) << bad[0].first;
  }
}

TEST_F(SearchTest, SortTotalSummaryAndIncludes) {
  LoadPatients();
  LoadObservations();
  EXPECT_THAT(Ids("Patient", {{"_sort", "family"}}), ElementsAre("b", "a", "c"));  // mueller, muller
  EXPECT_THAT(Ids("Patient", {{"_sort", "-birthdate"}}), ElementsAre("c", "b", "a"));
  EXPECT_THAT(Ids("Patient", {{"_sort", "gender,-_id"}}), ElementsAre("c", "a", "b"));
  EXPECT_THAT(Ids("Observation", {{"_sort", "-value-quantity"}}), ElementsAre("o3", "o2", "o1"));
  absl::StatusOr<SearchResult> count = searcher_->Search("Patient", {{"_summary", "count"}});
  ASSERT_TRUE(count.ok());
  EXPECT_TRUE(count->count_only);
  EXPECT_EQ(count->total, 3);
  absl::StatusOr<SearchResult> page = searcher_->Search("Patient", {{"_count", "1"}, {"_total", "accurate"}});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total, 3);
  EXPECT_FALSE(page->next_cursor.empty());
  absl::StatusOr<SearchResult> none = searcher_->Search("Patient", {{"_total", "none"}});
  EXPECT_FALSE(none->total.has_value());

  absl::StatusOr<SearchResult> inc = searcher_->Search(
      "Observation", {{"code", "8867-4"}, {"_include", "Observation:subject"}});
  ASSERT_TRUE(inc.ok());
  ASSERT_EQ(inc->included.size(), 1u);
  EXPECT_EQ(inc->included[0].id, "a");
  absl::StatusOr<SearchResult> rev = searcher_->Search(
      "Patient", {{"_id", "a"}, {"_revinclude", "Observation:subject"},
                  {"_include", "Patient:organization"}});
  ASSERT_TRUE(rev.ok());
  std::vector<std::string> ids;
  for (const auto& v : rev->included) ids.push_back(v.type + "/" + v.id);
  EXPECT_THAT(ids, UnorderedElementsAre("Organization/org1", "Observation/o1", "Observation/o3"));
}

// Composites: the parts must match within one element (one component of an Observation), not
// across elements (search.html#composite).
TEST_F(SearchTest, CompositeParametersMatchWithinOneElement) {
  // Blood pressure: systolic 120 and diastolic 80 as components.
  Put("Observation", "bp", R"({"resourceType":"Observation","id":"bp","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "component":[
      {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
       "valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
      {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
       "valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]})");
  Put("Observation", "hr", R"({"resourceType":"Observation","id":"hr","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
    "valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"/min"}})");
  Put("Observation", "smoker", R"({"resourceType":"Observation","id":"smoker","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"72166-2"}]},
    "valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"77176002"}]}})");
  Put("Observation", "onset", R"({"resourceType":"Observation","id":"onset","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"11368-8"}]},
    "valueDateTime":"2023-05-04"})");
  Put("Observation", "note", R"({"resourceType":"Observation","id":"note","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8251-1"}]},
    "valueString":"Feels dizzy"})");
  // component-code-value-quantity: systolic above 100 yes, diastolic above 100 no (the 120
  // belongs to the systolic component).
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity",
                                      "http://loinc.org|8480-6$gt100"}}), ElementsAre("bp"));
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity",
                                      "http://loinc.org|8462-4$gt100"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity", "8462-4$80"}}),
              ElementsAre("bp"));
  // With units, a comma OR of whole composite values.
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity",
                                      "8462-4$lt70|http://unitsofmeasure.org|mm[Hg],"
                                      "8480-6$120|http://unitsofmeasure.org|mm[Hg]"}}),
              ElementsAre("bp"));
  // code-value-quantity is about Observation.code and Observation.value only.
  EXPECT_THAT(Sorted("Observation", {{"code-value-quantity", "8867-4$ge120"}}), ElementsAre("hr"));
  EXPECT_THAT(Sorted("Observation", {{"code-value-quantity", "8480-6$120"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"code-value-quantity", "8867-4$lt120"}}), IsEmpty());
  // combo-: the Observation itself or any of its components.
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "8480-6$120"}}),
              ElementsAre("bp"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "8867-4$120"}}),
              ElementsAre("hr"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "85354-9$120"}}), IsEmpty());
  // Concepts, dates and strings.
  EXPECT_THAT(Sorted("Observation", {{"code-value-concept",
                                      "http://loinc.org|72166-2$http://snomed.info/sct|77176002"}}),
              ElementsAre("smoker"));
  EXPECT_THAT(Sorted("Observation", {{"code-value-concept", "72166-2$8517006"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"code-value-date", "11368-8$ge2023-05"}}),
              ElementsAre("onset"));
  EXPECT_THAT(Sorted("Observation", {{"code-value-date", "11368-8$lt2023"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"code-value-string", "8251-1$feels"}}), ElementsAre("note"));
  // AND of two composite values: both components present.
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity", "8480-6$gt100"},
                                     {"component-code-value-quantity", "8462-4$lt90"}}),
              ElementsAre("bp"));
  // :missing on a composite: present when one element has every part (code alone is not).
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity:missing", "false"}}),
              ElementsAre("bp"));
  EXPECT_THAT(Sorted("Observation", {{"code-value-quantity:missing", "false"}}),
              ElementsAre("hr"));
  EXPECT_THAT(Sorted("Observation", {{"code-value-string:missing", "false"}}),
              ElementsAre("note"));
  EXPECT_THAT(Sorted("Observation", {{"code-value-quantity:missing", "true"}}),
              ElementsAre("bp", "note", "onset", "smoker"));
  // Malformed: the wrong number of parts, an empty part, a modifier.
  for (const char* bad : {"8480-6", "8480-6$1$2", "$120"}) {
    EXPECT_EQ(searcher_->Search("Observation", {{"component-code-value-quantity", bad}})
                  .status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(searcher_->Search("Observation", {{"code-value-quantity:exact", "a$1"}})
                .status().code(), absl::StatusCode::kInvalidArgument);
}

// Parameters answered from other parameters' rows (Registry stored_as) match what their own rows
// matched: combo- over the Observation and its components, phonetic as name.
TEST_F(SearchTest, ParametersAnsweredFromOtherParametersRows) {
  LoadPatients();
  Put("Observation", "bp", R"({"resourceType":"Observation","id":"bp","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "component":[
      {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
       "valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
      {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
       "valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]})");
  Put("Observation", "hr", R"({"resourceType":"Observation","id":"hr","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
    "valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"/min"}})");
  Put("Observation", "note", R"({"resourceType":"Observation","id":"note","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8251-1"}]},"valueString":"x"})");
  // One component. (`component.value as Quantity` over bp's two components would be an error
  // in FHIRPath, where `as` takes one item; the registry reads it as ofType, so bp's 120 and 80
  // are both indexed.)
  Put("Observation", "sys", R"({"resourceType":"Observation","id":"sys","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "component":[
      {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
       "valueQuantity":{"value":70,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]})");
  // combo-code: Observation.code or a component's code.
  EXPECT_THAT(Sorted("Observation", {{"combo-code", "http://loinc.org|85354-9"}}),
              ElementsAre("bp", "sys"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code", "8462-4"}}), ElementsAre("bp"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code", "8867-4,8462-4"}}), ElementsAre("bp", "hr"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code:not", "8480-6"}}), ElementsAre("hr", "note"));
  EXPECT_THAT(Sorted("Observation", {{"code", "8480-6"}}), IsEmpty());  // a component's only
  // combo-value-quantity: the value or a component's value.
  EXPECT_THAT(Sorted("Observation", {{"combo-value-quantity", "120"}}), ElementsAre("bp", "hr"));
  EXPECT_THAT(Sorted("Observation", {{"combo-value-quantity", "lt100"}}), ElementsAre("bp", "sys"));
  EXPECT_THAT(Sorted("Observation", {{"value-quantity", "lt100"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"combo-value-quantity:missing", "true"},
                                     {"_id", "hr,note,sys"}}),
              ElementsAre("note"));
  // combo-code-value-quantity: code and value of one element (the 80 is diastolic's).
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "8462-4$80"}}),
              ElementsAre("bp"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "8480-6$80"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "8480-6$70"}}),
              ElementsAre("sys"));
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "85354-9$80"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity:missing", "false"}}),
              ElementsAre("bp", "hr", "sys"));
  // Sorting by a parameter stored as others, ascending by each resource's lowest value: sys 70,
  // bp 80 (diastolic), hr 120; descending by the highest: bp and hr 120 (either first), sys 70.
  EXPECT_THAT(Ids("Observation", {{"combo-value-quantity", "gt0"},
                                  {"_sort", "combo-value-quantity"}}),
              ElementsAre("sys", "bp", "hr"));
  std::vector<std::string> desc = Ids("Observation", {{"combo-value-quantity", "gt0"},
                                                      {"_sort", "-combo-value-quantity"}});
  ASSERT_EQ(desc.size(), 3u);
  EXPECT_THAT(std::vector<std::string>(desc.begin(), desc.begin() + 2),
              ::testing::UnorderedElementsAre("bp", "hr"));
  EXPECT_EQ(desc[2], "sys");
  // component-value-quantity over a repeating component: each value (the systolic 120 too).
  EXPECT_THAT(Sorted("Observation", {{"component-value-quantity", "gt100"}}), ElementsAre("bp"));
  EXPECT_THAT(Sorted("Observation", {{"component-code-value-quantity", "8480-6$120"}}),
              ElementsAre("bp"));
  // phonetic: the same rows as name.
  EXPECT_THAT(Sorted("Patient", {{"phonetic", "mül"}}), Sorted("Patient", {{"name", "mül"}}));
  EXPECT_THAT(Sorted("Patient", {{"phonetic", "smith"}}), ElementsAre("c"));
}

// Observation patient = subject.where(resolve() is Patient): answered from the subject rows that
// name a Patient, in every path that reads reference rows.
TEST_F(SearchTest, ReferenceRestrictedToATargetTypeUsesTheOtherParametersRows) {
  const SearchParam* patient = registry_->Find("Observation", "patient");
  EXPECT_THAT(patient->stored_as, ElementsAre("subject"));
  EXPECT_EQ(patient->stored_target, "Patient");
  EXPECT_THAT(registry_->Find("Observation", "subject")->stored_as, ElementsAre("subject"));
  EXPECT_EQ(registry_->Find("Observation", "subject")->stored_target, "");
  for (const SearchParam* p : registry_->Extracted("Observation")) EXPECT_NE(p->code, "patient");
  LoadPatients();
  LoadObservations();  // o1, o3: subject Patient/a; o2: Patient/b
  Put("Observation", "og", R"({"resourceType":"Observation","id":"og","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
    "subject":{"reference":"Group/g1"}})");
  Put("Observation", "ou", R"({"resourceType":"Observation","id":"ou","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
    "subject":{"reference":"http://other.org/fhir/Patient/a/_history/2"}})");
  EXPECT_THAT(Sorted("Observation", {{"patient", "Patient/a"}}), ElementsAre("o1", "o3", "ou"));
  EXPECT_THAT(Sorted("Observation", {{"patient", "b"}}), ElementsAre("o2"));
  EXPECT_THAT(Sorted("Observation", {{"patient", "g1"}}), IsEmpty());
  EXPECT_THAT(Sorted("Observation", {{"subject", "g1"}}), ElementsAre("og"));
  EXPECT_THAT(Sorted("Observation", {{"patient:missing", "true"}}), ElementsAre("og"));
  EXPECT_THAT(Sorted("Observation", {{"patient:missing", "false"}}),
              ElementsAre("o1", "o2", "o3", "ou"));
  // Chained and reverse chained.
  EXPECT_THAT(Sorted("Observation", {{"patient.family", "muller"}}), ElementsAre("o1", "o3", "ou"));
  EXPECT_THAT(Sorted("Observation", {{"patient:Patient.gender", "male"}}), ElementsAre("o2"));
  EXPECT_THAT(Sorted("Patient", {{"_has:Observation:patient:code", "29463-7"}}),
              ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"_has:Observation:patient:status", "preliminary"}}),
              ElementsAre("a"));
  // Sort: by the Patient's id, og (no patient) last.
  EXPECT_THAT(Ids("Observation", {{"code", "8867-4"}, {"_sort", "patient"}}),
              ElementsAre("o1", "ou", "og"));
  // _include and _revinclude.
  absl::StatusOr<SearchResult> inc = searcher_->Search(
      "Observation", {{"_id", "o2,og"}, {"_include", "Observation:patient"}});
  ASSERT_TRUE(inc.ok());
  ASSERT_EQ(inc->included.size(), 1u);
  EXPECT_EQ(inc->included[0].id, "b");
  absl::StatusOr<SearchResult> rev = searcher_->Search(
      "Patient", {{"_id", "a"}, {"_revinclude", "Observation:patient"}});
  ASSERT_TRUE(rev.ok());
  std::vector<std::string> ids;
  for (const auto& v : rev->included) ids.push_back(v.id);
  EXPECT_THAT(ids, UnorderedElementsAre("o1", "o3", "ou"));
}

// Stores written before stored_as still hold rows of those parameters: Backfill deletes them.
TEST_F(SearchTest, BackfillDropsRowsOfParametersStoredAsOthers) {
  Put("Observation", "hr", R"({"resourceType":"Observation","id":"hr","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
    "valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"/min"}})");
  auto count = [&](const char* sql) {
    int64_t n = -1;
    EXPECT_TRUE(writer_->Run([&](db::Connection& c) -> absl::Status {
      ISTHMUS_ASSIGN_OR_RETURN(auto q, c.Prepare(sql));
      ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
      if (row) n = q->ColumnInt64(0);
      return absl::OkStatus();
    }).ok());
    return n;
  };
  // What an earlier version wrote for it.
  ASSERT_TRUE(writer_->Run([](db::Connection& c) {
    return c.Exec(
        "INSERT INTO fhir_idx_token (res_type, res_id, param, system, code, text, grp) VALUES "
        "('Observation', 'hr', 'combo-code', 'http://loinc.org', '8867-4', '', 0), "
        "('Observation', 'hr', 'combo-code-value-quantity$0', 'http://loinc.org', '8867-4', '', "
        "9), ('Observation', 'hr', 'code-value-quantity$0', 'http://loinc.org', '8867-4', '', 8);"
        "INSERT INTO fhir_idx_quantity (res_type, res_id, param, value, system, code, "
        "canonical_value, canonical_unit, grp) VALUES "
        "('Observation', 'hr', 'combo-code-value-quantity$1', 120, '', '/min', 2, '/s', 9);"
        "INSERT INTO fhir_idx_string (res_type, res_id, param, norm, exact, grp) VALUES "
        "('Patient', 'p', 'phonetic', 'x', 'x', 0);"
        "INSERT INTO fhir_idx_reference (res_type, res_id, param, target_type, target_id, url, "
        "grp) VALUES ('Observation', 'hr', 'patient', 'Patient', 'p', 'Patient/p', 0)");
  }).ok());
  const int64_t tokens = count("SELECT COUNT(*) FROM fhir_idx_token");
  ASSERT_TRUE(indexer_->Backfill(*writer_).ok());
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_token"), tokens - 3);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_token WHERE param LIKE 'combo-%'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_token WHERE param LIKE 'code-value-%'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_quantity WHERE param LIKE 'combo-%'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_string WHERE param = 'phonetic'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_reference WHERE param = 'patient'"), 0);
  EXPECT_GT(count("SELECT COUNT(*) FROM fhir_idx_token WHERE param = 'code'"), 0);
  EXPECT_THAT(Sorted("Observation", {{"combo-code-value-quantity", "8867-4$120"}}),
              ElementsAre("hr"));
}

// Create and transaction POST entries are indexed from rows extracted before the writer op.
TEST_F(SearchTest, CreatedAndBundledResourcesAreIndexed) {
  auto c = store_->Create("Patient", R"({"resourceType":"Patient","name":[{"family":"Fresh"}],
    "identifier":[{"system":"urn:mrn","value":"F1"}]})", {.validate = false});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Ids("Patient", {{"family", "fresh"}}), ElementsAre(c->version.id));
  EXPECT_THAT(Ids("Patient", {{"identifier", "urn:mrn|F1"}}), ElementsAre(c->version.id));
  auto t = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:0b8e2a4c-66e4-4a5b-9d56-2a0e8a0d7c11",
     "resource":{"resourceType":"Patient","name":[{"family":"Bundled"}]},
     "request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Observation","status":"final",
                 "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
                 "subject":{"reference":"urn:uuid:0b8e2a4c-66e4-4a5b-9d56-2a0e8a0d7c11"},
                 "valueQuantity":{"value":61,"system":"http://unitsofmeasure.org","code":"/min"}},
     "request":{"method":"POST","url":"Observation"}}]})");
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<std::string> patients = Ids("Patient", {{"family", "bundled"}});
  ASSERT_EQ(patients.size(), 1u);
  std::vector<std::string> obs =
      Ids("Observation", {{"subject", "Patient/" + patients[0]}, {"code", "8867-4"}});
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_THAT(Ids("Observation", {{"combo-code-value-quantity", "8867-4$61"}}),
              ElementsAre(obs[0]));
  EXPECT_THAT(Ids("Patient", {{"_has:Observation:subject:code", "8867-4"}}),
              ElementsAre(patients[0]));
  // Full-text rows of a Bundle are written at its end (FhirIndexer::Defer), in its transaction;
  // a Bundle that fails writes none, and the next one is not given its rows.
  EXPECT_THAT(Ids("Patient", {{"_content", "bundled"}}), ElementsAre(patients[0]));
  EXPECT_THAT(Ids("Patient", {{"_content", "fresh"}}), ElementsAre(c->version.id));
  auto bad = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","name":[{"family":"Doomed"}]},
     "request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","id":"nope","name":[{"family":"Doomed"}]},
     "request":{"method":"PUT","url":"Patient/nope","ifMatch":"W/\"3\""}}]})");
  ASSERT_FALSE(bad.ok());  // 412 in the op, after the POST was written (PUT comes after POST)
  auto next = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","name":[{"family":"Survivor"}]},
     "request":{"method":"POST","url":"Patient"}}]})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(Ids("Patient", {{"_content", "doomed"}}), IsEmpty());
  std::vector<std::string> survivor = Ids("Patient", {{"family", "survivor"}});
  ASSERT_EQ(survivor.size(), 1u);
  EXPECT_THAT(Ids("Patient", {{"_content", "survivor"}}), ElementsAre(survivor[0]));
}

// identifier:of-type=system|code|value: the Identifier's type coding and value, on the same
// identifier.
TEST_F(SearchTest, IdentifierOfType) {
  const std::string v2 = "http://terminology.hl7.org/CodeSystem/v2-0203";
  Put("Patient", "a", R"({"resourceType":"Patient","id":"a","identifier":[
    {"type":{"coding":[{"system":")" + v2 + R"(","code":"MR"}]},"system":"urn:h1","value":"111"},
    {"type":{"coding":[{"system":")" + v2 + R"(","code":"SS"}]},"value":"222"}]})");
  Put("Patient", "b", R"({"resourceType":"Patient","id":"b","identifier":[
    {"type":{"coding":[{"system":")" + v2 + R"(","code":"MR"}]},"value":"222"}]})");
  Put("Patient", "c", R"({"resourceType":"Patient","id":"c","identifier":[{"value":"111"}]})");
  EXPECT_THAT(Sorted("Patient", {{"identifier:of-type", v2 + "|MR|111"}}), ElementsAre("a"));
  // a has 222 only as its SS identifier: not an MR 222.
  EXPECT_THAT(Sorted("Patient", {{"identifier:of-type", v2 + "|MR|222"}}), ElementsAre("b"));
  EXPECT_THAT(Sorted("Patient", {{"identifier:of-type", v2 + "|SS|222"}}), ElementsAre("a"));
  EXPECT_THAT(Sorted("Patient", {{"identifier:of-type", "urn:other|MR|111"}}), IsEmpty());
  EXPECT_THAT(Sorted("Patient", {{"identifier:of-type", v2 + "|MR|111," + v2 + "|MR|222"}}),
              ElementsAre("a", "b"));
  EXPECT_THAT(Sorted("Patient", {{"identifier", "111"}}), ElementsAre("a", "c"));  // unchanged
  for (const char* bad : {"MR|111", "x||111", "x|MR|"}) {
    EXPECT_EQ(searcher_->Search("Patient", {{"identifier:of-type", bad}}).status().code(),
              absl::StatusCode::kInvalidArgument) << bad;
  }
}

// _include:iterate follows references from included resources too, until nothing is new.
TEST_F(SearchTest, IncludeIterate) {
  // MedicationRequest -> Practitioner -(PractitionerRole)-> Organization -> parent Organization
  Put("Organization", "parent", R"({"resourceType":"Organization","id":"parent"})");
  Put("Organization", "org", R"({"resourceType":"Organization","id":"org",
    "partOf":{"reference":"Organization/parent"}})");
  Put("Patient", "pat", R"({"resourceType":"Patient","id":"pat",
    "managingOrganization":{"reference":"Organization/org"}})");
  Put("Observation", "obs", R"({"resourceType":"Observation","id":"obs","status":"final",
    "code":{"text":"x"},"subject":{"reference":"Patient/pat"}})");
  Put("Provenance", "prov", R"({"resourceType":"Provenance","id":"prov",
    "target":[{"reference":"Patient/pat"}],"recorded":"2024-01-01T00:00:00Z",
    "agent":[{"who":{"reference":"Organization/org"}}]})");
  auto included = [&](Params params, SearchOptions o = {}) {
    absl::StatusOr<SearchResult> r = searcher_->Search("Observation", params, o);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> out;
    if (r.ok()) for (const auto& v : r->included) out.push_back(v.type + "/" + v.id);
    return out;
  };
  // Without :iterate, Patient:organization does not apply to the included Patient.
  EXPECT_THAT(included({{"_include", "Observation:subject"},
                        {"_include", "Patient:organization"}}),
              ElementsAre("Patient/pat"));
  EXPECT_THAT(included({{"_include", "Observation:subject"},
                        {"_include:iterate", "Patient:organization"},
                        {"_include:iterate", "Organization:partof"}}),
              ElementsAre("Patient/pat", "Organization/org", "Organization/parent"));
  // :recurse (the STU3 name), a revinclude iterated over an included resource.
  EXPECT_THAT(included({{"_include", "Observation:subject"},
                        {"_revinclude:recurse", "Provenance:target"}}),
              ElementsAre("Patient/pat", "Provenance/prov"));
  // Type:* and * include every reference; iterating * reaches the whole chain once.
  EXPECT_THAT(included({{"_include", "Observation:*"}}), ElementsAre("Patient/pat"));
  EXPECT_THAT(included({{"_include:iterate", "*"}}),
              ElementsAre("Patient/pat", "Organization/org", "Organization/parent"));
  // The cap on included resources stops the iteration with a warning.
  SearchOptions small;
  small.max_included = 2;
  absl::StatusOr<SearchResult> capped = searcher_->Search("Observation", {{"_include:iterate", "*"}}, small);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->included.size(), 2u);
  ASSERT_EQ(capped->issues.size(), 1u);
  EXPECT_THAT(capped->issues[0], HasSubstr("stopped at 2"));
  // A cycle (two Organizations part of each other) ends when nothing is new.
  Put("Organization", "parent", R"({"resourceType":"Organization","id":"parent",
    "partOf":{"reference":"Organization/org"}})");
  absl::StatusOr<SearchResult> cyc = searcher_->Search(
      "Organization", {{"_id", "org"}, {"_include:iterate", "Organization:partof"}});
  ASSERT_TRUE(cyc.ok());
  ASSERT_EQ(cyc->included.size(), 1u);
  EXPECT_EQ(cyc->included[0].id, "parent");
  EXPECT_THAT(cyc->issues, IsEmpty());
  // Malformed specs: lenient warns, strict refuses.
  SearchOptions strict;
  strict.strict = true;
  EXPECT_EQ(searcher_->Search("Observation", {{"_include", "Observation:code"}}, strict)
                .status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(searcher_->Search("Observation", {{"_include:deep", "Observation:subject"}}, strict)
                .status().code(), absl::StatusCode::kInvalidArgument);
}

// previous links: a backward keyset from the first row of a page, stable like next.
TEST_F(SearchTest, PreviousAndLastPages) {
  for (int i = 0; i < 10; ++i) {
    char id[8];
    std::snprintf(id, sizeof id, "p%02d", i);
    // Birth dates: p00, p01 none; then 1950 + i % 4 (ties broken by id).
    std::string bd = i < 2 ? "" : base::StrCat(R"(,"birthDate":")", 1950 + i % 4, R"(")");
    Put("Patient", id, base::StrCat(R"({"resourceType":"Patient","id":")", id, R"(")", bd, "}"));
  }
  for (std::string sort : {"", "birthdate", "-birthdate"}) {
    auto page = [&](const std::string& cursor) {
      Params params = {{"_count", "3"}};
      if (!sort.empty()) params.emplace_back("_sort", sort);
      if (!cursor.empty()) params.emplace_back("_cursor", cursor);
      absl::StatusOr<SearchResult> r = searcher_->Search("Patient", params);
      EXPECT_TRUE(r.ok()) << r.status();
      return *r;
    };
    auto ids = [](const SearchResult& r) {
      std::vector<std::string> out;
      for (const auto& v : r.matches) out.push_back(v.id);
      return out;
    };
    // Forward to the end, then back to the start: the same pages in reverse.
    std::vector<std::vector<std::string>> forward;
    SearchResult r = page("");
    EXPECT_TRUE(r.previous_cursor.empty()) << sort;
    EXPECT_FALSE(r.last_cursor.empty()) << sort;
    forward.push_back(ids(r));
    while (!r.next_cursor.empty()) {
      r = page(r.next_cursor);
      EXPECT_FALSE(r.previous_cursor.empty()) << sort;
      forward.push_back(ids(r));
    }
    ASSERT_EQ(forward.size(), 4u) << sort;  // 3 + 3 + 3 + 1
    EXPECT_TRUE(r.last_cursor.empty());
    std::vector<std::vector<std::string>> backward = {ids(r)};
    while (!r.previous_cursor.empty()) {
      r = page(r.previous_cursor);
      backward.insert(backward.begin(), ids(r));
    }
    EXPECT_EQ(backward, forward) << sort;
    // The last page from the first: the last 3 rows, in order, with a previous link.
    SearchResult last = page(page("").last_cursor);
    std::vector<std::string> all;
    for (const auto& p : forward) all.insert(all.end(), p.begin(), p.end());
    EXPECT_THAT(ids(last), ElementsAre(all[7], all[8], all[9])) << sort;
    EXPECT_TRUE(last.next_cursor.empty());
    EXPECT_FALSE(last.previous_cursor.empty());
    // Resources without a birth date sort last either way.
    if (!sort.empty()) EXPECT_THAT(ids(last), ElementsAre(all[7], "p00", "p01")) << sort;
    // Under writes: a new resource before the current page shows up on the previous page,
    // nothing is repeated or lost.
    SearchResult second = page(page("").next_cursor);
    Put("Patient", "a-new", R"({"resourceType":"Patient","id":"a-new","birthDate":"1900"})");
    SearchResult back = page(second.previous_cursor);
    std::vector<std::string> got = ids(back);
    if (sort == "-birthdate") {  // 1900 sorts after 1950..1953: not before the second page
      EXPECT_EQ(got, forward[0]) << sort;
      EXPECT_TRUE(back.previous_cursor.empty()) << sort;
    } else {  // "a-new" (id order) or 1900 (ascending) sorts first: the 3 rows right before the
              // second page are still the first page's, and "a-new" is one page further back
      EXPECT_EQ(got, forward[0]) << sort;
      ASSERT_FALSE(back.previous_cursor.empty()) << sort;
      EXPECT_THAT(ids(page(back.previous_cursor)), ElementsAre("a-new")) << sort;
    }
    ASSERT_TRUE(store_->Delete("Patient", "a-new").ok());
  }
}

// Paging: the cursor is a keyset position, so writes between pages neither repeat nor skip
// resources that did not change.
TEST_F(SearchTest, PagingSurvivesConcurrentWrites) {
  for (int i = 0; i < 25; ++i) {
    char id[8];
    std::snprintf(id, sizeof id, "p%02d", i);
    Put("Patient", id, base::StrCat(R"({"resourceType":"Patient","id":")", id,
                                    R"(","birthDate":"19)", 50 + i % 5, R"(-01-01"})"));
  }
  for (std::string sort : {"", "birthdate", "-birthdate,-_id"}) {
    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0, inserted = 0;
    while (true) {
      Params params = {{"_count", "4"}};
      if (!sort.empty()) params.emplace_back("_sort", sort);
      if (!cursor.empty()) params.emplace_back("_cursor", cursor);
      absl::StatusOr<SearchResult> r = searcher_->Search("Patient", params);
      ASSERT_TRUE(r.ok()) << r.status();
      for (const auto& v : r->matches) seen.push_back(v.id);
      ++pages;
      // Between pages: new resources (random ids: some sort before the cursor, some after) and
      // a new version of an original (same sort keys).
      ASSERT_TRUE(store_->Create("Patient", R"({"resourceType":"Patient","birthDate":"1900"})").ok());
      ASSERT_TRUE(store_->Create("Patient", R"({"resourceType":"Patient","birthDate":"2000"})").ok());
      char id[8];
      std::snprintf(id, sizeof id, "p%02d", (pages * 7) % 25);
      Put("Patient", id, base::StrCat(R"({"resourceType":"Patient","id":")", id,
                                      R"(","active":true,"birthDate":"19)", 50 + (pages * 7) % 25 % 5,
                                      R"(-01-01"})"));
      ++inserted;
      if (r->next_cursor.empty()) break;
      cursor = r->next_cursor;
    }
    EXPECT_GE(pages, 7) << sort;
    std::vector<std::string> originals;
    for (const std::string& id : seen) {
      if (id.starts_with("p")) originals.push_back(id);
    }
    std::vector<std::string> unique = originals;
    std::sort(unique.begin(), unique.end());
    EXPECT_EQ(std::unique(unique.begin(), unique.end()), unique.end()) << sort;
    EXPECT_EQ(originals.size(), 25u) << sort;
  }
  EXPECT_EQ(searcher_->Search("Patient", {{"_cursor", "garbage!"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace isthmus::fhir_search

namespace isthmus::fhir_search {
namespace {

// Resources stored before migration 5 (no indexer) are indexed by Backfill at startup.
TEST_F(SearchTest, BackfillIndexesResourcesStoredBeforeTheIndex) {
  store::FhirStoreOptions o;
  o.clock = &clock_;
  auto plain = std::move(store::FhirStore::Open(*writer_, o)).value();  // no indexer
  ASSERT_TRUE(plain->Update("Patient", "old1",
                            R"({"resourceType":"Patient","id":"old1","name":[{"family":"Early"}]})")
                  .ok());
  ASSERT_TRUE(plain->Update("Patient", "old2",
                            R"({"resourceType":"Patient","id":"old2","name":[{"family":"Earl"}]})")
                  .ok());
  ASSERT_TRUE(plain->Delete("Patient", "old2").ok());
  EXPECT_THAT(Sorted("Patient", {{"family", "ear"}}), IsEmpty());
  // What migration 5 does on an existing database.
  ASSERT_TRUE(writer_->Run([](db::Connection& c) {
    return c.Exec("INSERT INTO fhir_idx_pending (type, id) SELECT type, id FROM fhir_resources");
  }).ok());
  ASSERT_TRUE(indexer_->Backfill(*writer_, 1).ok());
  EXPECT_THAT(Sorted("Patient", {{"family", "ear"}}), ElementsAre("old1"));
  ASSERT_TRUE(indexer_->Backfill(*writer_).ok());  // nothing left: a no-op
  EXPECT_THAT(Sorted("Patient", {{"family", "ear"}}), ElementsAre("old1"));
}

// A table's rows go in statements of up to 16 rows: a resource with more rows than that in one
// table (40 identifiers) has them all, each findable; an update replaces them.
TEST_F(SearchTest, ResourcesWithManyRowsInOneTableAreIndexedWhole) {
  auto patient = [](int from, int n) {
    std::string ids;
    for (int i = from; i < from + n; ++i) {
      if (!ids.empty()) ids += ",";
      ids += base::StrCat(R"({"system":"urn:many","value":"V)", i, R"("})");
    }
    return base::StrCat(R"({"resourceType":"Patient","id":"many","identifier":[)", ids, "]}");
  };
  Put("Patient", "many", patient(0, 40));
  for (int i : {0, 15, 16, 17, 32, 39}) {
    EXPECT_THAT(Ids("Patient", {{"identifier", base::StrCat("urn:many|V", i)}}),
                ElementsAre("many")) << i;
  }
  EXPECT_THAT(Ids("Patient", {{"identifier", "urn:many|V40"}}), IsEmpty());
  Put("Patient", "many", patient(100, 17));
  EXPECT_THAT(Ids("Patient", {{"identifier", "urn:many|V0"}}), IsEmpty());
  EXPECT_THAT(Ids("Patient", {{"identifier", "urn:many|V116"}}), ElementsAre("many"));
  int64_t n = -1;
  ASSERT_TRUE(writer_->Run([&](db::Connection& c) -> absl::Status {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, c.Prepare(
        "SELECT COUNT(*) FROM fhir_idx_token WHERE res_id = 'many' AND param = 'identifier'"));
    ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
    if (row) n = q->ColumnInt64(0);
    return absl::OkStatus();
  }).ok());
  EXPECT_EQ(n, 17);
}

// Migration tests: a database file `name` at schema version `version` holding what `sql` wrote.
std::string OldDatabase(const std::string& name, size_t version, const char* sql) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "isthmus.db").string();
  auto conn = std::move(db::OpenSqlite(path)).value();
  const auto& all = store::SchemaMigrations();
  EXPECT_GT(all.size(), version);
  EXPECT_TRUE(db::Migrate(*conn, {all.begin(), all.begin() + version}).ok());
  EXPECT_TRUE(conn->Exec(sql).ok());
  return path;
}

// The first column of the first row of `sql` on the writer's connection; -2 when it fails.
int64_t CountOn(store::Writer& writer, const std::string& sql) {
  int64_t n = -1;
  absl::Status s = writer.Run([&](db::Connection& c) -> absl::Status {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, c.Prepare(sql));
    ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
    if (row) n = q->ColumnInt64(0);
    return absl::OkStatus();
  });
  return s.ok() ? n : -2;
}

// The ids a search matches, sorted.
std::vector<std::string> SortedIds(Searcher& searcher, std::string_view type, Params params) {
  std::vector<std::string> out;
  absl::StatusOr<SearchResult> r = searcher.Search(type, params);
  EXPECT_TRUE(r.ok()) << r.status();
  if (r.ok()) {
    for (const auto& v : r->matches) out.push_back(v.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Migration 8 on a database written at schema version 7: the index tables and fhir_resources
// become WITHOUT ROWID tables with the same rows (a row repeated within a resource once), and
// the store writes and searches them as before.
TEST(SchemaMigrationTest, IndexTablesBecomeWithoutRowidKeepingTheirRows) {
  // What version 7 held for a Patient: its version, current pointer and index rows, one of
  // them twice (the old heaps had no key).
  const std::string path = OldDatabase("fhir_search_migration_8", 7,
        "INSERT INTO fhir_resource_versions (seq, type, id, version_id, last_updated, deleted, "
        "method, body) VALUES (1, 'Patient', 'old', 1, 1000, 0, 'PUT', "
        "'{\"resourceType\":\"Patient\",\"id\":\"old\",\"gender\":\"female\","
        "\"name\":[{\"family\":\"Early\"}]}');"
        "INSERT INTO fhir_resources (type, id, version_id, last_updated, deleted, version_seq) "
        "VALUES ('Patient', 'old', 1, 1000, 0, 1);"
        "INSERT INTO fhir_idx_string (res_type, res_id, param, norm, exact, grp) VALUES "
        "('Patient', 'old', 'family', 'early', 'Early', 0);"
        "INSERT INTO fhir_idx_token (res_type, res_id, param, system, code, text, grp) VALUES "
        "('Patient', 'old', 'gender', 'http://hl7.org/fhir/administrative-gender', 'female', "
        "'', 0), ('Patient', 'old', 'gender', 'http://hl7.org/fhir/administrative-gender', "
        "'female', '', 0);");
  base::FakeClock clock{absl::FromUnixSeconds(1735689600)};
  auto writer = std::move(store::Writer::Open(path)).value();  // migrates to the last version
  auto count = [&](const std::string& sql) { return CountOn(*writer, sql); };
  EXPECT_EQ(count("SELECT MAX(version) FROM schema_version"),
            static_cast<int64_t>(store::SchemaMigrations().size()));
  for (const char* table : {"fhir_idx_string", "fhir_idx_token", "fhir_idx_date",
                            "fhir_idx_number", "fhir_idx_quantity", "fhir_idx_reference",
                            "fhir_idx_uri", "fhir_resources"}) {
    EXPECT_EQ(count(base::StrCat("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND "
                                 "name = '", table, "' AND sql LIKE '%WITHOUT ROWID'")), 1)
        << table;
    EXPECT_EQ(count(base::StrCat("SELECT COUNT(rowid) FROM ", table)), -2) << table;  // no rowid
  }
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_resources"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_string"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_token"), 1);  // the repeated row once

  auto registry = std::move(Registry::Build()).value();
  SearchIndexer indexer(registry);
  store::FhirStoreOptions o;
  o.clock = &clock;
  o.indexer = &indexer;
  auto fhir = std::move(store::FhirStore::Open(*writer, o)).value();
  Searcher searcher(*writer, registry, &clock);
  auto ids = [&](std::string_view type, Params params) {
    return SortedIds(searcher, type, std::move(params));
  };
  EXPECT_THAT(ids("Patient", {{"family", "ear"}}), ElementsAre("old"));
  EXPECT_THAT(ids("Patient", {{"gender", "female"}}), ElementsAre("old"));
  // Writes after the migration: a new version replaces the copied rows, a new resource whose
  // name repeats a value has it once.
  ASSERT_TRUE(fhir->Update("Patient", "old",
                           R"({"resourceType":"Patient","id":"old","gender":"male",
                             "name":[{"family":"Later"}]})", {.validate = false})
                  .ok());
  ASSERT_TRUE(fhir->Update("Patient", "new",
                           R"({"resourceType":"Patient","id":"new","gender":"male",
                             "name":[{"family":"Twice"},{"family":"Twice"}]})",
                           {.validate = false})
                  .ok());
  EXPECT_THAT(ids("Patient", {{"family", "ear"}}), IsEmpty());
  EXPECT_THAT(ids("Patient", {{"family", "later"}}), ElementsAre("old"));
  EXPECT_THAT(ids("Patient", {{"family", "twice"}}), ElementsAre("new"));
  EXPECT_THAT(ids("Patient", {{"gender", "male"}}), ElementsAre("new", "old"));
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_idx_string WHERE res_id = 'new' AND "
                  "param = 'family'"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_resources"), 2);
}

// A latency measurement, not a check: ISTHMUS_SEARCH_BENCH=N stores N Patients and N
// Observations and times typical searches (skipped otherwise).
// Migration 10 on a database written at schema version 9: the full-text table starts empty,
// the resources stored before are listed in fhir_text_pending and get their row at the next
// Backfill (their strings only), after which _content finds them.
TEST(SchemaMigrationTest, FullTextRowsForResourcesStoredBefore) {
  // Two Patients as version 9 held them (one deleted: a tombstone is current).
  const std::string path = OldDatabase("fhir_search_migration_10", 9,
        "INSERT INTO fhir_resource_versions (seq, type, id, version_id, last_updated, deleted, "
        "method, body) VALUES (1, 'Patient', 'old', 1, 1000, 0, 'PUT', "
        "'{\"resourceType\":\"Patient\",\"id\":\"old\",\"name\":[{\"family\":\"Early\"}]}'),"
        "(2, 'Patient', 'gone', 1, 1000, 0, 'PUT', "
        "'{\"resourceType\":\"Patient\",\"id\":\"gone\",\"name\":[{\"family\":\"Early\"}]}'),"
        "(3, 'Patient', 'gone', 2, 2000, 1, 'DELETE', '');"
        "INSERT INTO fhir_resources (type, id, version_id, last_updated, deleted, version_seq) "
        "VALUES ('Patient', 'old', 1, 1000, 0, 1), ('Patient', 'gone', 2, 2000, 1, 3);");
  base::FakeClock clock{absl::FromUnixSeconds(1735689600)};
  auto writer = std::move(store::Writer::Open(path)).value();  // migrates to the last version
  auto count = [&](const std::string& sql) { return CountOn(*writer, sql); };
  EXPECT_GE(count("SELECT MAX(version) FROM schema_version"), 10);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_text_pending"), 1);  // the live one
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_text"), 0);
  auto registry = std::move(Registry::Build()).value();
  SearchIndexer indexer(registry);
  store::FhirStoreOptions o;
  o.clock = &clock;
  o.indexer = &indexer;
  auto fhir = std::move(store::FhirStore::Open(*writer, o)).value();
  Searcher searcher(*writer, registry, &clock);
  auto ids = [&](Params params) { return SortedIds(searcher, "Patient", std::move(params)); };
  EXPECT_THAT(ids({{"_content", "early"}}), IsEmpty());  // not yet
  ASSERT_TRUE(indexer.Backfill(*writer).ok());
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_text_pending"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_text"), 1);
  EXPECT_THAT(ids({{"_content", "early"}}), ElementsAre("old"));
  // Its next version replaces the row.
  ASSERT_TRUE(fhir->Update("Patient", "old",
                           R"({"resourceType":"Patient","id":"old","name":[{"family":"Later"}]})",
                           {.validate = false})
                  .ok());
  EXPECT_THAT(ids({{"_content", "early"}}), IsEmpty());
  EXPECT_THAT(ids({{"_content", "later"}}), ElementsAre("old"));
  EXPECT_EQ(count("SELECT COUNT(*) FROM fhir_text"), 1);
}

TEST_F(SearchTest, LatencyMeasurement) {
  const char* env = std::getenv("ISTHMUS_SEARCH_BENCH");
  if (env == nullptr) GTEST_SKIP() << "set ISTHMUS_SEARCH_BENCH=N to measure";
  const int n = std::atoi(env);
  auto t0 = absl::Now();
  for (int batch = 0; batch < n; batch += 500) {
    std::string bundle = R"({"resourceType":"Bundle","type":"batch","entry":[)";
    for (int i = batch; i < std::min(n, batch + 500); ++i) {
      if (i > batch) bundle += ",";
      bundle += base::StrCat(
          R"({"request":{"method":"PUT","url":"Patient/p)", i, R"("},"resource":{"resourceType":"Patient","id":"p)", i,
          R"(","identifier":[{"system":"urn:mrn","value":"M)", i, R"("}],"name":[{"family":"Fam)", i % 1000,
          R"(","given":["G)", i % 37, R"("]}],"gender":")", i % 2 ? "male" : "female", R"(","birthDate":"19)",
          50 + i % 50, "-0", 1 + i % 9, "-1", i % 9, R"("}},)",
          R"({"request":{"method":"PUT","url":"Observation/o)", i, R"("},"resource":{"resourceType":"Observation","id":"o)", i,
          R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"C)", i % 200,
          R"("}]},"subject":{"reference":"Patient/p)", i, R"("},"effectiveDateTime":"2024-0)", 1 + i % 9,
          R"(-01T10:00:00Z","valueQuantity":{"value":)", i % 150, R"(,"system":"http://unitsofmeasure.org","code":"kg"}}})");
    }
    bundle += "]}";
    ASSERT_TRUE(store_->Transaction(bundle).ok());
  }
  const double load_s = absl::ToDoubleSeconds(absl::Now() - t0);
  std::printf("stored %d Patients + %d Observations in %.1f s (%.0f resources/s, indexed)\n", n, n,
              load_s, 2 * n / load_s);
  const std::vector<std::pair<std::string, Params>> queries = {
      {"Patient?identifier=urn:mrn|M<i>", {{"identifier", "urn:mrn|M"}}},
      {"Patient?family=fam12", {{"family", "fam12"}}},
      {"Patient?birthdate=1975-05", {{"birthdate", "1975-05"}}},
      {"Patient?gender=female&_count=50", {{"gender", "female"}}},
      {"Observation?code=C7&date=ge2024-03", {{"code", "C7"}, {"date", "ge2024-03"}}},
      {"Observation?subject=Patient/p<i>", {{"subject", "Patient/p"}}},
      {"Observation?value-quantity=gt140", {{"value-quantity", "gt140"}}},
      {"Patient?gender=male&_sort=-birthdate", {{"gender", "male"}, {"_sort", "-birthdate"}}},
  };
  for (const auto& [name, base_params] : queries) {
    std::vector<double> ms;
    for (int k = 0; k < 50; ++k) {
      Params params = base_params;
      if (name.find("<i>") != std::string::npos) params[0].second += std::to_string((k * 7919) % n);
      auto t = absl::Now();
      absl::StatusOr<SearchResult> r = searcher_->Search(name.substr(0, name.find('?')), params);
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
      ASSERT_TRUE(r.ok()) << r.status();
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%-42s median %7.2f ms  p99 %7.2f ms\n", name.c_str(), ms[ms.size() / 2],
                ms[ms.size() * 99 / 100]);
  }
}

}  // namespace
}  // namespace isthmus::fhir_search
