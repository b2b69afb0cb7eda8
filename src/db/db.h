// The small SQL interface every store module uses. SQLite implements it now (sqlite.h);
// PostgreSQL will implement the same interface, so SQL written against it stays portable:
// positional `?` parameters, INTEGER/TEXT/BLOB columns, explicit transactions.
//
// Thread-safety: a Connection and its Statements belong to one thread at a time.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto stmt, conn.Prepare("SELECT id FROM messages WHERE control_id = ?"));
//   stmt->BindText(1, "MSG0001");
//   ISTHMUS_ASSIGN_OR_RETURN(bool row, stmt->Step());
//   if (row) id = stmt->ColumnInt64(0);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace isthmus::db {

class Statement {
 public:
  virtual ~Statement() = default;
  // Parameters are 1-based, as in SQL.
  virtual void BindInt64(int index, int64_t value) = 0;
  virtual void BindText(int index, std::string_view value) = 0;
  virtual void BindBlob(int index, std::string_view value) = 0;
  // As BindText/BindBlob without a copy: the bytes must stay valid and unchanged until the
  // statement's last Step() with this binding returns. For hot paths that bind and step in one
  // function; a temporary (StrCat(...)) outlives the Step only within one full expression.
  virtual void BindTextRef(int index, std::string_view value) = 0;
  virtual void BindBlobRef(int index, std::string_view value) = 0;
  virtual void BindNull(int index) = 0;
  // Advances to the next row: true when a row is available, false when done. A busy or full
  // database is kUnavailable / kResourceExhausted (retryable), a constraint violation
  // kAlreadyExists, anything else kInternal.
  virtual absl::StatusOr<bool> Step() = 0;
  // Columns are 0-based. Text and blob views are valid until the next Step/Reset.
  virtual int64_t ColumnInt64(int index) const = 0;
  virtual std::string_view ColumnText(int index) const = 0;
  virtual bool ColumnIsNull(int index) const = 0;
  // Clears bindings and rewinds, for reuse.
  virtual void Reset() = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  // Runs one or more statements without results.
  virtual absl::Status Exec(std::string_view sql) = 0;
  virtual absl::StatusOr<std::unique_ptr<Statement>> Prepare(std::string_view sql) = 0;
  // A statement prepared once per connection and kept: returned reset, with no bindings. Valid
  // until the connection closes; do not hold it across another PrepareCached of the same SQL.
  virtual absl::StatusOr<Statement*> PrepareCached(std::string_view sql) = 0;
  // Row id of the last INSERT on this connection.
  virtual int64_t LastInsertId() const = 0;
  // Rows changed by the last INSERT, UPDATE or DELETE that ran to completion.
  virtual int64_t Changes() const = 0;
};

// Applies `migrations[i]` for every i >= the stored schema version, each in its own
// transaction, recording the version in table schema_version. Idempotent.
absl::Status Migrate(Connection& conn, const std::vector<std::string_view>& migrations);

}  // namespace isthmus::db
