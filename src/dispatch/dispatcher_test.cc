#include "dispatch/dispatcher.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/str.h"
#include "store/journal.h"

namespace isthmus::dispatch {
namespace {

using ::testing::ElementsAre;

// Partition of a test control id: "p1-3" -> "p1".
std::string KeyOf(std::string_view control_id) {
  return std::string(control_id.substr(0, control_id.find('-')));
}

// Records every delivery; answers from `script` (OK by default); can hold deliveries at a gate.
class FakeDestination : public core::Destination {
 public:
  explicit FakeDestination(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }

  absl::Status Deliver(const core::Delivery& d) override {
    std::unique_lock<std::mutex> lock(mu_);
    std::string key = KeyOf(d.control_id);
    calls_.push_back(std::string(d.control_id));
    attempts_.push_back(d.attempt);
    if (++in_flight_by_key_[key] > 1) partition_overlap_ = true;
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    absl::Status s = script_ ? script_(d) : absl::OkStatus();
    --in_flight_;
    --in_flight_by_key_[key];
    return s;
  }

  void SetScript(std::function<absl::Status(const core::Delivery&)> f) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(f);
  }
  void SetGate(bool open) {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = open;
    cv_.notify_all();
  }
  // Waits (real time, bounded) until `n` deliveries are in progress at once.
  bool WaitInFlight(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return in_flight_ >= n; });
  }
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<int> attempts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }
  int max_in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_flight_;
  }
  bool partition_overlap() const {
    std::lock_guard<std::mutex> lock(mu_);
    return partition_overlap_;
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::function<absl::Status(const core::Delivery&)> script_;
  bool open_ = true;
  std::vector<std::string> calls_;
  std::vector<int> attempts_;
  std::map<std::string, int> in_flight_by_key_;
  int in_flight_ = 0, max_in_flight_ = 0;
  bool partition_overlap_ = false;
};

// Collects Settled reports from the dispatchers' worker threads.
class Recorder {
 public:
  std::function<void(const Settled&)> Hook() {
    return [this](const Settled& s) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(s);
      cv_.notify_all();
    };
  }
  // Waits (real time, bounded) for `n` reports in all.
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return events_.size() >= n; });
  }
  std::vector<Settled> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Settled> events_;
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("dispatch_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    writer_ = std::move(store::Writer::Open((dir_ / "isthmus.db").string())).value();
    store::JournalOptions jo;
    jo.clock = &clock_;
    journal_ = std::move(store::Journal::Open(*writer_, jo)).value();
    queue_ = std::move(store::Queue::Open(*writer_, clock_)).value();
  }
  void TearDown() override {
    queue_.reset();
    journal_.reset();
    writer_.reset();
  }

  void Route(const std::string& control_id, const std::string& dest,
             const std::string& key = "", const std::string& channel = "lab") {
    store::IncomingMessage m{channel, "LAB", control_id, "ORU^R01", "peer",
                             "MSH|^~\\&|LAB|HOSP|||x||ORU^R01|" + control_id + "|P|2.5\r"};
    int64_t id = journal_->AppendAndWait(std::move(m)).value().id;
    ASSERT_TRUE(writer_
                    ->Run([&](db::Connection& c) {
                      return store::Queue::Enqueue(c, id, dest, key, clock_.NowMicros());
                    })
                    .ok());
  }

  DispatcherOptions Options(Recorder& rec) {
    DispatcherOptions o;
    o.clock = &clock_;
    o.retry.jitter = 0;
    o.lease = absl::Seconds(30);
    o.jitter_seed = 42;
    o.on_settled = rec.Hook();
    return o;
  }

  // Notifies and waits until the dispatcher has looked at the queue at least once since.
  static void NotifyAndWaitForEmptyClaim(Dispatcher& d) {
    uint64_t before = d.stats().empty_claims;
    d.Notify();
    for (int i = 0; i < 10'000 && d.stats().empty_claims <= before; ++i) {
      std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // waiting for a thread
    }
    ASSERT_GT(d.stats().empty_claims, before);
  }

  std::filesystem::path dir_;
  base::FakeClock clock_;
  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<store::Journal> journal_;
  std::unique_ptr<store::Queue> queue_;
};

