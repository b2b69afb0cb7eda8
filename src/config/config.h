// The engine configuration (`isthmus.yaml`): server, listeners, channels with filters and
// routes, destinations with retry policies. Loaded and validated once into immutable typed
// structs; a reload builds a new snapshot (CONVENTIONS.md §12). Reference and a complete
// example: docs/configuration.md (the example is examples/isthmus.yaml, loaded by a test).
//
// Every problem is reported as `file:line:column: what is wrong (expected ...)`, all of them
// (up to 20) in one InvalidArgument status, one per line: unknown keys, values of the wrong
// kind, bad durations/sizes/addresses/CIDRs/paths/expressions/regexes, duplicate names,
// references to unknown channels or destinations, missing TLS or script files. Things that are
// legal but probably unintended (a destination no route uses) are `warnings`.
//
// Relative file paths in the config (TLS files, Lua scripts, file destination directories,
// server.data_dir) are resolved against the directory of the config file.
//
// Thread-safety: a Config is immutable; share it as std::shared_ptr<const Config>.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<const config::Config> cfg,
//                            config::LoadConfig("isthmus.yaml"));
//   for (const config::Listener& l : cfg->listeners) StartListener(l, *cfg->FindChannel(l.channel));
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/expression.h"
#include "hl7v2/path.h"

namespace isthmus::config {

// Where a config item was written, for messages at run time ("isthmus.yaml:12:5").
struct Location {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  std::string ToString() const;
};

// "host:port" or "[v6]:port"; host a name, IPv4 or IPv6 literal; port 0-65535 (0 = any free).
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;  // as it would be written
};
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

// An IPv4 or IPv6 network, "10.0.0.0/8", "2001:db8::/32", or one address ("192.0.2.7").
struct Cidr {
  std::string text;                 // as written
  bool ipv6 = false;
  std::array<uint8_t, 16> bytes{};  // network address (IPv4 in the first 4 bytes)
  int prefix_length = 0;
  // True when `address` (an IPv4 or IPv6 literal; IPv4-mapped IPv6 counts as IPv4) is inside.
  bool Contains(std::string_view address) const;
};
absl::StatusOr<Cidr> ParseCidr(std::string_view text);

// "500ms", "30s", "5m", "24h", "1h30m" (units ms, s, m, h, d; a bare 0 is allowed).
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);
// "16MiB", "1MB", "512KiB", "4096" (bytes). KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024.
absl::StatusOr<size_t> ParseByteSize(std::string_view text);

struct ServerSettings {
  std::string data_dir = "isthmus-data";      // journal and store; relative to the config file
  std::string http_address = "127.0.0.1:8080";  // FHIR, admin API, dashboard, metrics
  HostPort http;                                // http_address, parsed
  int threads = 0;                              // network threads; 0 = one per CPU core
  // Threads that run HTTP handlers (FHIR, admin API). A FHIR write waits on its handler thread
  // for the durable commit, so concurrent writes share a commit only up to this many.
  int http_threads = 16;
  // A message with the sender (MSH-3|MSH-4) and control id (MSH-10) of one journaled within
  // this long is a retransmission: ACKed again, recorded as a duplicate, not processed twice.
  // 0 disables duplicate detection. Read at start (a reload keeps the running value).
  absl::Duration dedupe_window = absl::Hours(24);
};

enum class AckMode { kAfterPersist, kAfterProcessing, kEnhanced, kNone };
std::string_view AckModeName(AckMode m);  // "after-persist", ...

struct TlsSettings {
  std::string cert;  // PEM certificate chain (required)
  std::string key;   // PEM private key (required)
  std::string ca;    // PEM CA bundle for client certificates (required when require_client_cert)
  bool require_client_cert = false;
  bool tls13_only = false;  // min_version: "1.3" (default "1.2": TLS 1.2 or newer)
};

struct Listener {
  std::string name;
  std::string type = "mllp";  // only "mllp" for now
  std::string address = "127.0.0.1:2575";
  HostPort bind;              // address, parsed
  std::string channel;        // the channel its messages enter (required)
  AckMode ack_mode = AckMode::kAfterPersist;
  size_t max_frame_bytes = size_t{16} << 20;
  absl::Duration idle_timeout = absl::Minutes(10);
  absl::Duration frame_timeout = absl::Seconds(60);
  int max_connections = 1000;
  std::vector<Cidr> allow;  // empty = any peer
  std::optional<TlsSettings> tls;
  Location location;
};

