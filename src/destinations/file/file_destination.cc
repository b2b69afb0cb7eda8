#include "destinations/file/file_destination.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/time/time.h"
#include "base/str.h"

namespace isthmus::destinations {
namespace {

// Letters, digits, '.', '-', '_' pass; anything else (including '/' and '\0') becomes '_'.
std::string SafeValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    out.push_back(ok ? c : '_');
  }
  if (out.empty() || out == "." || out == "..") out = "_";
  return out;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::atomic<uint64_t> temp_counter{0};

// Unnamed files (O_TMPFILE) are given their name with linkat through /proc/self/fd (linkat's
// AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH); without /proc, named temporaries are used.
bool ProcFdAvailable() {
  static const bool ok = ::access("/proc/self/fd", X_OK) == 0;
  return ok;
}

}  // namespace

absl::Status FileErrnoToStatus(int err, std::string_view what) {
  std::string msg = base::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EFBIG:
      return absl::ResourceExhaustedError(msg);
    case EIO:
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ETIMEDOUT:
    case ESTALE:
      return absl::UnavailableError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case ENOENT:
      return absl::FailedPreconditionError(msg);
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
    case EINVAL:
    case EEXIST:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<std::unique_ptr<FileDestination>> FileDestination::Create(
    FileDestinationOptions opts) {
  if (opts.name.empty()) return absl::InvalidArgumentError("file destination: empty name");
  if (opts.directory.empty()) {
    return absl::InvalidArgumentError(base::StrCat("file destination ", opts.name,
                                                   ": directory is required"));
  }
  const std::string& t = opts.filename;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        base::StrCat("file destination ", opts.name, ": filename \"", t, "\": ", why));
  };
  if (t.empty()) return bad("empty");
  if (t.front() == '/') return bad("must be relative to the directory");
  for (std::string_view seg : base::Split(t, '/')) {
    if (seg == ".." || seg == ".") return bad("'.' and '..' segments are not allowed");
    if (seg.empty()) return bad("empty path segment");
  }
  if (t.back() == '/') return bad("ends with '/'");
  std::vector<Piece> pieces;
  size_t i = 0;
  while (i < t.size()) {
    size_t open = t.find("${", i);
    if (open == std::string::npos) {
      pieces.push_back(Piece{Piece::kLiteral, t.substr(i)});
      break;
    }
    if (open > i) pieces.push_back(Piece{Piece::kLiteral, t.substr(i, open - i)});
    size_t close = t.find('}', open);
    if (close == std::string::npos) return bad("unterminated ${");
    std::string_view var = std::string_view(t).substr(open + 2, close - open - 2);
    Piece::Kind k;
    if (var == "channel") k = Piece::kChannel;
    else if (var == "control_id") k = Piece::kControlId;
    else if (var == "message_id") k = Piece::kMessageId;
    else if (var == "queue_id") k = Piece::kQueueId;
    else if (var == "type") k = Piece::kType;
    else if (var == "timestamp") k = Piece::kTimestamp;
    else
      return bad(base::StrCat("unknown variable ${", var,
                              "} (known: channel, control_id, message_id, queue_id, type, "
                              "timestamp)"));
    pieces.push_back(Piece{k, {}});
    i = close + 1;
  }
  return std::unique_ptr<FileDestination>(new FileDestination(std::move(opts), std::move(pieces)));
}

namespace {

// Files of a run held open between their write and their name when the options do not say: a
// quarter of the process's descriptor limit (the rest is for connections and the store), at
// least 16 and at most 1,024. Each chunk costs one data sync, so the bigger the fewer.
size_t DefaultOpenFiles() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1024;
  return std::clamp<size_t>(static_cast<size_t>(rl.rlim_cur / 4), 16, 1024);
}

}  // namespace

FileDestination::FileDestination(FileDestinationOptions opts, std::vector<Piece> pieces)
    : opts_(std::move(opts)),
      pieces_(std::move(pieces)),
      chunk_(opts_.max_open_files > 0 ? opts_.max_open_files : DefaultOpenFiles()),
      unnamed_(opts_.unnamed_files && ProcFdAvailable()) {}

