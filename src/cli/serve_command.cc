// `isthmus serve`: run the engine.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "server/serve.h"

namespace isthmus::cli {

Run AddServeCommand(CLI::App& app) {
  auto o = std::make_shared<server::ServeOptions>();
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Run the engine: receive HL7 v2 over MLLP, journal every message durably before its ACK,\n"
      "and serve health checks and the admin API over HTTP. Stops cleanly on SIGTERM/Ctrl-C:\n"
      "no new connections (the HTTP server stops at once), messages in flight are stored and\n"
      "acknowledged, open connections get --drain-seconds to finish. SIGHUP or\n"
      "POST /api/config/reload re-reads --config: unchanged listeners keep running, a bad\n"
      "configuration is refused and the running one stays.\n\n"
      "Examples:\n"
      "  isthmus serve                                 the embedded default (loopback only)\n"
      "  isthmus serve --config isthmus.yaml           channels, routes, destinations\n"
      "  isthmus serve --mllp 0.0.0.0:2575 --data /var/lib/isthmus\n"
      "  curl http://127.0.0.1:8080/api/messages?limit=5\n\n"
      "Endpoints: /healthz, /readyz, /api/channels, /api/messages, /api/messages/{id},\n"
      "/api/messages/{id}/reprocess, /api/destinations, /api/dead-letters,\n"
      "/api/dead-letters/reprocess, /api/config/reload (see docs/operations.md), and the FHIR\n"
      "R4 server under /fhir (docs/fhir-server.md).");
  sub->add_option("--config", o->config,
                  "isthmus.yaml (listeners, channels, routes, destinations); see "
                  "docs/configuration.md. Without it: the embedded default");
  sub->add_option("--data", o->data_dir, "data directory (default: server.data_dir, isthmus-data)");
  sub->add_option("--mllp", o->mllp, "address of the first MLLP listener, HOST:PORT (default 127.0.0.1:2575)");
  sub->add_option("--http", o->http, "HTTP address, HOST:PORT (default 127.0.0.1:8080)");
  sub->add_option("--threads", o->threads, "network threads (default: one per core)");
  sub->add_option("--drain-seconds", o->drain_seconds,
                  "on SIGTERM, how long open MLLP connections get to finish before the engine "
                  "stops")
      ->capture_default_str();
  sub->add_option("--ready-file", o->ready_file,
                  "write 'MLLP_PORT HTTP_PORT' here once listening (for scripts and tests)");
  // The store: SQLite in the data directory. PostgreSQL (postgres://...) is planned, not built:
  // say so rather than start on SQLite when the operator asked for another store.
  auto store = std::make_shared<std::string>("sqlite");
  sub->add_option("--store", *store,
                  "the store: sqlite (isthmus.db in the data directory; the only one so far)")
      ->capture_default_str();
  return [o, store] {
    if (*store != "sqlite" && *store != "sqlite:") {
      std::fprintf(stderr,
                   "isthmus serve: --store %s is not supported: this build stores in SQLite only "
                   "(--store sqlite, the database in --data)\n",
                   store->rfind("postgres", 0) == 0 ? "postgres://..." : store->c_str());
      return 2;
    }
    return server::RunServe(*o);
  };
}

}  // namespace isthmus::cli
