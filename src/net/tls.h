// TLS settings for a server socket (MLLP now, HTTP later): certificate chain, key, and for mutual
// TLS the CA bundle client certificates must chain to. Plain data, no OpenSSL or Asio here; the
// context is built by net/asio_tls.h (for .cc files only).
// Thread-safety: plain value type.
//
// Example (mutual TLS):
//   net::TlsServerOptions tls;
//   tls.cert_file = "/etc/isthmus/server.pem";    // leaf first, then intermediates
//   tls.key_file = "/etc/isthmus/server.key";
//   tls.ca_file = "/etc/isthmus/senders-ca.pem";  // who may connect
//   tls.require_client_cert = true;
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::net {

enum class TlsVersion { kTls12, kTls13 };

// "1.2" or "1.3" (also "TLSv1.2", "TLSv1.3"); anything else is InvalidArgument.
absl::StatusOr<TlsVersion> ParseTlsVersion(std::string_view text);

struct TlsServerOptions {
  std::string cert_file;  // PEM: the server certificate, then any intermediates. Required.
  std::string key_file;   // PEM private key of cert_file, unencrypted. Required.
  // PEM bundle of CAs trusted for client certificates. "" = client certificates are not asked
  // for. Set without require_client_cert: a client certificate is optional but, if sent, must
  // chain to these CAs.
  std::string ca_file;
  bool require_client_cert = false;  // mutual TLS: no valid client certificate, no connection
  TlsVersion min_version = TlsVersion::kTls12;  // older protocol versions are never offered
};

}  // namespace isthmus::net
