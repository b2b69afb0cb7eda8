// A small blocking TLS client over a connected POSIX socket (OpenSSL), shared by the MLLP
// destination and `isthmus send`; the HTTP destination uses the same settings through Beast
// (net/asio_tls.h). Plain types only here: no OpenSSL or Asio in this header.
//
// Security defaults: TLS 1.2 or newer; the server's certificate is verified against `ca_file`
// (or the system trust store) and must match the host name (or IP address) connected to, or
// `server_name` when set; SNI is sent for names (never for IP literals).
//
// Status rule for a failed handshake (TlsStream::Handshake and, for Beast, TlsHandshakeFailure
// in net/openssl_tls.h):
//   the server's certificate failed verification (unknown CA, expired, host name mismatch)
//                                                         kFailedPrecondition: a configuration
//                                                         problem that retrying does not cure
//   timeout                                               kDeadlineExceeded
//   anything else (reset, EOF, protocol error, an alert from the peer, e.g. the server
//   refusing our client certificate)                      kUnavailable
// Messages carry OpenSSL's reason and, for verification failures, the words "certificate
// verification failed".
//
// Thread-safety: a TlsClientContext is immutable once built and may serve many streams on many
// threads; a TlsStream is used by one thread at a time.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto ctx, net::TlsClientContext::Create(
//       {.ca_file = "ca.pem", .cert_file = "me.pem", .key_file = "me.key"}));
//   ISTHMUS_ASSIGN_OR_RETURN(auto tls, net::TlsStream::Handshake(*ctx, fd, "ris.example",
//                                                                deadline));
//   ISTHMUS_RETURN_IF_ERROR(tls->Write(bytes, deadline));
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/tls.h"

namespace isthmus::net {

struct TlsClientSettings {
  std::string ca_file;      // PEM CAs to verify the server with; "" = the system trust store
  std::string cert_file;    // PEM client certificate chain for mutual TLS; "" = none
  std::string key_file;     // its unencrypted PEM key; "" = in cert_file
  std::string server_name;  // name to verify and send as SNI; "" = the host connected to
  bool verify = true;       // false: no certificate or host name check (tests only)
  TlsVersion min_version = TlsVersion::kTls12;
};

class TlsClientContext {
 public:
  // Loads the files once. kInvalidArgument naming the file: missing or unreadable, no usable
  // certificate/key/CA, key not matching the certificate, key without certificate.
  static absl::StatusOr<std::shared_ptr<const TlsClientContext>> Create(TlsClientSettings opts);
  ~TlsClientContext();
  const TlsClientSettings& options() const { return opts_; }

 private:
  friend class TlsStream;
  struct Impl;
  TlsClientContext(TlsClientSettings opts, std::unique_ptr<Impl> impl);
  const TlsClientSettings opts_;
  std::unique_ptr<Impl> impl_;
};

using TlsDeadline = std::chrono::steady_clock::time_point;
inline constexpr TlsDeadline kNoTlsDeadline = TlsDeadline::max();

class TlsStream {
 public:
  // The client handshake over `fd` (connected; blocking or non-blocking; not owned: close it
  // after the stream). `host` is what was connected to. See the status rule above.
  static absl::StatusOr<std::unique_ptr<TlsStream>> Handshake(const TlsClientContext& ctx, int fd,
                                                             const std::string& host,
                                                             TlsDeadline deadline);
  ~TlsStream();

  // All of `bytes`. kUnavailable on error, kDeadlineExceeded on timeout.
  absl::Status Write(std::string_view bytes, TlsDeadline deadline);
  // Up to `size` bytes, waiting for at least one: the count, 0 when the peer closed the
  // connection, kUnavailable on an error (e.g. an alert), kDeadlineExceeded on timeout.
  absl::StatusOr<size_t> Read(char* buf, size_t size, TlsDeadline deadline);
  // Decrypted bytes are buffered: read them before waiting on the socket.
  bool HasBuffered() const;
  // For a kept, idle connection: true when the peer closed it or sent anything but TLS
  // housekeeping (e.g. TLS 1.3 session tickets, which are consumed). Does not block.
  bool IdleConnectionBroken();
  // Sends close_notify (best effort, does not wait for the peer's).
  void Shutdown();

 private:
  struct Impl;
  explicit TlsStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace isthmus::net
