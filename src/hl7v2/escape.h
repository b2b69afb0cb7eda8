// HL7 v2 escape sequences (v2.5 §2.7): \F\ \S\ \T\ \R\ \E\ \P\ (truncation, v2.7), \Xhh..\ (hex
// bytes), \.br\ (line break) and the formatting commands \.sp\ \.in\ \.ti\ \.ce\ \.fi\ \.nf\,
// highlighting \H\ \N\, and \Cxxyy\ \Mxxyyzz\ \Zxx\ which are kept verbatim.
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

#include "hl7v2/delimiters.h"

namespace isthmus::hl7v2 {

// Replaces escape sequences with the characters they stand for. \Xhh..\ yields the raw bytes (in
// the message's character set); \.br\ yields "\n"; \H\ and \N\ are dropped; an unknown or
// unterminated sequence is kept as written. Never fails.
std::string Unescape(std::string_view raw, const Delimiters& d);

// Inverse of Unescape for text: delimiters become \F\ \S\ \T\ \R\ \E\ (and \P\ for the
// truncation character), "\n" (or "\r\n") becomes \.br\, a lone "\r" becomes \X0D\.
std::string Escape(std::string_view text, const Delimiters& d);

// True when `raw` contains the escape character (so Unescape would change something).
inline bool NeedsUnescape(std::string_view raw, const Delimiters& d) {
  return d.escape != '\0' && raw.find(d.escape) != std::string_view::npos;
}

}  // namespace isthmus::hl7v2
