#include "store/queue.h"

#include <filesystem>
#include <set>
#include <thread>

#include "base/str.h"
#include "db/sqlite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/journal.h"
#include "store/schema.h"

namespace isthmus::store {
namespace {

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("queue_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "isthmus.db").string();
    Open();
  }
  void Open() {
    writer_ = std::move(Writer::Open(path_)).value();
    JournalOptions jo;
    jo.clock = &clock_;
    journal_ = std::move(Journal::Open(*writer_, jo)).value();
    queue_ = std::move(Queue::Open(*writer_, clock_)).value();
  }
  // Closes and reopens the database, as a process restart would.
  void Restart() {
    queue_.reset();
    journal_.reset();
    writer_.reset();
    Open();
  }
  int64_t Message(std::string control_id) {
    IncomingMessage m{"lab", "LAB^HOSP", control_id, "ORU^R01", "127.0.0.1:1",
                      "MSH|^~\\&|LAB|HOSP|||x||ORU^R01|" + control_id + "|P|2.5\r"};
    return journal_->AppendAndWait(std::move(m)).value().id;
  }
  // A new message routed to `dest` (message and queue row in one op, as the pipeline does).
  int64_t Route(std::string control_id, std::string dest, std::string key = "") {
    int64_t id = Message(control_id);
    absl::Status s = writer_->Run([&](db::Connection& c) -> absl::Status {
      auto now = clock_.NowMicros();
      absl::Status e = Journal::WriteEvent(c, id, now, "routed", dest);
      if (!e.ok()) return e;
      return Queue::Enqueue(c, id, dest, key, now);
    });
    EXPECT_TRUE(s.ok()) << s;
    return id;
  }
  std::vector<QueueItem> Claim(std::string dest, std::string owner = "node-a", int n = 10) {
    auto r = queue_->Claim(dest, owner, n, absl::Minutes(1));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<QueueItem>{};
  }
  static std::vector<std::string> ControlIds(const std::vector<QueueItem>& items) {
    std::vector<std::string> out;
    for (const auto& i : items) out.push_back(i.control_id);
    return out;
  }
  // The writer does not enforce foreign keys (writer.h): every reference the store's writes
  // made must hold anyway. PRAGMA foreign_key_check lists the rows whose parent is missing.
  void ExpectReferencesIntact() {
    auto r = writer_->OpenReader();
    ASSERT_TRUE(r.ok()) << r.status();
    auto q = (*r)->Prepare("PRAGMA foreign_key_check");
    ASSERT_TRUE(q.ok()) << q.status();
    auto row = (*q)->Step();
    ASSERT_TRUE(row.ok()) << row.status();
    EXPECT_FALSE(*row) << "row " << (*q)->ColumnInt64(1) << " of " << (*q)->ColumnText(0)
                       << " references a missing row of " << (*q)->ColumnText(2);
  }
  std::vector<std::string> States(int64_t message_id) {
    std::vector<std::string> out;
    auto rec = journal_->Get(message_id);
    EXPECT_TRUE(rec.ok()) << rec.status();
    if (rec.ok()) {
      for (const auto& e : rec->events) out.push_back(e.state);
    }
    return out;
  }

