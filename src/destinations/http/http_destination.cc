#include "destinations/http/http_destination.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <poll.h>

#include <chrono>

#include "base/status_macros.h"
#include "base/str.h"
#include "net/asio_tls.h"
#include "net/openssl_tls.h"

namespace isthmus::destinations {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::chrono::microseconds Chrono(absl::Duration d) {
  return std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

}  // namespace

struct HttpDestination::TlsContext {
  net::TlsClientSettings settings;
  std::unique_ptr<asio::ssl::context> ctx;
};

// One connection: its own io_context (a synchronous exchange runs it until the handler ran)
// and a plain or TLS stream over it.
struct HttpDestination::Connection {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  std::chrono::steady_clock::time_point idle_since;

  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void Run() {
    ioc.restart();
    ioc.run();
  }
  // An idle connection the peer closed (or sent anything on) is not worth trying: poll says
  // readable. Never blocks.
  bool LooksBroken() {
    if (tls && SSL_pending(tls->native_handle()) > 0) return true;
    pollfd p{tcp().socket().native_handle(), POLLIN, 0};
    return ::poll(&p, 1, 0) != 0;
  }
};

HttpDestination::HttpDestination(HttpDestinationOptions opts, std::string host, std::string port,
                                 std::string target, std::unique_ptr<TlsContext> tls)
    : opts_(std::move(opts)), host_(std::move(host)), port_(std::move(port)),
      target_(std::move(target)), tls_(std::move(tls)) {
  const bool default_port = port_ == (tls_ != nullptr ? "443" : "80");
  host_header_ = (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) +
                 (default_port ? "" : ":" + port_);
}

HttpDestination::~HttpDestination() = default;

absl::StatusOr<std::unique_ptr<HttpDestination>> HttpDestination::Create(
    HttpDestinationOptions opts) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(base::StrCat("http destination ", opts.name, ": ", why));
  };
  if (opts.name.empty()) return absl::InvalidArgumentError("http destination: empty name");
  std::string_view url = opts.url;
  const bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) return bad("url must start with http:// or https://");
  if (!https && opts.tls.has_value()) return bad("TLS settings need an https:// url");
  url.remove_prefix(https ? 8 : 7);
  size_t slash = url.find_first_of("/?");
  std::string_view authority = url.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (target.front() == '?') target.insert(0, "/");
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return bad("url needs a host (and no user info)");
  }
  std::string host, port = https ? "443" : "80";
  if (authority.front() == '[') {  // [v6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [ in the url's host");
    host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("bad url port");
      port = std::string(rest.substr(1));
    }
  } else {
    size_t colon = authority.rfind(':');
    host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = std::string(authority.substr(colon + 1));
  }
  int port_number = 0;
  if (host.empty() || !base::ParseInt(port, &port_number) || port_number < 1 ||
      port_number > 65535) {
    return bad("bad url host or port");
  }
  if (opts.method != "POST" && opts.method != "PUT") return bad("method must be POST or PUT");
  if (opts.connect_timeout <= absl::ZeroDuration() || opts.timeout <= absl::ZeroDuration() ||
      opts.idle_timeout <= absl::ZeroDuration()) {
    return bad("timeouts must be positive");
  }
  std::unique_ptr<TlsContext> tls;
  if (https) {
    tls = std::make_unique<TlsContext>();
    tls->settings = opts.tls.value_or(net::TlsClientSettings{});
    auto ctx = net::MakeTlsClientContext(tls->settings);
    if (!ctx.ok()) {
      return absl::Status(ctx.status().code(), base::StrCat("http destination ", opts.name, ": ",
                                                            std::string(ctx.status().message())));
    }
    tls->ctx = *std::move(ctx);
  }
  return std::unique_ptr<HttpDestination>(new HttpDestination(
      std::move(opts), std::move(host), std::move(port), std::move(target), std::move(tls)));
}

std::unique_ptr<HttpDestination::Connection> HttpDestination::TakeIdle() {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  while (!idle_.empty()) {
    std::unique_ptr<Connection> c = std::move(idle_.back());
    idle_.pop_back();
    if (now - c->idle_since < Chrono(opts_.idle_timeout) && !c->LooksBroken()) return c;
  }
  return nullptr;
}

void HttpDestination::PutIdle(std::unique_ptr<Connection> c) {
  c->idle_since = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(c));
}

