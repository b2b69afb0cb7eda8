// OpenSSL-level pieces of the TLS client (net/tls_client.h), shared with Beast streams in the
// HTTP destination. For .cc files only (never include from a header): it pulls in OpenSSL.
// Thread-safety: functions are reentrant; each touches only the SSL/SSL_CTX it is given.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "net/tls_client.h"

namespace isthmus::net {

// Applies `opts` to a client context: minimum version, trust (ca_file or the system store),
// verification mode, client certificate and key (read with a refusing password callback).
// kInvalidArgument naming the file on any problem.
absl::Status ConfigureTlsClientContext(SSL_CTX* ctx, const TlsClientSettings& opts);

// Per connection: SNI (for names only) and host name or IP verification against
// opts.server_name, or `host` when that is empty.
absl::Status PrepareTlsClientSession(SSL* ssl, const TlsClientSettings& opts,
                                     const std::string& host);

// A failed client handshake as a Status (the rule in net/tls_client.h), "<what>: certificate
// verification failed: <reason> ..." or "<what> failed: <OpenSSL errors or detail>"; drains
// OpenSSL's error queue. `detail` is the transport's own description (e.g. an Asio error
// message), used when OpenSSL has nothing to say.
absl::Status TlsHandshakeFailure(SSL* ssl, std::string_view what, std::string_view detail);

// Drains OpenSSL's thread-local error queue into one readable string ("" when empty).
std::string DrainOpenSslErrors();

// kInvalidArgument naming `what` and `path` unless `path` is a readable regular file.
absl::Status CheckTlsFileReadable(std::string_view what, const std::string& path);

// A pem_password_cb that refuses: keys must not be encrypted, and OpenSSL's default callback
// would prompt on the terminal.
int RefuseTlsPassword(char* buf, int size, int rwflag, void* userdata);

}  // namespace isthmus::net
