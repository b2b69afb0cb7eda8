// `isthmus serve`: the composition root. Loads the configuration, opens the store, starts the
// destinations' dispatchers, the pipeline, the MLLP listeners and the HTTP server (health, admin
// API), replays messages a crash left unprocessed, and runs until SIGTERM/SIGINT, then drains:
// stop accepting, let messages in flight be journaled, acknowledged and processed, close.
// Thread-safety: RunServe is called once, from main().
#pragma once

#include <string>

namespace isthmus::server {

struct ServeOptions {
  std::string config;      // isthmus.yaml; empty = the embedded default (one MLLP listener into a
                           // journal-only channel)
  // Overrides of the configuration; empty / 0 = as configured.
  std::string data_dir;    // server.data_dir
  std::string mllp;        // HOST:PORT of the first listener; port 0 picks a free one
  std::string http;        // server.http_address
  int threads = 0;         // network threads; 0 = server.threads, else one per core
  int drain_seconds = 10;  // how long shutdown waits for connections to finish
  std::string ready_file;  // if set, "MLLP_PORT HTTP_PORT\n" is written here once ready
};

// The configuration `isthmus serve` runs without --config.
extern const char kDefaultConfig[];

// Returns the process exit code: 0 after a clean shutdown, 1 when startup fails (the reason is
// printed).
int RunServe(const ServeOptions& opts);

}  // namespace isthmus::server
