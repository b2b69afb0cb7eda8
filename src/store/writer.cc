#include "store/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

#include "base/status_macros.h"
#include "base/str.h"
#include "base/thread_name.h"
#include "db/sqlite.h"
#include "store/schema.h"

namespace isthmus::store {

namespace {

int FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

absl::Status ErrnoError(std::string_view what, int err) {
  return absl::UnavailableError(base::StrCat(what, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(const std::string& path, WriterOptions opts) {
  if (path.empty() || path == ":memory:") {
    return absl::InvalidArgumentError("the store needs a database file");
  }
  if (opts.max_batch < 1) opts.max_batch = 1;
  if (!opts.sync_wal) opts.sync_wal = [](int fd) { return ::fdatasync(fd) == 0 ? 0 : errno; };
  std::unique_ptr<Writer> w(new Writer(path, std::move(opts)));
  ISTHMUS_ASSIGN_OR_RETURN(w->conn_, db::OpenSqlite(path));
  ISTHMUS_RETURN_IF_ERROR(db::Migrate(*w->conn_, SchemaMigrations()));
  ISTHMUS_RETURN_IF_ERROR(w->StartSyncer());
  w->thread_ = std::thread([raw = w.get()] {
    base::SetThreadName("writer");
    raw->Loop();
  });
  return w;
}

// The WAL file exists once a connection has read the database in WAL mode (the migrations did)
// and stays while the writer's connection is open (SQLite deletes it when the last connection
// closes). Its directory entry is made durable once here: SQLite would fsync the directory at
// the WAL's first sync, which synchronous=NORMAL postpones to the first checkpoint.
absl::Status Writer::StartSyncer() {
  const std::string wal = path_ + "-wal";
  int fd = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(base::StrCat("cannot open the write-ahead log ", wal), errno);
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (dir.empty()) dir = ".";
  if (int err = FsyncPath(dir, O_RDONLY | O_DIRECTORY); err != 0) {
    ::close(fd);
    return ErrnoError(base::StrCat("cannot sync the directory ", dir), err);
  }
  // Foreign keys: see the header.
  absl::Status s = conn_->Exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF");
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  wal_fd_ = fd;
  syncer_ = std::thread([this] {
    base::SetThreadName("wal-sync");
    SyncLoop();
  });
  return absl::OkStatus();
}

Writer::~Writer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // runs every queued op and waits for their syncs
  {
    std::lock_guard<std::mutex> lock(mu_);
    syncer_stopping_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  if (wal_fd_ >= 0) ::close(wal_fd_);
}

void Writer::Submit(Op op, Done done, Isolation isolation) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(op), std::move(done), isolation});
      cv_.notify_one();
      return;
    }
  }
  std::move(done)(absl::UnavailableError("the store is shutting down"));
}

absl::Status Writer::Run(Op op) {
  std::promise<absl::Status> promise;
  auto future = promise.get_future();
  Submit(std::move(op), [&promise](absl::Status s) mutable { promise.set_value(std::move(s)); });
  return future.get();
}

void Writer::Barrier() {
  // An empty op is answered after everything submitted before it (Submit answers at once when
  // the writer is stopping: its destructor then runs what was queued before returning).
  Run([](db::Connection&) { return absl::OkStatus(); }).IgnoreError();
}

absl::StatusOr<std::unique_ptr<db::Connection>> Writer::OpenReader() const {
  return db::OpenSqlite(path_);
}

void Writer::SyncLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    sync_cv_.wait(lock, [&] { return syncer_stopping_ || sync_requested_ > synced_; });
    if (sync_requested_ <= synced_) return;  // stopping, nothing left to sync
    const uint64_t target = sync_requested_;
    lock.unlock();
    const int err = opts_.sync_wal(wal_fd_);
    lock.lock();
    if (err != 0 && sync_error_.ok()) {
      sync_error_ = ErrnoError(
          "the write-ahead log could not be synced to disk; the store refuses further writes "
          "(restart once the disk is healthy)", err);
    }
    synced_ = target;
    ++stats_.syncs;
    cv_.notify_all();
  }
}

