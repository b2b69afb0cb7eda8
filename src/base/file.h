// Whole-file reads and atomic writes: the small filesystem surface the CLI and tests need.
// Thread-safety: stateless functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::base {

// Reads the whole file. NotFound / PermissionDenied / ResourceExhausted (over `max_bytes`)
// carry the path in the message.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes = size_t{1} << 31);

// Writes `data` to `path` through a temporary file and rename, so readers never see half a file.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data);

}  // namespace isthmus::base
