#include "fhir_server/fhir_api.h"

#include <filesystem>

#include "absl/time/time.h"
#include "fhir_search/indexer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::fhir_server {
namespace {

using ::testing::HasSubstr;

std::string Header(const net::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

rapidjson::Document Json(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s.c_str(), s.size());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

class FhirApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("fhir_api_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    writer_ = std::move(store::Writer::Open((dir_ / "isthmus.db").string())).value();
    store::FhirStoreOptions o;
    o.clock = &clock_;
    store_ = std::move(store::FhirStore::Open(*writer_, o)).value();
    api_ = std::make_unique<FhirApi>(*store_);
  }
  static net::HttpRequest Req(std::string method, std::string path,
                              std::vector<std::pair<std::string, std::string>> params = {},
                              std::string body = "") {
    net::HttpRequest r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.path_params = std::move(params);
    r.body = std::move(body);
    r.headers.emplace_back("host", "example.test");
    return r;
  }

  std::filesystem::path dir_;
  base::FakeClock clock_;
  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<store::FhirStore> store_;
  std::unique_ptr<FhirApi> api_;
};

TEST_F(FhirApiTest, CrudWithHeaders) {
  auto created = api_->Create(Req("POST", "/fhir/Patient", {{"type", "Patient"}},
                                  R"({"resourceType":"Patient","active":true})"));
  EXPECT_EQ(created.status, 201);
  EXPECT_THAT(created.content_type, HasSubstr("application/fhir+json"));
  EXPECT_EQ(Header(created, "ETag"), "W/\"1\"");
  EXPECT_EQ(Header(created, "Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
  const std::string id = Json(created.body)["id"].GetString();
  EXPECT_EQ(Header(created, "Location"),
            "http://example.test/fhir/Patient/" + id + "/_history/1");

  auto read = api_->Read(Req("GET", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}}));
  EXPECT_EQ(read.status, 200);
  EXPECT_EQ(read.body, created.body);

  auto stale = Req("PUT", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}},
                   R"({"resourceType":"Patient","id":")" + id + R"("})");
  stale.headers.emplace_back("if-match", "W/\"2\"");
  auto conflict = api_->Update(stale);
  EXPECT_EQ(conflict.status, 412);
  EXPECT_STREQ(Json(conflict.body)["resourceType"].GetString(), "OperationOutcome");

  auto ok = Req("PUT", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}},
                R"({"resourceType":"Patient","id":")" + id + R"("})");
  ok.headers.emplace_back("if-match", "W/\"1\"");
  ok.headers.emplace_back("prefer", "return=minimal");
  auto updated = api_->Update(ok);
  EXPECT_EQ(updated.status, 200);
  EXPECT_EQ(updated.body, "");
  EXPECT_EQ(Header(updated, "ETag"), "W/\"2\"");

  auto del = api_->Delete(Req("DELETE", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}}));
  EXPECT_EQ(del.status, 200);
  auto gone = api_->Read(Req("GET", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}}));
  EXPECT_EQ(gone.status, 410);
  auto v1 = api_->VRead(Req("GET", "", {{"type", "Patient"}, {"id", id}, {"vid", "1"}}));
  EXPECT_EQ(v1.status, 200);

  auto history = api_->InstanceHistory(
      Req("GET", "/fhir/Patient/" + id + "/_history", {{"type", "Patient"}, {"id", id}}));
  EXPECT_EQ(history.status, 200);
  auto h = Json(history.body);
  EXPECT_STREQ(h["type"].GetString(), "history");
  ASSERT_EQ(h["entry"].Size(), 3u);
  EXPECT_STREQ(h["entry"][0]["request"]["method"].GetString(), "DELETE");
  EXPECT_FALSE(h["entry"][0].HasMember("resource"));
}

// Writes are checked against the R4 StructureDefinitions (fhir/validator.h): 400 with the
// elements named, nothing stored. Expected paths from the R4 Patient and Observation definitions:
// Patient.gender is a code bound (required) to administrative-gender; Observation.status and
// .code are 1..1; Patient.birthDate is a date.
TEST_F(FhirApiTest, InvalidResourcesAreRefusedWithTheElementPath) {
  auto bad_code = api_->Create(Req("POST", "/fhir/Patient", {{"type", "Patient"}},
                                   R"({"resourceType":"Patient","gender":"yes"})"));
  EXPECT_EQ(bad_code.status, 400);
  EXPECT_THAT(bad_code.body, HasSubstr("Patient.gender"));
  EXPECT_THAT(bad_code.body, HasSubstr("OperationOutcome"));
  auto missing = api_->Create(Req("POST", "/fhir/Observation", {{"type", "Observation"}},
                                  R"({"resourceType":"Observation"})"));
  EXPECT_EQ(missing.status, 400);
  EXPECT_THAT(missing.body, HasSubstr("Observation.status"));
  EXPECT_THAT(missing.body, HasSubstr("Observation.code"));
  auto unknown = api_->Update(Req("PUT", "/fhir/Patient/v1", {{"type", "Patient"}, {"id", "v1"}},
                                  R"({"resourceType":"Patient","id":"v1","colour":"red"})"));
  EXPECT_EQ(unknown.status, 400);
  EXPECT_THAT(unknown.body, HasSubstr("Patient.colour"));
  EXPECT_THAT(unknown.body, ::testing::Not(HasSubstr("red")));  // no values in errors
  EXPECT_EQ(api_->Read(Req("GET", "/fhir/Patient/v1", {{"type", "Patient"}, {"id", "v1"}})).status,
            404);
  // A transaction with one invalid entry stores nothing and names the entry.
  auto tx = api_->Transaction(Req("POST", "/fhir", {}, R"({"resourceType":"Bundle","type":"transaction",
      "entry":[{"resource":{"resourceType":"Patient","active":true},
                "request":{"method":"POST","url":"Patient"}},
               {"resource":{"resourceType":"Patient","birthDate":"1980-13-45"},
                "request":{"method":"POST","url":"Patient"}}]})"));
  EXPECT_EQ(tx.status, 400);
  EXPECT_THAT(tx.body, HasSubstr("Bundle.entry[1].resource"));
  EXPECT_THAT(tx.body, HasSubstr("Patient.birthDate"));
  auto list = store_->List("Patient", "", 10);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

// $validate answers 200 with an OperationOutcome whether or not the resource is valid
// (http://hl7.org/fhir/R4/resource-operation-validate.html), for a posted resource, a Parameters
// body, or the stored version.
// $validate's mode (resource-operation-validate.html): create, update (the resource must be
// acceptable as an update of /{type}/{id}: here, its id must be the URL's), delete (content
// ignored; whether /{type}/{id} can be deleted), profile (needs a profile).
TEST_F(FhirApiTest, ValidateModes) {
  ASSERT_TRUE(store_->Update("Patient", "s1", R"({"resourceType":"Patient","id":"s1"})").ok());
  auto validate = [&](const std::string& id, std::vector<std::pair<std::string, std::string>> query,
                      std::string body, std::string method = "POST") {
    net::HttpRequest r =
        id.empty() ? Req(method, "/fhir/Patient/$validate",
                         {{"type", "Patient"}, {"id", "$validate"}}, std::move(body))
                   : Req(method, "/fhir/Patient/" + id + "/$validate",
                         {{"type", "Patient"}, {"id", id}, {"op", "$validate"}}, std::move(body));
    r.query = std::move(query);
    return id.empty() ? api_->TypeOperation(r) : api_->InstanceOperation(r);
  };
  // The first issue that is not a warning ("ok" when only warnings: these Patients have no
  // narrative, which dom-6 warns about).
  auto first_issue = [](const net::HttpResponse& r) {
    auto d = Json(r.body);
    for (const auto& i : d["issue"].GetArray()) {
      std::string out = i["severity"].GetString();
      if (out == "warning") continue;
      if (i.HasMember("expression")) out += std::string(" ") + i["expression"][0].GetString();
      return out;
    }
    return std::string("ok");
  };
  // update: the body's id must be the URL's.
  auto same = validate("s1", {{"mode", "update"}}, R"({"resourceType":"Patient","id":"s1"})");
  ASSERT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(first_issue(same), "ok");
  auto other = validate("s1", {{"mode", "update"}}, R"({"resourceType":"Patient","id":"s2"})");
  ASSERT_EQ(other.status, 200);
  EXPECT_EQ(first_issue(other), "error Patient.id");
  EXPECT_EQ(first_issue(validate("s1", {{"mode", "update"}}, R"({"resourceType":"Patient"})")),
            "error Patient.id");
  // The mode as a Parameters parameter.
  auto params = validate("s1", {}, R"({"resourceType":"Parameters","parameter":[
      {"name":"mode","valueCode":"update"},
      {"name":"resource","resource":{"resourceType":"Patient","id":"s2"}}]})");
  EXPECT_EQ(first_issue(params), "error Patient.id");
  // Without mode, or with create, the id does not matter (create ignores it).
  EXPECT_EQ(first_issue(validate("s1", {}, R"({"resourceType":"Patient","id":"s2"})")), "ok");
  EXPECT_EQ(first_issue(validate("", {{"mode", "create"}}, R"({"resourceType":"Patient","id":"x"})")),
            "ok");
  EXPECT_EQ(validate("", {{"mode", "update"}}, R"({"resourceType":"Patient","id":"s1"})").status,
            400);  // update names a resource
  // delete: the content is ignored; this server restricts no deletion.
  auto del = validate("s1", {{"mode", "delete"}}, "", "GET");
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(first_issue(del), "information");
  EXPECT_THAT(del.body, HasSubstr("can be deleted"));
  auto del_params = validate(
      "nope", {}, R"({"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"delete"}]})");
  ASSERT_EQ(del_params.status, 200) << del_params.body;
  EXPECT_THAT(del_params.body, HasSubstr("changes nothing"));
  EXPECT_EQ(validate("", {{"mode", "delete"}}, "").status, 400);
  // Unknown modes: 400; mode=profile without a profile: 400.
  EXPECT_EQ(validate("", {{"mode", "bogus"}}, R"({"resourceType":"Patient"})").status, 400);
  EXPECT_EQ(validate("", {{"mode", "profile"}}, R"({"resourceType":"Patient"})").status, 400);
  // An unknown profile is an error naming it (resource-operation-validate.html: the outcome).
  auto unknown = validate("", {{"profile", "http://example.org/p"}}, R"({"resourceType":"Patient"})");
  ASSERT_EQ(unknown.status, 200);
  EXPECT_EQ(first_issue(unknown), "error");
  EXPECT_THAT(unknown.body, HasSubstr("unknown profile http://example.org/p"));
}

