#include "cli/input.h"

#include <iostream>
#include <iterator>

#include "base/file.h"

namespace isthmus::cli {

absl::StatusOr<InputFile> ReadHl7File(const std::string& path) {
  InputFile file{path, std::make_unique<std::string>(), absl::UnknownError("not split")};
  if (path == "-") {
    file.bytes->assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    auto read = base::ReadFile(path);
    if (!read.ok()) return read.status();
    *file.bytes = std::move(read).value();
  }
  file.batch = hl7v2::SplitBatch(*file.bytes);
  return file;
}

}  // namespace isthmus::cli