TEST(RetryPolicyTest, ExponentialCappedWithJitterBounds) {
  RetryPolicy p;
  p.jitter = 0;
  EXPECT_EQ(p.Backoff(1, 0.5), absl::Seconds(1));
  EXPECT_EQ(p.Backoff(2, 0.5), absl::Seconds(2));
  EXPECT_EQ(p.Backoff(5, 0.5), absl::Seconds(16));
  EXPECT_EQ(p.Backoff(9, 0.5), absl::Seconds(256));
  EXPECT_EQ(p.Backoff(10, 0.5), absl::Minutes(5));  // 512 s capped at 300 s
  EXPECT_EQ(p.Backoff(10, 0.5), absl::Minutes(5));
  EXPECT_EQ(p.Backoff(5000, 0.5), absl::Minutes(5));  // no overflow
  p.jitter = 0.2;
  EXPECT_EQ(p.Backoff(3, 0.0), absl::Seconds(4) * 0.8);
  EXPECT_EQ(p.Backoff(3, 0.5), absl::Seconds(4));
  EXPECT_LT(p.Backoff(3, 0.999999), absl::Seconds(4) * 1.2 + absl::Microseconds(1));
  EXPECT_TRUE(p.Validate().ok());
  p.multiplier = 0.5;
  EXPECT_FALSE(p.Validate().ok());
}

TEST_F(DispatcherTest, DeliversInFifoOrder) {
  for (int i = 1; i <= 5; ++i) Route(base::StrCat("m-", i), "out");
  FakeDestination dest("out");
  Recorder rec;
  auto d = Dispatcher::Start(*queue_, dest, Options(rec));
  ASSERT_TRUE(d.ok()) << d.status();
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(5));
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-2", "m-3", "m-4", "m-5"));
  EXPECT_EQ((*d)->stats().delivered, 5u);
  EXPECT_EQ(queue_->CountsFor("out").value().delivered, 5);
  // New work is picked up on Notify.
  Route("m-6", "out");
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(6));
  EXPECT_EQ(dest.calls().back(), "m-6");
}

TEST_F(DispatcherTest, RetriesWithBackoffOnTheClock) {
  Route("m-1", "out");
  Route("m-2", "out");
  FakeDestination dest("out");
  dest.SetScript([](const core::Delivery& d) {
    if (d.control_id == "m-1" && d.attempt < 3) return absl::UnavailableError("connection refused");
    return absl::OkStatus();
  });
  Recorder rec;
  auto d = Dispatcher::Start(*queue_, dest, Options(rec));
  ASSERT_TRUE(d.ok());
  const int64_t t0 = clock_.NowMicros();
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(1));
  EXPECT_EQ(rec.events()[0].outcome, Settled::kRetry);
  EXPECT_EQ(rec.events()[0].next_attempt_micros, t0 + 1'000'000);

  clock_.Advance(absl::Milliseconds(999));  // not yet due; m-2 must wait behind m-1
  NotifyAndWaitForEmptyClaim(**d);
  EXPECT_THAT(dest.calls(), ElementsAre("m-1"));

  clock_.Advance(absl::Milliseconds(1));
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(2));
  EXPECT_EQ(rec.events()[1].outcome, Settled::kRetry);
  EXPECT_EQ(rec.events()[1].next_attempt_micros, t0 + 3'000'000);  // +2 s after the 2nd failure

  clock_.Advance(absl::Seconds(2));
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(4));
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-1", "m-1", "m-2"));
  EXPECT_THAT(dest.attempts(), ElementsAre(1, 2, 3, 1));
  EXPECT_EQ((*d)->stats().retried, 2u);
  auto rec_m1 = journal_->Get(1).value();
  std::vector<std::string> states;
  for (const auto& e : rec_m1.events) states.push_back(e.state);
  EXPECT_THAT(states, ElementsAre("received", "retry:out", "retry:out", "delivered:out"));
}

TEST_F(DispatcherTest, NonRetryableIsDeadLetteredAndTheNextProceeds) {
  Route("m-1", "out");
  Route("m-2", "out");
  FakeDestination dest("out");
  dest.SetScript([](const core::Delivery& d) {
    if (d.control_id == "m-1") return absl::InvalidArgumentError("peer answered AR");
    return absl::OkStatus();
  });
  Recorder rec;
  auto d = Dispatcher::Start(*queue_, dest, Options(rec));
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(2));
  EXPECT_EQ(rec.events()[0].outcome, Settled::kDead);
  auto dead = queue_->ListDeadLetters({.destination = "out"}).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].reason, "INVALID_ARGUMENT: peer answered AR");
  EXPECT_EQ(dead[0].attempts, 1);
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-2"));

  // Reprocess after the peer was fixed: delivered on the next look.
  dest.SetScript(nullptr);
  ASSERT_TRUE(queue_->Reprocess(dead[0].id).ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(3));
  EXPECT_EQ(rec.events()[2].outcome, Settled::kDelivered);
  EXPECT_EQ(queue_->CountsFor("out").value().dead, 0);
}