void Writer::RunSynced(uint64_t synced, const absl::Status& sync_error) {
  while (!committed_.empty() && committed_.front().seq <= synced) {
    Committed c = std::move(committed_.front());
    committed_.pop_front();
    for (size_t i = 0; i < c.dones.size(); ++i) {
      std::move(c.dones[i])(sync_error.ok() ? std::move(c.results[i]) : sync_error);
    }
  }
}

void Writer::DrainCommitted() {
  if (committed_.empty()) return;
  const uint64_t last = committed_.back().seq;
  absl::Status sync_error;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return synced_ >= last; });
    sync_error = sync_error_;
  }
  RunSynced(last, sync_error);
}

void Writer::Loop() {
  std::vector<Pending> batch;
  std::vector<absl::Status> results;
  uint64_t seen_synced = 0;
  while (true) {
    uint64_t synced;
    absl::Status sync_error;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || synced_ > seen_synced; });
      synced = synced_;
      sync_error = sync_error_;
      if (queue_.empty() && synced_ == seen_synced) {
        lock.unlock();
        DrainCommitted();  // stopping: nothing queued; wait for the last syncs
        return;
      }
      while (!queue_.empty() && batch.size() < opts_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    seen_synced = synced;
    RunSynced(synced, sync_error);
    if (batch.empty()) continue;
    results.assign(batch.size(), absl::OkStatus());
    // After a failed sync nothing more is written (see the header).
    absl::Status commit = sync_error.ok() ? Exec("BEGIN IMMEDIATE") : sync_error;
    if (commit.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].isolation == Isolation::kGroup) {
          results[i] = std::move(batch[i].op)(*conn_);
          if (!results[i].ok()) {
            commit = absl::Status(results[i].code(),
                                  base::StrCat("the group's transaction was rolled back: ",
                                               std::string(results[i].message())));
            break;  // the ops after it never run; every op gets the group's error below
          }
          continue;
        }
        absl::Status s = Exec("SAVEPOINT op");
        if (s.ok()) s = std::move(batch[i].op)(*conn_);
        if (!s.ok()) Exec("ROLLBACK TO op").IgnoreError();
        Exec("RELEASE op").IgnoreError();
        results[i] = s;
      }
      if (commit.ok()) commit = Exec("COMMIT");
      if (!commit.ok()) Exec("ROLLBACK").IgnoreError();
    }
    uint64_t failed = 0;
    for (absl::Status& s : results) {
      if (!commit.ok()) s = commit;
      failed += !s.ok();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.ops += batch.size();
      stats_.failed_ops += failed;
      (commit.ok() ? stats_.commits : stats_.failed_commits) += 1;
      if (commit.ok()) sync_requested_ = ++commit_seq_;
    }
    if (commit.ok()) {
      sync_cv_.notify_one();
      Committed c{commit_seq_, {}, std::move(results)};
      c.dones.reserve(batch.size());
      for (Pending& p : batch) c.dones.push_back(std::move(p.done));
      committed_.push_back(std::move(c));
      results = {};
      // A failed op is reported before the next group runs (its group's other ops are
      // committed: their callbacks wait for the sync like any others).
      if (failed > 0) DrainCommitted();
    } else {
      // Nothing of this group was written; report it before the next group runs, after every
      // earlier group's callbacks.
      DrainCommitted();
      for (size_t i = 0; i < batch.size(); ++i) std::move(batch[i].done)(std::move(results[i]));
    }
    batch.clear();
  }
}

absl::Status Writer::Exec(std::string_view sql) {
  // Prepared once: SAVEPOINT/RELEASE run twice per op, and sqlite3_exec parsed them every time
  // (sqlite3_prepare showed as ~6% of the writer thread under perf).
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement * stmt, conn_->PrepareCached(sql));
  absl::Status s = stmt->Step().status();
  stmt->Reset();
  return s;
}

WriterStats Writer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t Writer::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace isthmus::store
