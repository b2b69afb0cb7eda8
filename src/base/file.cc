#include "base/file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <system_error>

#include "absl/status/status.h"
#include "base/str.h"

namespace isthmus::base {
namespace {

absl::Status ErrnoStatus(int err, std::string_view what, const std::string& path) {
  std::string msg = base::StrCat(what, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT: return absl::NotFoundError(msg);
    case EACCES: case EPERM: return absl::PermissionDeniedError(msg);
    case ENOSPC: case EDQUOT: return absl::ResourceExhaustedError(msg);
    case EISDIR: return absl::FailedPreconditionError(msg);
    default: return absl::UnavailableError(msg);
  }
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ErrnoStatus(errno, "cannot open", path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    size_t n = std::fread(buf, 1, sizeof buf, f);
    if (n > 0) {
      if (out.size() + n > max_bytes) {
        std::fclose(f);
        return absl::ResourceExhaustedError(
            base::StrCat(path, " is larger than the limit of ", max_bytes, " bytes"));
      }
      out.append(buf, n);
    }
    if (n < sizeof buf) break;
  }
  bool failed = std::ferror(f) != 0;
  int err = errno;
  std::fclose(f);
  if (failed) return ErrnoStatus(err == 0 ? EIO : err, "cannot read", path);
  return out;
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = base::StrCat(path, ".tmp");
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return ErrnoStatus(errno, "cannot create", tmp);
  size_t n = std::fwrite(data.data(), 1, data.size(), f);
  int err = errno;
  if (std::fclose(f) != 0 || n != data.size()) {
    std::remove(tmp.c_str());
    return ErrnoStatus(err == 0 ? EIO : err, "cannot write", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    return ErrnoStatus(err, "cannot rename to", path);
  }
  return absl::OkStatus();
}

}  // namespace isthmus::base
