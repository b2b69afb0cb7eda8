// The MLLP listener: accepts TCP connections, frames messages (net/mllp_codec.h), journals each
// message durably and only then acknowledges it (ACK mode `after-persist`, the default), and
// answers every malformed input with a NAK that says why. Retransmissions (same sender and
// MSH-10 within the journal's window) are acknowledged again and not stored twice.
//
// Acknowledgement: original mode (AA/AR) unless the message asks for enhanced mode by
// valuing MSH-15, then commit ACKs (CA/CR). Like Mirth, a response is always sent, since MLLP
// senders block on it. A message that does not parse is refused with CR when its MSH line, read
// alone, values MSH-15; input that is no message at all (bytes outside a frame, an oversized or
// unfinished frame) with AR. On an `enhanced` listener every refusal is a CR.
//
// TLS: with `tls` set, every connection must complete a TLS handshake (TLS 1.2+) within
// frame_timeout before any MLLP is read; with tls->require_client_cert, only clients holding a
// certificate from tls->ca_file get through (mutual TLS). A client that speaks plain MLLP to a TLS
// port gets a plaintext NAK saying so and is closed. Access: with `allow` set, connections from
// other addresses are closed at once, before any byte is read or sent.
//
// Thread-safety: Start() once; Stop() and stats() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/message_sink.h"
#include "net/event_loop.h"
#include "net/tls.h"
#include "store/journal.h"

namespace isthmus::listeners {

// When and how the sender is acknowledged:
//   kAfterPersist     AA (CA when the message values MSH-15) once the message is durable;
//                     processing happens afterwards.
//   kAfterProcessing  waits for the pipeline: AA when it was accepted (queued, processed,
//                     filtered, unrouted), AE with ERR segments when it is invalid or failed,
//                     AR when it could not be stored.
//   kEnhanced         CA once durable, then an application ACK (AA/AE/AR) after processing as
//                     MSH-16 asks (AL or empty: always, NE: never, ER: on errors, SU: on success).
//   kNone             nothing is sent, not even a NAK for a refused frame (the message is
//                     still journaled and processed; refusals still count in the stats). Only
//                     plain MLLP on a TLS port is still told, in plain text, that TLS is required.
enum class AckMode { kAfterPersist, kAfterProcessing, kEnhanced, kNone };

struct MllpListenerOptions {
  std::string channel = "default";
  std::string host = "127.0.0.1";
  int port = 2575;                       // 0 = any free port (tests)
  size_t max_frame_bytes = 16u << 20;    // larger frames get a NAK; the connection survives
  absl::Duration idle_timeout = absl::Minutes(10);   // no bytes at all: close
  absl::Duration frame_timeout = absl::Seconds(60);  // a started frame must finish within
  int max_connections = 1000;            // beyond: accepted and closed at once
  AckMode ack_mode = AckMode::kAfterPersist;
  // Where journaled messages go for processing; null = journal only.
  core::MessageSink* sink = nullptr;
  // Back-pressure: while the sink's backlog is above this, connections are not read (senders
  // wait for their ACKs) instead of messages piling up in memory.
  size_t max_backlog = 20000;
  std::string application = "ISTHMUS";   // MSH-3 of ACKs when the message has no MSH-5
  // TLS (and mutual TLS); unset = plain TCP. Files are loaded and checked once, at Start().
  std::optional<net::TlsServerOptions> tls;
  // IP allowlist: CIDRs ("10.0.0.0/8", "192.168.1.7", "fd00::/8"); empty = every address.
  std::vector<std::string> allow;
  // Called once per frame that did not parse (journaled as "rejected" and NAKed), on a network
  // thread: the engine counts it as the channel's `errored`. Unset = not reported.
  std::function<void()> on_rejected;
  // Connection-level events (denied peer, failed TLS handshake), one line each, carrying the peer
  // address and the reason only. Called on network threads. Unset = a line on stderr.
  std::function<void(std::string_view)> log;
};

struct MllpListenerStats {
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<uint64_t> connections_refused{0};  // over max_connections
  std::atomic<uint64_t> connections_denied{0};   // address not in `allow`
  // Failed TLS handshakes, including timeouts and plain MLLP sent to a TLS port.
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::atomic<uint64_t> tls_handshake_timeouts{0};  // of which: not completed in frame_timeout
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> messages_acked{0};
  std::atomic<uint64_t> messages_nacked{0};
  // Of which: frames that did not parse, journaled as "rejected" (not oversized or unterminated
  // frames, bytes outside a frame, or a message the journal failed to store).
  std::atomic<uint64_t> messages_rejected{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> backpressure_pauses{0};  // reads held back while the sink was behind
};

class MllpListener {
 public:
  // InvalidArgument for a bad host, `allow` entry or TLS file (the message names it);
  // Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MllpListener>> Start(net::EventLoop& loop,
                                                             MllpListenerOptions opts,
                                                             store::Journal& journal);
  ~MllpListener();
  int port() const;
  const MllpListenerOptions& options() const;
  const MllpListenerStats& stats() const;
  // Stops accepting and closes idle connections; a message being journaled is still ACKed.
  void Stop();

  struct Impl;

 private:
  explicit MllpListener(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace isthmus::listeners
