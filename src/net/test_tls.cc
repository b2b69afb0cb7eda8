#include "net/test_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/str.h"

namespace isthmus::net {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
  void operator()(FILE* f) const { std::fclose(f); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;

std::string Errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::Status Fail(std::string_view what) {
  return absl::InternalError(base::StrCat(what, ": ", Errors()));
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, const_cast<char*>(value)));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return Fail(base::StrCat("extension ", value));
  return absl::OkStatus();
}

// issuer == nullptr: self-signed CA.
absl::StatusOr<Cert> MakeCert(const std::string& cn, EVP_PKEY* key, X509* issuer,
                              EVP_PKEY* issuer_key, long serial,
                              std::initializer_list<std::pair<int, const char*>> exts) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  for (auto [nid, value] : exts) {
    if (absl::Status s = AddExt(cert.get(), signer, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return Fail("X509_sign");
  }
  return cert;
}

absl::Status WritePem(const std::string& path, X509* cert, EVP_PKEY* key, bool encrypt = false) {
  std::unique_ptr<FILE, Free> f(std::fopen(path.c_str(), "w"));
  if (!f) return absl::InternalError(base::StrCat("cannot write ", path));
  static char kPassword[] = "secret";
  bool ok = cert != nullptr
                ? PEM_write_X509(f.get(), cert) == 1
                : PEM_write_PrivateKey(f.get(), key, encrypt ? EVP_aes_256_cbc() : nullptr,
                                       encrypt ? reinterpret_cast<unsigned char*>(kPassword) : nullptr,
                                       encrypt ? 6 : 0, nullptr, nullptr) == 1;
  if (!ok) return Fail(base::StrCat("writing ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki(const std::filesystem::path& dir, std::string_view name) {
  Key ca_key(EVP_EC_gen("P-256")), server_key(EVP_EC_gen("P-256")),
      client_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key || !client_key) return Fail("EVP_EC_gen");
  std::string n(name);
  auto ca = MakeCert(n + " test CA", ca_key.get(), nullptr, nullptr, 1,
                     {{NID_basic_constraints, "critical,CA:TRUE"},
                      {NID_key_usage, "critical,keyCertSign,cRLSign"},
                      {NID_subject_key_identifier, "hash"}});
  if (!ca.ok()) return ca.status();
  auto server = MakeCert(n + " server", server_key.get(), ca->get(), ca_key.get(), 2,
                         {{NID_basic_constraints, "critical,CA:FALSE"},
                          {NID_key_usage, "critical,digitalSignature"},
                          {NID_ext_key_usage, "serverAuth"},
                          {NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost"},
                          {NID_authority_key_identifier, "keyid"}});
  if (!server.ok()) return server.status();
  auto client = MakeCert(n + " client", client_key.get(), ca->get(), ca_key.get(), 3,
                         {{NID_basic_constraints, "critical,CA:FALSE"},
                          {NID_key_usage, "critical,digitalSignature"},
                          {NID_ext_key_usage, "clientAuth"},
                          {NID_authority_key_identifier, "keyid"}});
  if (!client.ok()) return client.status();

  TestPki pki;
  auto path = [&](std::string_view what) { return (dir / base::StrCat(n, "-", what, ".pem")).string(); };
  pki.ca_cert = path("ca");
  pki.server_cert = path("server");
  pki.server_key = path("server-key");
  pki.server_key_encrypted = path("server-key-encrypted");
  pki.client_cert = path("client");
  pki.client_key = path("client-key");
  for (absl::Status s : {WritePem(pki.ca_cert, ca->get(), nullptr),
                         WritePem(pki.server_cert, server->get(), nullptr),
                         WritePem(pki.server_key, nullptr, server_key.get()),
                         WritePem(pki.server_key_encrypted, nullptr, server_key.get(), true),
                         WritePem(pki.client_cert, client->get(), nullptr),
                         WritePem(pki.client_key, nullptr, client_key.get())}) {
    if (!s.ok()) return s;
  }
  return pki;
}

struct TlsClient::Impl {
  int fd = -1;
  std::unique_ptr<SSL_CTX, Free> ctx;
  std::unique_ptr<SSL, Free> ssl;
  ~Impl() {
    ssl.reset();
    if (fd >= 0) ::close(fd);
  }
};

TlsClient::TlsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsClient::~TlsClient() = default;

absl::StatusOr<std::unique_ptr<TlsClient>> TlsClient::Connect(const std::string& ip, int port,
                                                              const TlsClientOptions& opts) {
  auto impl = std::make_unique<Impl>();
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    return absl::InvalidArgumentError(base::StrCat("bad address ", ip));
  }
  impl->fd = ::socket(ss.ss_family, SOCK_STREAM, 0);
  timeval tv{opts.timeout_ms / 1000, (opts.timeout_ms % 1000) * 1000};
  ::setsockopt(impl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(impl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(impl->fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return absl::UnavailableError(base::StrCat("connect: ", std::strerror(errno)));
  }
  ERR_clear_error();
  impl->ctx.reset(SSL_CTX_new(TLS_client_method()));
  if (opts.max_version != 0) SSL_CTX_set_max_proto_version(impl->ctx.get(), opts.max_version);
  if (!opts.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(impl->ctx.get(), opts.ca_file.c_str(), nullptr) != 1) {
      return Fail("client CA file");
    }
    SSL_CTX_set_verify(impl->ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  if (!opts.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(impl->ctx.get(), opts.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(impl->ctx.get(), opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return Fail("client certificate");
    }
  }
  impl->ssl.reset(SSL_new(impl->ctx.get()));
  if (!opts.ca_file.empty()) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(impl->ssl.get()), ip.c_str());
  SSL_set_fd(impl->ssl.get(), impl->fd);
  if (SSL_connect(impl->ssl.get()) != 1) {
    long verify = SSL_get_verify_result(impl->ssl.get());
    std::string why = Errors();
    if (verify != X509_V_OK) why += base::StrCat(" (", X509_verify_cert_error_string(verify), ")");
    return absl::UnavailableError(base::StrCat("TLS handshake: ", why));
  }
  return std::unique_ptr<TlsClient>(new TlsClient(std::move(impl)));
}

bool TlsClient::Write(std::string_view bytes) {
  ERR_clear_error();
  return SSL_write(impl_->ssl.get(), bytes.data(), static_cast<int>(bytes.size())) ==
         static_cast<int>(bytes.size());
}

std::string TlsClient::Read() {
  ERR_clear_error();
  char buf[65536];
  int n = SSL_read(impl_->ssl.get(), buf, sizeof buf);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

void TlsClient::Shutdown() { SSL_shutdown(impl_->ssl.get()); }

}  // namespace isthmus::net
