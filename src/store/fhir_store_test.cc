#include "store/fhir_store.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::store {
namespace {

using ::testing::HasSubstr;

rapidjson::Document Json(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s.c_str(), s.size());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

class FhirStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("fhir_store_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    writer_ = std::move(Writer::Open((dir_ / "isthmus.db").string())).value();
    FhirStoreOptions o;
    o.clock = &clock_;
    store_ = std::move(FhirStore::Open(*writer_, o)).value();
  }
  // Another store on the same writer, with this indexer.
  std::unique_ptr<FhirStore> StoreWith(FhirIndexer& indexer) {
    FhirStoreOptions o;
    o.clock = &clock_;
    o.indexer = &indexer;
    return std::move(FhirStore::Open(*writer_, o)).value();
  }
  int64_t Count(const std::string& sql) {
    auto conn = std::move(writer_->OpenReader()).value();
    auto q = std::move(conn->Prepare(sql)).value();
    EXPECT_TRUE(q->Step().value());
    return q->ColumnInt64(0);
  }

  std::filesystem::path dir_;
  base::FakeClock clock_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<FhirStore> store_;
};

TEST(FhirResourceTypes, AreTheR4List) {
  auto all = FhirResourceTypes();
  EXPECT_EQ(all.size(), 146u);
  EXPECT_TRUE(IsFhirResourceType("Patient"));
  EXPECT_TRUE(IsFhirResourceType("VisionPrescription"));
  EXPECT_FALSE(IsFhirResourceType("Resource"));           // abstract
  EXPECT_FALSE(IsFhirResourceType("DomainResource"));     // abstract
  EXPECT_FALSE(IsFhirResourceType("SubscriptionStatus")); // R4B
  EXPECT_FALSE(IsFhirResourceType("patient"));
  // The same names as the R4 JSON schema in the shared corpus, when it is there.
  std::ifstream in(std::string(ISTHMUS_CORPUS_DIR) + "/fhir-r4-definitions/fhir.schema.json");
  if (!in) GTEST_SKIP() << "corpus fhir.schema.json not found";
  std::stringstream ss;
  ss << in.rdbuf();
  rapidjson::Document schema = Json(ss.str());
  std::set<std::string> expected, got;
  for (const auto& m : schema["discriminator"]["mapping"].GetObject()) {
    expected.insert(m.name.GetString());
  }
  for (std::string_view t : all) got.insert(std::string(t));
  EXPECT_EQ(got, expected);
}

TEST(FhirIds, Syntax) {
  EXPECT_TRUE(IsValidFhirId("abc-DEF.123"));
  EXPECT_TRUE(IsValidFhirId(std::string(64, 'a')));
  EXPECT_FALSE(IsValidFhirId(std::string(65, 'a')));
  EXPECT_FALSE(IsValidFhirId(""));
  EXPECT_FALSE(IsValidFhirId("a_b"));
  EXPECT_FALSE(IsValidFhirId("a/b"));
}

TEST_F(FhirStoreTest, CreateAssignsIdAndMetaAndKeepsNumbersAsWritten) {
  auto w = store_->Create(
      "Observation",
      R"({"resourceType":"Observation","id":"ignored","meta":{"versionId":"9","tag":[{"code":"t"}]},)"
      R"("status":"final","valueQuantity":{"value":1.50,"unit":"mg"},"code":{"text":"x"}})");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->created);
  EXPECT_EQ(w->version.version_id, 1);
  EXPECT_NE(w->version.id, "ignored");
  EXPECT_TRUE(IsValidFhirId(w->version.id));
  EXPECT_EQ(w->version.json.substr(0, 50).find(R"("resourceType":"Observation","id":")"), 1u);
  EXPECT_THAT(w->version.json, HasSubstr(R"("value":1.50)"));
  auto d = Json(w->version.json);
  EXPECT_STREQ(d["meta"]["versionId"].GetString(), "1");
  EXPECT_STREQ(d["meta"]["lastUpdated"].GetString(), "2023-11-14T22:13:20.000Z");
  EXPECT_STREQ(d["meta"]["tag"][0]["code"].GetString(), "t");
  auto r = store_->Read("Observation", w->version.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->json, w->version.json);
  EXPECT_FALSE(r->deleted);
}

