// The store's single writer: every write to the database goes through it, so concurrent writes
// share one transaction (group commit) and the throughput is not capped by the fsync rate.
//
// An Op runs on the writer thread inside the group's transaction, within its own SAVEPOINT: a
// failing op is rolled back alone, the others commit. `done` runs after the COMMIT returned, so
// an OK status means the op's writes are durable (synchronous=FULL in WAL mode: they survive a
// process crash and a power loss). If the COMMIT itself fails, every op of the group gets that
// error and nothing of the group is stored.
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
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "db/db.h"

namespace isthmus::store {

struct WriterStats {
  uint64_t ops = 0;
  uint64_t failed_ops = 0;
  uint64_t commits = 0;
  uint64_t failed_commits = 0;
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
                                                      size_t max_batch = 1024);
  // Runs everything already submitted, then stops the writer thread.
  ~Writer();

  void Submit(Op op, Done done, Isolation isolation = Isolation::kSavepoint);
  // Submit and wait for the commit.
  absl::Status Run(Op op);

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
  Writer(std::string path, size_t max_batch) : path_(std::move(path)), max_batch_(max_batch) {}
  void Loop();
  // A transaction-control statement (BEGIN, SAVEPOINT, COMMIT...) on conn_.
  absl::Status Exec(std::string_view sql);

  const std::string path_;
  const size_t max_batch_;
  std::unique_ptr<db::Connection> conn_;  // writer thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  WriterStats stats_;          // guarded by mu_
  std::thread thread_;
};

}  // namespace isthmus::store
