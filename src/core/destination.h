// A destination delivers one journaled message somewhere (a file, a downstream MLLP system, an
// HTTP endpoint, the built-in FHIR store). Dispatchers call Deliver() from their own thread,
// one message at a time per destination (or per partition), in queue order.
//
// The returned status decides what happens next (CONVENTIONS.md §3):
//   OK                                          delivered; the queue row is done
//   kUnavailable, kDeadlineExceeded,
//   kResourceExhausted, kAborted                retried with exponential backoff and jitter,
//                                               until the destination's max attempts / max age
//   anything else (kInvalidArgument for an AE/AR
//   or a 4xx, kFailedPrecondition, ...)         dead-lettered with the status message as reason
// The status message is stored and shown to operators: no PHI in it (ids and codes only).
//
// A dispatcher delivers a run of consecutive queue rows of one partition in order: one Deliver()
// per row, unless the destination SupportsBatch(), in which case one DeliverBatch() for the run
// (for destinations that make a run cheaper than N single deliveries: one directory fsync for N
// files, say). Either way the run is settled with one commit.
//
// Thread-safety: Deliver() may be called from several dispatcher threads at once when the
// destination is partitioned; implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace isthmus::core {

struct Delivery {
  int64_t queue_id = 0;
  int64_t message_id = 0;
  int attempt = 1;             // 1 for the first try
  std::string_view channel;
  std::string_view control_id;
  std::string_view message_type;
  std::string_view payload;    // what to deliver: the raw message or the transformer's output
  std::string_view lease_owner;  // the dispatcher's lease on the queue row (SettlesInStore)
};

class Destination {
 public:
  virtual ~Destination() = default;
  virtual std::string_view name() const = 0;
  virtual absl::Status Deliver(const Delivery& d) = 0;

  // True when DeliverBatch is cheaper than a Deliver per row. A run given to DeliverBatch is
  // delivered whole even while the dispatcher stops, so it must not wait long.
  virtual bool SupportsBatch() const { return false; }

  // True for a destination that writes into the store itself (the built-in FHIR store): it
  // acks each delivered queue row in the same transaction as its own writes
  // (store::Queue::AckInOp with the Delivery's queue id and lease owner), which makes delivery
  // exactly once. The dispatcher then does not ack those rows again; failures are settled as
  // usual (a lost lease is a kFailedPrecondition failure whose writes were rolled back).
  virtual bool SettlesInStore() const { return false; }

  // Delivers `run` in order and stops at the first failure. Returns one status per delivery
  // attempted: all OK, or OK... followed by the one failure; the deliveries after it were not
  // attempted (their rows are given back, to be delivered after the failed one).
  virtual std::vector<absl::Status> DeliverBatch(std::span<const Delivery> run) {
    std::vector<absl::Status> out;
    out.reserve(run.size());
    for (const Delivery& d : run) {
      out.push_back(Deliver(d));
      if (!out.back().ok()) break;
    }
    return out;
  }
};

// True when a failed delivery should be tried again later.
inline bool IsRetryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

}  // namespace isthmus::core