// The per-channel counters (delivered, dead) are kept from these reports: each says the
// channel of the message it settled, whichever way it was settled.
TEST_F(DispatcherTest, ReportsTheChannelOfEachSettledMessage) {
  Route("a-1", "out", "", "adt");
  Route("b-1", "out", "", "lab");
  Route("a-2", "out", "", "adt");
  FakeDestination dest("out");
  dest.SetScript([](const core::Delivery& d) {
    if (d.control_id == "b-1") return absl::InvalidArgumentError("peer answered AR");
    return absl::OkStatus();
  });
  Recorder rec;
  auto d = Dispatcher::Start(*queue_, dest, Options(rec));
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(3));
  std::vector<std::pair<Settled::Outcome, std::string>> got;
  for (const Settled& s : rec.events()) got.emplace_back(s.outcome, s.channel);
  // a-1 delivered; b-1 dead-lettered (the run stops there); a-2 delivered in the next run.
  EXPECT_THAT(got, ElementsAre(std::pair{Settled::kDelivered, std::string("adt")},
                               std::pair{Settled::kDead, std::string("lab")},
                               std::pair{Settled::kDelivered, std::string("adt")}));
}

TEST_F(DispatcherTest, MaxAttemptsThenDeadLetter) {
  Route("m-1", "out");
  FakeDestination dest("out");
  dest.SetScript([](const core::Delivery&) { return absl::UnavailableError("down"); });
  Recorder rec;
  DispatcherOptions o = Options(rec);
  o.retry.max_attempts = 3;
  auto d = Dispatcher::Start(*queue_, dest, o);
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(rec.WaitFor(n));
    clock_.Advance(absl::Minutes(1));
    (*d)->Notify();
  }
  auto events = rec.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].outcome, Settled::kDead);
  auto dead = queue_->ListDeadLetters({}).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].attempts, 3);
  EXPECT_EQ(dead[0].reason, "gave up after 3 attempts (max_attempts): UNAVAILABLE: down");
}

TEST_F(DispatcherTest, MaxAgeThenDeadLetter) {
  Route("m-1", "out");
  FakeDestination dest("out");
  dest.SetScript([](const core::Delivery&) { return absl::DeadlineExceededError("timeout"); });
  Recorder rec;
  DispatcherOptions o = Options(rec);
  o.retry.max_age = absl::Seconds(10);
  auto d = Dispatcher::Start(*queue_, dest, o);
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(1));
  EXPECT_EQ(rec.events()[0].outcome, Settled::kRetry);
  clock_.Advance(absl::Seconds(11));
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(2));
  EXPECT_EQ(rec.events()[1].outcome, Settled::kDead);
  EXPECT_THAT(rec.events()[1].reason, ::testing::HasSubstr("(max_age 10s)"));
}

TEST_F(DispatcherTest, PartitionsInParallelEachInOrder) {
  for (int i = 1; i <= 4; ++i) {
    for (const char* p : {"p1", "p2", "p3"}) Route(base::StrCat(p, "-", i), "out", p);
  }
  FakeDestination dest("out");
  dest.SetGate(false);
  Recorder rec;
  DispatcherOptions o = Options(rec);
  o.parallelism = 3;
  auto d = Dispatcher::Start(*queue_, dest, o);
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(dest.WaitInFlight(3));  // one per partition at once
  std::vector<std::string> first = dest.calls();
  std::sort(first.begin(), first.end());
  EXPECT_THAT(first, ElementsAre("p1-1", "p2-1", "p3-1"));
  dest.SetGate(true);
  ASSERT_TRUE(rec.WaitFor(12));
  EXPECT_FALSE(dest.partition_overlap());
  EXPECT_EQ(dest.max_in_flight(), 3);
  std::map<std::string, std::vector<std::string>> by_key;
  for (const auto& c : dest.calls()) by_key[KeyOf(c)].push_back(c);
  EXPECT_THAT(by_key["p1"], ElementsAre("p1-1", "p1-2", "p1-3", "p1-4"));
  EXPECT_THAT(by_key["p2"], ElementsAre("p2-1", "p2-2", "p2-3", "p2-4"));
  EXPECT_THAT(by_key["p3"], ElementsAre("p3-1", "p3-2", "p3-3", "p3-4"));
}

