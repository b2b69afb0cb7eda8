// Status helpers shared by every module.
// Thread-safety: macros only; no state.
//
// Example:
//   absl::StatusOr<Message> ParseFile(const std::string& path) {
//     ISTHMUS_ASSIGN_OR_RETURN(std::string bytes, base::ReadFile(path));
//     return Message::Parse(bytes);
//   }
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ISTHMUS_STATUS_CONCAT_INNER_(a, b) a##b
#define ISTHMUS_STATUS_CONCAT_(a, b) ISTHMUS_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define ISTHMUS_RETURN_IF_ERROR(expr)                 \
  do {                                                \
    ::absl::Status isthmus_status_ = (expr);          \
    if (!isthmus_status_.ok()) return isthmus_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, else moves the value
// into `lhs` (a declaration or an assignable expression).
#define ISTHMUS_ASSIGN_OR_RETURN(lhs, rexpr) \
  ISTHMUS_ASSIGN_OR_RETURN_IMPL_(ISTHMUS_STATUS_CONCAT_(isthmus_statusor_, __LINE__), lhs, rexpr)

#define ISTHMUS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return statusor.status();              \
  lhs = std::move(statusor).value()
