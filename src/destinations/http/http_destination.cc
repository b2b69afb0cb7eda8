#include "destinations/http/http_destination.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>

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

HttpDestination::HttpDestination(HttpDestinationOptions opts, std::string host, std::string port,
                                 std::string target, std::unique_ptr<TlsContext> tls)
    : opts_(std::move(opts)), host_(std::move(host)), port_(std::move(port)),
      target_(std::move(target)), tls_(std::move(tls)) {}

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
  if (opts.connect_timeout <= absl::ZeroDuration() || opts.timeout <= absl::ZeroDuration()) {
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

absl::Status HttpDestination::Deliver(const core::Delivery& d) {
  const std::string prefix = base::StrCat("http destination ", opts_.name, ": ");
  asio::io_context ioc;
  beast::error_code ec;
  // Each step runs the private io_context until its handler ran: a synchronous exchange with
  // the timeouts of beast::tcp_stream.
  auto run = [&] {
    ioc.restart();
    ioc.run();
  };
  auto net_error = [&](std::string_view step) -> absl::Status {
    std::string msg = base::StrCat(prefix, step, ": ", ec.message());
    if (ec == beast::error::timeout) return absl::DeadlineExceededError(msg);
    return absl::UnavailableError(msg);
  };

  tcp::resolver resolver(ioc);
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(host_, port_, [&](beast::error_code e, tcp::resolver::results_type r) {
    ec = e;
    endpoints = std::move(r);
  });
  run();
  if (ec) return net_error(base::StrCat("resolve ", host_));

  const auto deadline = std::chrono::steady_clock::now() + Chrono(opts_.timeout);
  const auto connect_for = std::min(Chrono(opts_.connect_timeout), Chrono(opts_.timeout));
  const bool default_port = port_ == (tls_ != nullptr ? "443" : "80");
  const std::string host_header =
      (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) +
      (default_port ? "" : ":" + port_);

  // The request and response, the same over both stream types.
  std::string reason_text;
  auto exchange = [&](auto& stream) -> absl::StatusOr<unsigned> {
    http::request<http::string_body> req(
        opts_.method == "PUT" ? http::verb::put : http::verb::post, target_, 11);
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, "isthmus");
    req.set(http::field::content_type, opts_.content_type);
    req.set("X-Isthmus-Message-Id", base::StrCat(d.message_id));
    req.set("X-Isthmus-Attempt", base::StrCat(d.attempt));
    for (const auto& [k, v] : opts_.headers) req.set(k, v);
    req.keep_alive(false);
    req.body() = std::string(d.payload);
    req.prepare_payload();

    beast::get_lowest_layer(stream).expires_at(deadline);
    http::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec) return net_error("send");

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(opts_.max_response_bytes);
    http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec) return net_error("read response");
    beast::error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    reason_text.assign(parser.get().reason().data(), parser.get().reason().size());
    return parser.get().result_int();
  };

  absl::StatusOr<unsigned> result;
  if (tls_ == nullptr) {
    beast::tcp_stream stream(ioc);
    stream.expires_after(connect_for);
    stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) return net_error(base::StrCat("connect ", host_, ":", port_));
    result = exchange(stream);
  } else {
    beast::ssl_stream<beast::tcp_stream> stream(ioc, *tls_->ctx);
    if (absl::Status s = net::PrepareTlsClientSession(stream.native_handle(), tls_->settings,
                                                      host_);
        !s.ok()) {
      return absl::InvalidArgumentError(prefix + std::string(s.message()));
    }
    beast::tcp_stream& tcp_layer = beast::get_lowest_layer(stream);
    tcp_layer.expires_after(connect_for);
    tcp_layer.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) return net_error(base::StrCat("connect ", host_, ":", port_));
    // The handshake shares the connect timeout.
    stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    run();
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(
          base::StrCat(prefix, "TLS handshake with ", host_, " timed out"));
    }
    if (ec) {
      return net::TlsHandshakeFailure(stream.native_handle(),
                                      base::StrCat(prefix, "TLS handshake with ", host_),
                                      ec.message());
    }
    result = exchange(stream);
  }
  if (!result.ok()) return result.status();

  const unsigned status = *result;
  if (status >= 200 && status < 300) return absl::OkStatus();
  std::string what = base::StrCat(prefix, "HTTP ", status);
  if (!reason_text.empty()) base::StrAppend(&what, " ", reason_text);
  if (status == 408 || status == 429 || status >= 500) return absl::UnavailableError(what);
  if (status >= 300 && status < 400) {
    return absl::InvalidArgumentError(what + " (redirects are not followed)");
  }
  return absl::InvalidArgumentError(what);
}

}  // namespace isthmus::destinations