// $validate checks what needs FHIRPath too (fhir_conformance): invariants with their key and
// text at the element (observation.html obs-6; datatypes.html per-1), reference targets,
// profiles by `profile` (query or Parameters) and meta.profile (the R4 body weight profile:
// LOINC 29463-7 required, observation-vitalsigns.html).
TEST_F(FhirApiTest, ValidateInvariantsAndProfiles) {
  auto validate = [&](const std::string& type, std::string body,
                      std::vector<std::pair<std::string, std::string>> query = {}) {
    net::HttpRequest r = Req("POST", "/fhir/" + type + "/$validate",
                             {{"type", type}, {"id", "$validate"}}, std::move(body));
    r.query = std::move(query);
    return api_->TypeOperation(r);
  };
  // "severity code expression: diagnostics" of each issue that is not a warning.
  auto errors = [](const net::HttpResponse& r) {
    std::vector<std::string> out;
    auto d = Json(r.body);
    for (const auto& i : d["issue"].GetArray()) {
      if (std::string(i["severity"].GetString()) != "error") continue;
      out.push_back(std::string(i["code"].GetString()) + " " +
                    (i.HasMember("expression") ? i["expression"][0].GetString() : "") + ": " +
                    i["diagnostics"].GetString());
    }
    return out;
  };
  const std::string weight = R"({"resourceType":"Observation","status":"final",
      "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category",
                              "code":"vital-signs"}]}],
      "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
      "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2016-03-28",
      "valueQuantity":{"value":67.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}})";
  auto ok = validate("Observation", weight);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_THAT(errors(ok), ::testing::IsEmpty()) << ok.body;
  EXPECT_THAT(ok.body, HasSubstr("dom-6"));  // a warning: no narrative
  // obs-6 and per-1 (an invariant of Period, inside the resource), by key and text.
  std::string bad = weight;
  bad.replace(bad.find(R"("effectiveDateTime":"2016-03-28")"), 32,
              R"("effectivePeriod":{"start":"2016-03-28","end":"2016-03-01"},"dataAbsentReason":{"text":"x"})");
  EXPECT_THAT(errors(validate("Observation", bad)),
              ::testing::UnorderedElementsAre(
                  "invariant Observation: obs-6: dataAbsentReason SHALL only be present if "
                  "Observation.value[x] is not present",
                  "invariant Observation.effectivePeriod: per-1: If present, start SHALL have a "
                  "lower value than end"));
  // Reference targets: Observation.subject is not a Practitioner.
  std::string who = weight;
  who.replace(who.find("Patient/p1"), 10, "Practitioner/1");
  EXPECT_THAT(errors(validate("Observation", who)),
              ::testing::ElementsAre(HasSubstr("structure Observation.subject.reference")));
  // Profiles: by query, by Parameters, by meta.profile; the stored numbers keep their text.
  const std::string bodyweight = "http://hl7.org/fhir/StructureDefinition/bodyweight";
  std::string other_code = weight;
  other_code.replace(other_code.find("29463-7"), 7, "3141-9");
  EXPECT_THAT(errors(validate("Observation", other_code)), ::testing::IsEmpty());
  EXPECT_THAT(errors(validate("Observation", other_code, {{"profile", bodyweight}})),
              ::testing::ElementsAre(
                  "structure Observation.code.coding:BodyWeightCode: min: min 1 (profile " +
                  bodyweight + ")"));
  EXPECT_THAT(errors(validate("Observation", weight, {{"profile", bodyweight}})),
              ::testing::IsEmpty());
  auto params = validate("Observation", R"({"resourceType":"Parameters","parameter":[
      {"name":"profile","valueUri":")" + bodyweight + R"("},
      {"name":"resource","resource":)" + other_code + "}]}");
  EXPECT_EQ(errors(params).size(), 1u) << params.body;
  std::string meta = other_code;
  meta.replace(meta.find(R"("status")"), 8, R"("meta":{"profile":[")" + bodyweight + R"("]},"status")");
  EXPECT_EQ(errors(validate("Observation", meta)).size(), 1u);
  // An unknown meta.profile is a warning naming it, not an error.
  std::string unknown = weight;
  unknown.replace(unknown.find(R"("status")"), 8,
                  R"("meta":{"profile":["http://example.org/StructureDefinition/x"]},"status")");
  auto u = validate("Observation", unknown);
  EXPECT_THAT(errors(u), ::testing::IsEmpty());
  EXPECT_THAT(u.body, HasSubstr("unknown profile http://example.org/StructureDefinition/x"));
}

