#include "destinations/fhir_local/fhir_local_destination.h"

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "dispatch/dispatcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/journal.h"
#include "store/queue.h"

namespace isthmus::destinations {
namespace {

using ::testing::HasSubstr;

std::string PatientBundle(const std::string& id, const std::string& type = "transaction") {
  return R"({"resourceType":"Bundle","type":")" + type + R"(","entry":[{"fullUrl":"urn:uuid:)"
         R"(0b1e9a4e-4a7b-4d55-9a43-3f1f6d1c2b01","resource":{"resourceType":"Patient","id":")" +
         id + R"(","name":[{"family":"DOE"}]},"request":{"method":"PUT","url":"Patient/)" + id +
         R"("}},{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},)"
         R"("subject":{"reference":"urn:uuid:0b1e9a4e-4a7b-4d55-9a43-3f1f6d1c2b01"}},)"
         R"("request":{"method":"POST","url":"Observation"}}]})";
}

class FhirLocalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("fhir_local_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    writer_ = std::move(store::Writer::Open((dir_ / "isthmus.db").string())).value();
    store::JournalOptions jo;
    jo.clock = &clock_;
    journal_ = std::move(store::Journal::Open(*writer_, jo)).value();
    queue_ = std::move(store::Queue::Open(*writer_, clock_)).value();
    store::FhirStoreOptions fo;
    fo.clock = &clock_;
    fhir_ = std::move(store::FhirStore::Open(*writer_, fo)).value();
    FhirLocalDestinationOptions o;
    o.name = "fhir";
    o.writer = writer_.get();
    o.fhir = fhir_.get();
    o.clock = &clock_;
    dest_ = std::move(FhirLocalDestination::Create(o)).value();
  }
  void TearDown() override {
    dest_.reset();
    fhir_.reset();
    queue_.reset();
    journal_.reset();
    writer_.reset();
  }

  void Route(const std::string& control_id, const std::string& payload) {
    store::IncomingMessage m{"lab", "LAB", control_id, "ADT^A01", "peer",
                             "MSH|^~\\&|LAB|HOSP|||x||ADT^A01|" + control_id + "|P|2.5\r"};
    int64_t id = journal_->AppendAndWait(std::move(m)).value().id;
    ASSERT_TRUE(writer_
                    ->Run([&](db::Connection& c) {
                      return store::Queue::Enqueue(c, id, "fhir", "", clock_.NowMicros(),
                                                   payload);
                    })
                    .ok());
  }

  core::Delivery ToDelivery(const store::QueueItem& it) {
    core::Delivery d;
    d.queue_id = it.id;
    d.message_id = it.message_id;
    d.attempt = it.attempt + 1;
    d.payload = it.payload;
    d.lease_owner = it.lease_owner;
    return d;
  }

  int64_t Count(const std::string& sql) {
    auto conn = std::move(writer_->OpenReader()).value();
    auto q = std::move(conn->Prepare(sql)).value();
    EXPECT_TRUE(q->Step().value());
    return q->ColumnInt64(0);
  }

  std::filesystem::path dir_;
  base::FakeClock clock_;
  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<store::Journal> journal_;
  std::unique_ptr<store::Queue> queue_;
  std::unique_ptr<store::FhirStore> fhir_;
  std::unique_ptr<FhirLocalDestination> dest_;
};

TEST_F(FhirLocalTest, DispatcherDeliversEachBundleExactlyOnce) {
  Route("M1", PatientBundle("p1"));
  Route("M2", PatientBundle("p2"));
  Route("M3", PatientBundle("p1"));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<dispatch::Settled> settled;
  dispatch::DispatcherOptions o;
  o.clock = &clock_;
  o.on_settled = [&](const dispatch::Settled& s) {
    std::lock_guard<std::mutex> lock(mu);
    settled.push_back(s);
    cv.notify_all();
  };
  auto d = std::move(dispatch::Dispatcher::Start(*queue_, *dest_, o)).value();
  d->Notify();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return settled.size() >= 3; }));
  }
  d->Stop();
  for (const auto& s : settled) EXPECT_EQ(s.outcome, dispatch::Settled::kDelivered);
  EXPECT_EQ(d->stats().delivered, 3u);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM queue"), 0);
  EXPECT_EQ(Count("SELECT delivered FROM destination_counters WHERE destination = 'fhir'"), 3);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM message_events WHERE state = 'delivered:fhir'"), 3);
  auto p1 = fhir_->Read("Patient", "p1");
  ASSERT_TRUE(p1.ok()) << p1.status();
  EXPECT_EQ(p1->version_id, 2);  // delivered twice (M1, M3), once each
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resources WHERE type = 'Observation'"), 3);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions v WHERE v.type = 'Observation' "
                  "AND v.body LIKE '%\"reference\":\"Patient/p%'"),
            3);
}

