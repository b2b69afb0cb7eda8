#include "fhir/ids.h"

#include <openssl/evp.h>

namespace isthmus::fhir {

void AppendDeterministicId(std::string_view type, std::string_view key, std::string* out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, type.data(), type.size());
  const char zero = '\0';
  EVP_DigestUpdate(ctx, &zero, 1);
  EVP_DigestUpdate(ctx, key.data(), key.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
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
