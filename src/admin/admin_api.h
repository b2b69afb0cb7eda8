// The admin JSON API under /api, plus /healthz and /readyz:
//   GET /api/channels                 per channel: received, acked, nacked, duplicates,
//                                     connections_open, filtered, errored, queued, delivered,
//                                     dead (docs/operations.md says what each counts)
//   GET /api/messages?control_id=&channel=&state=&since=&limit=
//       -> {"total": N, "messages": [{"id", "control_id", "channel", "state", "received_at", ...}]}
//   GET /api/messages/{id}            one message: raw, events
//   POST /api/messages/{id}/reprocess run the message through its channel again
//   GET /api/destinations             per destination: queued, in_flight, retrying, delivered, dead
//   GET /api/dead-letters?destination=&limit=&before_id=
//   POST /api/dead-letters/reprocess?id=N | ?destination=NAME   re-enqueue dead letters
//   POST /api/config/reload           re-read the configuration file and apply it (hot reload)
// Responses never go to logs (they hold PHI); access control comes with the security work.
// Thread-safety: handlers run concurrently on the HTTP server's pool; the journal is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "net/http_server.h"
#include "store/journal.h"
#include "store/queue.h"

namespace isthmus::admin {

// One channel of GET /api/channels. Counters are in memory since the process started; `queued`
// is read from the store.
struct ChannelCounters {
  std::string name;
  uint64_t received = 0, acked = 0, nacked = 0, duplicates = 0;  // the channel's listeners
  int64_t connections_open = 0;
  uint64_t filtered = 0, errored = 0, delivered = 0, dead = 0;  // pipeline::ChannelCounterRegistry
  int64_t queued = 0;             // queue rows of the channel's messages now
  bool queued_truncated = false;  // the queue is longer than kQueuedScanLimit rows
};

// At most this many queue rows are read to count `queued` (the oldest first).
inline constexpr int64_t kQueuedScanLimit = 100000;

struct AdminContext {
  store::Journal* journal = nullptr;
  std::function<absl::StatusOr<std::vector<ChannelCounters>>()> channels;  // wired by the server
  std::function<bool()> ready;                               // /readyz
  store::Queue* queue = nullptr;                             // destinations, dead letters
  // Wakes the dispatcher of a destination after dead letters were re-enqueued.
  std::function<void(const std::string& destination)> notify;
  // Runs a journaled message through its channel again (the pipeline's Submit).
  std::function<absl::Status(int64_t message_id)> reprocess;
  // Re-reads and applies the configuration; the summary says what changed. An invalid
  // configuration is refused (InvalidArgument with every error) and the running one stays.
  std::function<absl::StatusOr<std::string>()> reload;
};

void RegisterAdminApi(net::HttpServer& http, AdminContext ctx);

}  // namespace isthmus::admin