// FHIR R4 http.html#cread: If-None-Match / If-Modified-Since on read and vread, 304 Not
// Modified (RFC 7232: If-None-Match wins over If-Modified-Since; a bad date is ignored).
TEST_F(FhirApiTest, ConditionalRead) {
  // The fake clock starts at 1,700,000,000 s: Tue, 14 Nov 2023 22:13:20 GMT.
  ASSERT_TRUE(store_->Update("Patient", "c1", R"({"resourceType":"Patient","id":"c1"})").ok());
  auto read = [&](std::vector<std::pair<std::string, std::string>> headers,
                  std::string vid = "") {
    net::HttpRequest r =
        vid.empty() ? Req("GET", "/fhir/Patient/c1", {{"type", "Patient"}, {"id", "c1"}})
                    : Req("GET", "/fhir/Patient/c1/_history/" + vid,
                          {{"type", "Patient"}, {"id", "c1"}, {"vid", vid}});
    for (auto& h : headers) r.headers.push_back(std::move(h));
    return vid.empty() ? api_->Read(r) : api_->VRead(r);
  };
  auto same = read({{"if-none-match", "W/\"1\""}});
  EXPECT_EQ(same.status, 304);
  EXPECT_EQ(same.body, "");
  EXPECT_EQ(Header(same, "ETag"), "W/\"1\"");
  EXPECT_EQ(Header(same, "Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
  EXPECT_EQ(read({{"if-none-match", "W/\"2\""}}).status, 200);
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(
      store_->Update("Patient", "c1", R"({"resourceType":"Patient","id":"c1","active":true})")
          .ok());
  auto changed = read({{"if-none-match", "W/\"1\""}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_TRUE(Json(changed.body)["active"].GetBool());
  EXPECT_EQ(read({{"if-none-match", "W/\"1\", W/\"2\""}}).status, 304);  // one of a list
  EXPECT_EQ(read({{"if-none-match", "\"2\""}}).status, 304);            // strong form
  EXPECT_EQ(read({{"if-none-match", "*"}}).status, 304);
  // vread: the version read is the one compared.
  EXPECT_EQ(read({{"if-none-match", "W/\"1\""}}, "1").status, 304);
  EXPECT_EQ(read({{"if-none-match", "W/\"2\""}}, "1").status, 200);
  // If-Modified-Since: version 2 was written at 22:13:30.
  EXPECT_EQ(read({{"if-modified-since", "Tue, 14 Nov 2023 22:13:30 GMT"}}).status, 304);
  EXPECT_EQ(read({{"if-modified-since", "Wed, 15 Nov 2023 08:00:00 GMT"}}).status, 304);
  EXPECT_EQ(read({{"if-modified-since", "Tue, 14 Nov 2023 22:13:29 GMT"}}).status, 200);
  EXPECT_EQ(read({{"if-modified-since", "Tue, 14 Nov 2023 22:13:25 GMT"}}, "1").status, 304);
  EXPECT_EQ(read({{"if-modified-since", "yesterday"}}).status, 200);
  EXPECT_EQ(read({{"if-none-match", "W/\"1\""},
                  {"if-modified-since", "Tue, 14 Nov 2023 22:13:30 GMT"}})
                .status,
            200);
  // In a Bundle: GET entries with ifNoneMatch / ifModifiedSince (an instant) answer 304 Not
  // Modified without the resource (http.html#transaction, Bundle.entry.request).
  auto batch = [&](const std::string& request) {
    return api_->Transaction(Req("POST", "/fhir", {},
                                 R"({"resourceType":"Bundle","type":"batch","entry":[{"request":)" +
                                     request + "}]}"));
  };
  auto entry_status = [&](const std::string& request) {
    auto r = batch(request);
    EXPECT_EQ(r.status, 200) << r.body;
    auto d = Json(r.body);
    const auto& e = d["entry"][0];
    return std::string(e["response"]["status"].GetString()) +
           (e.HasMember("resource") ? " +resource" : "");
  };
  EXPECT_EQ(entry_status(R"({"method":"GET","url":"Patient/c1","ifNoneMatch":"W/\"2\""})"),
            "304 Not Modified");
  EXPECT_EQ(entry_status(R"({"method":"GET","url":"Patient/c1","ifNoneMatch":"W/\"1\""})"),
            "200 OK +resource");
  EXPECT_EQ(entry_status(R"({"method":"GET","url":"Patient/c1","ifNoneMatch":"*"})"),
            "304 Not Modified");
  EXPECT_EQ(entry_status(R"({"method":"GET","url":"Patient/c1/_history/1","ifNoneMatch":"W/\"1\""})"),
            "304 Not Modified");
  EXPECT_EQ(
      entry_status(R"({"method":"GET","url":"Patient/c1","ifModifiedSince":"2023-11-14T22:13:30Z"})"),
      "304 Not Modified");
  EXPECT_EQ(
      entry_status(R"({"method":"GET","url":"Patient/c1","ifModifiedSince":"2023-11-14T22:13:29.999Z"})"),
      "200 OK +resource");
  EXPECT_EQ(entry_status(R"({"method":"GET","url":"Patient/c1","ifModifiedSince":"yesterday"})"),
            "400 Bad Request");
  EXPECT_EQ(entry_status(R"({"method":"DELETE","url":"Patient/c1","ifNoneMatch":"W/\"2\""})"),
            "400 Bad Request");  // for GET only
  // Deleted: still 410.
  ASSERT_TRUE(store_->Delete("Patient", "c1").ok());
  EXPECT_EQ(read({{"if-none-match", "W/\"2\""}}).status, 410);
}

TEST_F(FhirApiTest, ValidateOperation) {
  auto ok = api_->TypeOperation(Req("POST", "/fhir/Patient/$validate",
                                    {{"type", "Patient"}, {"id", "$validate"}},
                                    R"({"resourceType":"Patient","active":true})"));
  EXPECT_EQ(ok.status, 200);
  auto okj = Json(ok.body);
  EXPECT_STREQ(okj["resourceType"].GetString(), "OperationOutcome");
  for (const auto& i : okj["issue"].GetArray()) {
    EXPECT_STRNE(i["severity"].GetString(), "error") << ok.body;  // dom-6 (no narrative) warns
  }

  auto bad = api_->TypeOperation(Req("POST", "/fhir/Patient/$validate",
                                     {{"type", "Patient"}, {"id", "$validate"}},
                                     R"({"resourceType":"Patient","gender":"yes","active":"1"})"));
  EXPECT_EQ(bad.status, 200);
  auto badj = Json(bad.body);
  std::vector<std::string> where;
  for (const auto& i : badj["issue"].GetArray()) {
    if (std::string(i["severity"].GetString()) == "error") where.push_back(i["expression"][0].GetString());
  }
  EXPECT_THAT(where, ::testing::UnorderedElementsAre("Patient.gender", "Patient.active"));

  auto params = api_->TypeOperation(Req(
      "POST", "/fhir/Observation/$validate", {{"type", "Observation"}, {"id", "$validate"}},
      R"({"resourceType":"Parameters","parameter":[{"name":"resource",
          "resource":{"resourceType":"Observation","status":"final"}}]})"));
  EXPECT_EQ(params.status, 200);
  EXPECT_THAT(params.body, HasSubstr("Observation.code"));
  auto wrong_type = api_->TypeOperation(Req("POST", "/fhir/Observation/$validate",
                                            {{"type", "Observation"}, {"id", "$validate"}},
                                            R"({"resourceType":"Patient"})"));
  EXPECT_THAT(wrong_type.body, HasSubstr("not a Observation"));

  ASSERT_EQ(api_->Update(Req("PUT", "/fhir/Patient/s1", {{"type", "Patient"}, {"id", "s1"}},
                             R"({"resourceType":"Patient","id":"s1","active":true})"))
                .status,
            201);
  auto stored = api_->InstanceOperation(Req("GET", "/fhir/Patient/s1/$validate",
                                            {{"type", "Patient"}, {"id", "s1"}, {"op", "$validate"}}));
  EXPECT_EQ(stored.status, 200);
  EXPECT_THAT(stored.body, ::testing::Not(HasSubstr(R"("severity":"error")")));
  auto missing = api_->InstanceOperation(Req("GET", "/fhir/Patient/nope/$validate",
                                             {{"type", "Patient"}, {"id", "nope"}, {"op", "$validate"}}));
  EXPECT_EQ(missing.status, 404);
  auto not_json = api_->TypeOperation(Req("POST", "/fhir/Patient/$validate",
                                          {{"type", "Patient"}, {"id", "$validate"}}, "{"));
  EXPECT_EQ(not_json.status, 400);
}

