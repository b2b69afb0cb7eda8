#include "store/writer.h"

#include <future>
#include <vector>

#include "base/status_macros.h"
#include "base/str.h"
#include "base/thread_name.h"
#include "db/sqlite.h"
#include "store/schema.h"

namespace isthmus::store {

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(const std::string& path, size_t max_batch) {
  if (path.empty() || path == ":memory:") {
    return absl::InvalidArgumentError("the store needs a database file");
  }
  std::unique_ptr<Writer> w(new Writer(path, max_batch < 1 ? 1 : max_batch));
  ISTHMUS_ASSIGN_OR_RETURN(w->conn_, db::OpenSqlite(path));
  ISTHMUS_RETURN_IF_ERROR(db::Migrate(*w->conn_, SchemaMigrations()));
  w->thread_ = std::thread([raw = w.get()] {
    base::SetThreadName("writer");
    raw->Loop();
  });
  return w;
}

Writer::~Writer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
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

absl::StatusOr<std::unique_ptr<db::Connection>> Writer::OpenReader() const {
  return db::OpenSqlite(path_);
}

void Writer::Loop() {
  std::vector<Pending> batch;
  std::vector<absl::Status> results;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    results.assign(batch.size(), absl::OkStatus());
    absl::Status commit = Exec("BEGIN IMMEDIATE");
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
    }
    for (size_t i = 0; i < batch.size(); ++i) std::move(batch[i].done)(std::move(results[i]));
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
