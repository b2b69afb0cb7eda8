#include "store/writer.h"

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "base/str.h"
#include "gtest/gtest.h"

namespace isthmus::store {
namespace {

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("writer_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "isthmus.db").string();
  }
  std::unique_ptr<Writer> Open(WriterOptions o = {}) {
    auto w = Writer::Open(path_, std::move(o));
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? std::move(*w) : nullptr;
  }
  static Writer::Op Insert(int v) {
    return [v](db::Connection& c) { return c.Exec(base::StrCat("INSERT INTO t VALUES (", v, ")")); };
  }
  static int64_t Count(Writer& w) {
    auto r = w.OpenReader();
    auto q = (*r)->Prepare("SELECT COUNT(*) FROM t");
    EXPECT_TRUE((*q)->Step().ok());
    return (*q)->ColumnInt64(0);
  }
  std::filesystem::path dir_;
  std::string path_;
};

// A group's callbacks run only after a WAL sync that started once its COMMIT had returned.
TEST_F(WriterTest, CallbackRunsAfterTheSyncThatFollowsItsCommit) {
  std::atomic<Writer*> writer{nullptr};
  std::mutex mu;
  std::vector<uint64_t> commits_at_sync;  // commits done when each sync started
  WriterOptions o;
  o.sync_wal = [&](int fd) {
    std::lock_guard<std::mutex> lock(mu);
    commits_at_sync.push_back(writer.load()->stats().commits);
    return fdatasync(fd) == 0 ? 0 : errno;
  };
  auto w = Open(std::move(o));
  ASSERT_NE(w, nullptr);
  writer = w.get();
  ASSERT_TRUE(w->Run([](db::Connection& c) { return c.Exec("CREATE TABLE t (v INTEGER)"); }).ok());
  std::promise<size_t> syncs_seen;
  w->Submit(Insert(1), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    std::lock_guard<std::mutex> lock(mu);
    size_t after_second_commit = 0;
    for (uint64_t c : commits_at_sync) after_second_commit += c >= 2;
    syncs_seen.set_value(after_second_commit);
  });
  EXPECT_GE(syncs_seen.get_future().get(), 1u);
  EXPECT_EQ(Count(*w), 1);
  EXPECT_GE(w->stats().syncs, 2u);
}

// fsyncgate: a failed fdatasync cannot be retried into a success. The group gets the error, and
// so does every later write, instead of being acknowledged as durable.
TEST_F(WriterTest, FailedSyncFailsTheGroupAndEveryLaterWrite) {
  std::atomic<bool> fail{false};
  WriterOptions o;
  o.sync_wal = [&](int fd) { return fail.load() ? EIO : (fdatasync(fd) == 0 ? 0 : errno); };
  auto w = Open(std::move(o));
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->Run([](db::Connection& c) { return c.Exec("CREATE TABLE t (v INTEGER)"); }).ok());
  ASSERT_TRUE(w->Run(Insert(1)).ok());
  fail = true;
  absl::Status s = w->Run(Insert(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("could not be synced"), std::string::npos) << s;
  fail = false;  // the disk "recovers": the writer still refuses, the sync's loss is unknown
  s = w->Run(Insert(3));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(Count(*w), 2);  // 2 was committed to the WAL before its sync failed; 3 never ran
}

// Callbacks run in commit order: each submitter sees its own ops complete in submission order.
TEST_F(WriterTest, ConcurrentSubmittersSeeTheirCallbacksInOrder) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->Run([](db::Connection& c) { return c.Exec("CREATE TABLE t (v INTEGER)"); }).ok());
  constexpr int kThreads = 4, kPerThread = 500;
  std::vector<std::vector<int>> done_order(kThreads);
  std::atomic<int> remaining{kThreads * kPerThread};
  std::promise<void> all_done;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        w->Submit(Insert(t * kPerThread + i), [&, t, i](absl::Status s) {
          EXPECT_TRUE(s.ok()) << s;
          done_order[t].push_back(i);  // callbacks run on the writer thread only
          if (--remaining == 0) all_done.set_value();
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  all_done.get_future().wait();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(done_order[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(done_order[t][i], i) << "thread " << t;
  }
  EXPECT_EQ(Count(*w), kThreads * kPerThread);
  EXPECT_LT(w->stats().commits, static_cast<uint64_t>(kThreads * kPerThread) + 1);
}

// A failure is reported before the next group executes (the pipeline parks later outcomes of a
// channel when an earlier one failed, and decides that inside its next op).
TEST_F(WriterTest, AFailedOpIsReportedBeforeTheNextGroupRuns) {
  for (Writer::Isolation iso : {Writer::Isolation::kGroup, Writer::Isolation::kSavepoint}) {
    WriterOptions o;
    o.max_batch = 1;  // one op per group
    auto w = Open(std::move(o));
    ASSERT_NE(w, nullptr);
    ASSERT_TRUE(w->Run([](db::Connection& c) { return c.Exec("CREATE TABLE IF NOT EXISTS t (v INTEGER)"); }).ok());
    std::atomic<bool> failure_seen{false};
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    // Holds the writer so the next two ops queue behind it, each in a group of its own.
    w->Submit([released](db::Connection&) { released.wait(); return absl::OkStatus(); },
              [](absl::Status) {});
    w->Submit([](db::Connection&) { return absl::InternalError("boom"); },
              [&](absl::Status s) {
                EXPECT_FALSE(s.ok());
                failure_seen = true;
              },
              iso);
    std::promise<bool> seen_by_next;
    w->Submit(
        [&](db::Connection&) {
          seen_by_next.set_value(failure_seen.load());
          return absl::OkStatus();
        },
        [](absl::Status) {});
    release.set_value();
    EXPECT_TRUE(seen_by_next.get_future().get()) << "isolation " << static_cast<int>(iso);
  }
}

// The writer drains on destruction: every submitted op has run and been answered.
TEST_F(WriterTest, DestructionAnswersEverySubmittedOp) {
  std::atomic<int> answered{0};
  {
    auto w = Open();
    ASSERT_NE(w, nullptr);
    ASSERT_TRUE(w->Run([](db::Connection& c) { return c.Exec("CREATE TABLE t (v INTEGER)"); }).ok());
    for (int i = 0; i < 200; ++i) {
      w->Submit(Insert(i), [&](absl::Status s) {
        EXPECT_TRUE(s.ok()) << s;
        ++answered;
      });
    }
  }
  EXPECT_EQ(answered.load(), 200);
  auto w = Open();
  EXPECT_EQ(Count(*w), 200);
}

}  // namespace
}  // namespace isthmus::store
