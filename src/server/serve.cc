#include "server/serve.h"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "admin/admin_api.h"
#include "base/file.h"
#include "base/str.h"
#include "listeners/mllp/mllp_listener.h"
#include "net/asio_loop.h"
#include "net/http_server.h"
#include "store/journal.h"

namespace isthmus::server {
namespace {

bool SplitHostPort(const std::string& s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *host = s.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return base::ParseInt(std::string_view(s).substr(colon + 1), port) && *port >= 0 && *port <= 65535 &&
         !host->empty();
}

int Fail(std::string_view what) {
  std::fprintf(stderr, "isthmus serve: %.*s\n", static_cast<int>(what.size()), what.data());
  return 1;
}

}  // namespace

int RunServe(const ServeOptions& opts) {
  std::string mllp_host, http_host;
  int mllp_port = 0, http_port = 0;
  if (!SplitHostPort(opts.mllp, &mllp_host, &mllp_port)) {
    return Fail(base::StrCat("--mllp wants HOST:PORT, e.g. 127.0.0.1:2575 (got '", opts.mllp, "')"));
  }
  if (!SplitHostPort(opts.http, &http_host, &http_port)) {
    return Fail(base::StrCat("--http wants HOST:PORT, e.g. 127.0.0.1:8080 (got '", opts.http, "')"));
  }
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir, ec);
  if (ec) return Fail(base::StrCat("cannot create data directory ", opts.data_dir, ": ", ec.message()));

  auto writer = store::Writer::Open((std::filesystem::path(opts.data_dir) / "isthmus.db").string());
  if (!writer.ok()) return Fail(std::string(writer.status().message()));
  auto journal = store::Journal::Open(**writer, store::JournalOptions{});
  if (!journal.ok()) return Fail(std::string(journal.status().message()));

  int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::thread::hardware_concurrency());
  net::EventLoop loop(threads);

  listeners::MllpListenerOptions lo;
  lo.host = mllp_host;
  lo.port = mllp_port;
  lo.max_frame_bytes = opts.max_frame_bytes;
  lo.max_connections = opts.max_connections;
  auto mllp = listeners::MllpListener::Start(loop, lo, **journal);
  if (!mllp.ok()) return Fail(std::string(mllp.status().message()));

  net::HttpServer http(loop, net::HttpServerOptions{});
  admin::AdminContext ctx;
  ctx.journal = journal->get();
  listeners::MllpListener* listener = mllp->get();
  ctx.channels = [listener] {
    const listeners::MllpListenerStats& s = listener->stats();
    admin::ChannelCounters c;
    c.name = listener->options().channel;
    c.received = s.messages_received;
    c.acked = s.messages_acked;
    c.nacked = s.messages_nacked;
    c.duplicates = s.duplicates;
    c.connections_open = s.connections_open;
    return std::vector<admin::ChannelCounters>{c};
  };
  ctx.ready = [] { return true; };
  admin::RegisterAdminApi(http, ctx);
  if (absl::Status s = http.Listen(http_host, http_port); !s.ok()) return Fail(std::string(s.message()));

  std::fprintf(stderr,
               "isthmus serve: MLLP on %s:%d, HTTP on http://%s:%d (health /healthz, API /api), "
               "data in %s\n",
               mllp_host.c_str(), (*mllp)->port(), http_host.c_str(), http.port(),
               opts.data_dir.c_str());
  if (!opts.ready_file.empty()) {
    absl::Status s = base::WriteFileAtomic(
        opts.ready_file, base::StrCat((*mllp)->port(), " ", http.port(), "\n"));
    if (!s.ok()) return Fail(std::string(s.message()));
  }

  // Graceful shutdown: stop accepting, give connections up to drain_seconds to finish.
  auto& io = net::IoContext(loop);
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  boost::asio::steady_timer drain_timer(io);
  auto deadline = std::chrono::steady_clock::now();
  std::function<void()> poll_drain = [&] {
    if (listener->stats().connections_open.load() <= 0 ||
        std::chrono::steady_clock::now() >= deadline) {
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
    listener->Stop();
    http.Stop();
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts.drain_seconds);
    poll_drain();
  });
  loop.Run();
  mllp->reset();
  journal->reset();
  writer->reset();  // commits whatever was submitted
  std::fprintf(stderr, "isthmus serve: stopped\n");
  return 0;
}

}  // namespace isthmus::server
