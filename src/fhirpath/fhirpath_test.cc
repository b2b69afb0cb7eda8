#include "fhirpath/fhirpath.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace isthmus::fhirpath {
namespace {

const char kPatient[] = R"({
  "resourceType": "Patient", "id": "p1", "active": true, "birthDate": "1974-12-25", "_birthDate": {"extension": [{"url": "bt", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
           {"use": "usual", "given": ["Jim"], "_given": [{"extension": [{"url": "u", "valueString": "x"}]}]}],
  "deceasedBoolean": false,
  "contained": [{"resourceType": "Practitioner", "id": "pr1"}],
  "generalPractitioner": [{"reference": "#pr1"}, {"reference": "Organization/o1"}]
})";

class FhirpathTest : public testing::Test {
 protected:
  void SetUp() override { doc_.Parse(kPatient); }
  std::string Eval(std::string_view text) {
    auto e = Expression::Compile(text);
    if (!e.ok()) return "compile: " + std::string(e.status().message());
    auto r = Evaluate(*e, doc_);
    if (!r.ok()) return "eval: " + std::string(r.status().message());
    return ToJson(*r);
  }
  rapidjson::Document doc_;
};

TEST_F(FhirpathTest, Navigation) {
  EXPECT_EQ(Eval("Patient.name.family"), R"([{"type":"string","value":"Chalmers"}])");
  EXPECT_EQ(Eval("name.given.count()"), R"([{"type":"integer","value":3}])");
  EXPECT_EQ(Eval("Patient.birthDate"), R"([{"type":"date","value":"1974-12-25"}])");
  EXPECT_EQ(Eval("Patient.deceased"), R"([{"type":"boolean","value":false}])");
  EXPECT_EQ(Eval("Patient.birthDate.extension('bt').value"),
            R"([{"type":"dateTime","value":"1974-12-25T14:35:45-05:00"}])");
  EXPECT_EQ(Eval("Patient.name[1].given.extension('u').value"),
            R"([{"type":"string","value":"x"}])");
}

TEST_F(FhirpathTest, PrimitivesHaveIdAndExtensionElements) {
  // A FHIR primitive's elements are those of its type (Element: id, extension), kept in JSON in
  // the `_name` sibling (R4 json.html#primitive). Navigating to them is navigation like any
  // other: present gives the items, absent gives empty (N1 "Path selection": a path that
  // selects nothing is the empty collection, not an error). These were errors before.
  EXPECT_EQ(Eval("Patient.birthDate.extension.url"), R"([{"type":"uri","value":"bt"}])");
  EXPECT_EQ(Eval("Patient.name.given.extension.url"), R"([{"type":"uri","value":"u"}])");
  EXPECT_EQ(Eval("Patient.name[0].family.extension"), "[]");  // no _family
  EXPECT_EQ(Eval("Patient.name[0].family.id"), "[]");
  EXPECT_EQ(Eval("Patient.active.extension.exists()"), R"([{"type":"boolean","value":false}])");
  EXPECT_EQ(Eval("Patient.birthDate.extension.where(url = 'bt').value.toString()"),
            R"([{"type":"string","value":"1974-12-25T14:35:45-05:00"}])");
  // A name the primitive's type does not have is still an error (a typo fails loudly), and a
  // System value (computed, no FHIR type) has no elements at all: empty.
  EXPECT_EQ(Eval("Patient.birthDate.nosuch").substr(0, 5), "eval:");
  EXPECT_EQ(Eval("'abc'.extension"), "[]");
  // children() (N1: "all immediate child nodes") of a primitive are those elements too, so
  // descendants() reaches a primitive's extensions: bt on birthDate, u on the third given.
  EXPECT_EQ(Eval("Patient.birthDate.children().url"), R"([{"type":"uri","value":"bt"}])");
  EXPECT_EQ(Eval("Patient.name.given.children().count()"), R"([{"type":"integer","value":1}])");
  EXPECT_EQ(Eval("Patient.descendants().ofType(Extension).url"),
            R"([{"type":"uri","value":"bt"},{"type":"uri","value":"u"}])");
  EXPECT_EQ(Eval("Patient.active.children()"), "[]");
}

TEST_F(FhirpathTest, AsTakesOneItem) {
  // N1 6.3.3/6.3.4: `as` (operator and function) on more than one item is an error; the
  // official R4 suite's testFHIRPathAsFunction21 (Patient.name.as(HumanName).use, three names)
  // expects that error. ofType() is the filter over a collection. R4 search parameters and
  // invariants that apply `as` to a repeating element are rewritten to ofType() by their
  // users (fhir_search's registry, fhir_conformance), not by the engine.
  EXPECT_EQ(Eval("Patient.name.as(HumanName)").substr(0, 5), "eval:");
  EXPECT_EQ(Eval("(Patient.name as HumanName)").substr(0, 5), "eval:");
  EXPECT_EQ(Eval("Patient.name.ofType(HumanName).count()"), R"([{"type":"integer","value":2}])");
  EXPECT_EQ(Eval("Patient.name.first().as(HumanName).use"), R"([{"type":"code","value":"official"}])");
  EXPECT_EQ(Eval("Patient.name.first().as(Quantity)"), "[]");
  EXPECT_EQ(Eval("{}.as(HumanName)"), "[]");
}

TEST(FhirpathToStringTest, DatesAndTimesToTheirPrecision) {
  // N1 toString(): Date YYYY-MM-DD, DateTime YYYY-MM-DDThh:mm:ss.fff(+|-)hh:mm, Time
  // hh:mm:ss.fff, "for partial dates and times, the result will only be specified to the level
  // of precision in the value being converted". So a dateTime to the year, month or day is
  // written like the date (no trailing `T`: that belongs to the literal syntax, @2016-03T).
  rapidjson::Document doc;
  doc.Parse(R"({"resourceType": "Patient", "deceasedDateTime": "2016-03",
                "birthDate": "1974"})");
  auto str = [&](std::string_view text) -> std::string {
    auto e = Expression::Compile(text);
    if (!e.ok()) return "compile: " + std::string(e.status().message());
    auto r = Evaluate(*e, doc);
    if (!r.ok()) return "eval: " + std::string(r.status().message());
    if (r->size() != 1) return "items: " + std::to_string(r->size());
    return ToLiteralString((*r)[0]);
  };
  EXPECT_EQ(str("@2016T.toString()"), "2016");
  EXPECT_EQ(str("@2016-03T.toString()"), "2016-03");
  EXPECT_EQ(str("@2016-03-04T.toString()"), "2016-03-04");
  EXPECT_EQ(str("@2016-03-04T10:30.toString()"), "2016-03-04T10:30");
  EXPECT_EQ(str("@2016-03-04T10:30:15.toString()"), "2016-03-04T10:30:15");
  EXPECT_EQ(str("@2016-03-04T10:30:15.123+02:00.toString()"), "2016-03-04T10:30:15.123+02:00");
  EXPECT_EQ(str("@2016-03-04T10:30:15Z.toString()"), "2016-03-04T10:30:15Z");
  EXPECT_EQ(str("@2016.toString()"), "2016");
  EXPECT_EQ(str("@2016-03.toString()"), "2016-03");
  EXPECT_EQ(str("@2016-03-04.toString()"), "2016-03-04");
  EXPECT_EQ(str("@T10.toString()"), "10");
  EXPECT_EQ(str("@T10:30.toString()"), "10:30");
  EXPECT_EQ(str("@T10:30:15.toString()"), "10:30:15");
  EXPECT_EQ(str("@T10:30:15.123.toString()"), "10:30:15.123");
  // FHIR elements: a month-precision dateTime, a year-precision date; and the other users of
  // the string form (& and join) follow toString().
  EXPECT_EQ(str("Patient.deceased.toString()"), "2016-03");
  EXPECT_EQ(str("Patient.birthDate.toString()"), "1974");
  EXPECT_EQ(str("'died ' & Patient.deceased"), "died 2016-03");
  EXPECT_EQ(str("(@2016T | @2017-01T).join(',')"), "2016,2017-01");
  // The CLI's literal form keeps the `T` that makes it a dateTime literal.
  EXPECT_EQ(str("Patient.deceased"), "2016-03T");
}