TEST_F(FhirLocalTest, LostLeaseRollsBackTheApply) {
  Route("M1", PatientBundle("p1"));
  auto first = queue_->Claim("fhir", "node-a", 1, absl::Seconds(10));
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  // node-a stalls past its lease; node-b claims the row.
  clock_.Advance(absl::Seconds(11));
  auto second = queue_->Claim("fhir", "node-b", 1, absl::Seconds(10));
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 1u);
  // node-a's delivery: the ack fails in the same transaction as the apply, so neither stays.
  absl::Status late = dest_->Deliver(ToDelivery((*first)[0]));
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.message()), HasSubstr("lease lost"));
  EXPECT_EQ(fhir_->Read("Patient", "p1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM fhir_resource_versions"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM queue"), 1);
  // node-b's delivery applies and acks.
  ASSERT_TRUE(dest_->Deliver(ToDelivery((*second)[0])).ok());
  EXPECT_EQ(fhir_->Read("Patient", "p1")->version_id, 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM queue"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM message_events WHERE state = 'delivered:fhir'"), 1);
}

TEST_F(FhirLocalTest, InvalidBundleIsDeadLetteredWithoutPhi) {
  std::string bad = PatientBundle("p1");
  bad.replace(bad.find(R"("id":"p1")"), 9, R"("id":"DOE JANE")");
  Route("M1", bad);
  Route("M2", PatientBundle("p2", "batch"));
  // Valid JSON and a well-formed id, but not valid R4 (Patient.gender is bound, required, to
  // administrative-gender): refused by the R4 validation every write goes through.
  std::string not_r4 = PatientBundle("p3");
  not_r4.replace(not_r4.find(R"("id":"p3")"), 9, R"("id":"p3","gender":"JANE")");
  Route("M3", not_r4);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<dispatch::Settled> settled;
  dispatch::DispatcherOptions o;
  o.clock = &clock_;
  o.on_settled = [&](const dispatch::Settled& s) {
    std::lock_guard<std::mutex> lock(mu);
    settled.push_back(s);
    cv.notify_all();
  };
  auto d = std::move(dispatch::Dispatcher::Start(*queue_, *dest_, o)).value();
  d->Notify();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return settled.size() >= 3; }));
  }
  d->Stop();
  EXPECT_EQ(settled[0].outcome, dispatch::Settled::kDead);
  EXPECT_THAT(settled[0].reason, HasSubstr("Bundle.entry[0].resource.id"));
  EXPECT_THAT(settled[0].reason, ::testing::Not(HasSubstr("DOE")));
  EXPECT_EQ(settled[1].outcome, dispatch::Settled::kDelivered);
  EXPECT_EQ(settled[2].outcome, dispatch::Settled::kDead);
  EXPECT_THAT(settled[2].reason, HasSubstr("Patient.gender"));
  EXPECT_THAT(settled[2].reason, ::testing::Not(HasSubstr("JANE")));
  EXPECT_EQ(fhir_->Read("Patient", "p3").status().code(), absl::StatusCode::kNotFound);
  auto dead = queue_->ListDeadLetters({});
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 2u);
  EXPECT_THAT((*dead)[0].reason, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(fhir_->Read("Patient", "p1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fhir_->Read("Patient", "p2").ok());
}

TEST_F(FhirLocalTest, RunStopsAtTheFirstFailureAndKeepsWhatCameBefore) {
  Route("M1", PatientBundle("p1"));
  Route("M2", R"({"resourceType":"Bundle","type":"batch","entry":[
      {"resource":{"resourceType":"Patient","id":"p2"},"request":{"method":"PUT","url":"Patient/p2"}},
      {"request":{"method":"DELETE","url":"Patient?name=x"}}]})");
  Route("M3", PatientBundle("p3"));
  auto items = queue_->Claim("fhir", "node-a", 1, absl::Seconds(10), 3);
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 3u);
  std::vector<core::Delivery> run;
  for (const auto& it : *items) run.push_back(ToDelivery(it));
  std::vector<absl::Status> r = dest_->DeliverBatch(run);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].ok());
  EXPECT_EQ(r[1].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r[1].message()), HasSubstr("nothing kept"));
  EXPECT_TRUE(fhir_->Read("Patient", "p1").ok());
  // A batch Bundle is all or nothing for a delivery: p2 was rolled back with the failure.
  EXPECT_EQ(fhir_->Read("Patient", "p2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fhir_->Read("Patient", "p3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM queue"), 2);
}

}  // namespace
}  // namespace isthmus::destinations