TEST_F(FhirApiTest, ErrorsAreOperationOutcomes) {
  auto unknown = api_->Read(Req("GET", "/fhir/Nope/1", {{"type", "Nope"}, {"id", "1"}}));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_STREQ(Json(unknown.body)["resourceType"].GetString(), "OperationOutcome");
  auto missing = api_->Read(Req("GET", "/fhir/Patient/x", {{"type", "Patient"}, {"id", "x"}}));
  EXPECT_EQ(missing.status, 404);
  auto bad = api_->Create(Req("POST", "/fhir/Patient", {{"type", "Patient"}}, "{oops"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_STREQ(Json(bad.body)["issue"][0]["code"].GetString(), "invalid");
  auto xml = Req("GET", "/fhir/metadata");
  xml.query.emplace_back("_format", "xml");
  EXPECT_EQ(api_->Metadata(xml).status, 415);
  auto search = Req("GET", "/fhir/Patient", {{"type", "Patient"}});
  search.query.emplace_back("name", "x");
  auto s = api_->Search(search);
  EXPECT_EQ(s.status, 501);
  EXPECT_THAT(s.body, HasSubstr("search is not implemented yet"));
}

TEST_F(FhirApiTest, MetadataListsEveryTypeAndPrettyIndents) {
  auto req = Req("GET", "/fhir/metadata");
  req.query.emplace_back("_pretty", "true");
  auto r = api_->Metadata(req);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("\n  \"resourceType\": \"CapabilityStatement\""));
  auto d = Json(r.body);
  EXPECT_STREQ(d["fhirVersion"].GetString(), "4.0.1");
  EXPECT_EQ(d["rest"][0]["resource"].Size(), 146u);
}

TEST_F(FhirApiTest, SearchByIdAndPagesByCount) {
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(store_->Update("Patient", id,
                               std::string(R"({"resourceType":"Patient","id":")") + id + "\"}")
                    .ok());
  }
  auto by_id = Req("GET", "/fhir/Patient", {{"type", "Patient"}});
  by_id.query.emplace_back("_id", "b,zz");
  auto r = Json(api_->Search(by_id).body);
  EXPECT_EQ(r["total"].GetInt(), 1);
  EXPECT_STREQ(r["entry"][0]["resource"]["id"].GetString(), "b");
  auto paged = Req("GET", "/fhir/Patient", {{"type", "Patient"}});
  paged.query.emplace_back("_count", "2");
  auto p = Json(api_->Search(paged).body);
  EXPECT_EQ(p["entry"].Size(), 2u);
  EXPECT_STREQ(p["link"][1]["relation"].GetString(), "next");
  EXPECT_THAT(p["link"][1]["url"].GetString(), HasSubstr("_cursor=b"));
}

}  // namespace
}  // namespace isthmus::fhir_server

namespace isthmus::fhir_server {
namespace {

class FhirSearchApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("fhir_search_api_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    writer_ = std::move(store::Writer::Open((dir_ / "isthmus.db").string())).value();
    auto registry = std::move(fhir_search::Registry::Build()).value();
    indexer_ = std::make_unique<fhir_search::SearchIndexer>(registry);
    store::FhirStoreOptions o;
    o.indexer = indexer_.get();
    o.clock = &clock_;
    store_ = std::move(store::FhirStore::Open(*writer_, o)).value();
    search_ = std::make_unique<fhir_search::Searcher>(*writer_, registry, &clock_);
    api_ = std::make_unique<FhirApi>(*store_, search_.get());
    for (int i = 0; i < 5; ++i) {
      std::string id = "p" + std::to_string(i);
      ASSERT_TRUE(store_->Update("Patient", id,
                                 R"({"resourceType":"Patient","id":")" + id +
                                     R"(","name":[{"family":"Fam)" + std::to_string(i % 2) +
                                     R"("}],"gender":")" + (i % 2 ? "male" : "female") + "\"}")
                      .ok());
    }
  }
  static net::HttpRequest Get(std::vector<std::pair<std::string, std::string>> query) {
    net::HttpRequest r;
    r.method = "GET";
    r.path = "/fhir/Patient";
    r.path_params = {{"type", "Patient"}};
    r.query = std::move(query);
    r.headers.emplace_back("host", "example.test");
    return r;
  }

  std::filesystem::path dir_;
  base::FakeClock clock_;
  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<fhir_search::SearchIndexer> indexer_;
  std::unique_ptr<store::FhirStore> store_;
  std::unique_ptr<fhir_search::Searcher> search_;
  std::unique_ptr<FhirApi> api_;
};

TEST_F(FhirSearchApiTest, SearchsetWithLinksAndModes) {
  auto r = api_->Search(Get({{"gender", "female"}, {"_count", "2"}, {"_sort", "_id"}}));
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = Json(r.body);
  EXPECT_STREQ(d["type"].GetString(), "searchset");
  ASSERT_EQ(d["entry"].Size(), 2u);
  EXPECT_STREQ(d["entry"][0]["resource"]["id"].GetString(), "p0");
  EXPECT_STREQ(d["entry"][0]["search"]["mode"].GetString(), "match");
  auto link = [](const rapidjson::Value& bundle, const std::string& relation) {
    for (const auto& l : bundle["link"].GetArray()) {
      if (l["relation"].GetString() == relation) return std::string(l["url"].GetString());
    }
    return std::string();
  };
  std::string next = link(d, "next");
  EXPECT_THAT(next, HasSubstr("http://example.test/fhir/Patient?gender=female&_count=2"));
  auto cursor = next.substr(next.find("_cursor=") + 8);
  auto page2 = Json(api_->Search(Get({{"gender", "female"}, {"_count", "2"}, {"_sort", "_id"},
                                       {"_cursor", cursor}})).body);
  ASSERT_EQ(page2["entry"].Size(), 1u);
  EXPECT_STREQ(page2["entry"][0]["resource"]["id"].GetString(), "p4");
  EXPECT_EQ(link(page2, "next"), "");  // the last page

  auto count = Json(api_->Search(Get({{"family", "fam1"}, {"_summary", "count"}})).body);
  EXPECT_EQ(count["total"].GetInt(), 2);
  EXPECT_FALSE(count.HasMember("entry"));
}

