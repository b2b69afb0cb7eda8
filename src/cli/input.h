// Reading HL7 v2 files for CLI commands: a file may hold one message, many, or batches.
// Thread-safety: stateless functions.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "hl7v2/batch.h"

namespace isthmus::cli {

struct InputFile {
  std::string path;
  std::unique_ptr<std::string> bytes;  // heap-stable: the batch's spans view into it
  absl::StatusOr<hl7v2::Batch> batch;  // InvalidArgument when the file is not HL7 v2
};

// Reads `path` ("-" for standard input) and splits it into messages. An error status means the
// file could not be read (the CLI's exit code 2).
absl::StatusOr<InputFile> ReadHl7File(const std::string& path);

}  // namespace isthmus::cli
