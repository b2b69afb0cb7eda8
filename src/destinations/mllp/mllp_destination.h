// Delivers each message to a downstream system over MLLP (TCP, or TLS 1.2+ with `tls` set,
// optionally mutual TLS with a client certificate) and waits for its ACK.
//
// One connection is kept open and reused; any failure closes it and the next delivery
// reconnects. A reused connection that the peer closed while idle is detected and replaced
// before the message is sent (and once more if the send or the wait fails with a reset or EOF
// before any reply, since the peer then cannot have processed it).
//
// Status mapping (core/destination.h):
//   MSA-1 AA / CA                              OK
//   AE / CE                                    kInvalidArgument (dead letter), or kUnavailable
//                                              (retried) with retry_on_ae
//   AR / CR                                    kInvalidArgument (dead letter), always
//   connect refused / reset / EOF, bad reply   kUnavailable (retried)
//   no ACK within ack_timeout, slow connect    kDeadlineExceeded (retried)
//   an ACK whose MSA-2 is not our MSH-10       kUnavailable (the connection is out of step)
//   TLS: the server's certificate fails        kFailedPrecondition (dead letter: a configuration
//   verification (unknown CA, expired, host    problem; the reason says "certificate
//   name mismatch)                             verification failed")
//   TLS: any other handshake failure (reset,   kUnavailable (retried); kDeadlineExceeded when
//   protocol error, the peer refusing our      the handshake outlasts connect_timeout
//   client certificate)
// Reasons carry the ACK codes (MSA-1, MSA-2, ERR-3), never message content.
//
// Thread-safety: Deliver may be called from several threads; deliveries share the connection
// and are serialized (MLLP is one message at a time per connection).
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto d, MllpDestination::Create(
//       {.name = "ris", .host = "10.0.0.5", .port = 2575}));
//   // over mutual TLS, verifying the server against a private CA:
//   ISTHMUS_ASSIGN_OR_RETURN(auto t, MllpDestination::Create(
//       {.name = "lab", .host = "lab.example", .port = 2576,
//        .tls = net::TlsClientSettings{.ca_file = "lab-ca.pem", .cert_file = "me.pem",
//                                     .key_file = "me.key"}}));
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/destination.h"
#include "net/tls_client.h"

namespace isthmus::destinations {

struct MllpDestinationOptions {
  std::string name;
  std::string host;  // name or address
  int port = 0;
  absl::Duration connect_timeout = absl::Seconds(30);
  absl::Duration ack_timeout = absl::Seconds(30);  // from the end of the send to the ACK
  bool retry_on_ae = false;       // AE/CE retried instead of dead-lettered
  bool check_control_id = true;   // MSA-2 must echo the message's MSH-10 (when it has one)
  size_t max_ack_bytes = 1u << 20;
  // TLS (1.2+) when set: server certificate verified against ca_file ("" = the system trust
  // store) and for server_name ("" = host); cert_file/key_file for mutual TLS. The handshake
  // counts against connect_timeout.
  std::optional<net::TlsClientSettings> tls;
};

class MllpDestination final : public core::Destination {
 public:
  // kInvalidArgument for an empty name or host, a port outside 1..65535, timeouts <= 0, or
  // unusable TLS files (loaded here, once). Does not connect (the first delivery does).
  static absl::StatusOr<std::unique_ptr<MllpDestination>> Create(MllpDestinationOptions opts);
  ~MllpDestination() override;

  std::string_view name() const override { return opts_.name; }
  absl::Status Deliver(const core::Delivery& d) override;

  // Connections opened so far (for stats and tests).
  int connects() const;

 private:
  MllpDestination(MllpDestinationOptions opts,
                  std::shared_ptr<const net::TlsClientContext> tls_ctx)
      : opts_(std::move(opts)), tls_ctx_(std::move(tls_ctx)) {}
  absl::Status ConnectLocked();
  void CloseLocked();
  // Sends and reads one reply frame. `*before_reply` tells whether a failure came before any
  // byte of a reply arrived.
  absl::StatusOr<std::string> ExchangeLocked(std::string_view framed, bool* before_reply);
  absl::StatusOr<std::string> ExchangeTlsLocked(std::string_view framed, bool* before_reply);

  const MllpDestinationOptions opts_;
  const std::shared_ptr<const net::TlsClientContext> tls_ctx_;  // null: plain TCP
  mutable std::mutex mu_;
  int fd_ = -1;       // guarded by mu_
  std::unique_ptr<net::TlsStream> tls_;  // guarded by mu_; set with fd_ when tls_ctx_
  int connects_ = 0;  // guarded by mu_
};

}  // namespace isthmus::destinations