TEST_F(FhirSearchApiTest, PostSearchAndHandling) {
  net::HttpRequest post = Get({});
  post.method = "POST";
  post.path = "/fhir/Patient/_search";
  post.headers.emplace_back("content-type", "application/x-www-form-urlencoded");
  post.body = "family=Fam1&_sort=-_id";
  auto r = Json(api_->SearchPost(post).body);
  ASSERT_EQ(r["entry"].Size(), 2u);
  EXPECT_STREQ(r["entry"][0]["resource"]["id"].GetString(), "p3");
  EXPECT_THAT(r["link"][0]["url"].GetString(), HasSubstr("/fhir/Patient?family=Fam1"));

  auto lenient = Json(api_->Search(Get({{"bogus", "1"}, {"gender", "male"}})).body);
  ASSERT_EQ(lenient["entry"].Size(), 3u);
  EXPECT_STREQ(lenient["entry"][2]["resource"]["resourceType"].GetString(), "OperationOutcome");
  EXPECT_STREQ(lenient["entry"][2]["search"]["mode"].GetString(), "outcome");
  auto strict_req = Get({{"bogus", "1"}});
  strict_req.headers.emplace_back("prefer", "handling=strict");
  auto strict = api_->Search(strict_req);
  EXPECT_EQ(strict.status, 400);
  EXPECT_THAT(strict.body, HasSubstr("bogus"));
  EXPECT_EQ(api_->Search(Get({{"birthdate", "notadate"}})).status, 400);
}

TEST_F(FhirSearchApiTest, MetadataListsExactlyTheSupportedParameters) {
  auto d = Json(api_->Metadata(Get({})).body);
  const auto& resources = d["rest"][0]["resource"];
  for (const auto& res : resources.GetArray()) {
    if (std::string(res["type"].GetString()) != "Patient") continue;
    std::vector<std::string> names;
    for (const auto& p : res["searchParam"].GetArray()) names.push_back(p["name"].GetString());
    EXPECT_THAT(names, ::testing::Contains("birthdate"));
    EXPECT_THAT(names, ::testing::Contains("_lastUpdated"));
    EXPECT_THAT(names, ::testing::Contains("_text"));  // full text (schema migration 10)
    EXPECT_THAT(names, ::testing::Contains("_content"));
    EXPECT_THAT(names, ::testing::Not(::testing::Contains("_query")));  // defined, not supported
    return;
  }
  FAIL() << "no Patient";
}

}  // namespace
}  // namespace isthmus::fhir_server

namespace isthmus::fhir_server {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

net::HttpRequest Call(std::string method, std::string path, Pairs path_params, Pairs query = {},
                      std::string body = "", Pairs headers = {}) {
  net::HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.path_params = std::move(path_params);
  r.query = std::move(query);
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.headers.emplace_back("host", "example.test");
  return r;
}

class FhirRestApiTest : public FhirSearchApiTest {
 protected:
  int64_t Versions() {
    auto h = store_->History({.type = "", .id = "", .since_micros = 0, .count = 1000});
    return static_cast<int64_t>(h->versions.size());
  }
};

TEST_F(FhirRestApiTest, ConditionalCreate) {
  const std::string body =
      R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"m1"}]})";
  auto first = api_->Create(Call("POST", "/fhir/Patient", {{"type", "Patient"}}, {}, body,
                                 {{"if-none-exist", "identifier=urn:mrn|m1"}}));
  ASSERT_EQ(first.status, 201) << first.body;
  const std::string id = Json(first.body)["id"].GetString();
  const int64_t versions = Versions();
  // One match: 200 with the existing resource, nothing written (FHIR R4 http.html#ccreate).
  auto again = api_->Create(Call("POST", "/fhir/Patient", {{"type", "Patient"}}, {}, body,
                                 {{"if-none-exist", "Patient?identifier=urn%3Amrn%7Cm1"}}));
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Json(again.body)["id"].GetString(), id);
  EXPECT_EQ(Header(again, "ETag"), "W/\"1\"");
  EXPECT_EQ(Versions(), versions);
  // Several matches: 412.
  auto many = api_->Create(Call("POST", "/fhir/Patient", {{"type", "Patient"}}, {}, body,
                                {{"if-none-exist", "gender=female"}}));
  EXPECT_EQ(many.status, 412);
  // A parameter search does not know cannot widen the match: 400, nothing written.
  auto unknown = api_->Create(Call("POST", "/fhir/Patient", {{"type", "Patient"}}, {}, body,
                                   {{"if-none-exist", "bogus=1"}}));
  EXPECT_EQ(unknown.status, 400);
  auto empty_value = api_->Create(Call("POST", "/fhir/Patient", {{"type", "Patient"}}, {}, body,
                                       {{"if-none-exist", "identifier="}}));
  EXPECT_EQ(empty_value.status, 400);
  EXPECT_EQ(Versions(), versions);
}

TEST_F(FhirRestApiTest, ConditionalUpdateAndDelete) {
  auto put = [&](Pairs query, const std::string& body, Pairs headers = {}) {
    return api_->ConditionalUpdate(
        Call("PUT", "/fhir/Patient", {{"type", "Patient"}}, std::move(query), body,
             std::move(headers)));
  };
  // No match, no id: created (201, Location).
  auto created = put({{"identifier", "urn:mrn|u1"}},
                     R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"u1"}]})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = Json(created.body)["id"].GetString();
  EXPECT_THAT(Header(created, "Location"), HasSubstr("/fhir/Patient/" + id + "/_history/1"));
  // One match: updated in place.
  auto updated = put({{"identifier", "urn:mrn|u1"}},
                     R"({"resourceType":"Patient","active":true,"identifier":[{"system":"urn:mrn","value":"u1"}]})");
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(Json(updated.body)["id"].GetString(), id);
  EXPECT_EQ(Header(updated, "ETag"), "W/\"2\"");
  // The body's id must be the match's.
  EXPECT_EQ(put({{"identifier", "urn:mrn|u1"}}, R"({"resourceType":"Patient","id":"p0"})").status,
            400);
  // Several matches: 412; no parameters: 400.
  EXPECT_EQ(put({{"gender", "female"}}, R"({"resourceType":"Patient"})").status, 412);
  EXPECT_EQ(put({{"_pretty", "true"}}, R"({"resourceType":"Patient"})").status, 400);

  auto del = [&](Pairs query) {
    return api_->ConditionalDelete(
        Call("DELETE", "/fhir/Patient", {{"type", "Patient"}}, std::move(query)));
  };
  EXPECT_EQ(del({{"gender", "female"}}).status, 412);  // we delete one match at most
  EXPECT_FALSE(store_->Read("Patient", "p0")->deleted);
  auto one = del({{"identifier", "urn:mrn|u1"}});
  EXPECT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(Header(one, "ETag"), "W/\"3\"");
  EXPECT_TRUE(store_->Read("Patient", id)->deleted);
  auto none = del({{"identifier", "urn:mrn|u1"}});
  EXPECT_EQ(none.status, 200);
  EXPECT_THAT(none.body, HasSubstr("nothing to delete"));
}