TEST_F(FhirStoreTest, ValidationErrors) {
  EXPECT_EQ(store_->Create("Patient", "{not json").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create("Patient", "[]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create("Patient", R"({"resourceType":"Observation"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create("Patient", R"({"resourceType":"Patient"} x)").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create("Nope", R"({"resourceType":"Nope"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Update("Patient", "a", R"({"resourceType":"Patient","id":"b"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Update("Patient", "a", R"({"resourceType":"Patient"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Update("Patient", "a_b", R"({"resourceType":"Patient","id":"a_b"})")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Read("Patient", "missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 0);
}

TEST_F(FhirStoreTest, UpdateCreatesThenVersionsWithIfMatch) {
  auto a = store_->Update("Patient", "p1", R"({"resourceType":"Patient","id":"p1","gender":"female"})");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->created);
  EXPECT_EQ(a->version.version_id, 1);
  clock_.Advance(absl::Seconds(1));
  auto b = store_->Update("Patient", "p1", R"({"resourceType":"Patient","id":"p1","gender":"male"})",
                          {.if_match_version = 1});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->version.version_id, 2);
  // Stale If-Match: a conflict, nothing written.
  auto c = store_->Update("Patient", "p1", R"({"resourceType":"Patient","id":"p1"})",
                          {.if_match_version = 1});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 2);
  auto v1 = store_->VRead("Patient", "p1", 1);
  ASSERT_TRUE(v1.ok());
  EXPECT_THAT(v1->json, HasSubstr("female"));
  auto cur = store_->Read("Patient", "p1");
  ASSERT_TRUE(cur.ok());
  EXPECT_EQ(cur->version_id, 2);
  EXPECT_THAT(cur->json, HasSubstr(R"("gender":"male")"));
  EXPECT_EQ(store_->VRead("Patient", "p1", 3).status().code(), absl::StatusCode::kNotFound);
  // If-Match on a resource that does not exist is a conflict too.
  EXPECT_EQ(store_->Update("Patient", "p2", R"({"resourceType":"Patient","id":"p2"})",
                           {.if_match_version = 1})
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FhirStoreTest, DeleteLeavesATombstoneAndUpdateRevives) {
  ASSERT_TRUE(store_->Update("Patient", "p1", R"({"resourceType":"Patient","id":"p1"})").ok());
  auto d = store_->Delete("Patient", "p1", {.if_match_version = 1});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->version.version_id, 2);
  auto r = store_->Read("Patient", "p1");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->deleted);
  EXPECT_EQ(r->version_id, 2);
  // Deleting again, or what never existed: nothing written, not an error.
  auto again = store_->Delete("Patient", "p1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version.version_id, 0);
  EXPECT_EQ(store_->Delete("Patient", "never")->version.version_id, 0);
  EXPECT_EQ(store_->List("Patient", "", 10)->size(), 0u);
  auto back = store_->Update("Patient", "p1", R"({"resourceType":"Patient","id":"p1"})");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->created);
  EXPECT_EQ(back->version.version_id, 3);
  EXPECT_EQ(store_->List("Patient", "", 10)->size(), 1u);
}

// Server-assigned ids are UUIDv7 (RFC 9562): the version nibble 7, the variant 10xx, and the
// first 48 bits the creation time in ms, so an id made later sorts after an earlier one (index
// inserts land at the end); ids made in the same millisecond still differ.
TEST_F(FhirStoreTest, ServerIdsAreTimeOrderedUuids) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto w = store_->Create("Patient", R"({"resourceType":"Patient"})");
    ASSERT_TRUE(w.ok()) << w.status();
    ids.push_back(w->version.id);
    clock_.Advance(absl::Milliseconds(5));
  }
  for (const std::string& id : ids) {
    EXPECT_THAT(id, ::testing::MatchesRegex(
                        "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  }
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);
  char ms_hex[13];
  std::snprintf(ms_hex, sizeof ms_hex, "%012llx",
                static_cast<unsigned long long>(absl::ToUnixMillis(clock_.Now()) - 5));
  EXPECT_EQ(ids[2].substr(0, 8) + ids[2].substr(9, 4), ms_hex);
  std::set<std::string> same_ms;
  for (int i = 0; i < 200; ++i) {
    auto w = store_->Create("Patient", R"({"resourceType":"Patient"})");
    ASSERT_TRUE(w.ok());
    same_ms.insert(w->version.id);
  }
  EXPECT_EQ(same_ms.size(), 200u);
}

TEST_F(FhirStoreTest, HistoryNewestFirstWithSinceAndPaging) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->Update("Patient", "p1", R"({"resourceType":"Patient","id":"p1"})").ok());
    clock_.Advance(absl::Seconds(10));
    ASSERT_TRUE(store_->Create("Observation", R"({"resourceType":"Observation","status":"final",
                                                   "code":{"text":"x"}})")
                    .ok());
    clock_.Advance(absl::Seconds(10));
  }
  ASSERT_TRUE(store_->Delete("Patient", "p1").ok());
  auto inst = store_->History({.type = "Patient", .id = "p1", .count = 4});
  ASSERT_TRUE(inst.ok()) << inst.status();
  ASSERT_EQ(inst->versions.size(), 4u);
  EXPECT_TRUE(inst->versions[0].deleted);
  EXPECT_EQ(inst->versions[0].method, "DELETE");
  EXPECT_EQ(inst->versions[0].version_id, 6);
  EXPECT_EQ(inst->versions[3].version_id, 3);
  ASSERT_NE(inst->next_before_seq, 0);
  auto rest = store_->History(
      {.type = "Patient", .id = "p1", .count = 4, .before_seq = inst->next_before_seq});
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->versions.size(), 2u);
  EXPECT_EQ(rest->versions[1].version_id, 1);
  EXPECT_EQ(rest->versions[1].method, "PUT");
  EXPECT_EQ(rest->next_before_seq, 0);
  // Paging survives concurrent writes: a new version does not shift the next page.
  auto type_page = store_->History({.type = "Observation", .count = 2});
  ASSERT_TRUE(type_page.ok());
  ASSERT_TRUE(store_->Create("Observation", R"({"resourceType":"Observation","status":"final",
                                                 "code":{"text":"x"}})")
                  .ok());
  auto type_next = store_->History(
      {.type = "Observation", .count = 10, .before_seq = type_page->next_before_seq});
  ASSERT_TRUE(type_next.ok());
  EXPECT_EQ(type_page->versions.size() + type_next->versions.size(), 5u);
  EXPECT_LT(type_next->versions[0].seq, type_page->versions[1].seq);
  auto all = store_->History({.count = 100});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->versions.size(), 12u);
  const int64_t since = absl::ToUnixMicros(absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(60));
  auto recent = store_->History({.since_micros = since, .count = 100});
  ASSERT_TRUE(recent.ok());
  for (const auto& v : recent->versions) EXPECT_GE(v.last_updated_micros, since);
  EXPECT_EQ(recent->versions.size(), 6u);  // 2 x (PUT, POST) from t+60s, DELETE, POST
  EXPECT_EQ(store_->History({.type = "Patient", .id = "nobody"}).status().code(),
            absl::StatusCode::kNotFound);
}

