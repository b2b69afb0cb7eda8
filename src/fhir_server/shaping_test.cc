#include "fhir_server/shaping.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::fhir_server {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kPatient[] =
    R"({"resourceType":"Patient","id":"p","meta":{"versionId":"2","lastUpdated":"2024-01-01T00:00:00.000Z"},)"
    R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},)"
    R"("extension":[{"url":"http://x","valueString":"e"}],"identifier":[{"value":"1"}],)"
    R"("name":[{"family":"Doe"}],"gender":"female","birthDate":"1980-01-01",)"
    R"("_birthDate":{"extension":[{"url":"http://t","valueTime":"10:00:00"}]},)"
    R"("deceasedBoolean":false,"maritalStatus":{"text":"M"},"multipleBirthInteger":2,)"
    R"("contact":[{"name":{"family":"Roe"}}]})";

std::string Shaped(const Params& params, const char* json = kPatient) {
  auto shape = ParseShape(params);
  EXPECT_TRUE(shape.ok()) << shape.status();
  auto out = ApplyShape(*shape, json);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

std::vector<std::string> Keys(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  std::vector<std::string> keys;
  for (const auto& m : d.GetObject()) keys.emplace_back(m.name.GetString());
  return keys;
}

bool Subsetted(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  for (const auto& t : d["meta"]["tag"].GetArray()) {
    if (std::string(t["code"].GetString()) == "SUBSETTED" &&
        std::string(t["system"].GetString()) ==
            "http://terminology.hl7.org/CodeSystem/v3-ObservationValue") {
      return true;
    }
  }
  return false;
}

TEST(Shaping, SummaryTrueKeepsTheSummaryElementsOfTheR4Definition) {
  // Patient's isSummary elements in R4: identifier, active, name, telecom, gender, birthDate,
  // deceased[x], address, managingOrganization, link (not text, extension, maritalStatus,
  // multipleBirth[x], contact).
  std::string out = Shaped({{"_summary", "true"}});
  EXPECT_THAT(Keys(out), ::testing::ElementsAre("resourceType", "id", "meta", "identifier", "name",
                                                "gender", "birthDate", "_birthDate",
                                                "deceasedBoolean"));
  EXPECT_TRUE(Subsetted(out));
  EXPECT_THAT(out, ::testing::HasSubstr(R"("versionId":"2")"));
}

TEST(Shaping, SummaryTextAndData) {
  // text: text, id, meta and the mandatory top-level elements (Observation: status, code).
  const char* obs = R"({"resourceType":"Observation","id":"o","text":{"status":"generated",)"
                    R"("div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">o</div>"},"status":"final",)"
                    R"("code":{"text":"c"},"valueQuantity":{"value":1.50},"subject":{"reference":"Patient/p"}})";
  EXPECT_THAT(Keys(Shaped({{"_summary", "text"}}, obs)),
              ::testing::ElementsAre("resourceType", "id", "meta", "text", "status", "code"));
  std::string data = Shaped({{"_summary", "data"}}, obs);
  EXPECT_THAT(Keys(data), ::testing::ElementsAre("resourceType", "id", "meta", "status", "code",
                                                 "valueQuantity", "subject"));
  EXPECT_THAT(data, ::testing::HasSubstr(R"({"value":1.50})"));  // numbers as written
  EXPECT_TRUE(Subsetted(data));
  // false: untouched.
  EXPECT_EQ(Shaped({{"_summary", "false"}}, obs), obs);
}

TEST(Shaping, ElementsKeepsNamedAndMandatoryElements) {
  EXPECT_THAT(Keys(Shaped({{"_elements", "gender,Patient.deceased, multipleBirth"}})),
              ::testing::ElementsAre("resourceType", "id", "meta", "gender", "deceasedBoolean",
                                     "multipleBirthInteger"));
  const char* obs = R"({"resourceType":"Observation","id":"o","meta":{"tag":[{"code":"x"}]},)"
                    R"("status":"final","code":{"text":"c"},"valueString":"v","note":[{"text":"n"}]})";
  std::string out = Shaped({{"_elements", "value"}}, obs);
  EXPECT_THAT(Keys(out),
              ::testing::ElementsAre("resourceType", "id", "meta", "status", "code", "valueString"));
  EXPECT_THAT(out, ::testing::HasSubstr(R"("tag":[{"code":"x"},{"system")"));
}

TEST(Shaping, Errors) {
  EXPECT_FALSE(ParseShape({{"_summary", "maybe"}}).ok());
  EXPECT_FALSE(ParseShape({{"_summary", "true"}, {"_elements", "name"}}).ok());
  EXPECT_TRUE(ParseShape({{"_summary", "count"}, {"_elements", "name"}}).ok());
  EXPECT_FALSE(ParseShape({}).value().active());
}

}  // namespace
}  // namespace isthmus::fhir_server