TEST_F(FhirRestApiTest, JsonPatch) {
  auto patch = [&](const std::string& id, const std::string& body, Pairs headers = {
                                                                      {"content-type",
                                                                       "application/json-patch+json"}}) {
    return api_->Patch(Call("PATCH", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}}, {},
                            body, std::move(headers)));
  };
  auto ok = patch("p0", R"([{"op":"test","path":"/gender","value":"female"},
                            {"op":"replace","path":"/gender","value":"other"},
                            {"op":"add","path":"/name/0/given","value":["Ann"]}])");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Header(ok, "ETag"), "W/\"2\"");
  auto d = Json(ok.body);
  EXPECT_STREQ(d["gender"].GetString(), "other");
  EXPECT_STREQ(d["name"][0]["given"][0].GetString(), "Ann");
  EXPECT_STREQ(d["meta"]["versionId"].GetString(), "2");
  // The search index follows the patched version.
  auto found = Json(api_->Search(Get({{"gender", "other"}})).body);
  ASSERT_EQ(found["entry"].Size(), 1u);
  // A failed test: 422, nothing written.
  auto failed = patch("p0", R"([{"op":"test","path":"/gender","value":"female"}])");
  EXPECT_EQ(failed.status, 422);
  EXPECT_STREQ(Json(failed.body)["issue"][0]["code"].GetString(), "processing");
  // Malformed: 400. Wrong media type: 415. Stale If-Match: 412. Unknown id: 404.
  EXPECT_EQ(patch("p0", R"({"op":"remove"})").status, 400);
  EXPECT_EQ(patch("p0", "[]", {{"content-type", "text/plain"}}).status, 415);
  // application/fhir+json is FHIRPath Patch, whose body is a Parameters resource: 400 otherwise.
  EXPECT_EQ(patch("p0", "[]", {{"content-type", "application/fhir+json"}}).status, 400);
  EXPECT_EQ(patch("p0", "[]", {{"content-type", "application/json-patch+json"},
                              {"if-match", "W/\"1\""}}).status,
            412);
  EXPECT_EQ(patch("nope", "[]").status, 404);
  // The result must stay a Patient with the same id: 422.
  EXPECT_EQ(patch("p0", R"([{"op":"replace","path":"/id","value":"p9"}])").status, 422);
  EXPECT_EQ(patch("p0", R"([{"op":"replace","path":"/resourceType","value":"Basic"}])").status, 422);
  EXPECT_EQ(store_->Read("Patient", "p0")->version_id, 2);
  // Deleted: 410.
  ASSERT_TRUE(store_->Delete("Patient", "p1").ok());
  EXPECT_EQ(patch("p1", "[]").status, 410);
}

TEST_F(FhirRestApiTest, TransactionWithConditionalReferenceAndPatch) {
  auto r = api_->Transaction(Call("POST", "/fhir", {}, {}, R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"Patient?name=fam0&gender=female"}},
     "request":{"method":"POST","url":"Observation"}},
    {"resource":{"resourceType":"Binary","contentType":"application/json-patch+json",
                 "data":"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2FjdGl2ZSIsInZhbHVlIjp0cnVlfV0="},
     "request":{"method":"PATCH","url":"Patient/p1"}}]})"));
  // name=fam0 and female: p0, p2 and p4 are female, every even one is Fam0: three matches.
  EXPECT_EQ(r.status, 412) << r.body;
  EXPECT_THAT(r.body, HasSubstr("Bundle.entry[0]"));
  auto ok = api_->Transaction(Call("POST", "/fhir", {}, {}, R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"Patient?_id=p2&gender=female"}},
     "request":{"method":"POST","url":"Observation"}},
    {"resource":{"resourceType":"Binary","contentType":"application/json-patch+json",
                 "data":"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2FjdGl2ZSIsInZhbHVlIjp0cnVlfV0="},
     "request":{"method":"PATCH","url":"Patient/p1"}}]})",
                                   {{"prefer", "return=representation"}}));
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto d = Json(ok.body);
  EXPECT_STREQ(d["entry"][0]["resource"]["subject"]["reference"].GetString(), "Patient/p2");
  // The Binary's data is [{"op":"add","path":"/active","value":true}].
  EXPECT_TRUE(d["entry"][1]["resource"]["active"].GetBool());
}

// FHIR R4 http.html#patch: PATCH [type]?[search]: no match 404, one patched, several 412.
TEST_F(FhirRestApiTest, ConditionalPatch) {
  auto patch = [&](Pairs query, const std::string& body, Pairs headers = {}) {
    headers.emplace_back("content-type", "application/json-patch+json");
    return api_->ConditionalPatch(
        Call("PATCH", "/fhir/Patient", {{"type", "Patient"}}, std::move(query), body,
             std::move(headers)));
  };
  const std::string activate = R"([{"op":"add","path":"/active","value":true}])";
  const int64_t versions = Versions();
  // p1 and p3 are Fam1 and male.
  auto many = patch({{"name", "fam1"}, {"gender", "male"}}, activate);
  EXPECT_EQ(many.status, 412) << many.body;
  EXPECT_EQ(patch({{"_id", "nope"}}, activate).status, 404);
  EXPECT_EQ(patch({}, activate).status, 400);
  EXPECT_EQ(patch({{"bogus", "1"}}, activate).status, 400);  // never a wider match
  EXPECT_EQ(Versions(), versions);
  auto one = patch({{"name", "fam1"}, {"_id", "p3"}}, activate);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(Header(one, "ETag"), "W/\"2\"");
  EXPECT_EQ(Header(one, "Location"), "http://example.test/fhir/Patient/p3/_history/2");
  EXPECT_TRUE(Json(one.body)["active"].GetBool());
  EXPECT_EQ(store_->History({.type = "Patient", .id = "p3"})->versions[0].method, "PATCH");
  // If-Match applies to the match.
  EXPECT_EQ(patch({{"_id", "p3"}}, activate, {{"if-match", "W/\"1\""}}).status, 412);
  // A FHIRPath Patch too.
  auto fp = api_->ConditionalPatch(Call(
      "PATCH", "/fhir/Patient", {{"type", "Patient"}}, {{"_id", "p3"}},
      R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[
          {"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},
          {"name":"value","valueBoolean":false}]}]})",
      {{"content-type", "application/fhir+json"}}));
  ASSERT_EQ(fp.status, 200) << fp.body;
  EXPECT_FALSE(Json(fp.body)["active"].GetBool());
  EXPECT_EQ(Header(fp, "ETag"), "W/\"3\"");
}

