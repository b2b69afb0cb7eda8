// A small HTTP/1.1 server (Boost.Beast underneath) with a router: method + path pattern, where
// `{name}` matches one path segment. Handlers run on a blocking pool, never on the network loop,
// so they may read the database.
// Thread-safety: register routes before Listen(); handlers may run concurrently.
//
// An asynchronous handler (HandleAsync) also starts on the pool but answers through its
// HttpResponder, from any thread and later (e.g. a store's commit callback): its pool thread is
// free meanwhile, so requests in flight are not capped by the pool's size. The request stays
// valid until the responder is called; a responder destroyed without being called answers 500.
//
// Example:
//   HttpServer http(loop, {});
//   http.Handle("GET", "/api/messages/{id}", [&](const HttpRequest& r) {
//     return HttpResponse::Json(200, Lookup(r.PathParam("id")));
//   });
//   ISTHMUS_RETURN_IF_ERROR(http.Listen("127.0.0.1", 8080));
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "net/event_loop.h"

namespace isthmus::net {

struct HttpRequest {
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // decoded path without query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::vector<std::pair<std::string, std::string>> path_params;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string peer;

  // First value of a query parameter, or `fallback`.
  std::string Query(std::string_view name, std::string_view fallback = "") const;
  std::string PathParam(std::string_view name) const;
  std::string Header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse Json(int status, std::string body) {
    return HttpResponse{status, "application/json", std::move(body), {}};
  }
  static HttpResponse Text(int status, std::string body) {
    return HttpResponse{status, "text/plain; charset=utf-8", std::move(body), {}};
  }
  // {"error": message} with the status.
  static HttpResponse Error(int status, std::string_view message);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Call exactly once, from any thread; the response is written on the connection's own executor.
using HttpResponder = absl::AnyInvocable<void(HttpResponse) &&>;
using AsyncHttpHandler = std::function<void(const HttpRequest&, HttpResponder)>;

struct HttpServerOptions {
  size_t max_body_bytes = 16u << 20;
  int handler_threads = 2;
  int read_timeout_seconds = 30;
};

class HttpServer {
 public:
  HttpServer(EventLoop& loop, HttpServerOptions opts);
  ~HttpServer();

  void Handle(std::string method, std::string pattern, HttpHandler handler);
  void HandleAsync(std::string method, std::string pattern, AsyncHttpHandler handler);
  // Binds and starts accepting. "0" as port picks a free one (see port()).
  absl::Status Listen(const std::string& host, int port);
  int port() const;
  // Stops accepting; open connections finish their current request.
  void Stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Percent-decoding for URL paths and query strings ('+' is a space in queries).
std::string UrlDecode(std::string_view s, bool plus_is_space);

}  // namespace isthmus::net