  std::filesystem::path dir_;
  std::string path_;
  base::FakeClock clock_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Queue> queue_;
};

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST_F(QueueTest, FifoOneAtATimeWithoutPartitions) {
  Route("C1", "out");
  Route("C2", "out");
  Route("C3", "out");
  Route("X1", "other");
  auto first = Claim("out");
  ASSERT_THAT(ControlIds(first), ElementsAre("C1"));
  EXPECT_EQ(first[0].attempt, 0);
  EXPECT_EQ(first[0].channel, "lab");
  EXPECT_EQ(first[0].message_type, "ORU^R01");
  EXPECT_NE(first[0].payload.find("|C1|"), std::string::npos);
  EXPECT_THAT(Claim("out"), IsEmpty());  // C1 in flight blocks C2
  EXPECT_THAT(ControlIds(Claim("other")), ElementsAre("X1"));  // other destinations unaffected
  ASSERT_TRUE(queue_->Ack(first[0]).ok());
  EXPECT_THAT(ControlIds(Claim("out")), ElementsAre("C2"));
  EXPECT_THAT(States(first[0].message_id), ElementsAre("received", "routed", "delivered:out"));
}

TEST_F(QueueTest, PartitionsInParallelEachInOrder) {
  Route("P1-a", "out", "patient-1");
  Route("P1-b", "out", "patient-1");
  Route("P2-a", "out", "patient-2");
  Route("P3-a", "out", "patient-3");
  auto items = Claim("out", "node-a", 2);
  EXPECT_THAT(ControlIds(items), ElementsAre("P1-a", "P2-a"));  // oldest first, one per key
  EXPECT_THAT(ControlIds(Claim("out", "node-b")), ElementsAre("P3-a"));
  ASSERT_TRUE(queue_->Ack(items[1]).ok());
  EXPECT_THAT(Claim("out", "node-b"), IsEmpty());  // patient-1 still in flight
  ASSERT_TRUE(queue_->Ack(items[0]).ok());
  EXPECT_THAT(ControlIds(Claim("out", "node-b")), ElementsAre("P1-b"));
}

TEST_F(QueueTest, NackKeepsOrderUntilTheRetryIsDue) {
  Route("C1", "out");
  Route("C2", "out");
  auto item = Claim("out");
  ASSERT_EQ(item.size(), 1u);
  int64_t due = clock_.NowMicros() + 10'000'000;
  ASSERT_TRUE(queue_->Nack(item[0], due, "UNAVAILABLE: connection refused").ok());
  EXPECT_THAT(Claim("out"), IsEmpty());  // C2 must not overtake C1
  EXPECT_EQ(queue_->NextDueMicros("out").value(), due);
  clock_.Advance(absl::Seconds(10));
  auto again = Claim("out");
  ASSERT_THAT(ControlIds(again), ElementsAre("C1"));
  EXPECT_EQ(again[0].attempt, 1);
  EXPECT_EQ(again[0].last_error, "UNAVAILABLE: connection refused");
  EXPECT_THAT(States(again[0].message_id), ElementsAre("received", "routed", "retry:out"));
}

TEST_F(QueueTest, ExpiredLeaseGoesToAnotherOwner) {
  Route("C1", "out");
  auto dead = queue_->Claim("out", "dead-node", 1, absl::Seconds(30)).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_THAT(Claim("out", "node-b"), IsEmpty());
  EXPECT_EQ(queue_->NextDueMicros("out").value(), dead[0].lease_until_micros);
  clock_.Advance(absl::Seconds(31));
  auto mine = Claim("out", "node-b");
  ASSERT_THAT(ControlIds(mine), ElementsAre("C1"));
  EXPECT_EQ(queue_->Ack(dead[0]).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue_->Nack(dead[0], 0, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(queue_->Ack(mine[0]).ok());
  EXPECT_EQ(queue_->Ack(mine[0]).code(), absl::StatusCode::kFailedPrecondition);  // row gone
}

TEST_F(QueueTest, LeasesAndRetriesSurviveRestart) {
  Route("C1", "out");
  Route("C2", "out");
  auto item = Claim("out");
  ASSERT_TRUE(queue_->Nack(item[0], clock_.NowMicros() + 5'000'000, "UNAVAILABLE").ok());
  item = Claim("out");
  EXPECT_THAT(item, IsEmpty());
  Restart();
  EXPECT_THAT(Claim("out"), IsEmpty());
  clock_.Advance(absl::Seconds(5));
  auto after = Claim("out", "node-new");
  ASSERT_THAT(ControlIds(after), ElementsAre("C1"));
  EXPECT_EQ(after[0].attempt, 1);
  Restart();  // crash while C1 is leased: nothing until the lease expires, then C1 again
  EXPECT_THAT(Claim("out", "node-newer"), IsEmpty());
  clock_.Advance(absl::Minutes(1));
  EXPECT_THAT(ControlIds(Claim("out", "node-newer")), ElementsAre("C1"));
  // ... unless the new process releases the dead one's leases at start: C1 is claimable at once,
  // with its attempt count kept.
  Restart();
  EXPECT_THAT(Claim("out", "node-newest"), IsEmpty());
  auto released = queue_->ReleaseLeasesOfEarlierProcesses();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1);
  auto again = Claim("out", "node-newest");
  ASSERT_THAT(ControlIds(again), ElementsAre("C1"));
  EXPECT_EQ(again[0].attempt, 1);
  EXPECT_EQ(*queue_->ReleaseLeasesOfEarlierProcesses(), 1);  // the lease just taken, as at a start
}

TEST_F(QueueTest, DeadLetterThenReprocessAtTheTail) {
  int64_t m1 = Route("C1", "out");
  Route("C2", "out");
  auto item = Claim("out");
  ASSERT_TRUE(queue_->DeadLetter(item[0], "INVALID_ARGUMENT: peer answered AR").ok());
  auto next = Claim("out");  // the next item proceeds
  ASSERT_THAT(ControlIds(next), ElementsAre("C2"));

  auto dead = queue_->ListDeadLetters({.destination = "out"}).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message_id, m1);
  EXPECT_EQ(dead[0].attempts, 1);
  EXPECT_EQ(dead[0].reason, "INVALID_ARGUMENT: peer answered AR");
  EXPECT_EQ(dead[0].reprocessed_at_micros, 0);
  EXPECT_THAT(States(m1), ElementsAre("received", "routed", "dead:out"));

  auto counts = queue_->CountsFor("out").value();
  EXPECT_EQ(counts.queued, 0);
  EXPECT_EQ(counts.in_flight, 1);
  EXPECT_EQ(counts.dead, 1);

  Route("C3", "out");
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(queue_->Reprocess(dead[0].id).ok());
  EXPECT_EQ(queue_->Reprocess(dead[0].id).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue_->Reprocess(12345).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(States(m1), ElementsAre("received", "routed", "dead:out", "reprocess"));
  EXPECT_TRUE(queue_->ListDeadLetters({.destination = "out"}).value().empty());
  EXPECT_EQ(queue_->ListDeadLetters({.include_reprocessed = true}).value().size(), 1u);

  ASSERT_TRUE(queue_->Ack(next[0]).ok());
  auto c3 = Claim("out");
  ASSERT_THAT(ControlIds(c3), ElementsAre("C3"));
  ASSERT_TRUE(queue_->Ack(c3[0]).ok());
  auto again = Claim("out");
  ASSERT_THAT(ControlIds(again), ElementsAre("C1"));  // reprocessed: at the tail, attempt reset
  EXPECT_EQ(again[0].attempt, 0);
  ASSERT_TRUE(queue_->Ack(again[0]).ok());

  counts = queue_->CountsFor("out").value();
  EXPECT_EQ(counts.delivered, 3);
  EXPECT_EQ(counts.dead, 0);
  EXPECT_EQ(counts.queued + counts.in_flight, 0);
  ExpectReferencesIntact();  // events, queue rows and dead letters all name a stored message
}

TEST_F(QueueTest, ReprocessAllForOneDestination) {
  Route("A1", "a");
  Route("A2", "a", "k2");
  Route("B1", "b");
  for (const char* d : {"a", "b"}) {
    for (auto& item : Claim(d)) ASSERT_TRUE(queue_->DeadLetter(item, "FAILED_PRECONDITION").ok());
  }
  EXPECT_EQ(queue_->ListDeadLetters({}).value().size(), 3u);
  EXPECT_EQ(queue_->ReprocessAll("a").value(), 2);
  EXPECT_EQ(queue_->ReprocessAll("a").value(), 0);
  EXPECT_EQ(queue_->CountsFor("a").value().queued, 2);
  EXPECT_EQ(queue_->CountsFor("b").value().dead, 1);
  auto all = queue_->Counts().value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].destination, "a");
  EXPECT_EQ(all[1].destination, "b");
}