// FHIR R4 fhirpatch.html over REST: PATCH with a Parameters body as application/fhir+json.
TEST_F(FhirRestApiTest, FhirPathPatch) {
  auto patch = [&](const std::string& id, const std::string& ops, Pairs headers = {}) {
    headers.emplace_back("content-type", "application/fhir+json");
    return api_->Patch(Call("PATCH", "/fhir/Patient/" + id, {{"type", "Patient"}, {"id", id}}, {},
                            R"({"resourceType":"Parameters","parameter":[)" + ops + "]}",
                            std::move(headers)));
  };
  auto ok = patch("p0", R"({"name":"operation","part":[{"name":"type","valueCode":"add"},
      {"name":"path","valueString":"Patient"},{"name":"name","valueString":"birthDate"},
      {"name":"value","valueDate":"1930-01-01"}]},
    {"name":"operation","part":[{"name":"type","valueCode":"replace"},
      {"name":"path","valueString":"Patient.name.where(family = 'Fam0').family"},
      {"name":"value","valueString":"Roe"}]})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto d = Json(ok.body);
  EXPECT_STREQ(d["birthDate"].GetString(), "1930-01-01");
  EXPECT_STREQ(d["name"][0]["family"].GetString(), "Roe");
  EXPECT_STREQ(d["meta"]["versionId"].GetString(), "2");
  // The search index follows the patched version.
  auto found = Json(api_->Search(Get({{"family", "roe"}})).body);
  ASSERT_EQ(found["entry"].Size(), 1u);
  // Cannot be applied (replace of nothing; the wrong type): 422, an OperationOutcome.
  auto nothing = patch("p0", R"({"name":"operation","part":[{"name":"type","valueCode":"replace"},
      {"name":"path","valueString":"Patient.deceased"},{"name":"value","valueBoolean":true}]})");
  EXPECT_EQ(nothing.status, 422) << nothing.body;
  EXPECT_STREQ(Json(nothing.body)["resourceType"].GetString(), "OperationOutcome");
  EXPECT_EQ(patch("p0", R"({"name":"operation","part":[{"name":"type","valueCode":"replace"},
      {"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueBoolean":true}]})")
                .status,
            422);
  // A result that is not valid R4 (gender outside its required ValueSet): 422.
  EXPECT_EQ(patch("p0", R"({"name":"operation","part":[{"name":"type","valueCode":"replace"},
      {"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"bogus"}]})")
                .status,
            422);
  // Malformed: an unknown operation type, a path that is not FHIRPath: 400.
  EXPECT_EQ(patch("p0", R"({"name":"operation","part":[{"name":"type","valueCode":"remove"},
      {"name":"path","valueString":"Patient.gender"}]})").status, 400);
  EXPECT_EQ(patch("p0", R"({"name":"operation","part":[{"name":"type","valueCode":"delete"},
      {"name":"path","valueString":"Patient.("}]})").status, 400);
  EXPECT_EQ(store_->Read("Patient", "p0")->version_id, 2);
  // If-Match, 404 and 410 as for JSON Patch.
  const std::string del = R"({"name":"operation","part":[{"name":"type","valueCode":"delete"},
      {"name":"path","valueString":"Patient.birthDate"}]})";
  EXPECT_EQ(patch("p0", del, {{"if-match", "W/\"1\""}}).status, 412);
  EXPECT_EQ(patch("nope", del).status, 404);
  auto deleted = patch("p0", del, {{"if-match", "W/\"2\""}});
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_FALSE(Json(deleted.body).HasMember("birthDate"));
}

// Transactions: a PATCH entry with a conditional url, and a FHIRPath Patch (a Parameters
// resource) as the entry's resource (FHIR R4 http.html#transaction).
TEST_F(FhirRestApiTest, TransactionConditionalAndFhirPathPatch) {
  const std::string params =
      R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[
          {"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},
          {"name":"name","valueString":"active"},{"name":"value","valueBoolean":true}]}]})";
  auto tx = [&](const std::string& url, const std::string& type = "transaction") {
    return api_->Transaction(Call("POST", "/fhir", {}, {},
                                  R"({"resourceType":"Bundle","type":")" + type +
                                      R"(","entry":[{"resource":)" + params +
                                      R"(,"request":{"method":"PATCH","url":")" + url + R"("}}]})",
                                  {{"prefer", "return=representation"}}));
  };
  const int64_t versions = Versions();
  auto many = tx("Patient?gender=female");  // p0, p2, p4
  EXPECT_EQ(many.status, 412) << many.body;
  EXPECT_THAT(many.body, HasSubstr("Bundle.entry[0]"));
  auto none = tx("Patient?_id=nope");
  EXPECT_EQ(none.status, 404) << none.body;
  EXPECT_EQ(Versions(), versions);
  auto batch = tx("Patient?_id=nope", "batch");
  ASSERT_EQ(batch.status, 200) << batch.body;
  EXPECT_THAT(std::string(Json(batch.body)["entry"][0]["response"]["status"].GetString()),
              HasSubstr("404"));
  auto ok = tx("Patient?_id=p4&gender=female");
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto d = Json(ok.body);
  EXPECT_STREQ(d["entry"][0]["response"]["status"].GetString(), "200 OK");
  EXPECT_STREQ(d["entry"][0]["resource"]["id"].GetString(), "p4");
  EXPECT_TRUE(d["entry"][0]["resource"]["active"].GetBool());
  // By id, with a FHIRPath Patch.
  auto by_id = tx("Patient/p2");
  ASSERT_EQ(by_id.status, 200) << by_id.body;
  EXPECT_TRUE(store_->Read("Patient", "p2")->json.find(R"("active":true)") != std::string::npos);
}

TEST_F(FhirRestApiTest, PatientEverything) {
  ASSERT_TRUE(store_->Update("Observation", "o1", R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"a"},"subject":{"reference":"Patient/p0"}})").ok());
  ASSERT_TRUE(store_->Update("Observation", "o2", R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"b"},"performer":[{"reference":"Patient/p0"}]})").ok());
  ASSERT_TRUE(store_->Update("Encounter", "e1", R"({"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p0"}})").ok());
  ASSERT_TRUE(store_->Update("Observation", "o3", R"({"resourceType":"Observation","id":"o3","status":"final","code":{"text":"c"},"subject":{"reference":"Patient/p1"}})").ok());
  ASSERT_TRUE(store_->Update("Organization", "org", R"({"resourceType":"Organization","id":"org"})").ok());
  auto everything = [&](const std::string& id, Pairs query) {
    return api_->InstanceOperation(Call("GET", "/fhir/Patient/" + id + "/$everything",
                                        {{"type", "Patient"}, {"id", id}, {"op", "$everything"}},
                                        std::move(query)));
  };
  auto ids = [](const rapidjson::Document& d) {
    std::vector<std::string> out;
    for (const auto& e : d["entry"].GetArray()) {
      out.push_back(std::string(e["resource"]["resourceType"].GetString()) + "/" +
                    e["resource"]["id"].GetString());
    }
    return out;
  };
  auto all = everything("p0", {});
  ASSERT_EQ(all.status, 200) << all.body;
  auto d = Json(all.body);
  EXPECT_STREQ(d["type"].GetString(), "searchset");
  EXPECT_EQ(d["total"].GetInt(), 4);
  // Subject and performer both put an Observation in the compartment; o3 (p1's) and the
  // Organization are not p0's.
  EXPECT_THAT(ids(d), ::testing::ElementsAre("Encounter/e1", "Observation/o1", "Observation/o2",
                                             "Patient/p0"));
  EXPECT_THAT(ids(Json(everything("p0", {{"_type", "Observation,Patient"}}).body)),
              ::testing::ElementsAre("Observation/o1", "Observation/o2", "Patient/p0"));
  // Paging by _count with next links to the end.
  auto page1 = Json(everything("p0", {{"_count", "3"}}).body);
  EXPECT_EQ(page1["entry"].Size(), 3u);
  std::string next = page1["link"][1]["url"].GetString();
  std::string cursor = net::UrlDecode(next.substr(next.find("_cursor=") + 8), true);
  EXPECT_EQ(cursor, "Observation/o2");
  auto page2 = Json(everything("p0", {{"_count", "3"}, {"_cursor", cursor}}).body);
  EXPECT_THAT(ids(page2), ::testing::ElementsAre("Patient/p0"));
  EXPECT_EQ(page2["link"].Size(), 1u);
  // _since: only what changed since.
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(store_->Update("Observation", "o1", R"({"resourceType":"Observation","id":"o1","status":"amended","code":{"text":"a"},"subject":{"reference":"Patient/p0"}})").ok());
  EXPECT_THAT(ids(Json(everything("p0", {{"_since", store::FhirInstant(clock_.NowMicros() - 1000)}}).body)),
              ::testing::ElementsAre("Observation/o1"));
  // POST with a Parameters body.
  auto post = api_->InstanceOperation(Call(
      "POST", "/fhir/Patient/p0/$everything", {{"type", "Patient"}, {"id", "p0"}, {"op", "$everything"}},
      {}, R"({"resourceType":"Parameters","parameter":[{"name":"_type","valueCode":"Encounter"}]})",
      {{"content-type", "application/fhir+json"}}));
  EXPECT_THAT(ids(Json(post.body)), ::testing::ElementsAre("Encounter/e1"));
  // Unknown patient 404, deleted 410; operations we do not have 501.
  EXPECT_EQ(everything("nobody", {}).status, 404);
  ASSERT_TRUE(store_->Delete("Patient", "p1").ok());
  EXPECT_EQ(everything("p1", {}).status, 410);
  EXPECT_EQ(api_->InstanceOperation(Call("GET", "/fhir/Patient/p0/$lookup",
                                         {{"type", "Patient"}, {"id", "p0"}, {"op", "$lookup"}}))
                .status,
            501);
}

