// The admin JSON API under /api, plus /healthz and /readyz:
//   GET /api/channels                 per channel: received, acked, nacked, duplicates, ...
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

struct ChannelCounters {
  std::string name;
  uint64_t received = 0, acked = 0, nacked = 0, duplicates = 0;
  int64_t connections_open = 0;
};

struct AdminContext {
  store::Journal* journal = nullptr;
  std::function<std::vector<ChannelCounters>()> channels;  // wired by the server
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
