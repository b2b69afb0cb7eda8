#include "server/serve.h"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "admin/admin_api.h"
#include "base/file.h"
#include "base/str.h"
#include "config/config.h"
#include "dispatch/dispatcher.h"
#include "listeners/mllp/mllp_listener.h"
#include "net/asio_loop.h"
#include "net/http_server.h"
#include "pipeline/pipeline.h"
#include "server/wiring.h"
#include "store/journal.h"
#include "store/queue.h"
#include "store/writer.h"

namespace isthmus::server {

const char kDefaultConfig[] = R"yaml(# The embedded default of `isthmus serve`.
listeners:
  - name: mllp
    address: 127.0.0.1:2575
    channel: default
channels:
  - name: default
)yaml";

namespace {

int Fail(std::string_view what) {
  std::fprintf(stderr, "isthmus serve: %.*s\n", static_cast<int>(what.size()), what.data());
  return 1;
}

listeners::AckMode ToAckMode(config::AckMode m) {
  switch (m) {
    case config::AckMode::kAfterPersist: return listeners::AckMode::kAfterPersist;
    case config::AckMode::kAfterProcessing: return listeners::AckMode::kAfterProcessing;
    case config::AckMode::kEnhanced: return listeners::AckMode::kEnhanced;
    case config::AckMode::kNone: return listeners::AckMode::kNone;
  }
  return listeners::AckMode::kAfterPersist;
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
  for (const std::string& w : cfg->warnings) std::fprintf(stderr, "isthmus serve: warning: %s\n", w.c_str());

  std::error_code ec;
  std::filesystem::create_directories(cfg->server.data_dir, ec);
  if (ec) return Fail(base::StrCat("cannot create data directory ", cfg->server.data_dir, ": ", ec.message()));

  // Store.
  auto writer = store::Writer::Open((std::filesystem::path(cfg->server.data_dir) / "isthmus.db").string());
  if (!writer.ok()) return Fail(std::string(writer.status().message()));
  auto journal = store::Journal::Open(**writer, store::JournalOptions{});
  if (!journal.ok()) return Fail(std::string(journal.status().message()));
  auto queue = store::Queue::Open(**writer);
  if (!queue.ok()) return Fail(std::string(queue.status().message()));

  // Destinations and their dispatchers.
  std::vector<std::unique_ptr<core::Destination>> destinations;
  std::map<std::string, std::unique_ptr<dispatch::Dispatcher>> dispatchers;
  for (const config::Destination& d : cfg->destinations) {
    auto dest = BuildDestination(d);
    if (!dest.ok()) return Fail(std::string(dest.status().message()));
    auto disp = dispatch::Dispatcher::Start(**queue, **dest, BuildDispatcherOptions(d));
    if (!disp.ok()) return Fail(base::StrCat("destination '", d.name, "': ", std::string(disp.status().message())));
    destinations.push_back(std::move(dest).value());
    dispatchers.emplace(d.name, std::move(disp).value());
  }
  auto notify = [&dispatchers](const std::string& name) {
    auto it = dispatchers.find(name);
    if (it != dispatchers.end()) it->second->Notify();
  };

  // Pipeline.
  auto plans = BuildChannelPlans(*cfg);
  if (!plans.ok()) return Fail(std::string(plans.status().message()));
  pipeline::PipelineOptions po;
  po.workers = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  auto pipe = pipeline::Pipeline::Create(**writer, **journal, std::move(plans).value(),
                                         BuildDestinationPlans(*cfg), notify, po);
  if (!pipe.ok()) return Fail(std::string(pipe.status().message()));
  auto recovered = (*pipe)->Recover();
  if (!recovered.ok()) return Fail(std::string(recovered.status().message()));
  if (*recovered > 0) {
    std::fprintf(stderr, "isthmus serve: processing %lld message(s) received before a restart\n",
                 static_cast<long long>(*recovered));
  }

  // Listeners.
  int threads = cfg->server.threads > 0 ? cfg->server.threads
                                        : static_cast<int>(std::thread::hardware_concurrency());
  net::EventLoop loop(threads);
  std::vector<std::unique_ptr<listeners::MllpListener>> mllp;
  for (const config::Listener& l : cfg->listeners) {
    listeners::MllpListenerOptions lo;
    lo.channel = l.channel;
    lo.host = l.bind.host;
    lo.port = l.bind.port;
    lo.max_frame_bytes = l.max_frame_bytes;
    lo.idle_timeout = l.idle_timeout;
    lo.frame_timeout = l.frame_timeout;
    lo.max_connections = l.max_connections;
    lo.ack_mode = ToAckMode(l.ack_mode);
    lo.sink = pipe->get();
    for (const config::Cidr& c : l.allow) lo.allow.push_back(c.text);
    if (l.tls.has_value()) {
      net::TlsServerOptions t;
      t.cert_file = l.tls->cert;
      t.key_file = l.tls->key;
      t.ca_file = l.tls->ca;
      t.require_client_cert = l.tls->require_client_cert;
      lo.tls = t;
    }
    auto started = listeners::MllpListener::Start(loop, lo, **journal);
    if (!started.ok()) {
      return Fail(base::StrCat("listener '", l.name, "': ", std::string(started.status().message())));
    }
    mllp.push_back(std::move(started).value());
  }

  // HTTP: health and the admin API.
  net::HttpServer http(loop, net::HttpServerOptions{});
  admin::AdminContext ctx;
  ctx.journal = journal->get();
  ctx.queue = queue->get();
  ctx.notify = notify;
  ctx.channels = [&mllp] {
    std::map<std::string, admin::ChannelCounters> by_channel;
    for (const auto& l : mllp) {
      const listeners::MllpListenerStats& s = l->stats();
      admin::ChannelCounters& c = by_channel[l->options().channel];
      c.name = l->options().channel;
      c.received += s.messages_received;
      c.acked += s.messages_acked;
      c.nacked += s.messages_nacked;
      c.duplicates += s.duplicates;
      c.connections_open += s.connections_open;
    }
    std::vector<admin::ChannelCounters> out;
    for (auto& [name, c] : by_channel) out.push_back(c);
    return out;
  };
  ctx.ready = [] { return true; };
  store::Journal* journal_ptr = journal->get();
  pipeline::Pipeline* pipe_ptr = pipe->get();
  ctx.reprocess = [journal_ptr, pipe_ptr](int64_t id) -> absl::Status {
    auto m = journal_ptr->Get(id);
    if (!m.ok()) return m.status();
    if (m->state == "rejected") {
      return absl::FailedPreconditionError("a rejected message cannot be parsed; fix and resend it");
    }
    absl::Status s = journal_ptr->RecordEvent(id, "reprocess", "requested through the admin API");
    if (!s.ok()) return s;
    pipe_ptr->Submit(id, m->channel, std::make_shared<const std::string>(std::move(m->raw)));
    return absl::OkStatus();
  };
  admin::RegisterAdminApi(http, ctx);
  if (absl::Status s = http.Listen(cfg->server.http.host, cfg->server.http.port); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  std::string listening;
  for (const auto& l : mllp) {
    base::StrAppend(&listening, listening.empty() ? "" : ", ", l->options().host, ":", l->port(), " -> ",
                    l->options().channel);
  }
  std::fprintf(stderr,
               "isthmus serve: MLLP on %s; HTTP on http://%s:%d (health /healthz, API /api); "
               "%zu destination(s); data in %s\n",
               listening.c_str(), cfg->server.http.host.c_str(), http.port(), dispatchers.size(),
               cfg->server.data_dir.c_str());
  if (!opts.ready_file.empty()) {
    absl::Status s = base::WriteFileAtomic(
        opts.ready_file, base::StrCat(mllp.empty() ? 0 : mllp[0]->port(), " ", http.port(), "\n"));
    if (!s.ok()) return Fail(std::string(s.message()));
  }

  // Graceful shutdown: stop accepting, give connections up to drain_seconds to finish.
  auto& io = net::IoContext(loop);
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  boost::asio::steady_timer drain_timer(io);
  auto deadline = std::chrono::steady_clock::now();
  std::function<void()> poll_drain = [&] {
    int64_t open = 0;
    for (const auto& l : mllp) open += l->stats().connections_open.load();
    if (open <= 0 || std::chrono::steady_clock::now() >= deadline) {
      loop.Stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(50));
    drain_timer.async_wait([&](const boost::system::error_code&) { poll_drain(); });
  };
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    std::fprintf(stderr, "isthmus serve: %s received, draining connections\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    for (const auto& l : mllp) l->Stop();
    http.Stop();
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts.drain_seconds);
    poll_drain();
  });
  loop.Run();
  mllp.clear();
  pipe->reset();  // finishes the messages it was given
  for (auto& [name, d] : dispatchers) d->Stop();
  dispatchers.clear();
  queue->reset();
  journal->reset();
  writer->reset();  // commits whatever was submitted
  std::fprintf(stderr, "isthmus serve: stopped\n");
  return 0;
}

}  // namespace isthmus::server
