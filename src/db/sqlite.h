// SQLite implementation of db::Connection: WAL journal, synchronous=FULL (a committed
// transaction survives a process crash and a machine crash), busy timeout, foreign keys on.
// Thread-safety: one connection per thread; open several for concurrent readers.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "db/db.h"

namespace isthmus::db {

struct SqliteOptions {
  bool read_only = false;
  int busy_timeout_ms = 5000;
};

// Opens (creating if needed) the database file at `path`; ":memory:" for tests.
absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path,
                                                       const SqliteOptions& opts = {});

}  // namespace isthmus::db