constexpr char kTransaction[] = R"({
  "resourceType": "Bundle", "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
     "resource": {"resourceType": "Patient", "identifier": [{"value": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}]},
     "request": {"method": "POST", "url": "Patient"}},
    {"fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
     "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                  "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                  "valueQuantity": {"value": 7.10}},
     "request": {"method": "POST", "url": "Observation"}},
    {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished",
                  "class": {"code": "AMB"},
                  "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
     "request": {"method": "PUT", "url": "Encounter/e1"}},
    {"request": {"method": "DELETE", "url": "Patient/old"}},
    {"request": {"method": "GET", "url": "Patient/old"}}
  ]})";

TEST_F(FhirStoreTest, TransactionRewritesUrnUuidReferences) {
  ASSERT_TRUE(store_->Update("Patient", "old", R"({"resourceType":"Patient","id":"old"})").ok());
  // A transaction with a GET of a resource it deletes fails as a whole: drop that entry.
  std::string bundle = kTransaction;
  bundle.erase(bundle.find(",\n    {\"request\": {\"method\": \"GET\""),
               std::string(",\n    {\"request\": {\"method\": \"GET\", \"url\": \"Patient/old\"}}").size());
  auto r = store_->Transaction(bundle);
  ASSERT_TRUE(r.ok()) << r.status();
  auto resp = Json(r->response_json);
  EXPECT_STREQ(resp["type"].GetString(), "transaction-response");
  ASSERT_EQ(resp["entry"].Size(), 4u);
  EXPECT_STREQ(resp["entry"][0]["response"]["status"].GetString(), "201 Created");
  EXPECT_STREQ(resp["entry"][2]["response"]["status"].GetString(), "201 Created");
  EXPECT_STREQ(resp["entry"][2]["response"]["location"].GetString(), "Encounter/e1/_history/1");
  EXPECT_STREQ(resp["entry"][3]["response"]["status"].GetString(), "204 No Content");
  std::string patient_loc = resp["entry"][0]["response"]["location"].GetString();
  std::string patient_id = patient_loc.substr(8, patient_loc.find('/', 8) - 8);
  std::string obs_loc = resp["entry"][1]["response"]["location"].GetString();
  std::string obs_id = obs_loc.substr(12, obs_loc.find('/', 12) - 12);
  auto obs = store_->Read("Observation", obs_id);
  ASSERT_TRUE(obs.ok()) << obs.status();
  EXPECT_THAT(obs->json, HasSubstr(R"("subject":{"reference":"Patient/)" + patient_id + "\"}"));
  EXPECT_THAT(obs->json, HasSubstr(R"("value":7.10)"));
  auto enc = store_->Read("Encounter", "e1");
  ASSERT_TRUE(enc.ok());
  EXPECT_THAT(enc->json, HasSubstr("Patient/" + patient_id));
  // Only references are rewritten: an identifier that holds the urn keeps it.
  auto pat = store_->Read("Patient", patient_id);
  ASSERT_TRUE(pat.ok());
  EXPECT_THAT(pat->json, HasSubstr("urn:uuid:61ebe359"));
  EXPECT_TRUE(store_->Read("Patient", "old")->deleted);
  // One timestamp for the whole transaction.
  EXPECT_EQ(obs->last_updated_micros, enc->last_updated_micros);
}

TEST_F(FhirStoreTest, TransactionRollsBackWholeOnOneBadEntry) {
  ASSERT_TRUE(store_->Update("Patient", "old", R"({"resourceType":"Patient","id":"old"})").ok());
  // The last entry reads what the transaction deleted: 410 fails the whole transaction.
  auto r = store_->Transaction(kTransaction);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("Bundle.entry[4]"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 1);
  EXPECT_FALSE(store_->Read("Patient", "old")->deleted);
  // A stale ifMatch: 412 and nothing written.
  auto conflict = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","id":"old"},"request":{"method":"PUT","url":"Patient/old","ifMatch":"W/\"7\""}}]})");
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 1);
  // An invalid resource: 400 naming the entry's path, not its content.
  auto bad = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Patient","id":"SECRET_ID!"},"request":{"method":"PUT","url":"Patient/x"}}]})");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("Bundle.entry[1].resource.id"));
  EXPECT_THAT(std::string(bad.status().message()), ::testing::Not(HasSubstr("SECRET")));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 1);
  // Two entries changing one resource.
  auto dup = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/a"}},
    {"request":{"method":"DELETE","url":"Patient/a"}}]})");
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  // Conditional entries need a matcher (search): without one they are not supported.
  auto cond = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient?identifier=x"}}]})");
  EXPECT_EQ(cond.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(store_->Transaction(R"({"resourceType":"Bundle","type":"collection"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 1);
}

TEST_F(FhirStoreTest, BatchAppliesEntriesIndependently) {
  auto r = store_->Transaction(R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/a"}},
    {"resource":{"resourceType":"Patient","id":"b"},"request":{"method":"PUT","url":"Patient/b","ifMatch":"W/\"3\""}},
    {"request":{"method":"GET","url":"Patient/a"}},
    {"request":{"method":"GET","url":"Patient/zzz"}},
    "not an entry"]})",
                               {.return_resources = true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->failed_entries, 3);
  EXPECT_THAT(r->first_failure, HasSubstr("Bundle.entry[1]"));
  auto resp = Json(r->response_json);
  EXPECT_STREQ(resp["type"].GetString(), "batch-response");
  EXPECT_STREQ(resp["entry"][0]["response"]["status"].GetString(), "201 Created");
  EXPECT_TRUE(resp["entry"][0].HasMember("resource"));
  EXPECT_STREQ(resp["entry"][1]["response"]["status"].GetString(), "412 Precondition Failed");
  EXPECT_STREQ(resp["entry"][1]["response"]["outcome"]["resourceType"].GetString(),
               "OperationOutcome");
  EXPECT_STREQ(resp["entry"][2]["response"]["status"].GetString(), "200 OK");
  EXPECT_STREQ(resp["entry"][2]["resource"]["id"].GetString(), "a");
  EXPECT_STREQ(resp["entry"][3]["response"]["status"].GetString(), "404 Not Found");
  EXPECT_STREQ(resp["entry"][4]["response"]["status"].GetString(), "400 Bad Request");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 1);
}