TEST_F(FhirpathTest, Resolve) {
  EXPECT_EQ(Eval("Patient.generalPractitioner.resolve().id"),
            R"([{"type":"id","value":"pr1"}])");
  EXPECT_EQ(Eval("Patient.generalPractitioner.where(resolve() is Organization).count()"),
            R"([{"type":"integer","value":1}])");
}

TEST_F(FhirpathTest, Errors) {
  EXPECT_EQ(Eval("Patient.name.given1").substr(0, 5), "eval:");
  EXPECT_EQ(Eval("1 +").substr(0, 8), "compile:");
  EXPECT_EQ(Eval("name.nosuch()").substr(0, 8), "compile:");
  EXPECT_EQ(Eval("(1 | 2) + 1").substr(0, 5), "eval:");
}

TEST_F(FhirpathTest, HostileExpressionsAreRefusedNotOverflowingTheStack) {
  // A FHIRPath Patch path is client input: these crashed the server (stack overflow) before.
  auto nested = [](int n) { return std::string(n, '(') + "name" + std::string(n, ')'); };
  EXPECT_EQ(Eval(nested(50)), Eval("name"));  // deep but reasonable: fine
  std::string refused = Eval(nested(150));
  EXPECT_EQ(refused.substr(0, 8), "compile:") << refused.substr(0, 80);
  EXPECT_NE(refused.find("nested more than"), std::string::npos) << refused.substr(0, 80);
  EXPECT_NE(Eval(nested(100000)).find("tokens"), std::string::npos);  // refused before parsing
  EXPECT_EQ(Eval(std::string(5000, '-') + "1").substr(0, 8), "compile:");
  std::string chain = "name";
  for (int i = 0; i < 3000; ++i) chain += ".given";  // built by a loop, deep as a tree
  EXPECT_NE(Eval(chain).find("nested more than"), std::string::npos);
  std::string sum = "1";
  for (int i = 0; i < 20000; ++i) sum += "+1";
  EXPECT_NE(Eval(sum).find("tokens"), std::string::npos);
}