std::string FileDestination::FileName(const core::Delivery& d) const {
  std::string out;
  for (const Piece& p : pieces_) {
    switch (p.kind) {
      case Piece::kLiteral: out += p.text; break;
      case Piece::kChannel: out += SafeValue(d.channel); break;
      case Piece::kControlId: out += SafeValue(d.control_id); break;
      case Piece::kMessageId: base::StrAppend(&out, d.message_id); break;
      case Piece::kQueueId: base::StrAppend(&out, d.queue_id); break;
      case Piece::kType: out += SafeValue(d.message_type); break;
      case Piece::kTimestamp: {
        absl::Time now = opts_.clock->Now();
        out += absl::FormatTime("%Y%m%d%H%M%S", now, absl::UTCTimeZone());
        char micros[8];
        std::snprintf(micros, sizeof micros, "%06lld",
                      static_cast<long long>(absl::ToUnixMicros(now) % 1'000'000));
        out += micros;
        break;
      }
    }
  }
  return out;
}

int FileDestination::Fault(std::string_view step) const {
  return opts_.fault_for_test ? opts_.fault_for_test(step) : 0;
}

absl::Status FileDestination::Fail(std::string_view step, int err, const std::string& path) const {
  return FileErrnoToStatus(err, base::StrCat("file destination ", opts_.name, ": ", step, " ",
                                             path));
}

absl::Status FileDestination::Deliver(const core::Delivery& d) {
  return DeliverBatch(std::span<const core::Delivery>(&d, 1)).back();
}

// One file of a run between its write and its name.
struct FileDestination::Pending {
  std::filesystem::path target;
  std::filesystem::path temp;  // a named temporary, or empty for an unnamed file
  int fd = -1;                 // the unnamed file, open until it is linked
  int create_errno = 0;        // why the file could not be created, if it could not

  ~Pending() { Discard(); }
  Pending() = default;
  Pending(Pending&& o) noexcept : target(std::move(o.target)), temp(std::move(o.temp)), fd(o.fd) {
    o.temp.clear();
    o.fd = -1;
  }
  Pending& operator=(Pending&&) = delete;
  // Leaves nothing behind: an unnamed file vanishes when closed, a named one is unlinked.
  void Discard() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (!temp.empty()) ::unlink(temp.c_str());
    temp.clear();
  }
};

std::filesystem::path FileDestination::TempName(const std::filesystem::path& target,
                                                const core::Delivery& d) const {
  return target.parent_path() / base::StrCat(".", target.filename().string(), ".tmp.", d.queue_id,
                                             ".", temp_counter.fetch_add(1));
}

