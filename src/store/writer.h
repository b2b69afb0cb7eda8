// The store's single writer: every write to the database goes through it, so concurrent writes
// share one transaction (group commit) and the throughput is not capped by the fsync rate.
//
// An Op runs on the writer thread inside the group's transaction, within its own SAVEPOINT: a
// failing op is rolled back alone, the others commit. `done` runs once the group's COMMIT is
// durable, so an OK status means the op's writes survive a process crash and a power loss. If
// the COMMIT itself fails, every op of the group gets that error and nothing of the group is
// stored.
//
// Durability off the writer's critical path: the connection runs with synchronous=NORMAL (a
// COMMIT appends its pages to the WAL without waiting for the disk) and a second thread, the
// syncer, fdatasyncs the WAL file after each commit; a group's `done` callbacks run only after a
// sync that started after its COMMIT returned. Meanwhile the writer executes the next group, so
// the CPU work of one group overlaps the flush of the previous ones (group commit in a pipeline;
// one fdatasync covers every group committed while the previous one ran). SQLite itself syncs the
// WAL before every checkpoint and the database after it, so nothing reaches the database file
// unsynced. A failed fdatasync cannot be undone (the pages are committed, maybe not on disk): the
// writer then fails those groups and every later op ("fsyncgate": retrying the sync would lie).
//
// Foreign keys are declared in the schema but not enforced on the writer's connection: checking
// them cost SQLite a lookup per inserted event or queue row, ~9% of the writer's instructions
// per MLLP -> file message, on the engine's serial thread. The store's writes name only rows
// they just inserted or read; the tests check `PRAGMA foreign_key_check` after their workloads.
//
// Ordering: `done` callbacks run on the writer thread, group after group in commit order, between
// the groups it executes. A group with a failed op or a failed COMMIT runs its callbacks before
// the next group executes (after the callbacks of every earlier group), so a caller that reacts
// to a failure (e.g. parks later writes) does so before anything else is written.
//
// A savepoint per op costs SQLite a copy of every page the op touches (its sub-journal): an
// eighth of its work on the ingest path. Ops on the hot path that fail only when the group's
// transaction is failing anyway (I/O errors, a full disk) are submitted with Isolation::kGroup:
// they run without a savepoint, and if one does fail, the whole group is rolled back and every
// op in it gets an error, exactly as when the COMMIT fails.
//
// Thread-safety: Submit/Run/OpenReader from any thread. Ops must not block on anything but the
// database; `done` callbacks must be quick (post to your own executor).
//
// Example:
//   writer.Submit(
//       [](db::Connection& c) { return c.Exec("UPDATE messages SET state = 'sent' WHERE id = 7"); },
//       [](absl::Status s) { ... });
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "db/db.h"

namespace isthmus::store {

struct WriterStats {
  uint64_t ops = 0;
  uint64_t failed_ops = 0;
  uint64_t commits = 0;
  uint64_t failed_commits = 0;
  uint64_t syncs = 0;  // fdatasyncs of the WAL by the syncer (each covers one or more commits)
};

struct WriterOptions {
  size_t max_batch = 1024;  // ops per group at most
  // How the syncer makes the WAL durable: fdatasync(fd) by default; tests inject failures.
  // Returns 0 or an errno value.
  std::function<int(int fd)> sync_wal;
};

class Writer {
 public:
  using Op = absl::AnyInvocable<absl::Status(db::Connection&) &&>;
  using Done = absl::AnyInvocable<void(absl::Status) &&>;
  enum class Isolation {
    kSavepoint,  // a failing op is rolled back alone
    kGroup,      // a failing op rolls back its whole group (see above)
  };

  // Opens (creating) the SQLite database at `path` and applies the store's schema migrations.
  static absl::StatusOr<std::unique_ptr<Writer>> Open(const std::string& path,
                                                      WriterOptions opts = {});
  // Runs everything already submitted, then stops the writer thread.
  ~Writer();

  void Submit(Op op, Done done, Isolation isolation = Isolation::kSavepoint);
  // Submit and wait for the commit.
  absl::Status Run(Op op);
  // Returns once every op submitted before it has run and its `done` callback has returned
  // (callbacks run in submission order). For an object whose ops or callbacks refer to it, in
  // its destructor. Not from a writer callback or op (it would wait for itself).
  void Barrier();

  // A new read-only connection for one reader thread.
  absl::StatusOr<std::unique_ptr<db::Connection>> OpenReader() const;

  WriterStats stats() const;
  size_t pending() const;

 private:
  struct Pending {
    Op op;
    Done done;
    Isolation isolation;
  };
  // A committed group waiting for the sync that makes it durable (writer thread only).
  struct Committed {
    uint64_t seq;
    std::vector<Done> dones;
    std::vector<absl::Status> results;
  };
  Writer(std::string path, WriterOptions opts) : path_(std::move(path)), opts_(std::move(opts)) {}
  absl::Status StartSyncer();
  void Loop();
  void SyncLoop();
  // Runs the callbacks of the committed groups the syncer has made durable (or failed to).
  void RunSynced(uint64_t synced, const absl::Status& sync_error);
  // Waits until every committed group is synced and runs their callbacks.
  void DrainCommitted();
  // A transaction-control statement (BEGIN, SAVEPOINT, COMMIT...) on conn_.
  absl::Status Exec(std::string_view sql);

  const std::string path_;
  const WriterOptions opts_;
  std::unique_ptr<db::Connection> conn_;  // writer thread only
  int wal_fd_ = -1;                       // the WAL file, for the syncer
  std::deque<Committed> committed_;       // writer thread only
  uint64_t commit_seq_ = 0;               // writer thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;       // the writer waits: ops queued, a sync done, stopping
  std::condition_variable sync_cv_;  // the syncer waits: a sync requested, stopping
  std::deque<Pending> queue_;        // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  bool syncer_stopping_ = false;     // guarded by mu_
  uint64_t sync_requested_ = 0;      // guarded by mu_: commit seq the syncer must cover
  uint64_t synced_ = 0;              // guarded by mu_: commit seq covered by the last sync
  absl::Status sync_error_;          // guarded by mu_: sticky once a sync failed
  WriterStats stats_;                // guarded by mu_
  std::thread thread_;
  std::thread syncer_;
};

}  // namespace isthmus::store
