// Building a Boost.Asio TLS server context from TlsServerOptions. For .cc files only (never
// include from a header): it pulls in Asio's SSL headers and OpenSSL.
// Thread-safety: the returned context is read-only once built and may serve many streams on
// many threads.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "absl/status/statusor.h"
#include "net/tls.h"

namespace isthmus::net {

// Loads and checks everything once, so a bad file fails at startup rather than per connection.
// InvalidArgument naming the file: missing or unreadable file, no certificate or key in it, key
// not matching the certificate, unusable CA bundle, require_client_cert without ca_file.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsServerContext(
    const TlsServerOptions& opts);

}  // namespace isthmus::net
