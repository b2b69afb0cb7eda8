// Building Boost.Asio TLS contexts: servers from TlsServerOptions, clients from
// TlsClientSettings. For .cc files only (never include from a header): it pulls in Asio's SSL
// headers and OpenSSL.
// Thread-safety: the returned context is read-only once built and may serve many streams on
// many threads.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "absl/status/statusor.h"
#include "net/tls.h"
#include "net/tls_client.h"

namespace isthmus::net {

// Loads and checks everything once, so a bad file fails at startup rather than per connection.
// InvalidArgument naming the file: missing or unreadable file, no certificate or key in it, key
// not matching the certificate, unusable CA bundle, require_client_cert without ca_file.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsServerContext(
    const TlsServerOptions& opts);

// A client context for Beast/Asio streams (ssl::stream) with the settings of
// net::TlsClientContext; per stream, call PrepareTlsClientSession (net/openssl_tls.h) on its
// native handle before the handshake. Same errors as TlsClientContext::Create.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsClientContext(
    const TlsClientSettings& opts);

}  // namespace isthmus::net
