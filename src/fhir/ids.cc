#include "fhir/ids.h"

#include <openssl/evp.h>

namespace isthmus::fhir {

void AppendDeterministicId(std::string_view type, std::string_view key, std::string* out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Fetched once (EVP_sha256() would look the algorithm up under a lock on every call); one
  // context per thread.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local struct Ctx {
    EVP_MD_CTX* p = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(p); }
  } holder;
  EVP_MD_CTX* ctx = holder.p;
  EVP_DigestInit_ex(ctx, sha256, nullptr);
  EVP_DigestUpdate(ctx, type.data(), type.size());
  const char zero = '\0';
  EVP_DigestUpdate(ctx, &zero, 1);
  EVP_DigestUpdate(ctx, key.data(), key.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  md[6] = static_cast<unsigned char>((md[6] & 0x0f) | 0x80);  // version 8
  md[8] = static_cast<unsigned char>((md[8] & 0x3f) | 0x80);  // RFC 9562 variant
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out->push_back('-');
    out->push_back(kHex[md[i] >> 4]);
    out->push_back(kHex[md[i] & 0xf]);
  }
}

std::string DeterministicId(std::string_view type, std::string_view key) {
  std::string out;
  out.reserve(36);
  AppendDeterministicId(type, key, &out);
  return out;
}

}  // namespace isthmus::fhir