absl::StatusOr<std::unique_ptr<HttpDestination::Connection>> HttpDestination::Connect(
    std::chrono::steady_clock::time_point deadline) {
  const std::string prefix = base::StrCat("http destination ", opts_.name, ": ");
  auto c = std::make_unique<Connection>();
  beast::error_code ec;
  auto net_error = [&](std::string_view step) -> absl::Status {
    std::string msg = base::StrCat(prefix, step, ": ", ec.message());
    if (ec == beast::error::timeout) return absl::DeadlineExceededError(msg);
    return absl::UnavailableError(msg);
  };

  tcp::resolver resolver(c->ioc);
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(host_, port_, [&](beast::error_code e, tcp::resolver::results_type r) {
    ec = e;
    endpoints = std::move(r);
  });
  c->Run();
  if (ec) return net_error(base::StrCat("resolve ", host_));

  const auto connect_until =
      std::min(deadline, std::chrono::steady_clock::now() + Chrono(opts_.connect_timeout));
  if (tls_ == nullptr) {
    c->plain.emplace(c->ioc);
  } else {
    c->tls.emplace(c->ioc, *tls_->ctx);
    if (absl::Status s = net::PrepareTlsClientSession(c->tls->native_handle(), tls_->settings,
                                                      host_);
        !s.ok()) {
      return absl::InvalidArgumentError(prefix + std::string(s.message()));
    }
  }
  c->tcp().expires_at(connect_until);
  c->tcp().async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  c->Run();
  if (ec) return net_error(base::StrCat("connect ", host_, ":", port_));
  if (c->tls) {
    // The handshake shares the connect timeout.
    c->tls->async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    c->Run();
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(
          base::StrCat(prefix, "TLS handshake with ", host_, " timed out"));
    }
    if (ec) {
      return net::TlsHandshakeFailure(c->tls->native_handle(),
                                      base::StrCat(prefix, "TLS handshake with ", host_),
                                      ec.message());
    }
  }
  return c;
}

HttpDestination::Exchanged HttpDestination::Exchange(Connection& c, const core::Delivery& d,
                                                     std::chrono::steady_clock::time_point deadline) {
  const std::string prefix = base::StrCat("http destination ", opts_.name, ": ");
  Exchanged out;
  beast::error_code ec;
  auto net_error = [&](std::string_view step) -> absl::Status {
    std::string msg = base::StrCat(prefix, step, ": ", ec.message());
    if (ec == beast::error::timeout) return absl::DeadlineExceededError(msg);
    return absl::UnavailableError(msg);
  };

  http::request<http::string_body> req(opts_.method == "PUT" ? http::verb::put : http::verb::post,
                                       target_, 11);
  req.set(http::field::host, host_header_);
  req.set(http::field::user_agent, "isthmus");
  req.set(http::field::content_type, opts_.content_type);
  req.set("X-Isthmus-Message-Id", base::StrCat(d.message_id));
  req.set("X-Isthmus-Attempt", base::StrCat(d.attempt));
  for (const auto& [k, v] : opts_.headers) req.set(k, v);
  req.keep_alive(opts_.keep_alive);
  req.body() = std::string(d.payload);
  req.prepare_payload();

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(opts_.max_response_bytes);
  size_t read_bytes = 0;
  auto write_and_read = [&](auto& stream) {
    c.tcp().expires_at(deadline);
    http::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
    c.Run();
    if (ec) {
      out.status = net_error("send");
      out.nothing_received = true;
      return;
    }
    http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t n) {
      ec = e;
      read_bytes = n;
    });
    c.Run();
    if (ec) {
      out.status = net_error("read response");
      out.nothing_received = read_bytes == 0 && buffer.size() == 0 &&
                             (ec == http::error::end_of_stream || ec == asio::error::eof ||
                              ec == asio::error::connection_reset ||
                              ec == asio::error::broken_pipe ||
                              ec == asio::ssl::error::stream_truncated);
    }
  };
  if (c.tls) {
    write_and_read(*c.tls);
  } else {
    write_and_read(*c.plain);
  }
  if (ec) return out;

  out.keep = opts_.keep_alive && parser.get().keep_alive() && parser.is_done() &&
             buffer.size() == 0;
  const unsigned status = parser.get().result_int();
  if (status >= 200 && status < 300) {
    out.status = absl::OkStatus();
    return out;
  }
  std::string what = base::StrCat(prefix, "HTTP ", status);
  if (!parser.get().reason().empty()) {
    base::StrAppend(&what, " ", std::string_view(parser.get().reason().data(),
                                                 parser.get().reason().size()));
  }
  if (status == 408 || status == 429 || status >= 500) {
    out.status = absl::UnavailableError(what);
  } else if (status >= 300 && status < 400) {
    out.status = absl::InvalidArgumentError(what + " (redirects are not followed)");
  } else {
    out.status = absl::InvalidArgumentError(what);
  }
  return out;
}

absl::Status HttpDestination::Deliver(const core::Delivery& d) {
  const auto deadline = std::chrono::steady_clock::now() + Chrono(opts_.timeout);
  std::unique_ptr<Connection> c = opts_.keep_alive ? TakeIdle() : nullptr;
  if (c != nullptr) {
    Exchanged r = Exchange(*c, d, deadline);
    if (r.keep) PutIdle(std::move(c));
    // The peer closed the kept connection before answering (its idle timeout raced ours): the
    // request goes once more on a fresh connection. Deliveries are at least once anyway, and
    // X-Isthmus-Message-Id lets the receiver drop a repeat.
    if (!r.nothing_received) return r.status;
  }
  ISTHMUS_ASSIGN_OR_RETURN(c, Connect(deadline));
  Exchanged r = Exchange(*c, d, deadline);
  if (r.keep) {
    PutIdle(std::move(c));
  } else {
    beast::error_code ignored;
    c->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
  return r.status;
}

}  // namespace isthmus::destinations
