// The MLLP listener: accepts TCP connections, frames messages (net/mllp_codec.h), journals each
// message durably and only then acknowledges it (ACK mode `after-persist`, the default), and
// answers every malformed input with a NAK that says why. Retransmissions (same sender and
// MSH-10 within the journal's window) are acknowledged again and not stored twice.
//
// Acknowledgement: original mode (AA/AR) unless the message asks for enhanced mode by
// valuing MSH-15, then commit ACKs (CA/CR). Like Mirth, a response is always sent, since MLLP
// senders block on it.
//
// Thread-safety: Start() once; Stop() and stats() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "net/event_loop.h"
#include "store/journal.h"

namespace isthmus::listeners {

enum class AckMode { kAfterPersist, kNone };

struct MllpListenerOptions {
  std::string channel = "default";
  std::string host = "127.0.0.1";
  int port = 2575;                       // 0 = any free port (tests)
  size_t max_frame_bytes = 16u << 20;    // larger frames get a NAK; the connection survives
  absl::Duration idle_timeout = absl::Minutes(10);   // no bytes at all: close
  absl::Duration frame_timeout = absl::Seconds(60);  // a started frame must finish within
  int max_connections = 1000;            // beyond: accepted and closed at once
  AckMode ack_mode = AckMode::kAfterPersist;
  std::string application = "ISTHMUS";   // MSH-3 of ACKs when the message has no MSH-5
};

struct MllpListenerStats {
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> messages_acked{0};
  std::atomic<uint64_t> messages_nacked{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> bytes_received{0};
};

class MllpListener {
 public:
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