enum class TransformerType { kNone, kFhir, kLua };
struct Transformer {
  TransformerType type = TransformerType::kNone;
  std::string script;  // kLua: the script file (resolved path)
  // kFhir: a directory of site maps added to / replacing the shipped ones (resolved path or
  // empty), the zone of timestamps sent without an offset (empty = UTC), the Bundle type.
  std::string maps;
  std::string timezone;
  std::string bundle = "transaction";
};

struct Route {
  std::shared_ptr<const Expression> when;  // null = every message
  std::vector<std::string> to;             // destination names
  Location location;
};

struct Channel {
  std::string name;
  std::shared_ptr<const Expression> filter;  // null = every message; non-matching = `filtered`
  Transformer transformer;
  // In order; a message goes to the union of the destinations of every matching route. The
  // `destinations:` shorthand becomes an unconditional route at the end.
  std::vector<Route> routes;
  Location location;
};

struct RetryPolicy {
  int max_attempts = 10;  // including the first; 1 = no retry; 0 = retry until max_age
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);
  double multiplier = 2.0;
  double jitter = 0.2;  // 0..1: each backoff is multiplied by a random factor in [1-j, 1+j]
  // Dead-letter a message older than this; 0 = no limit (with max_attempts 0: retry forever).
  absl::Duration max_age = absl::Hours(24);
};

enum class DestinationType { kFile, kMllp, kHttp, kFhirLocal };
std::string_view DestinationTypeName(DestinationType t);  // "file", ...

struct FileOptions {
  std::string directory;                                // required; resolved path
  std::string filename = "${channel}-${message_id}.hl7";  // variables: see docs
};
// `tls:` of an mllp or http destination (the client side of TLS). Paths are resolved and exist.
struct ClientTlsSettings {
  std::string ca;    // PEM CA bundle the server's certificate must chain to; "" = system store
  std::string cert;  // PEM client certificate chain for mutual TLS ("" = none; needs key)
  std::string key;   // its PEM private key (unencrypted; needs cert)
  bool verify = true;  // false: no certificate or host name check (tests only)
  std::string server_name;  // name to verify and send as SNI ("" = the host of address/url)
  bool tls13_only = false;  // min_version: "1.3" (default "1.2": TLS 1.2 or newer)
};
struct MllpOptions {
  std::string address;  // required
  HostPort target;      // address, parsed
  absl::Duration timeout = absl::Seconds(30);  // connect + ACK wait
  bool retry_on_ae = false;  // AE is retried (else dead-lettered); AR is never retried
  std::optional<ClientTlsSettings> tls;  // set: MLLP over TLS 1.2+
};
struct HttpOptions {
  std::string url;  // required, http:// or https://
  std::map<std::string, std::string> headers;
  std::string content_type = "application/hl7-v2";
  absl::Duration timeout = absl::Seconds(30);
  bool keep_alive = true;                           // reuse connections between requests
  absl::Duration idle_timeout = absl::Seconds(30);  // close a kept connection idle this long
  std::optional<ClientTlsSettings> tls;  // only with https:// (which works without it too)
};
struct FhirLocalOptions {};

struct Destination {
  std::string name;
  DestinationType type = DestinationType::kFile;
  std::variant<FileOptions, MllpOptions, HttpOptions, FhirLocalOptions> options;
  std::optional<hl7v2::Path> partition_by;  // order is kept per distinct value of this path
  int parallelism = 1;                      // > 1 only with partition_by
  int batch_size = 100;                     // longest run of one partition per claim
  RetryPolicy retry;
  Location location;
};

struct Config {
  std::string source;  // the file it was read from
  ServerSettings server;
  std::vector<Listener> listeners;
  std::vector<Channel> channels;
  std::vector<Destination> destinations;
  std::vector<std::string> warnings;  // "file:line:column: what"

  const Channel* FindChannel(std::string_view name) const;
  const Destination* FindDestination(std::string_view name) const;
};

// Reads and validates a config file. NotFound / PermissionDenied / ResourceExhausted when it
// cannot be read; InvalidArgument listing every problem (one `file:line:column: ...` per line).
absl::StatusOr<std::shared_ptr<const Config>> LoadConfig(const std::string& path);

// Same for YAML text; `source_name` stands for the file in messages, and its directory anchors
// relative paths ("<string>": the current directory).
absl::StatusOr<std::shared_ptr<const Config>> LoadConfigFromString(
    std::string_view yaml, std::string_view source_name = "<string>");

}  // namespace isthmus::config
