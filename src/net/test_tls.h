// Test-only TLS helpers: a throwaway PKI (CA, server and client certificates, EC P-256) written
// to a temp directory, and a small blocking TLS client over a POSIX socket (OpenSSL), so TLS tests
// need no `openssl` binary and no fixtures checked into the tree. Never link into the product.
// Thread-safety: MakeTestPki is reentrant; a TlsClient is used by one thread.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto pki, net::MakeTestPki(dir, "good"));
//   net::TlsServerOptions tls{pki.server_cert, pki.server_key, pki.ca_cert, true};
//   ISTHMUS_ASSIGN_OR_RETURN(auto c, net::TlsClient::Connect("127.0.0.1", port,
//       {.ca_file = pki.ca_cert, .cert_file = pki.client_cert, .key_file = pki.client_key}));
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::net {

struct TestPki {  // paths of PEM files
  std::string ca_cert;
  std::string server_cert;  // SAN: IP 127.0.0.1, IP ::1, DNS localhost; signed by the CA
  std::string server_key;
  std::string server_key_encrypted;  // the same key, AES-encrypted with the password "secret"
  std::string client_cert;  // extendedKeyUsage clientAuth; signed by the CA
  std::string client_key;
};

// Creates a fresh CA named `name` and a server and a client certificate it signs, valid from an
// hour ago for a day, in `dir` as <name>-ca.pem, <name>-server.pem, ... .
absl::StatusOr<TestPki> MakeTestPki(const std::filesystem::path& dir, std::string_view name);

struct TlsClientOptions {
  std::string ca_file;    // verify the server against this CA ("" = do not verify)
  std::string cert_file;  // client certificate for mutual TLS ("" = none)
  std::string key_file;
  int max_version = 0;    // e.g. TLS1_2_VERSION; 0 = library default
  int timeout_ms = 5000;  // per read/handshake step
};

class TlsClient {
 public:
  // TCP connect to `ip`:`port`, then the TLS handshake, verifying the server's certificate for
  // `ip` when ca_file is set. The error carries OpenSSL's reason.
  static absl::StatusOr<std::unique_ptr<TlsClient>> Connect(const std::string& ip, int port,
                                                            const TlsClientOptions& opts);
  ~TlsClient();
  bool Write(std::string_view bytes);
  // The next bytes that arrive; "" on timeout, close, or a TLS error (e.g. an alert).
  std::string Read();
  // Sends close_notify.
  void Shutdown();

 private:
  struct Impl;
  explicit TlsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace isthmus::net
