#include "store/journal.h"

#include <filesystem>
#include <future>
#include <thread>

#include "base/str.h"
#include "db/sqlite.h"
#include "gtest/gtest.h"
#include "store/schema.h"

namespace isthmus::store {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("journal_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "isthmus.db").string();
    opts_.clock = &clock_;
    writer_ = std::move(Writer::Open(path_)).value();
  }
  absl::StatusOr<std::unique_ptr<Journal>> OpenJournal() { return Journal::Open(*writer_, opts_); }
  // Closes and reopens the database, as a restart would.
  void Restart() {
    writer_.reset();
    writer_ = std::move(Writer::Open(path_)).value();
  }
  static IncomingMessage Msg(std::string control_id, std::string sender = "LAB^HOSP") {
    return IncomingMessage{"default", std::move(sender), control_id, "ADT^A01", "127.0.0.1:5000",
                           "MSH|^~\\&|LAB|HOSP|||x||ADT^A01|" + control_id + "|P|2.5\r"};
  }
  std::filesystem::path dir_;
  std::string path_;
  base::FakeClock clock_;
  JournalOptions opts_;
  std::unique_ptr<Writer> writer_;
};

TEST_F(JournalTest, AppendThenGetWithEvents) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok()) << j.status();
  auto r = (*j)->AppendAndWait(Msg("C1"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->duplicate);
  auto rec = (*j)->Get(r->id);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->control_id, "C1");
  EXPECT_EQ(rec->state, "received");
  EXPECT_EQ(rec->raw, Msg("C1").raw);
  ASSERT_EQ(rec->events.size(), 1u);
  EXPECT_EQ(rec->events[0].state, "received");
  EXPECT_EQ((*j)->Get(999).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JournalTest, DuplicateWithinWindowIsNotStoredTwice) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  auto first = (*j)->AppendAndWait(Msg("C1"));
  auto again = (*j)->AppendAndWait(Msg("C1"));
  auto other_sender = (*j)->AppendAndWait(Msg("C1", "RIS^HOSP"));
  ASSERT_TRUE(first.ok() && again.ok() && other_sender.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->id, first->id);
  EXPECT_FALSE(other_sender->duplicate);
  auto rec = (*j)->Get(first->id);
  ASSERT_EQ(rec->events.size(), 2u);
  EXPECT_EQ(rec->events[1].state, "duplicate");
  EXPECT_EQ((*j)->stats().duplicates, 1u);
  EXPECT_EQ((*j)->stats().appended, 2u);

  clock_.Advance(absl::Hours(25));  // past the default 24 h window: a new message
  auto later = (*j)->AppendAndWait(Msg("C1"));
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(later->duplicate);
  EXPECT_NE(later->id, first->id);
}

TEST_F(JournalTest, SurvivesReopen) {
  int64_t id;
  {
    auto j = OpenJournal();
    ASSERT_TRUE(j.ok());
    id = (*j)->AppendAndWait(Msg("C9"))->id;
  }
  Restart();
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  auto rec = (*j)->Get(id);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->control_id, "C9");
  // Deduplication holds across restarts too.
  EXPECT_TRUE((*j)->AppendAndWait(Msg("C9"))->duplicate);
}

TEST_F(JournalTest, ConcurrentAppendsShareCommits) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = (*j)->AppendAndWait(Msg("T" + std::to_string(t) + "-" + std::to_string(i)));
        if (r.ok() && !r->duplicate) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  JournalStats s = (*j)->stats();
  EXPECT_EQ(s.appended, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(s.failed, 0u);
  // With 8 writers waiting on each other's fsync, commits group several appends.
  WriterStats ws = writer_->stats();
  EXPECT_EQ(ws.failed_commits, 0u);
  EXPECT_LT(ws.commits, s.appended);
  int64_t total = 0;
  auto list = (*j)->List(MessageQuery{}, &total);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(total, kThreads * kPerThread);
}