// With validation on (the default), an invalid entry of a batch fails alone, naming the entry
// and the element (R4 Patient.gender is bound to administrative-gender, required); with
// validate = false (the fhir_local destination) the same entry is stored.
TEST_F(FhirStoreTest, BatchEntryFailingValidationFailsAlone) {
  const std::string bundle = R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Patient","id":"ok"},"request":{"method":"PUT","url":"Patient/ok"}},
    {"resource":{"resourceType":"Patient","id":"bad","gender":"x"},
     "request":{"method":"PUT","url":"Patient/bad"}}]})";
  auto r = store_->Transaction(bundle);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->failed_entries, 1);
  EXPECT_THAT(r->first_failure, HasSubstr("Bundle.entry[1].resource"));
  EXPECT_THAT(r->first_failure, HasSubstr("Patient.gender"));
  EXPECT_TRUE(store_->Read("Patient", "ok").ok());
  EXPECT_EQ(store_->Read("Patient", "bad").status().code(), absl::StatusCode::kNotFound);
  auto unchecked = store_->Transaction(bundle, {.validate = false});
  ASSERT_TRUE(unchecked.ok()) << unchecked.status();
  EXPECT_EQ(unchecked->failed_entries, 0);
  EXPECT_TRUE(store_->Read("Patient", "bad").ok());
}

TEST_F(FhirStoreTest, ApplyTransactionInsideAnotherOpRollsBackWithIt) {
  absl::Status s = writer_->Run([&](db::Connection& conn) -> absl::Status {
    auto r = store_->ApplyTransaction(conn, R"({"resourceType":"Bundle","type":"transaction","entry":[
      {"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/a"}}]})");
    if (!r.ok()) return r.status();
    return absl::AbortedError("the rest of the op failed");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->Read("Patient", "a").status().code(), absl::StatusCode::kNotFound);
}

class CountingIndexer : public FhirIndexer {
 public:
  absl::Status OnWrite(db::Connection&, const FhirVersion& v) override {
    if (v.type == "Basic") return absl::InternalError("index failure");
    seen.push_back(v.type + "/" + v.id + "/" + std::to_string(v.version_id) +
                   (v.deleted ? "/deleted" : ""));
    return absl::OkStatus();
  }
  std::vector<std::string> seen;
};

TEST_F(FhirStoreTest, IndexerRunsInTheWriteTransaction) {
  CountingIndexer indexer;
  auto store = StoreWith(indexer);
  ASSERT_TRUE(store->Update("Patient", "a", R"({"resourceType":"Patient","id":"a"})").ok());
  ASSERT_TRUE(store->Delete("Patient", "a").ok());
  EXPECT_THAT(indexer.seen, ::testing::ElementsAre("Patient/a/1", "Patient/a/2/deleted"));
  // An indexing failure fails the write.
  EXPECT_FALSE(store->Create("Basic", R"({"resourceType":"Basic","code":{"text":"x"}})").ok());
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions WHERE type = 'Basic'"), 0);
}

// An indexer that prepares off the writer thread: what it is handed in Prepare must be the body
// that gets stored, but for meta.lastUpdated (the writer op's time).
class PreparingIndexer : public FhirIndexer {
 public:
  struct Body : Prepared {
    std::string json;
  };
  absl::Status OnWrite(db::Connection&, const FhirVersion& v) override {
    written.push_back("OnWrite " + v.type + "/" + std::to_string(v.version_id));
    return absl::OkStatus();
  }
  std::unique_ptr<Prepared> Prepare(std::string_view type, std::string_view json) const override {
    auto b = std::make_unique<Body>();
    b->json = std::string(type) + " " + std::string(json);
    return b;
  }
  absl::Status OnWritePrepared(db::Connection&, const FhirVersion& v,
                               const Prepared& p) override {
    const std::string& prepared = static_cast<const Body&>(p).json;
    written.push_back("OnWritePrepared " + v.type + "/" + std::to_string(v.version_id));
    // The same body with the placeholder instant where the stored one has the op's.
    std::string expected = v.type + " " + v.json;
    const std::string stamp = FhirInstant(v.last_updated_micros);
    const size_t at = expected.find(stamp);
    if (at == std::string::npos) return absl::InternalError("no lastUpdated in the body");
    expected.replace(at, stamp.size(), "0001-01-01T00:00:00.000Z");
    if (prepared != expected) {
      return absl::InternalError("prepared " + prepared + " stored " + expected);
    }
    return absl::OkStatus();
  }
  std::vector<std::string> written;
};

// CreateAsync: a refused request answers at once, on the caller's thread; an accepted one only
// once its commit returned, so the resource is already visible to a new reader connection when
// `done` runs (it would not be before the COMMIT).
TEST_F(FhirStoreTest, CreateAsyncAnswersAfterTheCommitAndRefusesAtOnce) {
  bool refused = false;
  store_->CreateAsync("Patient", "{not json", {}, [&](absl::StatusOr<FhirWriteResult> r) {
    refused = true;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  });
  EXPECT_TRUE(refused);  // before CreateAsync returned

  std::promise<absl::StatusOr<FhirWriteResult>> created;
  std::promise<int64_t> visible_when_answered;
  store_->CreateAsync("Patient", R"({"resourceType":"Patient","gender":"female"})", {},
                      [&](absl::StatusOr<FhirWriteResult> r) {
                        int64_t n = -1;
                        if (r.ok()) {
                          n = Count("SELECT COUNT(*) FROM fhir_resources WHERE type = 'Patient' "
                                    "AND id = '" + r->version.id + "'");
                        }
                        visible_when_answered.set_value(n);
                        created.set_value(std::move(r));
                      });
  absl::StatusOr<FhirWriteResult> r = created.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->version.version_id, 1);
  EXPECT_THAT(r->version.json, HasSubstr(R"("gender":"female")"));
  EXPECT_EQ(visible_when_answered.get_future().get(), 1);
  absl::StatusOr<FhirVersion> read = store_->Read("Patient", r->version.id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->json, r->version.json);
}

