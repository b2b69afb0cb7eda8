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
  // Upper bound of this connection's page cache, in KiB (PRAGMA cache_size=-N); pages are
  // allocated as they are read, so memory grows to this bound and stays there (per connection:
  // a pool of 16 readers at 16 MiB held ~300 MB). 0 keeps SQLite's default (2,000 KiB), which
  // suits readers: point lookups and index walks, with the OS page cache holding the rest. A
  // writer with index inserts spread over the file may gain from a larger one; measured so far
  // within the noise of the shared machine (docs/PERFORMANCE.md, "FHIR server").
  int cache_kib = 0;
  // A writable connection checkpoints the WAL into the database once it holds this many pages
  // (PRAGMA wal_autocheckpoint). SQLite's default, 1,000, copies the pages that every commit
  // rewrites (the tails of the journal's tables and indexes) back into the file every ~4 MB of
  // WAL; at 10,000 each is copied a tenth as often (docs/PERFORMANCE.md, "MLLP").
  int wal_autocheckpoint_pages = 10000;
};

// Opens (creating if needed) the database file at `path`; ":memory:" for tests.
absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path,
                                                       const SqliteOptions& opts = {});

}  // namespace isthmus::db