// $everything's start/end (patient-operation-everything: "care dates, not record currency
// dates"; no start: everything before end, no end: everything after start): each type's care
// date must overlap [start, end]; types without one (Patient, Coverage) are not filtered.
TEST_F(FhirRestApiTest, PatientEverythingStartEnd) {
  auto put = [&](const std::string& type, const std::string& id, const std::string& rest) {
    ASSERT_TRUE(store_->Update(type, id, R"({"resourceType":")" + type + R"(","id":")" + id +
                                             R"(",)" + rest + "}")
                    .ok())
        << type << "/" << id;
  };
  const std::string obs = R"("status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p0"})";
  put("Observation", "oa", obs + R"(,"effectiveDateTime":"2023-06-15")");
  put("Observation", "ob", obs + R"(,"effectivePeriod":{"start":"2023-12-20","end":"2024-01-10"})");
  put("Observation", "oc", obs + R"(,"effectiveDateTime":"2024-05-01T10:00:00Z")");
  put("Observation", "od", obs);  // no care date
  put("Encounter", "e", R"("status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p0"},"period":{"start":"2024-02-01","end":"2024-02-03"})");
  put("Condition", "c", R"("subject":{"reference":"Patient/p0"},"onsetDateTime":"2022-01-01","recordedDate":"2024-03-01")");
  put("Coverage", "cov", R"("status":"active","beneficiary":{"reference":"Patient/p0"},"payor":[{"reference":"Patient/p0"}])");
  auto everything = [&](Pairs query) {
    auto r = api_->InstanceOperation(Call("GET", "/fhir/Patient/p0/$everything",
                                          {{"type", "Patient"}, {"id", "p0"}, {"op", "$everything"}},
                                          std::move(query)));
    std::vector<std::string> out;
    if (r.status != 200) return std::vector<std::string>{std::to_string(r.status)};
    auto d = Json(r.body);
    for (const auto& e : d["entry"].GetArray()) out.push_back(e["resource"]["id"].GetString());
    return out;
  };
  using ::testing::ElementsAre;
  EXPECT_THAT(everything({}), ElementsAre("c", "cov", "e", "oa", "ob", "oc", "od", "p0"));
  // The Condition's care date is its onset (2022), not its recordedDate (2024).
  EXPECT_THAT(everything({{"start", "2024"}}), ElementsAre("cov", "e", "ob", "oc", "p0"));
  EXPECT_THAT(everything({{"end", "2023-12-31"}}), ElementsAre("c", "cov", "oa", "ob", "p0"));
  EXPECT_THAT(everything({{"start", "2024-01"}, {"end", "2024-03"}}),
              ElementsAre("cov", "e", "ob", "p0"));
  // Day precision: oc is at 10:00 on 2024-05-01, within end=2024-05-01, after end=2024-04-30.
  EXPECT_THAT(everything({{"start", "2024-05-01"}, {"end", "2024-05-01"}}),
              ElementsAre("cov", "oc", "p0"));
  EXPECT_THAT(everything({{"start", "2024-04-01"}, {"end", "2024-04-30"}}),
              ElementsAre("cov", "p0"));
  EXPECT_THAT(everything({{"start", "2024-1"}}), ElementsAre("400"));
  EXPECT_THAT(everything({{"start", "2024-02-30"}}), ElementsAre("400"));
  EXPECT_THAT(everything({{"end", "soon"}}), ElementsAre("400"));
}

TEST_F(FhirRestApiTest, SummaryAndElementsOnReadAndSearch) {
  ASSERT_TRUE(store_->Update("Patient", "t", R"({"resourceType":"Patient","id":"t","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">T</div>"},"gender":"male","maritalStatus":{"text":"S"}})").ok());
  auto read = [&](Pairs query) {
    return api_->Read(Call("GET", "/fhir/Patient/t", {{"type", "Patient"}, {"id", "t"}},
                           std::move(query)));
  };
  auto summary = Json(read({{"_summary", "true"}}).body);
  EXPECT_FALSE(summary.HasMember("text"));
  EXPECT_FALSE(summary.HasMember("maritalStatus"));  // not a summary element of Patient
  EXPECT_STREQ(summary["gender"].GetString(), "male");
  EXPECT_STREQ(summary["meta"]["tag"][0]["code"].GetString(), "SUBSETTED");
  auto text = Json(read({{"_summary", "text"}}).body);
  EXPECT_TRUE(text.HasMember("text"));
  EXPECT_FALSE(text.HasMember("gender"));
  EXPECT_FALSE(Json(read({{"_summary", "data"}}).body).HasMember("text"));
  EXPECT_TRUE(Json(read({{"_summary", "false"}}).body).HasMember("text"));
  EXPECT_EQ(read({{"_summary", "bogus"}}).status, 400);
  // Search: every entry shaped, and no "not supported" warning any more.
  auto s = Json(api_->Search(Get({{"gender", "male"}, {"_elements", "gender"}})).body);
  ASSERT_EQ(s["entry"].Size(), 3u);
  for (const auto& e : s["entry"].GetArray()) {
    EXPECT_STREQ(e["search"]["mode"].GetString(), "match");
    EXPECT_FALSE(e["resource"].HasMember("name"));
    EXPECT_TRUE(e["resource"].HasMember("gender"));
    EXPECT_STREQ(e["resource"]["meta"]["tag"][0]["code"].GetString(), "SUBSETTED");
  }
  auto count = Json(api_->Search(Get({{"gender", "male"}, {"_summary", "count"}})).body);
  EXPECT_EQ(count["total"].GetInt(), 3);
}

TEST_F(FhirRestApiTest, CapabilityStatementListsTheNewInteractions) {
  auto d = Json(api_->Metadata(Get({})).body);
  std::vector<std::string> patch_formats;
  for (const auto& f : d["patchFormat"].GetArray()) patch_formats.push_back(f.GetString());
  EXPECT_THAT(patch_formats, ::testing::UnorderedElementsAre("application/json-patch+json",
                                                             "application/fhir+json"));
  for (const auto& res : d["rest"][0]["resource"].GetArray()) {
    if (std::string(res["type"].GetString()) != "Patient") continue;
    EXPECT_TRUE(res["conditionalCreate"].GetBool());
    EXPECT_TRUE(res["conditionalUpdate"].GetBool());
    EXPECT_STREQ(res["conditionalDelete"].GetString(), "single");
    EXPECT_STREQ(res["conditionalRead"].GetString(), "full-support");
    std::vector<std::string> codes;
    for (const auto& i : res["interaction"].GetArray()) codes.push_back(i["code"].GetString());
    EXPECT_THAT(codes, ::testing::Contains("patch"));
    std::vector<std::string> ops;
    for (const auto& o : res["operation"].GetArray()) ops.push_back(o["name"].GetString());
    EXPECT_THAT(ops, ::testing::UnorderedElementsAre("everything", "validate"));
    return;
  }
  FAIL() << "no Patient";
}

}  // namespace
}  // namespace isthmus::fhir_server
