#include "db/sqlite.h"

#include <sqlite3.h>

#include <map>
#include <unordered_map>

#include "absl/status/status.h"
#include "base/str.h"

namespace isthmus::db {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string msg = base::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(msg);
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::PermissionDeniedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

class SqliteStatement final : public Statement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  void BindInt64(int i, int64_t v) override { sqlite3_bind_int64(stmt_, i, v); }
  void BindText(int i, std::string_view v) override {
    sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  void BindBlob(int i, std::string_view v) override {
    sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  }
  void BindTextRef(int i, std::string_view v) override {
    sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
  }
  void BindBlobRef(int i, std::string_view v) override {
    sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_STATIC);
  }
  void BindNull(int i) override { sqlite3_bind_null(stmt_, i); }

  absl::StatusOr<bool> Step() override {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    absl::Status s = SqliteError(db_, rc, "sqlite step");
    sqlite3_reset(stmt_);
    return s;
  }
  int64_t ColumnInt64(int i) const override { return sqlite3_column_int64(stmt_, i); }
  std::string_view ColumnText(int i) const override {
    const void* p = sqlite3_column_blob(stmt_, i);
    int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
  }
  bool ColumnIsNull(int i) const override { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    by_address_.clear();
    cache_.clear();
    sqlite3_close_v2(db_);
  }

  absl::Status Exec(std::string_view sql) override {
    std::string text(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return absl::OkStatus();
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    absl::Status s = SqliteError(nullptr, rc, "sqlite exec");
    return absl::Status(s.code(), base::StrCat("sqlite exec: ", msg));
  }

  absl::StatusOr<std::unique_ptr<Statement>> Prepare(std::string_view sql) override {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, "sqlite prepare");
    return std::unique_ptr<Statement>(new SqliteStatement(db_, stmt));
  }

  absl::StatusOr<Statement*> PrepareCached(std::string_view sql) override {
    // Most callers pass the same string literal every time: look it up by its address first
    // (a hash of one pointer instead of string compares down a tree of long, alike SQL texts),
    // and check the text, since a temporary's address may be reused for another statement.
    if (auto fast = by_address_.find(sql.data());
        fast != by_address_.end() && fast->second.first == sql) {
      fast->second.second->Reset();
      return fast->second.second;
    }
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      auto stmt = Prepare(sql);
      if (!stmt.ok()) return stmt.status();
      it = cache_.emplace(std::string(sql), std::move(stmt).value()).first;
    } else {
      it->second->Reset();
    }
    // Bounded: SQL built at run time (a new address every call) must not grow it forever;
    // when full it starts again, and the literals come back at their next use.
    if (by_address_.size() >= kMaxAddresses) by_address_.clear();
    by_address_[sql.data()] = {std::string_view(it->first), it->second.get()};
    return it->second.get();
  }

  int64_t LastInsertId() const override { return sqlite3_last_insert_rowid(db_); }
  int64_t Changes() const override { return sqlite3_changes64(db_); }

 private:
  sqlite3* db_;
  // Declared after db_ so statements are finalized before the connection closes.
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
  // PrepareCached's fast path: a caller's SQL address -> the cached text and statement.
  static constexpr size_t kMaxAddresses = 512;
  std::unordered_map<const void*, std::pair<std::string_view, Statement*>> by_address_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path,
                                                       const SqliteOptions& opts) {
  if (opts.cache_kib < 0) return absl::InvalidArgumentError("cache_kib must be >= 0");
  // Before the first connection: SQLite's memory statistics take a process-wide mutex on every
  // allocation and free, which every connection's thread then contends for. Nothing reads them.
  // (SQLITE_MISUSE if SQLite was initialised already, e.g. by a test: harmless, keep going.)
  static const bool kConfigured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)kConfigured;
  sqlite3* db = nullptr;
  int flags = opts.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, rc, base::StrCat("cannot open database ", path));
    sqlite3_close_v2(db);
    return s;
  }
  sqlite3_busy_timeout(db, opts.busy_timeout_ms);
  auto conn = std::make_unique<SqliteConnection>(db);
  if (opts.cache_kib > 0) {
    absl::Status s = conn->Exec(base::StrCat("PRAGMA cache_size=-", opts.cache_kib));
    if (!s.ok()) return s;
  }
  if (!opts.read_only) {
    // temp_store stays SQLite's default: statement journals and savepoint sub-journals past
    // 64 KiB go to a temporary file. MEMORY saved a delivery run's file (open, ~17 writes,
    // unlink) but measured slower for a savepoint around a 500-entry Bundle (megabytes of
    // sub-journal); docs/PERFORMANCE.md.
    absl::Status s = conn->Exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (!s.ok()) return s;
    if (opts.wal_autocheckpoint_pages > 0) {
      s = conn->Exec(base::StrCat("PRAGMA wal_autocheckpoint=", opts.wal_autocheckpoint_pages));
      if (!s.ok()) return s;
    }
  }
  return std::unique_ptr<Connection>(std::move(conn));
}

absl::Status Migrate(Connection& conn, const std::vector<std::string_view>& migrations) {
  absl::Status s = conn.Exec(
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  if (!s.ok()) return s;
  auto q = conn.Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!q.ok()) return q.status();
  auto row = (*q)->Step();
  if (!row.ok()) return row.status();
  int64_t current = (*q)->ColumnInt64(0);
  q->reset();
  for (size_t v = static_cast<size_t>(current); v < migrations.size(); ++v) {
    s = conn.Exec("BEGIN IMMEDIATE");
    if (!s.ok()) return s;
    s = conn.Exec(migrations[v]);
    if (s.ok()) s = conn.Exec(base::StrCat("INSERT INTO schema_version VALUES (", v + 1, ")"));
    if (!s.ok()) {
      conn.Exec("ROLLBACK").IgnoreError();
      return absl::Status(s.code(), base::StrCat("schema migration ", v + 1, ": ", std::string(s.message())));
    }
    s = conn.Exec("COMMIT");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace isthmus::db