// Plain creates go to the writer as groups, one group at a time, each group one op: the first
// create goes at once; those prepared while it is with the writer form the next group, sent when
// it is answered. The indexer is told to defer its full-text rows once per group and flushes them
// once after the group's last create (with a separate op per create it flushed after each: an
// FTS5 segment per create). A group succeeds or fails whole, each create is answered only after
// the commit, and the group after a failed one is still sent.
class GroupObservingIndexer : public PreparingIndexer {
 public:
  void Defer() override { written.push_back("Defer"); }
  absl::Status FlushDeferred(db::Connection&) override {
    written.push_back("FlushDeferred");
    return fail_flush ? absl::InternalError("flush failed") : absl::OkStatus();
  }
  void DiscardDeferred() override { written.push_back("DiscardDeferred"); }
  bool fail_flush = false;  // set only while the writer is idle or blocked
};

TEST_F(FhirStoreTest, CreatesWaitingForTheWriterShareOneOpAndOneFullTextFlush) {
  GroupObservingIndexer indexer;
  auto store = StoreWith(indexer);
  // `n` creates made while the writer thread is held by an op of its own, so they queue up
  // behind it; nothing may be answered before it is released. Returns their answers.
  auto creates_behind_a_busy_writer = [&](int n) {
    std::promise<void> release;
    writer_->Submit(
        [held = release.get_future().share()](db::Connection&) -> absl::Status {
          held.wait();
          return absl::OkStatus();
        },
        [](absl::Status) {});
    // Shared with the callbacks: the last one may still be in set_value when the wait returns.
    struct Answers {
      std::vector<absl::StatusOr<FhirWriteResult>> results;
      std::atomic<int> answered{0};
      std::promise<void> all;
    };
    auto a = std::make_shared<Answers>();
    a->results.assign(n, absl::UnknownError("not answered"));
    std::future<void> all = a->all.get_future();
    for (int i = 0; i < n; ++i) {
      store->CreateAsync(
          "Patient", R"({"resourceType":"Patient","name":[{"family":"F)" + std::to_string(i) +
                         R"("}]})",
          {}, [a, i, n](absl::StatusOr<FhirWriteResult> r) {
            a->results[i] = std::move(r);
            if (a->answered.fetch_add(1) + 1 == n) a->all.set_value();
          });
    }
    EXPECT_EQ(a->answered.load(), 0);  // nothing answered before the writer ran and committed
    EXPECT_THAT(indexer.written, ::testing::IsEmpty());
    release.set_value();
    all.wait();
    return a->results;
  };

  std::vector<absl::StatusOr<FhirWriteResult>> results = creates_behind_a_busy_writer(5);
  std::set<std::string> ids;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->created);
    EXPECT_EQ(r->version.version_id, 1);
    ids.insert(r->version.id);
    auto read = store->Read("Patient", r->version.id);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->json, r->version.json);
  }
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_THAT(indexer.written,
              ::testing::ElementsAre("Defer", "OnWritePrepared Patient/1", "FlushDeferred",
                                     "Defer", "OnWritePrepared Patient/1",
                                     "OnWritePrepared Patient/1", "OnWritePrepared Patient/1",
                                     "OnWritePrepared Patient/1", "FlushDeferred"));

  // A group whose op fails fails whole: its creates get the error, none is stored; the next
  // group (failing too here) is still sent and answered.
  indexer.written.clear();
  indexer.fail_flush = true;
  std::vector<absl::StatusOr<FhirWriteResult>> failed = creates_behind_a_busy_writer(3);
  for (const auto& r : failed) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resources WHERE type = 'Patient'"), 5);
  EXPECT_THAT(indexer.written,
              ::testing::ElementsAre("Defer", "OnWritePrepared Patient/1", "FlushDeferred",
                                     "DiscardDeferred", "Defer", "OnWritePrepared Patient/1",
                                     "OnWritePrepared Patient/1", "FlushDeferred",
                                     "DiscardDeferred"));
  indexer.fail_flush = false;
  auto after = store->Create("Patient", R"({"resourceType":"Patient"})");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resources WHERE type = 'Patient'"), 6);
}

