#include "server/serve.h"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "admin/admin_api.h"
#include "base/file.h"
#include "base/str.h"
#include "config/config.h"
#include "fhir_server/fhir_api.h"
#include "net/asio_loop.h"
#include "net/http_server.h"
#include "server/engine.h"

namespace isthmus::server {

const char kDefaultConfig[] = R"yaml(# The embedded default of `isthmus serve`: every HL7 v2
# message is journaled and ACKed, converted to a FHIR R4 Bundle by the shipped maps, and stored in
# the built-in FHIR store (exactly once), which serves it at /fhir.
listeners:
  - name: mllp
    address: 127.0.0.1:2575
    channel: default
channels:
  - name: default
    transformer: fhir
    destinations: [fhir-store]
destinations:
  - name: fhir-store
    type: fhir_local
)yaml";

namespace {

int Fail(std::string_view what) {
  std::fprintf(stderr, "isthmus serve: %.*s\n", static_cast<int>(what.size()), what.data());
  return 1;
}

// The configuration with the command line's overrides applied.
absl::StatusOr<config::Config> LoadWithOverrides(const ServeOptions& opts) {
  auto loaded = opts.config.empty() ? config::LoadConfigFromString(kDefaultConfig, "<embedded default>")
                                    : config::LoadConfig(opts.config);
  if (!loaded.ok()) return loaded.status();
  config::Config c = **loaded;
  if (!opts.data_dir.empty()) c.server.data_dir = opts.data_dir;
  if (!opts.http.empty()) {
    auto hp = config::ParseHostPort(opts.http);
    if (!hp.ok()) {
      return absl::InvalidArgumentError(base::StrCat("--http: ", std::string(hp.status().message())));
    }
    c.server.http_address = opts.http;
    c.server.http = *hp;
  }
  if (!opts.mllp.empty()) {
    if (c.listeners.empty()) return absl::InvalidArgumentError("--mllp: the configuration has no listener");
    auto hp = config::ParseHostPort(opts.mllp);
    if (!hp.ok()) {
      return absl::InvalidArgumentError(base::StrCat("--mllp: ", std::string(hp.status().message())));
    }
    c.listeners[0].address = opts.mllp;
    c.listeners[0].bind = *hp;
  }
  if (opts.threads > 0) c.server.threads = opts.threads;
  return c;
}

}  // namespace

int RunServe(const ServeOptions& opts) {
  auto cfg = LoadWithOverrides(opts);
  if (!cfg.ok()) return Fail(std::string(cfg.status().message()));
  if (opts.config.empty()) {
    std::fprintf(stderr,
                 "isthmus serve: no --config: the embedded default journals every message "
                 "received on MLLP %s, ACKs it once durable, converts it to FHIR R4 and stores it "
                 "in the built-in FHIR store at /fhir (data in %s); see docs/configuration.md "
                 "for channels and destinations of your own\n",
                 cfg->listeners.empty() ? "-" : cfg->listeners[0].address.c_str(),
                 cfg->server.data_dir.c_str());
  }
  for (const std::string& w : cfg->warnings) {
    std::fprintf(stderr, "isthmus serve: warning: %s\n", w.c_str());
  }

  int threads = cfg->server.threads > 0 ? cfg->server.threads
                                        : static_cast<int>(std::thread::hardware_concurrency());
  net::EventLoop loop(threads);
  auto engine = Engine::Start(*cfg, loop);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  Engine* e = engine->get();

  // Hot reload: the same file and the same command-line overrides. The store and the HTTP
  // address stay as they are.
  std::mutex reload_mu;
  auto reload = [&opts, &cfg, e, &reload_mu]() -> absl::StatusOr<std::string> {
    if (opts.config.empty()) {
      return absl::FailedPreconditionError("serve was started without --config: nothing to reload");
    }
    std::lock_guard<std::mutex> lock(reload_mu);
    auto next = LoadWithOverrides(opts);
    if (!next.ok()) return next.status();
    if (next->server.data_dir != cfg->server.data_dir || next->server.http_address != cfg->server.http_address) {
      return absl::FailedPreconditionError(
          "server.data_dir and server.http_address cannot change without a restart");
    }
    return e->Reload(*next);
  };

  // Outlives the server that calls it.
  fhir_server::FhirApi fhir_api(e->fhir_store(), e->fhir_search());
  net::HttpServerOptions http_opts;
  http_opts.handler_threads = cfg->server.http_threads;
  net::HttpServer http(loop, http_opts);
  admin::AdminContext ctx;
  e->FillAdminContext(&ctx);
  ctx.reload = reload;
  admin::RegisterAdminApi(http, ctx);
  fhir_api.Register(http);
  if (absl::Status s = http.Listen(cfg->server.http.host, cfg->server.http.port); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  std::fprintf(stderr,
               "isthmus serve: MLLP on %s; HTTP on http://%s:%d (health /healthz, API /api, FHIR /fhir); "
               "%zu destination(s); data in %s\n",
               e->ListenerSummary().c_str(), cfg->server.http.host.c_str(), http.port(),
               e->destination_count(), cfg->server.data_dir.c_str());
  if (!opts.ready_file.empty()) {
    absl::Status s = base::WriteFileAtomic(
        opts.ready_file, base::StrCat(e->FirstMllpPort(), " ", http.port(), "\n"));
    if (!s.ok()) return Fail(std::string(s.message()));
  }

  // SIGHUP reloads (on its own thread: a reload waits for drains). SIGTERM/SIGINT stop
  // accepting and give connections up to drain_seconds to finish.
  auto& io = net::IoContext(loop);
  boost::asio::signal_set hup(io, SIGHUP);
  std::vector<std::thread> reloads;
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& err, int) {
      if (err) return;
      reloads.emplace_back([&reload] {
        auto r = reload();
        if (r.ok()) {
          std::fprintf(stderr, "isthmus serve: configuration reloaded: %s\n", r->c_str());
        } else {
          std::fprintf(stderr, "isthmus serve: reload refused, the running configuration stays: %s\n",
                       std::string(r.status().message()).c_str());
        }
      });
      wait_hup();
    });
  };
  wait_hup();
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  boost::asio::steady_timer drain_timer(io);
  auto deadline = std::chrono::steady_clock::now();
  std::function<void()> poll_drain = [&] {
    if (e->OpenConnections() <= 0 || std::chrono::steady_clock::now() >= deadline) {
      loop.Stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(50));
    drain_timer.async_wait([&](const boost::system::error_code&) { poll_drain(); });
  };
  signals.async_wait([&](const boost::system::error_code& err, int sig) {
    if (err) return;
    std::fprintf(stderr, "isthmus serve: %s received, draining connections\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    e->StopListeners();
    http.Stop();
    hup.cancel();
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts.drain_seconds);
    poll_drain();
  });
  loop.Run();
  for (auto& t : reloads) t.join();
  engine->reset();  // pipeline and dispatchers drain, the store commits
  std::fprintf(stderr, "isthmus serve: stopped\n");
  return 0;
}

}  // namespace isthmus::server
