// Character sets of HL7 v2 (table 0211, MSH-18) and conversion of values to UTF-8.
// Thread-safety: stateless functions; iconv descriptors are opened per call.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::hl7v2 {

enum class Charset {
  kUnspecified,  // no MSH-18: ASCII by the standard; UTF-8 accepted, other bytes read as 8859/1
  kAscii,        // "ASCII"
  kUtf8,         // "UNICODE UTF-8" (also "UTF-8", "UNICODE")
  kLatin1,       // "8859/1"
  kOther,        // another 0211 code converted with iconv (8859/2..9, 8859/15, GB 18030, ...)
};

struct CharsetInfo {
  Charset charset = Charset::kUnspecified;
  std::string iconv_name;  // for kOther
};

// Maps an MSH-18 value to a charset. InvalidArgument for codes that are not byte-compatible with
// ER7 parsing (UNICODE UTF-16/UTF-32) or unknown.
absl::StatusOr<CharsetInfo> CharsetFromMsh18(std::string_view msh18);

// Converts `bytes` in `cs` to UTF-8. Invalid input never fails: undecodable bytes become U+FFFD.
std::string ToUtf8(std::string_view bytes, const CharsetInfo& cs);

// True when `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

}  // namespace isthmus::hl7v2