TEST_F(FhirStoreTest, CreatesAndBundlePostsArePreparedBeforeTheWriterOp) {
  PreparingIndexer indexer;
  auto store = StoreWith(indexer);
  auto c = store->Create("Patient", R"({"resourceType":"Patient","meta":{"tag":[{"code":"t"}]},
                                        "name":[{"family":"Prepared"}]})");
  ASSERT_TRUE(c.ok()) << c.status();
  auto read = store->Read("Patient", c->version.id);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->json, c->version.json);
  EXPECT_THAT(read->json, HasSubstr(FhirInstant(read->last_updated_micros)));
  // A transaction without conditions: its POST entries are prepared (references rewritten),
  // its PUT entries are indexed in the op.
  auto t = store->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
     "resource":{"resourceType":"Patient","name":[{"family":"P"}]},
     "request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
     "request":{"method":"POST","url":"Observation"}},
    {"resource":{"resourceType":"Patient","id":"put1"},
     "request":{"method":"PUT","url":"Patient/put1"}}]})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(indexer.written,
              ::testing::ElementsAre("OnWritePrepared Patient/1", "OnWritePrepared Patient/1",
                                     "OnWritePrepared Observation/1", "OnWrite Patient/1"));
  auto bundle = Json(t->response_json);
  std::string obs_location = bundle["entry"][1]["response"]["location"].GetString();
  std::string obs_id = obs_location.substr(12, obs_location.find("/_history") - 12);
  std::string patient_location = bundle["entry"][0]["response"]["location"].GetString();
  std::string patient_id = patient_location.substr(8, patient_location.find("/_history") - 8);
  auto obs = store->Read("Observation", obs_id);
  ASSERT_TRUE(obs.ok()) << obs_location;
  EXPECT_THAT(obs->json, HasSubstr("\"reference\":\"Patient/" + patient_id + "\""));
  // A conditional entry: nothing is prepared, every entry is indexed in the op.
  indexer.written.clear();
  FhirMatcher none = [](db::Connection&, std::string_view, std::string_view)
      -> absl::StatusOr<std::vector<std::string>> { return std::vector<std::string>{}; };
  auto t2 = store->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient"},
     "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|b"}}]})",
                               {.matcher = &none});
  ASSERT_TRUE(t2.ok()) << t2.status();
  EXPECT_THAT(indexer.written, ::testing::ElementsAre("OnWrite Patient/1"));
}

TEST(FhirJson, PrettyKeepsNumbers) {
  auto p = FhirJsonPretty(R"({"a":[1.50,2e3,-0.0],"b":"x"})");
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(*p, HasSubstr("1.50"));
  EXPECT_THAT(*p, HasSubstr("2e3"));
  EXPECT_THAT(*p, HasSubstr("\n  \"b\": \"x\""));
  EXPECT_FALSE(FhirJsonPretty("{").ok());
}

TEST(FhirOutcome, MapsStatuses) {
  EXPECT_EQ(FhirHttpStatus(absl::FailedPreconditionError("x")), 412);
  EXPECT_EQ(FhirHttpStatus(absl::InvalidArgumentError("x")), 400);
  auto oo = Json(FhirOperationOutcome(absl::NotFoundError("gone \"x\"")));
  EXPECT_STREQ(oo["issue"][0]["code"].GetString(), "not-found");
  EXPECT_STREQ(oo["issue"][0]["diagnostics"].GetString(), "gone \"x\"");
}

}  // namespace
}  // namespace isthmus::store