TEST_F(FhirpathTest, Arithmetic) {
  EXPECT_EQ(Eval("0.1 + 0.2 = 0.3"), R"([{"type":"boolean","value":true}])");
  EXPECT_EQ(Eval("@2014-01-31 + 1 month"), R"([{"type":"date","value":"2014-02-28"}])");
  EXPECT_EQ(Eval("1 'kg' = 1000 'g'"), R"([{"type":"boolean","value":true}])");
  EXPECT_EQ(Eval("@2012-04-15 = @2012-04-15T10:00"), "[]");
}

// Every expression of the official R4 SearchParameters compiles, and evaluates without error on
// an empty resource of each base type (search extraction runs them all on every write).
TEST(SearchParametersTest, AllR4ExpressionsCompileAndRun) {
  std::ifstream in(ISTHMUS_CORPUS_DIR "/fhir-r4-definitions/search-parameters.json");
  if (!in) GTEST_SKIP() << "shared corpus absent: " << ISTHMUS_CORPUS_DIR;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  rapidjson::Document bundle;
  bundle.Parse(text.c_str());
  ASSERT_TRUE(bundle.IsObject());
  int compiled = 0;
  for (const auto& entry : bundle["entry"].GetArray()) {
    const auto& sp = entry["resource"];
    if (!sp.HasMember("expression")) continue;
    std::string expression = sp["expression"].GetString();
    auto expr = Expression::Compile(expression);
    ASSERT_TRUE(expr.ok()) << sp["id"].GetString() << ": " << expr.status();
    ++compiled;
    for (const auto& base : sp["base"].GetArray()) {
      std::string json = std::string(R"({"resourceType":")") + base.GetString() + "\"}";
      rapidjson::Document doc;
      doc.Parse(json.c_str());
      auto r = Evaluate(*expr, doc);
      EXPECT_TRUE(r.ok()) << sp["id"].GetString() << " on " << base.GetString() << ": "
                          << r.status();
    }
  }
  EXPECT_GT(compiled, 1300);
}

}  // namespace
}  // namespace isthmus::fhirpath