TEST_F(QueueTest, EnqueueIsPartOfTheCallersTransaction) {
  int64_t id = Message("C1");
  absl::Status s = writer_->Run([&](db::Connection& c) -> absl::Status {
    absl::Status e = Queue::Enqueue(c, id, "out", "", clock_.NowMicros());
    if (!e.ok()) return e;
    return absl::InternalError("routing failed after the enqueue");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Claim("out"), IsEmpty());  // rolled back with the op
  EXPECT_FALSE(queue_->NextDueMicros("out").value().has_value());
}

TEST_F(QueueTest, EnqueuedPayloadReplacesTheRawMessage) {
  int64_t id = Message("C1");
  ASSERT_TRUE(writer_->Run([&](db::Connection& c) {
    return Queue::Enqueue(c, id, "fhir", "", clock_.NowMicros(), std::string_view("{\"resourceType\":\"Bundle\"}"));
  }).ok());
  auto items = Claim("fhir");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].payload, "{\"resourceType\":\"Bundle\"}");
  ASSERT_TRUE(queue_->DeadLetter(items[0], "x").ok());
  ASSERT_TRUE(queue_->ReprocessAll("fhir").ok());
  EXPECT_EQ(Claim("fhir").at(0).payload, "{\"resourceType\":\"Bundle\"}");
}