namespace isthmus::store {
namespace {

// A stand-in for search: `query` is "k=v"; matches the current resources of the type whose
// JSON holds "value":"v". It runs on the connection it is given, as the real one must.
absl::StatusOr<std::vector<std::string>> FakeMatch(db::Connection& conn, std::string_view type,
                                                   std::string_view query) {
  size_t eq = query.find('=');
  if (eq == std::string_view::npos) return absl::InvalidArgumentError("bad query");
  auto q = conn.Prepare(
      "SELECT r.id FROM fhir_resources r JOIN fhir_resource_versions v ON v.seq = r.version_seq "
      "WHERE r.type = ? AND r.deleted = 0 AND v.body LIKE ? ORDER BY r.id LIMIT 2");
  if (!q.ok()) return q.status();
  (*q)->BindText(1, type);
  (*q)->BindText(2, "%\"value\":\"" + std::string(query.substr(eq + 1)) + "\"%");
  std::vector<std::string> ids;
  while (true) {
    auto row = (*q)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.emplace_back((*q)->ColumnText(0));
  }
  return ids;
}

std::string Pat(const std::string& id, const std::string& mrn) {
  return R"({"resourceType":"Patient",)" + (id.empty() ? "" : "\"id\":\"" + id + "\",") +
         R"("identifier":[{"system":"urn:mrn","value":")" + mrn + "\"}]}";
}

class FhirConditionalTest : public FhirStoreTest {
 protected:
  FhirMatcher matcher_ = FakeMatch;
  FhirWriteOptions Cond(std::string if_none_exist = "") {
    FhirWriteOptions o;
    o.matcher = &matcher_;
    o.if_none_exist = std::move(if_none_exist);
    return o;
  }
};

TEST_F(FhirConditionalTest, CreateIfNoneExist) {
  auto first = store_->Create("Patient", Pat("", "m1"), Cond("identifier=m1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  EXPECT_FALSE(first->existing);
  // One match: nothing written, the match returned.
  auto again = store_->Create("Patient", Pat("", "m1"), Cond("identifier=m1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(again->version.id, first->version.id);
  EXPECT_EQ(again->version.version_id, 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 1);
  // Two matches: 412, nothing written.
  ASSERT_TRUE(store_->Create("Patient", Pat("", "m1")).ok());
  auto many = store_->Create("Patient", Pat("", "m1"), Cond("identifier=m1"));
  EXPECT_EQ(many.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FhirHttpStatus(many.status()), 412);
  EXPECT_THAT(std::string(many.status().message()), HasSubstr("(identifier)"));
  EXPECT_THAT(std::string(many.status().message()), ::testing::Not(HasSubstr("m1")));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 2);
  // Without a matcher the condition cannot be honoured: 501, never a blind create.
  FhirWriteOptions no_matcher;
  no_matcher.if_none_exist = "identifier=zz";
  EXPECT_EQ(store_->Create("Patient", Pat("", "zz"), no_matcher).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(FhirConditionalTest, ConditionalUpdateAndDelete) {
  // No match, no id: created with a new id.
  auto created = store_->ConditionalUpdate("Patient", "identifier=u1", Pat("", "u1"), Cond());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created);
  const std::string id = created->version.id;
  // One match: that resource gets version 2 (the body may omit the id).
  auto updated = store_->ConditionalUpdate("Patient", "identifier=u1", Pat("", "u1"), Cond());
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->version.id, id);
  EXPECT_EQ(updated->version.version_id, 2);
  // The body's id must be the match's.
  auto wrong = store_->ConditionalUpdate("Patient", "identifier=u1", Pat("other", "u1"), Cond());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  // If-Match applies to the match.
  FhirWriteOptions stale = Cond();
  stale.if_match_version = 1;
  EXPECT_EQ(store_->ConditionalUpdate("Patient", "identifier=u1", Pat("", "u1"), stale)
                .status().code(),
            absl::StatusCode::kFailedPrecondition);
  // No match with an id in the body: update-as-create with that id.
  auto with_id = store_->ConditionalUpdate("Patient", "identifier=u2", Pat("given", "u2"), Cond());
  ASSERT_TRUE(with_id.ok()) << with_id.status();
  EXPECT_EQ(with_id->version.id, "given");
  // No match, but the body's id belongs to a live resource that does not match: 409, untouched
  // (in a transaction too, naming the entry).
  auto taken = store_->ConditionalUpdate("Patient", "identifier=u9", Pat("given", "u9"), Cond());
  EXPECT_EQ(store::FhirHttpStatus(taken.status()), 409) << taken.status();
  EXPECT_EQ(store_->Read("Patient", "given")->version_id, 1);
  auto tx = store_->Transaction(
      R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":)" +
          Pat("given", "u9") + R"(,"request":{"method":"PUT","url":"Patient?identifier=u9"}}]})",
      {.matcher = &matcher_});
  EXPECT_EQ(store::FhirHttpStatus(tx.status()), 409) << tx.status();
  EXPECT_THAT(std::string(tx.status().message()), HasSubstr("Bundle.entry[0]"));
  EXPECT_EQ(store_->Read("Patient", "given")->version_id, 1);
  // Two matches: 412.
  ASSERT_TRUE(store_->Update("Patient", "dup", Pat("dup", "u2")).ok());
  EXPECT_EQ(store_->ConditionalUpdate("Patient", "identifier=u2", Pat("", "u2"), Cond())
                .status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->ConditionalDelete("Patient", "identifier=u2", Cond()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(store_->Read("Patient", "dup")->deleted);
  // Delete: one match is deleted, then nothing matches (not an error, nothing written).
  auto del = store_->ConditionalDelete("Patient", "identifier=u1", Cond());
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(del->version.id, id);
  EXPECT_TRUE(store_->Read("Patient", id)->deleted);
  auto none = store_->ConditionalDelete("Patient", "identifier=u1", Cond());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->version.version_id, 0);
}

TEST_F(FhirConditionalTest, PatchRunsThePatcherOnTheCurrentVersion) {
  ASSERT_TRUE(store_->Update("Patient", "p", R"({"resourceType":"Patient","id":"p","active":true})").ok());
  FhirPatcher flip = [](std::string_view current, std::string_view type,
                        std::string_view patch) -> absl::StatusOr<std::string> {
    if (type != "text/x-test") return absl::InvalidArgumentError("bad type");
    std::string out(current);
    if (patch == "fail") return WithHttpStatus(absl::InvalidArgumentError("test failed"), 422);
    if (patch == "id") return std::string(R"({"resourceType":"Patient","id":"q"})");
    if (patch == "type") return std::string(R"({"resourceType":"Basic","id":"p"})");
    out.replace(out.find("true"), 4, "false");
    return out;
  };
  auto w = store_->Patch("Patient", "p", "text/x-test", "go", flip);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version.version_id, 2);
  EXPECT_EQ(w->version.method, "PATCH");
  EXPECT_FALSE(Json(store_->Read("Patient", "p")->json)["active"].GetBool());
  EXPECT_EQ(FhirHttpStatus(store_->Patch("Patient", "p", "text/x-test", "fail", flip).status()),
            422);
  EXPECT_EQ(FhirHttpStatus(store_->Patch("Patient", "p", "text/x-test", "id", flip).status()), 422);
  EXPECT_EQ(FhirHttpStatus(store_->Patch("Patient", "p", "text/x-test", "type", flip).status()),
            422);
  EXPECT_EQ(FhirHttpStatus(store_->Patch("Patient", "p", "text/plain", "go", flip).status()), 400);
  FhirWriteOptions stale;
  stale.if_match_version = 1;
  EXPECT_EQ(FhirHttpStatus(store_->Patch("Patient", "p", "text/x-test", "go", flip, stale).status()),
            412);
  EXPECT_EQ(FhirHttpStatus(store_->Patch("Patient", "nope", "text/x-test", "go", flip).status()),
            404);
  ASSERT_TRUE(store_->Delete("Patient", "p").ok());
  auto gone = store_->Patch("Patient", "p", "text/x-test", "go", flip);
  EXPECT_EQ(FhirHttpStatus(gone.status()), 410);
  EXPECT_EQ(FhirIssueCode(gone.status()), "deleted");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 3);
}

TEST_F(FhirConditionalTest, TransactionConditionalEntriesAndReferences) {
  ASSERT_TRUE(store_->Update("Patient", "known", Pat("known", "k1")).ok());
  ASSERT_TRUE(store_->Update("Patient", "gone", Pat("gone", "g1")).ok());
  FhirTransactionOptions o;
  o.matcher = &matcher_;
  // ifNoneExist matching "known" (nothing written), a conditional create of a new patient that
  // an Observation references by the same condition, a reference resolved by search, a
  // conditional PUT and a conditional DELETE.
  auto r = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111",
     "resource":{"resourceType":"Patient","identifier":[{"value":"k1"}]},
     "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=k1"}},
    {"resource":{"resourceType":"Patient","identifier":[{"value":"n1"}]},
     "request":{"method":"POST","url":"Patient","ifNoneExist":"Patient?identifier=n1"}},
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"Patient?identifier=n1"},
                 "performer":[{"reference":"Patient?identifier=k1"},
                              {"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}]},
     "request":{"method":"POST","url":"Observation"}},
    {"resource":{"resourceType":"Patient","identifier":[{"value":"k1"}],"active":true},
     "request":{"method":"PUT","url":"Patient?identifier=k1"}},
    {"request":{"method":"DELETE","url":"Patient?identifier=g1"}},
    {"request":{"method":"DELETE","url":"Patient?identifier=nobody"}}]})", o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto resp = Json(r->response_json);
  EXPECT_STREQ(resp["entry"][0]["response"]["status"].GetString(), "200 OK");
  EXPECT_STREQ(resp["entry"][0]["response"]["location"].GetString(), "Patient/known/_history/1");
  EXPECT_STREQ(resp["entry"][1]["response"]["status"].GetString(), "201 Created");
  std::string new_patient = resp["entry"][1]["response"]["location"].GetString();
  new_patient = new_patient.substr(0, new_patient.find("/_history"));
  EXPECT_STREQ(resp["entry"][3]["response"]["status"].GetString(), "200 OK");
  EXPECT_STREQ(resp["entry"][3]["response"]["location"].GetString(), "Patient/known/_history/2");
  EXPECT_STREQ(resp["entry"][4]["response"]["status"].GetString(), "204 No Content");
  EXPECT_STREQ(resp["entry"][5]["response"]["status"].GetString(), "204 No Content");
  EXPECT_TRUE(store_->Read("Patient", "gone")->deleted);
  std::string obs_loc = resp["entry"][2]["response"]["location"].GetString();
  std::string obs_id = obs_loc.substr(12, obs_loc.find("/_history") - 12);
  auto obs = Json(store_->Read("Observation", obs_id)->json);
  EXPECT_EQ(obs["subject"]["reference"].GetString(), new_patient);
  EXPECT_STREQ(obs["performer"][0]["reference"].GetString(), "Patient/known");
  EXPECT_STREQ(obs["performer"][1]["reference"].GetString(), "Patient/known");

  // A conditional reference with no match (or two) fails the transaction: 412 naming the entry.
  const int64_t before = Count("SELECT COUNT(*) FROM fhir_resource_versions");
  auto none = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"Patient?identifier=secret-mrn"}},
     "request":{"method":"POST","url":"Observation"}}]})", o);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("Bundle.entry[1]"));
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("matches no resource"));
  EXPECT_THAT(std::string(none.status().message()), ::testing::Not(HasSubstr("secret")));
  ASSERT_TRUE(store_->Update("Patient", "twin", Pat("twin", "k1")).ok());
  auto many = store_->Transaction(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Patient","identifier":[{"value":"k1"}]},
     "request":{"method":"PUT","url":"Patient?identifier=k1"}}]})", o);
  EXPECT_EQ(many.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), before + 1);
  // In a batch only the entry fails.
  auto batch = store_->Transaction(R"({"resourceType":"Bundle","type":"batch","entry":[
    {"resource":{"resourceType":"Patient","id":"b1"},"request":{"method":"PUT","url":"Patient/b1"}},
    {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
                 "subject":{"reference":"Patient?identifier=k1"}},
     "request":{"method":"POST","url":"Observation"}}]})", o);
  ASSERT_TRUE(batch.ok()) << batch.status();
  auto b = Json(batch->response_json);
  EXPECT_STREQ(b["entry"][0]["response"]["status"].GetString(), "201 Created");
  EXPECT_STREQ(b["entry"][1]["response"]["status"].GetString(), "412 Precondition Failed");
}