TEST_F(DispatcherTest, NonPartitionedStaysFifoWithParallelism) {
  for (int i = 1; i <= 6; ++i) Route(base::StrCat("m-", i), "out");
  FakeDestination dest("out");
  Recorder rec;
  DispatcherOptions o = Options(rec);
  o.parallelism = 4;
  auto d = Dispatcher::Start(*queue_, dest, o);
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(6));
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-2", "m-3", "m-4", "m-5", "m-6"));
  EXPECT_EQ(dest.max_in_flight(), 1);
}

TEST_F(DispatcherTest, CrashMidDeliveryResumesAfterTheLeaseExpires) {
  Route("m-1", "out");
  Route("m-2", "out");
  FakeDestination dest("out");
  dest.SetGate(false);
  Recorder rec_a;
  auto a = Dispatcher::Start(*queue_, dest, Options(rec_a));
  ASSERT_TRUE(a.ok());
  (*a)->Notify();
  ASSERT_TRUE(dest.WaitInFlight(1));
  // The process dies while m-1 is being delivered (maybe delivered, never acked).
  (*a)->AbandonForTest();
  dest.SetGate(true);
  a->reset();
  EXPECT_TRUE(rec_a.events().empty());
  // Both rows were claimed as one run and stay leased by the dead dispatcher.
  EXPECT_EQ(queue_->CountsFor("out").value().in_flight, 2);

  Recorder rec_b;
  auto b = Dispatcher::Start(*queue_, dest, Options(rec_b));
  ASSERT_TRUE(b.ok());
  NotifyAndWaitForEmptyClaim(**b);  // m-1 is still leased by the dead dispatcher
  EXPECT_THAT(dest.calls(), ElementsAre("m-1"));
  clock_.Advance(absl::Seconds(31));
  (*b)->Notify();
  ASSERT_TRUE(rec_b.WaitFor(2));
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-1", "m-2"));  // at least once, in order
  EXPECT_EQ(queue_->CountsFor("out").value().delivered, 2);
}

TEST_F(DispatcherTest, OneDestinationDownDoesNotBlockAnother) {
  for (int i = 1; i <= 3; ++i) {
    Route(base::StrCat("down-", i), "down");
    Route(base::StrCat("up-", i), "up");
  }
  FakeDestination down("down"), up("up");
  down.SetScript([](const core::Delivery&) { return absl::UnavailableError("refused"); });
  Recorder rec_down, rec_up;
  auto dd = Dispatcher::Start(*queue_, down, Options(rec_down));
  auto du = Dispatcher::Start(*queue_, up, Options(rec_up));
  ASSERT_TRUE(dd.ok() && du.ok());
  (*dd)->Notify();
  (*du)->Notify();
  ASSERT_TRUE(rec_up.WaitFor(3));
  EXPECT_THAT(up.calls(), ElementsAre("up-1", "up-2", "up-3"));
  ASSERT_TRUE(rec_down.WaitFor(1));
  EXPECT_THAT(down.calls(), ElementsAre("down-1"));
  auto counts = queue_->CountsFor("down").value();
  EXPECT_EQ(counts.queued, 3);
  EXPECT_EQ(counts.retrying, 1);
}

TEST_F(DispatcherTest, StopFinishesTheCurrentDeliveryAndLeavesTheRest) {
  for (int i = 1; i <= 4; ++i) Route(base::StrCat("m-", i), "out");
  FakeDestination dest("out");
  dest.SetGate(false);
  Recorder rec;
  auto d = Dispatcher::Start(*queue_, dest, Options(rec));
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(dest.WaitInFlight(1));
  std::thread stop([&] { (*d)->Stop(); });
  // Open the gate only once Stop() has begun, so the dispatcher must not claim m-2 afterwards.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(*d)->stopping() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  bool stopping = (*d)->stopping();
  dest.SetGate(true);
  stop.join();
  ASSERT_TRUE(stopping);
  ASSERT_TRUE(rec.WaitFor(1));
  EXPECT_EQ(rec.events()[0].outcome, Settled::kDelivered);
  EXPECT_THAT(dest.calls(), ElementsAre("m-1"));
  auto counts = queue_->CountsFor("out").value();
  EXPECT_EQ(counts.delivered, 1);
  EXPECT_EQ(counts.queued, 3);
  EXPECT_EQ(counts.in_flight, 0);
}

