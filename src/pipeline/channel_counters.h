// Per-channel outcome counters for the admin API (`GET /api/channels`), kept in memory since the
// process started (they reset at restart and are not stored: no extra write per message).
//
//   filtered   pipeline outcome `filtered`: the channel's filter did not match, or its
//              transformer dropped the message.
//   errored    pipeline outcomes `error` (unparsable, unknown channel, transformer failure),
//              `invalid` (validation errors on a channel that rejects invalid messages) and
//              `unrouted` (no route matched), and `rejected`: a frame the channel's MLLP listener
//              could not parse, NAKed (AR/CR) and journaled as "rejected" (counted when the
//              listener reports it, whether or not the rejected copy could be stored). Other NAKs
//              of the listener (bytes outside a frame, an oversized or unterminated frame, a
//              message the journal could not store) are in its `nacked` only.
//   delivered  one per (message, destination) delivery acknowledged by the destination and
//              settled in the store: a message routed to two destinations counts 2.
//   dead       one per (message, destination) moved to the dead letters.
// An outcome counts once it committed; a message reprocessed counts again.
//
// Thread-safety: For() and Snapshot() from any thread; the counters are atomics. For() returns
// a pointer that stays valid as long as the registry: resolve it once (per channel, per
// pipeline) and increment without a lock on the message path.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace isthmus::pipeline {

struct ChannelOutcomeCounters {
  std::atomic<uint64_t> filtered{0}, errored{0}, delivered{0}, dead{0};

  // Counts a committed pipeline outcome (a message state: "filtered", "error", "queued", ...) or
  // a listener's "rejected".
  void CountOutcome(std::string_view state);
};

struct ChannelOutcomeSnapshot {
  std::string name;
  uint64_t filtered = 0, errored = 0, delivered = 0, dead = 0;
};

class ChannelCounterRegistry {
 public:
  // The counters of `channel`, created at first use.
  ChannelOutcomeCounters* For(std::string_view channel);
  // Every channel seen so far, by name.
  std::vector<ChannelOutcomeSnapshot> Snapshot() const;

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<ChannelOutcomeCounters>, std::less<>> by_name_;  // mu_
};

}  // namespace isthmus::pipeline
