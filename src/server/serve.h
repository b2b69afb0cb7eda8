// `isthmus serve`: the composition root. Opens the store, starts the MLLP listener and the HTTP
// server (health, admin API), and runs until SIGTERM/SIGINT, then drains: stop accepting, let
// messages in flight be journaled and acknowledged, close.
// Thread-safety: RunServe is called once, from main().
#pragma once

#include <string>

namespace isthmus::server {

struct ServeOptions {
  std::string data_dir = "isthmus-data";
  std::string mllp = "127.0.0.1:2575";  // HOST:PORT; port 0 picks a free one
  std::string http = "127.0.0.1:8080";
  int threads = 0;                      // 0 = number of cores
  int drain_seconds = 10;               // how long shutdown waits for connections to finish
  size_t max_frame_bytes = 16u << 20;
  int max_connections = 1000;
  std::string ready_file;               // if set, "mllp_port http_port\n" is written here once ready
};

// Returns the process exit code: 0 after a clean shutdown, 1 when startup fails (the reason is
// printed).
int RunServe(const ServeOptions& opts);

}  // namespace isthmus::server
