// The five (six from v2.7) encoding characters of an HL7 v2 message, read from MSH-1/MSH-2.
// Thread-safety: a value type.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace isthmus::hl7v2 {

struct Delimiters {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
  char truncation = '\0';  // v2.7+ optional fifth MSH-2 character ('#'); '\0' when absent

  // Reads MSH-1 (`field`) and MSH-2 (`encoding`, 0 to 5 characters). Characters MSH-2 leaves
  // out are absent ('\0'), e.g. "^~\" has no subcomponent separator. InvalidArgument when a
  // delimiter repeats, is a letter/digit, or is CR/LF: such a message cannot be split reliably.
  static absl::StatusOr<Delimiters> FromMsh(char field, std::string_view encoding);

  // MSH-2 as it would be written for these delimiters.
  std::string EncodingCharacters() const;

  bool IsSpecial(char c) const {
    return c != '\0' && (c == field || c == component || c == repetition || c == escape ||
                         c == subcomponent);
  }
};

}  // namespace isthmus::hl7v2
