// The admin JSON API under /api, plus /healthz and /readyz:
//   GET /api/channels                 per channel: received, acked, nacked, duplicates, ...
//   GET /api/messages?control_id=&channel=&state=&since=&limit=
//       -> {"total": N, "messages": [{"id", "control_id", "channel", "state", "received_at", ...}]}
//   GET /api/messages/{id}            one message: raw, events
// Responses never go to logs (they hold PHI); access control comes with the security work.
// Thread-safety: handlers run concurrently on the HTTP server's pool; the journal is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "net/http_server.h"
#include "store/journal.h"

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
};

void RegisterAdminApi(net::HttpServer& http, AdminContext ctx);

}  // namespace isthmus::admin
