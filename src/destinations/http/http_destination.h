// Delivers each message as one HTTP request (POST by default) to a fixed URL.
//
// Every request carries Content-Type (configured), the configured headers, and
// X-Isthmus-Message-Id / X-Isthmus-Attempt so a receiver can make deliveries idempotent (they
// are at least once). One connection per request; connect and the whole exchange are bounded by
// `connect_timeout` and `timeout`.
//
// Status mapping (core/destination.h):
//   2xx                                          OK
//   408, 429, 5xx                                kUnavailable (retried)
//   timeouts                                     kDeadlineExceeded (retried)
//   refused / reset / DNS failure / bad reply    kUnavailable (retried)
//   3xx (redirects are not followed), other 4xx  kInvalidArgument "HTTP 404 Not Found" (dead
//                                                letter); the response body is not kept (PHI)
// Only http:// for now: https:// is refused at Create (kUnimplemented).
//
// Thread-safety: Deliver may run concurrently (each call has its own connection).
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto d, HttpDestination::Create(
//       {.name = "webhook", .url = "http://10.0.0.7:8080/hl7", .headers = {{"X-Api-Key", key}}}));
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/destination.h"

namespace isthmus::destinations {

struct HttpDestinationOptions {
  std::string name;
  std::string url;                                  // http://host[:port][/path][?query]
  std::string method = "POST";                      // POST or PUT
  std::map<std::string, std::string> headers;       // sent as given
  std::string content_type = "application/hl7-v2";
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(30);       // the whole exchange, connect included
  size_t max_response_bytes = 1u << 20;
};

class HttpDestination final : public core::Destination {
 public:
  // kInvalidArgument for a bad URL, method or timeout; kUnimplemented for https://.
  static absl::StatusOr<std::unique_ptr<HttpDestination>> Create(HttpDestinationOptions opts);

  std::string_view name() const override { return opts_.name; }
  absl::Status Deliver(const core::Delivery& d) override;

 private:
  HttpDestination(HttpDestinationOptions opts, std::string host, std::string port,
                  std::string target)
      : opts_(std::move(opts)), host_(std::move(host)), port_(std::move(port)),
        target_(std::move(target)) {}

  const HttpDestinationOptions opts_;
  const std::string host_, port_, target_;
};

}  // namespace isthmus::destinations