// Creates the file's bytes under no final name: an unnamed file in the target directory when the
// file system supports it (nothing to clean up after a crash, and one directory entry per file
// instead of a temporary entry added, looked up, renamed and removed), else a named temporary.
absl::Status FileDestination::WriteOne(const core::Delivery& d, bool sync, Pending& p) {
  const std::filesystem::path dir = p.target.parent_path();
  int err = Fault("open");
  if (err == 0 && unnamed_.load(std::memory_order_relaxed)) {
    p.fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, opts_.file_mode);
    if (p.fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      unnamed_.store(false, std::memory_order_relaxed);  // this file system cannot: named from now
    } else if (p.fd < 0) {
      p.create_errno = errno;
      return Fail("create", p.create_errno, dir.string());
    }
  }
  if (err == 0 && p.fd < 0) {
    p.temp = TempName(p.target, d);
    p.fd = ::open(p.temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, opts_.file_mode);
    if (p.fd < 0) {
      err = errno;
      p.temp.clear();
    }
  }
  if (p.fd < 0) {
    p.create_errno = err;
    return Fail("create", err, p.temp.empty() ? dir.string() : p.temp.string());
  }
  size_t off = 0;
  while (off < d.payload.size()) {
    if (err = Fault("write"); err != 0) break;
    ssize_t n = ::write(p.fd, d.payload.data() + off, d.payload.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (err != 0) return Fail("write", err, p.target.string());
  if (sync && ((err = Fault("fsync")) != 0 || ::fsync(p.fd) != 0)) {
    return Fail("fsync", err != 0 ? err : errno, p.target.string());
  }
  if (!p.temp.empty()) {  // a named file is renamed by name: close it now
    int fd = p.fd;
    p.fd = -1;
    if (::close(fd) != 0) return Fail("close", errno, p.temp.string());
  }
  return absl::OkStatus();
}

// Gives the written file its final name, replacing a file of that name (a redelivery).
absl::Status FileDestination::Publish(const core::Delivery& d, Pending& p) {
  if (int err = Fault("rename"); err != 0) return Fail("rename to", err, p.target.string());
  if (p.temp.empty()) {
    char proc[40];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", p.fd);
    if (::linkat(AT_FDCWD, proc, AT_FDCWD, p.target.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      p.Discard();  // closes the file, which now has its name
      return absl::OkStatus();
    }
    if (errno != EEXIST) return Fail("link to", errno, p.target.string());
    // The name exists: link under a temporary name, then rename over it (atomic replace).
    p.temp = TempName(p.target, d);
    if (::linkat(AT_FDCWD, proc, AT_FDCWD, p.temp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      int err = errno;
      p.temp.clear();
      return Fail("link to", err, p.target.string());
    }
  }
  if (::rename(p.temp.c_str(), p.target.c_str()) != 0) {
    return Fail("rename to", errno, p.target.string());
  }
  p.temp.clear();
  p.Discard();
  return absl::OkStatus();
}

// A run of N files costs N writes and N links but one data sync per chunk (fsync of the file for
// one, syncfs of the file system for several) and one fsync per directory, instead of 2N fsyncs.
// Durability is the same: every file's data is on disk before it gets its name, and every name
// is on disk before the run reports OK. A chunk is as many files as may be open at once
// (chunk_); when the process runs out of descriptors first, the chunk ends there and the file
// that could not be opened starts the next one.
//
// Why syncfs and not an fdatasync per file: on ext4 each fdatasync ends in a flush of the
// device's cache even when the journal has nothing left to commit for that file, so a chunk of
// 64 files took 5.5-6.7 ms per file that way against 0.1-1 ms per file with one syncfs
// (median of 40 chunks, this project's VM disk at load 8, 2026-11-22). syncfs also writes whatever else is dirty on
// the file system, e.g. store pages a checkpoint copied, which makes chunks as large as the
// descriptors allow worth it.
std::vector<absl::Status> FileDestination::DeliverBatch(std::span<const core::Delivery> run) {
  namespace fs = std::filesystem;
  const bool single = run.size() == 1;
  absl::Status failure;  // the first failing delivery; the ones after it are not attempted
  size_t published = 0;
  std::vector<fs::path> dirs;  // directories of the published files
  fs::path ensured_dir;
  std::vector<Pending> pending;
  while (published < run.size() && failure.ok()) {
    // 1. Write each file of the chunk under no final name.
    pending.clear();
    const size_t end = std::min(run.size(), published + chunk_);
    for (size_t i = published; i < end; ++i) {
      const core::Delivery& d = run[i];
      Pending p;
      p.target = fs::path(opts_.directory) / FileName(d);
      const fs::path dir = p.target.parent_path();
      if (int err = Fault("mkdir"); err != 0) {
        failure = Fail("mkdir", err, dir.string());
        break;
      }
      // Once per directory and run (a stat per file otherwise; a run mostly goes to one
      // directory). A directory removed during the run fails the open below, and the retry
      // creates it again.
      if (opts_.create_directories && dir != ensured_dir) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) {
          failure = Fail("mkdir", ec.value(), dir.string());
          break;
        }
        ensured_dir = dir;
      }
      failure = WriteOne(d, single, p);
      if (!failure.ok() && !pending.empty() &&
          (p.create_errno == EMFILE || p.create_errno == ENFILE)) {
        failure = absl::OkStatus();  // out of descriptors: finish this chunk, retry in the next
        break;
      }
      if (!failure.ok()) break;
      pending.push_back(std::move(p));
    }
    // 2. Several files: one syncfs makes all their data durable.
    if (!single && !pending.empty()) {
      int err = Fault("fsync");
      const fs::path dir = pending.front().target.parent_path();
      Fd dfd(err != 0 ? -1 : ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (dfd.get() < 0 || ::syncfs(dfd.get()) != 0) {
        failure = Fail("syncfs", err != 0 ? err : errno, dir.string());
        break;  // the chunk's files are discarded with `pending`
      }
    }
    // 3. Name each, in order.
    for (size_t k = 0; k < pending.size(); ++k) {
      const core::Delivery& d = run[published];
      if (absl::Status s = Publish(d, pending[k]); !s.ok()) {
        failure = std::move(s);
        break;
      }
      fs::path dir = pending[k].target.parent_path();
      if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(std::move(dir));
      ++published;
    }
  }
  pending.clear();  // anything not named is discarded
  // 4. The names are durable only once their directories are synced.
  for (const fs::path& dir : dirs) {
    int err = Fault("fsync-dir");
    Fd dfd(err != 0 ? -1 : ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) {
      // Not durable: report the run's first delivery as failed; the run is delivered again.
      return {Fail("fsync directory", err != 0 ? err : errno, dir.string())};
    }
  }
  std::vector<absl::Status> out(published, absl::OkStatus());
  if (!failure.ok()) out.push_back(failure);
  return out;
}

}  // namespace isthmus::destinations