TEST_F(QueueTest, ReleaseMakesTheRowClaimableAtOnce) {
  Route("C1", "out");
  auto item = Claim("out");
  ASSERT_TRUE(queue_->Release(item[0]).ok());
  auto again = Claim("out", "node-b");
  ASSERT_THAT(ControlIds(again), ElementsAre("C1"));
  EXPECT_EQ(again[0].attempt, 0);
  EXPECT_THAT(States(again[0].message_id), ElementsAre("received", "routed"));
}

TEST_F(QueueTest, RunsFollowTheHeadOfEachPartitionInOrder) {
  for (int i = 1; i <= 5; ++i) Route("a-" + std::to_string(i), "out", "A");
  Route("b-1", "out", "B");
  auto r = queue_->Claim("out", "node-a", 10, absl::Minutes(1), /*run_length=*/3);
  ASSERT_TRUE(r.ok()) << r.status();
  // Each partition's run is consecutive and in order; at most 3 rows per partition.
  EXPECT_THAT(ControlIds(*r), ::testing::ElementsAre("a-1", "a-2", "a-3", "b-1"));
  // The heads are leased: nothing more until the run is settled.
  EXPECT_THAT(ControlIds(Claim("out")), ::testing::IsEmpty());
  std::vector<QueueItem> run_a(r->begin(), r->begin() + 3);
  std::vector<bool> lost;
  ASSERT_TRUE(queue_->AckAll(run_a, &lost).ok());
  EXPECT_THAT(lost, ::testing::ElementsAre(false, false, false));
  for (const QueueItem& it : run_a) {  // one statement each for the run's events and states
    EXPECT_THAT(States(it.message_id), ::testing::ElementsAre("received", "routed", "delivered:out"));
    auto rec = journal_->Get(it.message_id);
    ASSERT_TRUE(rec.ok());
    EXPECT_EQ(rec->state, "delivered:out");
    EXPECT_EQ(rec->events.back().reason, "attempt 1");
  }
  EXPECT_EQ(queue_->CountsFor("out")->delivered, 3);
  auto next = queue_->Claim("out", "node-a", 10, absl::Minutes(1), 3);
  ASSERT_TRUE(next.ok());
  EXPECT_THAT(ControlIds(*next), ::testing::ElementsAre("a-4", "a-5"));
}

TEST_F(QueueTest, ARunStopsAtARowThatIsNotClaimable) {
  Route("m-1", "out");
  Route("m-2", "out");
  Route("m-3", "out");
  // m-2 is leased by another owner (as after a crash of a node that had claimed it alone, with
  // m-1 acked and re-enqueued ahead of it by a reprocess: rare, but the run must not skip it).
  ASSERT_TRUE(writer_->Run([&](db::Connection& c) {
    return c.Exec("UPDATE queue SET lease_owner = 'node-b', lease_until = " +
                  std::to_string(clock_.NowMicros() + 60'000'000) + " WHERE id = 2");
  }).ok());
  auto r = queue_->Claim("out", "node-a", 1, absl::Minutes(1), 10);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(ControlIds(*r), ::testing::ElementsAre("m-1"));
}

