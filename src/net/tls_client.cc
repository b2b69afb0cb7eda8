#include "net/tls_client.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/str.h"
#include "net/openssl_tls.h"

namespace isthmus::net {
namespace {

absl::Status FileError(std::string_view what, const std::string& path, std::string_view doing) {
  std::string errors = DrainOpenSslErrors();
  return absl::InvalidArgumentError(base::StrCat("TLS ", what, " '", path, "': ", doing,
                                                 errors.empty() ? "" : ": ", errors));
}


bool IsIpLiteral(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// A socket BIO that writes with MSG_NOSIGNAL: OpenSSL's own socket BIO uses write(), which
// raises SIGPIPE (fatal by default) when the peer has closed the connection.
int SockWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
  ssize_t n;
  do {
    n = ::send(fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int SockRead(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
  ssize_t n;
  do {
    n = ::recv(fd, data, static_cast<size_t>(len), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long SockCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int SockCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* SocketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "isthmus socket");
    BIO_meth_set_write(m, SockWrite);
    BIO_meth_set_read(m, SockRead);
    BIO_meth_set_ctrl(m, SockCtrl);
    BIO_meth_set_create(m, SockCreate);
    return m;
  }();
  return method;
}

// 1 ready, 0 timed out, -1 error.
int Wait(int fd, short events, TlsDeadline deadline) {
  while (true) {
    int ms = -1;
    if (deadline != kNoTlsDeadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      ms = left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 ? 1 : r;
  }
}

std::string IoError(SSL* ssl, int rc, std::string_view what) {
  int e = SSL_get_error(ssl, rc);
  std::string errors = DrainOpenSslErrors();
  if (!errors.empty()) return base::StrCat(what, ": ", errors);
  if (e == SSL_ERROR_SYSCALL && errno != 0) return base::StrCat(what, ": ", std::strerror(errno));
  return base::StrCat(what, ": connection closed by the peer");
}

}  // namespace

absl::Status CheckTlsFileReadable(std::string_view what, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(
        base::StrCat("TLS ", what, " '", path, "' does not exist or is not a regular file"));
  }
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(base::StrCat("TLS ", what, " '", path, "' cannot be read"));
  }
  return absl::OkStatus();
}

int RefuseTlsPassword(char*, int, int, void*) { return 0; }

std::string DrainOpenSslErrors() {
  std::string out;
  while (unsigned long e = ::ERR_get_error()) {
    char buf[256];
    ::ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::Status ConfigureTlsClientContext(SSL_CTX* ctx, const TlsClientSettings& opts) {
  ::ERR_clear_error();
  int min = opts.min_version == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (::SSL_CTX_set_min_proto_version(ctx, min) != 1) {
    return absl::InternalError(
        base::StrCat("cannot set minimum TLS version: ", DrainOpenSslErrors()));
  }
  ::SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (opts.verify) {
    if (opts.ca_file.empty()) {
      if (::SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return absl::InvalidArgumentError(
            base::StrCat("TLS: cannot load the system trust store: ", DrainOpenSslErrors()));
      }
    } else {
      if (absl::Status s = CheckTlsFileReadable("CA file", opts.ca_file); !s.ok()) return s;
      if (::SSL_CTX_load_verify_locations(ctx, opts.ca_file.c_str(), nullptr) != 1) {
        return FileError("CA file", opts.ca_file, "no usable PEM CA certificates");
      }
    }
    ::SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    ::SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (opts.cert_file.empty()) {
    if (!opts.key_file.empty()) {
      return absl::InvalidArgumentError(base::StrCat(
          "TLS key file '", opts.key_file, "' given without a client certificate file"));
    }
    return absl::OkStatus();
  }
  if (absl::Status s = CheckTlsFileReadable("certificate file", opts.cert_file); !s.ok()) return s;
  const std::string& key_file = opts.key_file.empty() ? opts.cert_file : opts.key_file;
  if (absl::Status s = CheckTlsFileReadable("key file", key_file); !s.ok()) return s;
  if (::SSL_CTX_use_certificate_chain_file(ctx, opts.cert_file.c_str()) != 1) {
    return FileError("certificate file", opts.cert_file, "no usable PEM certificate chain");
  }
  // Read the key ourselves with a refusing password callback: OpenSSL's default prompts on the
  // terminal for an encrypted key.
  BIO* bio = ::BIO_new_file(key_file.c_str(), "r");
  if (bio == nullptr) return FileError("key file", key_file, "cannot open");
  EVP_PKEY* key = ::PEM_read_bio_PrivateKey(bio, nullptr, RefuseTlsPassword, nullptr);
  ::BIO_free(bio);
  if (key == nullptr) {
    return FileError("key file", key_file,
                     "no usable PEM private key (an encrypted key is not supported)");
  }
  ::ERR_clear_error();
  int ok = ::SSL_CTX_use_PrivateKey(ctx, key);
  ::EVP_PKEY_free(key);
  if (ok != 1 || ::SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(base::StrCat("TLS key file '", key_file,
                                                   "' does not match the certificate in '",
                                                   opts.cert_file, "': ", DrainOpenSslErrors()));
  }
  ::ERR_clear_error();
  return absl::OkStatus();
}

absl::Status PrepareTlsClientSession(SSL* ssl, const TlsClientSettings& opts,
                                     const std::string& host) {
  std::string name = opts.server_name.empty() ? host : opts.server_name;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  const bool ip = IsIpLiteral(name);
  if (!ip && !name.empty() && ::SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return absl::InvalidArgumentError(
        base::StrCat("TLS: cannot use '", name, "' as server name: ", DrainOpenSslErrors()));
  }
  if (!opts.verify) return absl::OkStatus();
  X509_VERIFY_PARAM* param = ::SSL_get0_param(ssl);
  int ok = ip ? ::X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
              : ::X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  if (ok != 1) {
    return absl::InvalidArgumentError(
        base::StrCat("TLS: cannot verify against the name '", name, "'"));
  }
  ::X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return absl::OkStatus();
}

absl::Status TlsHandshakeFailure(SSL* ssl, std::string_view what, std::string_view detail) {
  long verify = ::SSL_get_verify_result(ssl);
  std::string errors = DrainOpenSslErrors();
  if (verify != X509_V_OK) {
    return absl::FailedPreconditionError(
        base::StrCat(what, ": certificate verification failed: ",
                     ::X509_verify_cert_error_string(verify),
                     " (check the CA file and the server name)"));
  }
  return absl::UnavailableError(
      base::StrCat(what, " failed: ", errors.empty() ? detail : errors));
}

// ---- TlsClientContext -----------------------------------------------------------------------

struct TlsClientContext::Impl {
  SSL_CTX* ctx = nullptr;
  ~Impl() {
    if (ctx != nullptr) ::SSL_CTX_free(ctx);
  }
};

TlsClientContext::TlsClientContext(TlsClientSettings opts, std::unique_ptr<Impl> impl)
    : opts_(std::move(opts)), impl_(std::move(impl)) {}
TlsClientContext::~TlsClientContext() = default;

absl::StatusOr<std::shared_ptr<const TlsClientContext>> TlsClientContext::Create(
    TlsClientSettings opts) {
  auto impl = std::make_unique<Impl>();
  impl->ctx = ::SSL_CTX_new(TLS_client_method());
  if (impl->ctx == nullptr) {
    return absl::InternalError(
        base::StrCat("cannot create a TLS context: ", DrainOpenSslErrors()));
  }
  if (absl::Status s = ConfigureTlsClientContext(impl->ctx, opts); !s.ok()) return s;
  return std::shared_ptr<const TlsClientContext>(
      new TlsClientContext(std::move(opts), std::move(impl)));
}

// ---- TlsStream ------------------------------------------------------------------------------

struct TlsStream::Impl {
  SSL* ssl = nullptr;
  int fd = -1;
  ~Impl() {
    if (ssl != nullptr) ::SSL_free(ssl);
  }
};

TlsStream::TlsStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsStream::~TlsStream() = default;

absl::StatusOr<std::unique_ptr<TlsStream>> TlsStream::Handshake(const TlsClientContext& ctx,
                                                               int fd, const std::string& host,
                                                               TlsDeadline deadline) {
  ::ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  impl->ssl = ::SSL_new(ctx.impl_->ctx);
  if (impl->ssl == nullptr) {
    return absl::InternalError(base::StrCat("cannot create a TLS session: ", DrainOpenSslErrors()));
  }
  BIO* bio = ::BIO_new(SocketMethod());
  if (bio == nullptr) return absl::InternalError("cannot create a socket BIO");
  ::BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  ::SSL_set_bio(impl->ssl, bio, bio);  // the SSL owns the BIO
  ::SSL_set_mode(impl->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (absl::Status s = PrepareTlsClientSession(impl->ssl, ctx.options(), host); !s.ok()) return s;
  while (true) {
    ::ERR_clear_error();
    errno = 0;
    int rc = ::SSL_connect(impl->ssl);
    if (rc == 1) break;
    int e = ::SSL_get_error(impl->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      int w = Wait(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (w == 0) {
        return absl::DeadlineExceededError(base::StrCat("TLS handshake with ", host, " timed out"));
      }
      if (w > 0) continue;
    }
    std::string detail = e == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                                                               : "connection closed by the peer";
    return TlsHandshakeFailure(impl->ssl, base::StrCat("TLS handshake with ", host), detail);
  }
  return std::unique_ptr<TlsStream>(new TlsStream(std::move(impl)));
}

absl::Status TlsStream::Write(std::string_view bytes, TlsDeadline deadline) {
  size_t off = 0;
  while (off < bytes.size()) {
    ::ERR_clear_error();
    errno = 0;
    size_t chunk = std::min<size_t>(bytes.size() - off, 1 << 30);
    int rc = ::SSL_write(impl_->ssl, bytes.data() + off, static_cast<int>(chunk));
    if (rc > 0) {
      off += static_cast<size_t>(rc);
      continue;
    }
    int e = ::SSL_get_error(impl_->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      int w = Wait(impl_->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (w == 0) return absl::DeadlineExceededError("TLS send timed out");
      if (w > 0) continue;
    }
    return absl::UnavailableError(IoError(impl_->ssl, rc, "TLS send"));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> TlsStream::Read(char* buf, size_t size, TlsDeadline deadline) {
  while (true) {
    ::ERR_clear_error();
    errno = 0;
    int rc = ::SSL_read(impl_->ssl, buf, static_cast<int>(std::min<size_t>(size, 1 << 30)));
    if (rc > 0) return static_cast<size_t>(rc);
    int e = ::SSL_get_error(impl_->ssl, rc);
    if (e == SSL_ERROR_ZERO_RETURN) return size_t{0};
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      int w = Wait(impl_->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (w == 0) return absl::DeadlineExceededError("TLS receive timed out");
      if (w > 0) continue;
    }
    if (e == SSL_ERROR_SYSCALL && errno == 0 && ::ERR_peek_error() == 0) {
      return size_t{0};  // EOF without close_notify
    }
    return absl::UnavailableError(IoError(impl_->ssl, rc, "TLS receive"));
  }
}

bool TlsStream::HasBuffered() const { return ::SSL_has_pending(impl_->ssl) == 1; }

bool TlsStream::IdleConnectionBroken() {
  pollfd p{impl_->fd, POLLIN, 0};
  if (!HasBuffered() && ::poll(&p, 1, 0) == 0) return false;
  // Something arrived: let OpenSSL process it without blocking.
  char c;
  ::ERR_clear_error();
  int rc = ::SSL_peek(impl_->ssl, &c, 1);
  if (rc > 0) return true;  // stray application data
  int e = ::SSL_get_error(impl_->ssl, rc);
  ::ERR_clear_error();
  if (e != SSL_ERROR_WANT_READ) return true;  // closed or failed
  // Only housekeeping (session tickets, key updates). A blocking socket would have blocked in
  // SSL_peek; callers use non-blocking sockets or have seen POLLIN, so data was there.
  return false;
}

void TlsStream::Shutdown() {
  ::ERR_clear_error();
  ::SSL_shutdown(impl_->ssl);
  ::ERR_clear_error();
}

}  // namespace isthmus::net
