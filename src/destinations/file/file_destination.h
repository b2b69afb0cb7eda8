// Delivers each message as one file in a directory, named from a template:
//   ${channel} ${control_id} ${message_id} ${queue_id} ${type} ${timestamp}
// e.g. "${channel}/${type}-${control_id}.hl7". Substituted values are made file-name safe
// (anything but letters, digits, '.', '-' and '_' becomes '_', so "ADT^A01" -> "ADT_A01" and a
// control id can never climb out of the directory); '/' in the template itself makes
// subdirectories. ${timestamp} is the delivery time in UTC, YYYYMMDDHHMMSSffffff.
//
// Writes are atomic and durable: an unnamed file (O_TMPFILE) in the target directory, or a named
// temporary where the file system has no unnamed files, fsync, then linked (or renamed) to the
// final name, fsync of the directory. A reader never sees half a file; once Deliver returns
// OK the file survives a power loss. A redelivery (at least once) overwrites the same name when
// the template is deterministic (no ${timestamp}).
//
// Status mapping (core/destination.h): no space / quota / too many open files ->
// kResourceExhausted and EIO / EAGAIN -> kUnavailable (retried); permission denied, read-only
// file system -> kPermissionDenied; a missing directory with create_directories = false ->
// kFailedPrecondition; a file name the file system rejects -> kInvalidArgument (dead letter).
//
// A run (DeliverBatch) writes every file, makes their data durable with one syncfs (per chunk of
// up to max_open_files files), names them in order and fsyncs each directory once: the same
// guarantees for a fraction of the fsyncs.
//
// Thread-safety: Deliver may run concurrently (each call writes its own temporary file).
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto d, FileDestination::Create(
//       {.name = "archive", .directory = "/var/isthmus/out", .filename = "${control_id}.hl7"}));
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "core/destination.h"

namespace isthmus::destinations {

struct FileDestinationOptions {
  std::string name;                                       // the destination's name
  std::string directory;                                  // required
  std::string filename = "${channel}-${message_id}.hl7";  // template, see above
  bool create_directories = true;                         // create the directory (and subdirs)
  int file_mode = 0640;
  base::Clock* clock = &base::RealClock::Get();           // for ${timestamp}
  // Unnamed files (O_TMPFILE, linked into place) where the file system supports them; false
  // always uses named temporaries (tests cover both paths).
  bool unnamed_files = true;
  // Files of a run open at once between write and name (each such chunk costs one data sync);
  // 0 = a quarter of RLIMIT_NOFILE's soft limit, 16..1024.
  size_t max_open_files = 0;
  // Tests: an errno to inject at a step ("mkdir", "open", "write", "fsync", "rename" (the step
  // that names the file), "fsync-dir"), or 0.
  std::function<int(std::string_view step)> fault_for_test;
};

class FileDestination final : public core::Destination {
 public:
  // kInvalidArgument for an empty name or directory, an unknown ${variable}, an unterminated
  // "${", an absolute template or one with a ".." segment.
  static absl::StatusOr<std::unique_ptr<FileDestination>> Create(FileDestinationOptions opts);

  std::string_view name() const override { return opts_.name; }
  absl::Status Deliver(const core::Delivery& d) override;
  // One data sync and one directory fsync for the whole run (see the .cc).
  std::vector<absl::Status> DeliverBatch(std::span<const core::Delivery> run) override;
  bool SupportsBatch() const override { return true; }

  // The expanded file name, relative to the directory.
  std::string FileName(const core::Delivery& d) const;

 private:
  struct Piece {
    enum Kind { kLiteral, kChannel, kControlId, kMessageId, kQueueId, kType, kTimestamp };
    Kind kind;
    std::string text;  // kLiteral
  };
  struct Pending;
  FileDestination(FileDestinationOptions opts, std::vector<Piece> pieces);
  absl::Status Fail(std::string_view step, int err, const std::string& path) const;
  int Fault(std::string_view step) const;
  std::filesystem::path TempName(const std::filesystem::path& target,
                                 const core::Delivery& d) const;
  absl::Status WriteOne(const core::Delivery& d, bool sync, Pending& p);
  absl::Status Publish(const core::Delivery& d, Pending& p);

  const FileDestinationOptions opts_;
  const std::vector<Piece> pieces_;
  const size_t chunk_;        // files of a run per data sync (see max_open_files)
  std::atomic<bool> unnamed_;  // unnamed files usable (cleared when the file system refuses)
};

// Maps an errno from a file operation to a delivery status (see the header comment).
absl::Status FileErrnoToStatus(int err, std::string_view what);

}  // namespace isthmus::destinations