TEST_F(QueueTest, AckAllOfPartOfARunLeavesTheOtherRowsQueued) {
  for (int i = 1; i <= 4; ++i) Route("a-" + std::to_string(i), "out", "A");
  auto r = queue_->Claim("out", "node-a", 1, absl::Minutes(1), 4);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 4u);
  // a-1 and a-3 delivered, a-2 and a-4 not (not a pattern the dispatcher makes, but AckAll must
  // delete exactly the rows it is given, not the range between them).
  std::vector<QueueItem> some = {(*r)[0], (*r)[2]};
  std::vector<bool> lost;
  ASSERT_TRUE(queue_->AckAll(some, &lost).ok());
  EXPECT_THAT(lost, ::testing::ElementsAre(false, false));
  EXPECT_EQ(queue_->CountsFor("out")->delivered, 2);
  ASSERT_TRUE(queue_->ReleaseAll({(*r)[1], (*r)[3]}).ok());
  EXPECT_THAT(ControlIds(Claim("out")), ::testing::ElementsAre("a-2"));
}

TEST_F(QueueTest, AckAllOfARunWithARowGoneAcksTheOthers) {
  for (int i = 1; i <= 3; ++i) Route("a-" + std::to_string(i), "out", "A");
  auto r = queue_->Claim("out", "node-a", 1, absl::Minutes(1), 3);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  const int64_t gone = (*r)[1].id;
  ASSERT_TRUE(writer_->Run([&](db::Connection& c) {
    return c.Exec("DELETE FROM queue WHERE id = " + std::to_string(gone));
  }).ok());
  std::vector<bool> lost;
  ASSERT_TRUE(queue_->AckAll(*r, &lost).ok());
  EXPECT_THAT(lost, ::testing::ElementsAre(false, true, false));
  EXPECT_EQ(queue_->CountsFor("out")->delivered, 2);
  EXPECT_THAT(States((*r)[2].message_id), ::testing::ElementsAre("received", "routed",
                                                                 "delivered:out"));
  EXPECT_THAT(Claim("out"), ::testing::IsEmpty());
}

TEST_F(QueueTest, AckAllSkipsRowsWhoseLeaseWasLost) {
  Route("m-1", "out");
  Route("m-2", "out");
  auto r = queue_->Claim("out", "node-a", 1, absl::Minutes(1), 2);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  clock_.Advance(absl::Minutes(2));  // both leases expire; node-b takes m-1 and m-2
  auto b = queue_->Claim("out", "node-b", 1, absl::Minutes(1), 1);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  std::vector<bool> lost;
  ASSERT_TRUE(queue_->AckAll(*r, &lost).ok());
  // m-1 is node-b's now; m-2's lease expired but nobody else holds it: still node-a's row.
  EXPECT_THAT(lost, ::testing::ElementsAre(true, false));
  EXPECT_EQ(queue_->CountsFor("out")->delivered, 1);
  auto released = queue_->ReleaseAll(*b);
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(*released, 1);
  EXPECT_THAT(ControlIds(Claim("out")), ::testing::ElementsAre("m-1"));
}

TEST_F(QueueTest, AckAllOfARunWithOneMessageTwiceRecordsBothDeliveries) {
  // A message reprocessed while its first queue row still waits: two rows of one message in
  // one run (the run's set-based path must not merge or drop either). Each delivery is its own
  // event, after the message's earlier ones.
  const int64_t id = Route("m-1", "out");
  ASSERT_TRUE(writer_->Run([&](db::Connection& c) {
    return Queue::Enqueue(c, id, "out", "", clock_.NowMicros());
  }).ok());
  Route("m-2", "out");
  auto r = queue_->Claim("out", "node-a", 1, absl::Minutes(1), 3);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  std::vector<bool> lost;
  ASSERT_TRUE(queue_->AckAll(*r, &lost).ok());
  EXPECT_THAT(lost, ::testing::ElementsAre(false, false, false));
  EXPECT_EQ(queue_->CountsFor("out")->delivered, 3);
  EXPECT_THAT(States(id), ::testing::ElementsAre("received", "routed", "delivered:out",
                                                 "delivered:out"));
  EXPECT_THAT(Claim("out"), ::testing::IsEmpty());
}

