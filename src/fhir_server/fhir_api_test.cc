#include "fhir_server/fhir_api.h"

#include <filesystem>

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
    store_ = std::move(store::FhirStore::Open(*writer_, o)).value();
    search_ = std::make_unique<fhir_search::Searcher>(*writer_, registry);
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
  EXPECT_STREQ(d["link"][1]["relation"].GetString(), "next");
  std::string next = d["link"][1]["url"].GetString();
  EXPECT_THAT(next, HasSubstr("http://example.test/fhir/Patient?gender=female&_count=2"));
  auto cursor = next.substr(next.find("_cursor=") + 8);
  auto page2 = Json(api_->Search(Get({{"gender", "female"}, {"_count", "2"}, {"_sort", "_id"},
                                       {"_cursor", cursor}})).body);
  ASSERT_EQ(page2["entry"].Size(), 1u);
  EXPECT_STREQ(page2["entry"][0]["resource"]["id"].GetString(), "p4");
  EXPECT_EQ(page2["link"].Size(), 1u);

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
    EXPECT_THAT(names, ::testing::Not(::testing::Contains("_text")));
    EXPECT_THAT(names, ::testing::Not(::testing::Contains("_content")));
    return;
  }
  FAIL() << "no Patient";
}

}  // namespace
}  // namespace isthmus::fhir_server
