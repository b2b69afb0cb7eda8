// Delivers each message as one HTTP request (POST by default) to a fixed URL.
//
// Every request carries Content-Type (configured), the configured headers, and
// X-Isthmus-Message-Id / X-Isthmus-Attempt so a receiver can make deliveries idempotent (they
// are at least once). Connections are kept alive (HTTP/1.1 persistent connections, up to
// kMaxIdleConnections idle ones, each dropped after `idle_timeout` unused or when the peer
// closed it); a request on a kept connection the peer closed before answering is sent once more
// on a fresh one. `keep_alive = false`: one connection per request. Connect and the whole
// exchange are bounded by `connect_timeout` and `timeout`.
//
// Status mapping (core/destination.h):
//   2xx                                          OK
//   408, 429, 5xx                                kUnavailable (retried)
//   timeouts                                     kDeadlineExceeded (retried)
//   refused / reset / DNS failure / bad reply    kUnavailable (retried)
//   3xx (redirects are not followed), other 4xx  kInvalidArgument "HTTP 404 Not Found" (dead
//                                                letter); the response body is not kept (PHI)
//   https://: the server's certificate fails   kFailedPrecondition (dead letter: a configuration
//   verification (unknown CA, expired, host    problem; the reason says "certificate
//   name mismatch)                             verification failed")
//   https://: other TLS handshake failures     kUnavailable (retried), timeouts kDeadlineExceeded
//
// https:// uses TLS 1.2+ with SNI and host name verification (net/tls_client.h); `tls` sets the
// CA file ("" = the system trust store), a client certificate for mutual TLS, the name to
// verify, or turns verification off (tests only).
//
// Thread-safety: Deliver may run concurrently (each call uses its own connection, taken from the
// idle pool under a mutex; the TLS context is shared read-only).
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto d, HttpDestination::Create(
//       {.name = "webhook", .url = "http://10.0.0.7:8080/hl7", .headers = {{"X-Api-Key", key}}}));
//   ISTHMUS_ASSIGN_OR_RETURN(auto s, HttpDestination::Create(
//       {.name = "fhir", .url = "https://fhir.example.org/hl7",
//        .tls = net::TlsClientSettings{.ca_file = "private-ca.pem"}}));
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/destination.h"
#include "net/tls_client.h"

namespace isthmus::destinations {

struct HttpDestinationOptions {
  std::string name;
  std::string url;                                  // http[s]://host[:port][/path][?query]
  std::string method = "POST";                      // POST or PUT
  std::map<std::string, std::string> headers;       // sent as given
  std::string content_type = "application/hl7-v2";
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(30);       // the whole exchange, connect included
  size_t max_response_bytes = 1u << 20;
  bool keep_alive = true;                           // reuse connections between requests
  absl::Duration idle_timeout = absl::Seconds(30);  // an idle kept connection is closed after
  // For https:// (unset = defaults: system trust store, verification on); refused with http://.
  std::optional<net::TlsClientSettings> tls;
};

class HttpDestination final : public core::Destination {
 public:
  // kInvalidArgument for a bad URL, method or timeout, `tls` with an http:// URL, or unusable
  // TLS files (loaded here, once).
  static absl::StatusOr<std::unique_ptr<HttpDestination>> Create(HttpDestinationOptions opts);
  ~HttpDestination() override;

  std::string_view name() const override { return opts_.name; }
  absl::Status Deliver(const core::Delivery& d) override;

  static constexpr size_t kMaxIdleConnections = 16;

 private:
  struct TlsContext;  // the Asio SSL context (Asio stays out of this header)
  struct Connection;  // an io_context and its plain or TLS stream
  struct Exchanged {
    absl::Status status;
    bool keep = false;              // the connection may serve the next request
    bool nothing_received = false;  // the peer closed or reset before any byte of a response
  };
  HttpDestination(HttpDestinationOptions opts, std::string host, std::string port,
                  std::string target, std::unique_ptr<TlsContext> tls);
  absl::StatusOr<std::unique_ptr<Connection>> Connect(
      std::chrono::steady_clock::time_point deadline);
  Exchanged Exchange(Connection& c, const core::Delivery& d,
                     std::chrono::steady_clock::time_point deadline);
  std::unique_ptr<Connection> TakeIdle();
  void PutIdle(std::unique_ptr<Connection> c);

  const HttpDestinationOptions opts_;
  const std::string host_, port_, target_;
  std::string host_header_;
  const std::unique_ptr<TlsContext> tls_;  // null: http://
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
};

}  // namespace isthmus::destinations