TEST_F(FhirConditionalTest, TransactionPatchEntryHoldsABinary) {
  ASSERT_TRUE(store_->Update("Patient", "p", R"({"resourceType":"Patient","id":"p","active":true})").ok());
  FhirPatcher patcher = [](std::string_view current, std::string_view type,
                           std::string_view patch) -> absl::StatusOr<std::string> {
    EXPECT_EQ(type, "application/json-patch+json");
    EXPECT_EQ(patch, "[]");
    if (current.find("\"active\":true") == std::string_view::npos) {
      return WithHttpStatus(absl::InvalidArgumentError("test failed"), 422);
    }
    return std::string(R"({"resourceType":"Patient","id":"p","active":false})");
  };
  const char* bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="},
     "request":{"method":"PATCH","url":"Patient/p","ifMatch":"W/\"1\""}}]})";
  EXPECT_EQ(store_->Transaction(bundle).status().code(), absl::StatusCode::kUnimplemented);
  FhirTransactionOptions o;
  o.patcher = &patcher;
  auto r = store_->Transaction(bundle, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_STREQ(Json(r->response_json)["entry"][0]["response"]["status"].GetString(), "200 OK");
  EXPECT_FALSE(Json(store_->Read("Patient", "p")->json)["active"].GetBool());
  // Again: the patcher's 422 is the transaction's (If-Match first: 412).
  EXPECT_EQ(FhirHttpStatus(store_->Transaction(bundle, o).status()), 412);
  std::string no_if_match = bundle;
  const std::string if_match = R"(,"ifMatch":"W/\"1\"")";
  no_if_match.replace(no_if_match.find(if_match), if_match.size(), "");
  auto failed = store_->Transaction(no_if_match, o);
  EXPECT_EQ(FhirHttpStatus(failed.status()), 422);
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("Bundle.entry[0]"));
}

TEST(FhirOutcome, ExplicitHttpStatus) {
  absl::Status s = WithHttpStatus(absl::InvalidArgumentError("x"), 422);
  EXPECT_EQ(FhirHttpStatus(s), 422);
  EXPECT_EQ(FhirIssueCode(s), "processing");
  EXPECT_EQ(FhirHttpStatus(absl::InvalidArgumentError("x")), 400);
}

}  // namespace
}  // namespace isthmus::store