TEST_F(JournalTest, ListFiltersAndEventsChangeState) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  auto a = (*j)->AppendAndWait(Msg("A"));
  clock_.Advance(absl::Seconds(10));
  auto b = (*j)->AppendAndWait(Msg("B"));
  ASSERT_TRUE((*j)->RecordEvent(b->id, "failed", "no route").ok());
  int64_t total = 0;
  MessageQuery q;
  q.state = "failed";
  auto list = (*j)->List(q, &total);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(total, 1);
  EXPECT_EQ((*list)[0].id, b->id);
  q = MessageQuery{};
  q.control_id = "A";
  list = (*j)->List(q, &total);
  ASSERT_EQ(total, 1);
  EXPECT_EQ((*list)[0].id, a->id);
  q = MessageQuery{};
  q.since_micros = clock_.NowMicros();
  list = (*j)->List(q, &total);
  EXPECT_EQ(total, 1);
  q = MessageQuery{};
  q.limit = 1;
  list = (*j)->List(q, &total);
  EXPECT_EQ(total, 2);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, b->id);  // newest first
}

TEST_F(JournalTest, SharedRawBytesAreJournaled) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  IncomingMessage m = Msg("S1");
  auto bytes = std::make_shared<const std::string>(m.raw);
  m.raw.clear();
  m.shared_raw = bytes;
  auto r = (*j)->AppendAndWait(m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*j)->Get(r->id)->raw, *bytes);
}

// An outcome written with the message: the row goes in with the outcome's state, the events
// tell "received" then the outcome; without the state the append is refused (the row would
// stay "received" and be processed again after a restart).
TEST_F(JournalTest, OutcomeWrittenWithTheMessageSetsItsState) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  IncomingMessage m = Msg("T1");
  m.then = [](db::Connection& conn, int64_t id) {
    return Journal::AddEvent(conn, id, 7, "filtered", "test patient");
  };
  m.then_state = "filtered";
  auto r = (*j)->AppendAndWait(m);
  ASSERT_TRUE(r.ok()) << r.status();
  auto rec = (*j)->Get(r->id);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, "filtered");
  ASSERT_EQ(rec->events.size(), 2u);
  EXPECT_EQ(rec->events[0].state, "received");
  EXPECT_EQ(rec->events[1].state, "filtered");

  IncomingMessage no_state = Msg("T2");
  no_state.then = m.then;
  EXPECT_EQ((*j)->AppendAndWait(no_state).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JournalTest, WriterRejectsInMemoryPath) { EXPECT_FALSE(Writer::Open(":memory:").ok()); }

TEST_F(JournalTest, FailingOpRollsBackAloneWithinAGroup) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  // Queue a failing op between two appends; the appends still commit.
  std::promise<absl::StatusOr<AppendResult>> a, b;
  std::promise<absl::Status> bad;
  (*j)->Append(Msg("G1"), [&](absl::StatusOr<AppendResult> r) { a.set_value(r); });
  writer_->Submit(
      [](db::Connection& c) {
        absl::Status s = c.Exec("INSERT INTO messages (id) VALUES (NULL)");  // NOT NULL violations
        return s;
      },
      [&](absl::Status s) { bad.set_value(s); });
  (*j)->Append(Msg("G2"), [&](absl::StatusOr<AppendResult> r) { b.set_value(r); });
  EXPECT_TRUE(a.get_future().get().ok());
  EXPECT_FALSE(bad.get_future().get().ok());
  EXPECT_TRUE(b.get_future().get().ok());
  int64_t total = 0;
  ASSERT_TRUE((*j)->List(MessageQuery{}, &total).ok());
  EXPECT_EQ(total, 2);
}

