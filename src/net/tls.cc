#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>

#include "base/str.h"
#include "net/asio_tls.h"
#include "net/openssl_tls.h"

namespace isthmus::net {
namespace {

// Drains OpenSSL's thread-local error queue into one readable string.
std::string OpenSslErrors() {
  std::string e = DrainOpenSslErrors();
  return e.empty() ? "unknown OpenSSL error" : e;
}

absl::Status CheckReadable(std::string_view what, const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(base::StrCat("TLS ", what, " is not set"));
  }
  return CheckTlsFileReadable(what, path);
}

absl::Status Failed(std::string_view what, const std::string& path, std::string_view doing) {
  return absl::InvalidArgumentError(
      base::StrCat("TLS ", what, " '", path, "': ", doing, ": ", OpenSslErrors()));
}

}  // namespace

absl::StatusOr<TlsVersion> ParseTlsVersion(std::string_view text) {
  if (text == "1.2" || text == "TLSv1.2") return TlsVersion::kTls12;
  if (text == "1.3" || text == "TLSv1.3") return TlsVersion::kTls13;
  return absl::InvalidArgumentError(
      base::StrCat("unsupported minimum TLS version '", text, "' (use 1.2 or 1.3)"));
}

absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsServerContext(
    const TlsServerOptions& opts) {
  namespace ssl = boost::asio::ssl;
  if (absl::Status s = CheckReadable("certificate file", opts.cert_file); !s.ok()) return s;
  if (absl::Status s = CheckReadable("key file", opts.key_file); !s.ok()) return s;
  if (opts.require_client_cert && opts.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS require_client_cert needs ca_file: the CA bundle client certificates must chain to");
  }
  if (!opts.ca_file.empty()) {
    if (absl::Status s = CheckReadable("CA file", opts.ca_file); !s.ok()) return s;
  }

  ::ERR_clear_error();
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::no_compression | ssl::context::single_dh_use);
  ::SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  int min = opts.min_version == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (::SSL_CTX_set_min_proto_version(native, min) != 1) {
    return absl::InternalError(base::StrCat("cannot set minimum TLS version: ", OpenSslErrors()));
  }

  if (::SSL_CTX_use_certificate_chain_file(native, opts.cert_file.c_str()) != 1) {
    return Failed("certificate file", opts.cert_file, "no usable PEM certificate chain");
  }
  {
    // Read the key ourselves, with a password callback that refuses: OpenSSL's default one
    // would prompt on the terminal for an encrypted key.
    BIO* bio = ::BIO_new_file(opts.key_file.c_str(), "r");
    if (bio == nullptr) return Failed("key file", opts.key_file, "cannot open");
    EVP_PKEY* key = ::PEM_read_bio_PrivateKey(bio, nullptr, RefuseTlsPassword, nullptr);
    ::BIO_free(bio);
    if (key == nullptr) {
      return Failed("key file", opts.key_file,
                    "no usable PEM private key (an encrypted key is not supported)");
    }
    ::ERR_clear_error();
    int ok = ::SSL_CTX_use_PrivateKey(native, key);  // checks it against the certificate
    ::EVP_PKEY_free(key);
    if (ok != 1 || ::SSL_CTX_check_private_key(native) != 1) {
      return absl::InvalidArgumentError(base::StrCat("TLS key file '", opts.key_file,
                                                     "' does not match the certificate in '",
                                                     opts.cert_file, "': ", OpenSslErrors()));
    }
  }

  if (!opts.ca_file.empty()) {
    if (::SSL_CTX_load_verify_locations(native, opts.ca_file.c_str(), nullptr) != 1) {
      return Failed("CA file", opts.ca_file, "no usable PEM CA certificates");
    }
    // Tell clients which CAs we accept (helps clients holding several certificates).
    STACK_OF(X509_NAME)* names = ::SSL_load_client_CA_file(opts.ca_file.c_str());
    if (names == nullptr) return Failed("CA file", opts.ca_file, "cannot read CA names");
    ::SSL_CTX_set_client_CA_list(native, names);  // takes ownership
    int mode = SSL_VERIFY_PEER | (opts.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    ::SSL_CTX_set_verify(native, mode, nullptr);
    // Session resumption with client verification needs a session id context.
    static const unsigned char kSessionContext[] = "isthmus";
    ::SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  } else {
    ::SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }
  ::ERR_clear_error();
  return ctx;
}

absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsClientContext(
    const TlsClientSettings& opts) {
  auto ctx = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
  if (absl::Status s = ConfigureTlsClientContext(ctx->native_handle(), opts); !s.ok()) return s;
  return ctx;
}

}  // namespace isthmus::net
