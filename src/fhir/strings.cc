#include "fhir/strings.h"

namespace isthmus::fhir {
namespace {

// The length in bytes of a disallowed whitespace character at `s[i]`, or 0.
size_t DisallowedAt(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const size_t left = s.size() - i;
  const unsigned char c = b(0);
  if (c == 0x0B || c == 0x0C) return 1;
  if (c == 0xC2 && left >= 2 && (b(1) == 0x85 || b(1) == 0xA0)) return 2;
  if (left < 3) return 0;
  if (c == 0xE1 && b(1) == 0x9A && b(2) == 0x80) return 3;                   // U+1680
  if (c == 0xE2 && b(1) == 0x80 &&
      (b(2) <= 0x8A || b(2) == 0xA8 || b(2) == 0xA9 || b(2) == 0xAF)) {     // U+2000..200A, 2028/9, 202F
    return b(2) >= 0x80 ? 3 : 0;
  }
  if (c == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) return 3;                   // U+205F
  if (c == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;                   // U+3000
  if (c == 0xEF && b(1) == 0xBB && b(2) == 0xBF) return 3;                   // U+FEFF
  return 0;
}

}  // namespace

bool HasDisallowedWhitespace(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c == 0x0B || c == 0x0C || c >= 0xC2) && DisallowedAt(s, i) > 0) return true;
  }
  return false;
}

void ReplaceDisallowedWhitespace(std::string* s) {
  std::string& t = *s;
  size_t out = 0;
  for (size_t i = 0; i < t.size();) {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    size_t n = (c == 0x0B || c == 0x0C || c >= 0xC2) ? DisallowedAt(t, i) : 0;
    if (n > 0) {
      t[out++] = ' ';
      i += n;
    } else {
      t[out++] = t[i++];
    }
  }
  t.resize(out);
}

}  // namespace isthmus::fhir
