#include "net/http_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cctype>

#include "base/str.h"
#include "net/asio_loop.h"

namespace isthmus::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

struct Route {
  std::string method;
  std::vector<std::string> parts;  // pattern split on '/'
  HttpHandler handler;             // one of the two
  AsyncHttpHandler async;
};

// An asynchronous handler's pending answer: completes the session's wait once; a 500 if it is
// dropped unanswered (a handler that threw, or lost its responder).
struct PendingAnswer {
  absl::AnyInvocable<void(HttpResponse) &&> complete;
  ~PendingAnswer() {
    if (complete) std::move(complete)(HttpResponse::Error(500, "internal error"));
  }
};

bool Match(const Route& r, const std::vector<std::string_view>& path,
           std::vector<std::pair<std::string, std::string>>* params) {
  if (r.parts.size() != path.size()) return false;
  params->clear();
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string& p = r.parts[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      if (path[i].empty()) return false;
      params->emplace_back(p.substr(1, p.size() - 2), UrlDecode(path[i], false));
    } else if (p != path[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

HttpResponse HttpResponse::Error(int status, std::string_view message) {
  return Json(status, base::StrCat("{\"error\":\"", JsonEscape(message), "\"}"));
}

std::string HttpRequest::Query(std::string_view name, std::string_view fallback) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::string(fallback);
}

std::string HttpRequest::PathParam(std::string_view name) const {
  for (const auto& [k, v] : path_params) {
    if (k == name) return v;
  }
  return {};
}

std::string HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return {};
}

std::string UrlDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(EventLoop& loop, HttpServerOptions o)
      : io(IoContext(loop)), opts(o), pool(static_cast<size_t>(o.handler_threads)), acceptor(io) {}

  asio::io_context& io;
  HttpServerOptions opts;
  std::vector<Route> routes;
  asio::thread_pool pool;
  tcp::acceptor acceptor;
  std::atomic<int> port{0};
  std::atomic<bool> stopping{false};

  // On the pool: runs the route's handler; `respond` gets the answer (now, or later from an
  // asynchronous handler).
  void Dispatch(HttpRequest& req, HttpResponder respond) {
    std::vector<std::string_view> path = base::Split(req.path, '/');
    bool path_matched = false;
    for (const Route& r : routes) {
      if (!Match(r, path, &req.path_params)) continue;
      path_matched = true;
      if (r.method != req.method && !(r.method == "GET" && req.method == "HEAD")) continue;
      if (r.async) {
        try {
          r.async(req, std::move(respond));  // a throw drops it: PendingAnswer answers 500
        } catch (const std::exception&) {
        }
        return;
      }
      HttpResponse out;
      try {
        out = r.handler(req);
      } catch (const std::exception& e) {
        out = HttpResponse::Error(500, "internal error");
      }
      std::move(respond)(std::move(out));
      return;
    }
    std::move(respond)(path_matched
                           ? HttpResponse::Error(405, "method not allowed")
                           : HttpResponse::Error(404, base::StrCat("no resource at ", req.path)));
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    std::string peer;
    try {
      auto ep = stream.socket().remote_endpoint();
      peer = base::StrCat(ep.address().to_string(), ":", static_cast<int>(ep.port()));
    } catch (...) {
    }
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(opts.max_body_bytes);
      stream.expires_after(std::chrono::seconds(opts.read_timeout_seconds));
      beast::error_code ec;
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
          ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
        break;
      }
      http::response<http::string_body> res;
      bool keep_alive = false;
      if (ec) {
        res.result(ec == http::error::body_limit ? http::status::payload_too_large
                                                 : http::status::bad_request);
        res.set(http::field::content_type, "application/json");
        res.body() = HttpResponse::Error(static_cast<int>(res.result_int()), ec.message()).body;
      } else {
        auto& msg = parser.get();
        HttpRequest req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        std::string_view target = req.target;
        size_t q = target.find('?');
        req.path = UrlDecode(target.substr(0, q), false);
        if (q != std::string_view::npos) {
          for (std::string_view kv : base::Split(target.substr(q + 1), '&')) {
            if (kv.empty()) continue;
            size_t eq = kv.find('=');
            req.query.emplace_back(UrlDecode(kv.substr(0, eq), true),
                                   eq == std::string_view::npos ? "" : UrlDecode(kv.substr(eq + 1), true));
          }
        }
        for (const auto& h : msg) {
          std::string name(h.name_string());
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          req.headers.emplace_back(std::move(name), std::string(h.value()));
        }
        req.body = std::move(msg.body());
        req.peer = peer;
        keep_alive = msg.keep_alive();
        // Run the handler on the blocking pool; resume here (on this session's strand) when it
        // answers. `req` lives in this frame until then.
        HttpResponse out = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                                         void(HttpResponse)>(
            [this, &req](auto handler) {
              auto answer = std::make_shared<PendingAnswer>();
              answer->complete = [h = std::move(handler)](HttpResponse r) mutable {
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable {
                  std::move(h)(std::move(r));
                });
              };
              HttpResponder respond = [answer](HttpResponse r) mutable {
                std::move(answer->complete)(std::move(r));
                answer->complete = nullptr;
              };
              asio::post(pool, [this, &req, respond = std::move(respond)]() mutable {
                Dispatch(req, std::move(respond));
              });
            },
            asio::use_awaitable);
        res.result(static_cast<unsigned>(out.status));
        res.set(http::field::content_type, out.content_type);
        for (const auto& [k, v] : out.headers) res.set(k, v);
        res.body() = std::move(out.body);
        if (req.method == "HEAD") res.body().clear();
      }
      res.version(11);
      res.set(http::field::server, "isthmus");
      res.keep_alive(keep_alive && !stopping);
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  asio::awaitable<void> AcceptLoop() {
    auto self = shared_from_this();
    while (!stopping) {
      beast::error_code ec;
      // Named, not a temporary: see the note on GCC 12 and co_await temporaries.
      auto strand = asio::make_strand(io);
      tcp::socket socket = co_await acceptor.async_accept(
          strand, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping) break;
        continue;  // e.g. EMFILE: keep accepting
      }
      asio::co_spawn(socket.get_executor(), Session(std::move(socket)), asio::detached);
    }
  }
};

HttpServer::HttpServer(EventLoop& loop, HttpServerOptions opts)
    : impl_(std::make_shared<Impl>(loop, opts)) {}

HttpServer::~HttpServer() {
  Stop();
  impl_->pool.join();
}

namespace {
std::vector<std::string> PatternParts(std::string_view pattern) {
  std::vector<std::string> parts;
  for (std::string_view p : base::Split(pattern, '/')) parts.emplace_back(p);
  return parts;
}
}  // namespace

void HttpServer::Handle(std::string method, std::string pattern, HttpHandler handler) {
  impl_->routes.push_back(Route{std::move(method), PatternParts(pattern), std::move(handler), {}});
}

void HttpServer::HandleAsync(std::string method, std::string pattern, AsyncHttpHandler handler) {
  impl_->routes.push_back(Route{std::move(method), PatternParts(pattern), {}, std::move(handler)});
}

absl::Status HttpServer::Listen(const std::string& host, int port) {
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(base::StrCat("bad HTTP listen address '", host, "'"));
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        base::StrCat("cannot listen for HTTP on ", host, ":", port, ": ", ec.message()));
  }
  impl_->port = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->AcceptLoop(), asio::detached);
  return absl::OkStatus();
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
}

}  // namespace isthmus::net