TEST_F(QueueTest, MigrationNineDropsTheUnusedIndexAndKeepsTheRows) {
  // A store at version 8 with a queued row, as an earlier release left it.
  queue_.reset();
  journal_.reset();
  writer_.reset();
  std::filesystem::remove(path_);
  {
    auto conn = db::OpenSqlite(path_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    std::vector<std::string_view> first_eight(SchemaMigrations().begin(),
                                              SchemaMigrations().begin() + 8);
    ASSERT_TRUE(db::Migrate(**conn, first_eight).ok());
    ASSERT_TRUE((*conn)->Exec(
        "INSERT INTO messages (id, channel, sender, control_id, message_type, peer, received_at, "
        "state) VALUES (1, 'lab', 'LAB^HOSP', 'OLD1', 'ORU^R01', 'p', 1, 'queued');"
        "INSERT INTO message_bodies (id, raw) VALUES (1, 'MSH|^~\\&|LAB|HOSP|||x||ORU^R01|OLD1|P|2.5');"
        "INSERT INTO queue (destination, message_id, partition_key, attempt, next_attempt_at, "
        "enqueued_at, lease_owner, lease_until, last_error, payload) "
        "VALUES ('out', 1, '', 0, 0, 0, NULL, 0, '', NULL);").ok());
  }
  Open();  // migrates
  auto reader = writer_->OpenReader();
  ASSERT_TRUE(reader.ok());
  auto q = (*reader)->Prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'queue_by_message'");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->ColumnInt64(0), 0);
  EXPECT_THAT(ControlIds(Claim("out")), ::testing::ElementsAre("OLD1"));
}

}  // namespace
}  // namespace isthmus::store

namespace isthmus::store {
namespace {

// Claim reads on the reader connection: when nothing is due it costs the writer nothing (it used
// to take a group commit, i.e. an fsync, per empty poll).
TEST_F(QueueTest, AnEmptyClaimDoesNotWrite) {
  Route("C1", "out");
  ASSERT_EQ(Claim("out").size(), 1u);
  const uint64_t ops = writer_->stats().ops;
  EXPECT_THAT(Claim("out"), IsEmpty());      // C1 leased: nothing claimable
  EXPECT_THAT(Claim("nothing"), IsEmpty());  // no such queue
  EXPECT_EQ(writer_->stats().ops, ops);
}

// Two owners claiming the same queue at once (read on the reader, lease on the writer): every
// row is leased to exactly one of them (a lost race reads again, or reports kAborted).
TEST_F(QueueTest, ConcurrentClaimsNeverLeaseARowTwice) {
  for (int i = 0; i < 60; ++i) Route(base::StrCat("C", i), "out", base::StrCat("p", i % 3));
  std::vector<QueueItem> got[2];
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      const std::string owner = base::StrCat("node-", t);
      for (int round = 0; round < 200; ++round) {
        auto r = queue_->Claim("out", owner, 3, absl::Minutes(1), 4);
        ASSERT_TRUE(r.ok() || r.status().code() == absl::StatusCode::kAborted) << r.status();
        if (!r.ok()) continue;
        std::vector<bool> lost;
        ASSERT_TRUE(queue_->AckAll(*r, &lost).ok());
        for (size_t i = 0; i < r->size(); ++i) {
          EXPECT_FALSE(lost[i]) << (*r)[i].control_id;
          got[t].push_back((*r)[i]);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> seen;
  for (const auto& g : got) {
    for (const auto& it : g) EXPECT_TRUE(seen.insert(it.control_id).second) << it.control_id << " twice";
  }
  EXPECT_EQ(seen.size(), 60u);
  ExpectReferencesIntact();
}

}  // namespace
}  // namespace isthmus::store