TEST_F(DispatcherTest, AFailureInARunStopsItAndTheRestWaitsForTheRetry) {
  for (int i = 1; i <= 4; ++i) Route(base::StrCat("m-", i), "out");
  FakeDestination dest("out");
  dest.SetScript([](const core::Delivery& d) {
    if (d.control_id == "m-2" && d.attempt == 1) return absl::UnavailableError("timeout");
    return absl::OkStatus();
  });
  Recorder rec;
  auto d = Dispatcher::Start(*queue_, dest, Options(rec));  // batch_size 100: one run of 4
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(2));  // m-1 delivered, m-2 to retry; m-3 and m-4 not attempted
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-2"));
  EXPECT_EQ(rec.events()[0].outcome, Settled::kDelivered);
  EXPECT_EQ(rec.events()[1].outcome, Settled::kRetry);
  auto counts = queue_->CountsFor("out").value();
  EXPECT_EQ(counts.queued, 3);
  EXPECT_EQ(counts.in_flight, 0);  // m-3 and m-4 were given back
  clock_.Advance(absl::Seconds(1));
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(5));
  EXPECT_THAT(dest.calls(), ElementsAre("m-1", "m-2", "m-2", "m-3", "m-4"));
  EXPECT_EQ(queue_->CountsFor("out").value().delivered, 4);
}

// Records the runs it is given; delivers all but `fail_id`.
class BatchDestination : public core::Destination {
 public:
  explicit BatchDestination(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  bool SupportsBatch() const override { return true; }
  absl::Status Deliver(const core::Delivery& d) override { return DeliverBatch({&d, 1}).back(); }
  std::vector<absl::Status> DeliverBatch(std::span<const core::Delivery> run) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> ids;
    std::vector<absl::Status> out;
    for (const auto& d : run) {
      ids.emplace_back(d.control_id);
      out.push_back(d.control_id == fail_id_ ? absl::UnavailableError("disk") : absl::OkStatus());
      if (!out.back().ok()) break;
    }
    runs_.push_back(ids);
    return out;
  }
  void FailOnce(std::string id) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_id_ = std::move(id);
  }
  std::vector<std::vector<std::string>> runs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::string fail_id_;
  std::vector<std::vector<std::string>> runs_;
};

TEST_F(DispatcherTest, BatchDestinationsGetWholeRunsOfAtMostBatchSize) {
  for (int i = 1; i <= 7; ++i) Route(base::StrCat("m-", i), "out");
  BatchDestination dest("out");
  dest.FailOnce("m-5");
  Recorder rec;
  DispatcherOptions o = Options(rec);
  o.batch_size = 3;
  auto d = Dispatcher::Start(*queue_, dest, o);
  ASSERT_TRUE(d.ok());
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(5));  // m-1..m-4 delivered, m-5 failed
  dest.FailOnce("");
  clock_.Advance(absl::Seconds(1));
  (*d)->Notify();
  ASSERT_TRUE(rec.WaitFor(8));
  using V = std::vector<std::string>;
  EXPECT_THAT(dest.runs(), ElementsAre(V{"m-1", "m-2", "m-3"}, V{"m-4", "m-5"},
                                       V{"m-5", "m-6", "m-7"}));
  EXPECT_EQ(queue_->CountsFor("out").value().delivered, 7);
  EXPECT_EQ((*d)->stats().retried, 1u);
}

TEST_F(DispatcherTest, RejectsBadOptions) {
  FakeDestination dest("out");
  DispatcherOptions o;
  o.parallelism = 0;
  EXPECT_EQ(Dispatcher::Start(*queue_, dest, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.parallelism = 1;
  o.retry.jitter = 1.5;
  EXPECT_EQ(Dispatcher::Start(*queue_, dest, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.retry.jitter = 0;
  o.batch_size = 0;
  EXPECT_EQ(Dispatcher::Start(*queue_, dest, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace isthmus::dispatch