TEST_F(JournalTest, FailingGroupIsolatedOpRollsBackItsWholeGroup) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  // Hold the writer inside a first group so the next three submissions form one group.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> holding;
  writer_->Submit(
      [&, released](db::Connection&) {
        holding.set_value();
        released.wait();
        return absl::OkStatus();
      },
      [](absl::Status) {});
  holding.get_future().wait();
  std::promise<absl::StatusOr<AppendResult>> a, c;
  std::promise<absl::Status> bad;
  (*j)->Append(Msg("G1"), [&](absl::StatusOr<AppendResult> r) { a.set_value(r); });
  writer_->Submit(
      [](db::Connection& conn) {
        // Writes, then fails: without a savepoint of its own, only a rollback of the whole
        // group can undo the write.
        absl::Status s = conn.Exec(
            "INSERT INTO messages (channel, sender, control_id, message_type, peer, received_at, "
            "state) VALUES ('x', 'x', 'BAD', 'x', 'x', 0, 'received')");
        if (!s.ok()) return s;
        return absl::DataLossError("disk went away");
      },
      [&](absl::Status s) { bad.set_value(s); }, Writer::Isolation::kGroup);
  (*j)->Append(Msg("G2"), [&](absl::StatusOr<AppendResult> r) { c.set_value(r); });
  release.set_value();
  absl::StatusOr<AppendResult> ra = a.get_future().get();
  absl::Status rbad = bad.get_future().get();
  absl::StatusOr<AppendResult> rc = c.get_future().get();
  EXPECT_EQ(rbad.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(rbad.message()).find("disk went away"), std::string::npos) << rbad;
  EXPECT_EQ(ra.status().code(), absl::StatusCode::kDataLoss);  // committed nothing: told so
  EXPECT_EQ(rc.status().code(), absl::StatusCode::kDataLoss);
  int64_t total = -1;
  ASSERT_TRUE((*j)->List(MessageQuery{}, &total).ok());
  EXPECT_EQ(total, 0);  // G1, the failing op's row and G2: all rolled back
  // The writer goes on with the next group.
  auto after = (*j)->AppendAndWait(Msg("G3"));
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE((*j)->List(MessageQuery{}, &total).ok());
  EXPECT_EQ(total, 1);
}

TEST_F(JournalTest, MigrationThreeMovesBodiesOutOfTheMessageRows) {
  // A store written before migration 3: the raw bytes in the messages row.
  writer_.reset();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  {
    auto conn = db::OpenSqlite(path_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    std::vector<std::string_view> first_two(SchemaMigrations().begin(),
                                            SchemaMigrations().begin() + 2);
    ASSERT_TRUE(db::Migrate(**conn, first_two).ok());
    ASSERT_TRUE((*conn)->Exec(
        "INSERT INTO messages (channel, sender, control_id, message_type, peer, received_at, "
        "state, raw) VALUES ('default', 'LAB', 'OLD1', 'ADT^A01', 'p', 1, 'processed', "
        "'MSH|old body')").ok());
  }
  writer_ = std::move(Writer::Open(path_)).value();  // migrates to the current schema
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  auto old = (*j)->Get(1);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->raw, "MSH|old body");
  EXPECT_EQ(old->state, "processed");
  auto r = (*j)->AppendAndWait(Msg("NEW1"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*j)->Get(r->id)->raw, Msg("NEW1").raw);
}

TEST_F(JournalTest, EventsOfOneMessageKeepTheirOrderAcrossTransactions) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok());
  auto a = (*j)->AppendAndWait(Msg("E1"));
  auto b = (*j)->AppendAndWait(Msg("E2"));
  ASSERT_TRUE(a.ok() && b.ok());
  // Events of the two messages interleave in time; each message's list keeps its own order.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*j)->RecordEvent(a->id, "step", base::StrCat("a", i)).ok());
    ASSERT_TRUE((*j)->RecordEvent(b->id, "step", base::StrCat("b", i)).ok());
  }
  // A retransmission is an event of the original.
  auto dup = (*j)->AppendAndWait(Msg("E1"));
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  auto got = (*j)->Get(a->id);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->events.size(), 7u);
  EXPECT_EQ(got->events[0].state, "received");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(got->events[1 + i].reason, base::StrCat("a", i));
  EXPECT_EQ(got->events[6].state, "duplicate");
}

}  // namespace
}  // namespace isthmus::store

namespace isthmus::store {
namespace {

// The journal's writer ops and callbacks refer to it: destroying it waits for the appends it
// handed to the writer (their callbacks run after the WAL sync, on the writer thread).
TEST_F(JournalTest, DestroyingTheJournalWaitsForItsAppends) {
  auto j = OpenJournal();
  ASSERT_TRUE(j.ok()) << j.status();
  std::atomic<int> answered{0};
  for (int i = 0; i < 300; ++i) {
    (*j)->Append(Msg(base::StrCat("D", i)), [&](absl::StatusOr<AppendResult> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      ++answered;
    });
  }
  j->reset();  // returns only once every append above was answered
  EXPECT_EQ(answered.load(), 300);
}

}  // namespace
}  // namespace isthmus::store
