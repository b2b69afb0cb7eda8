#include "hl7v2/delimiters.h"

#include <cctype>

#include "absl/status/status.h"
#include "base/str.h"

namespace isthmus::hl7v2 {

absl::StatusOr<Delimiters> Delimiters::FromMsh(char field, std::string_view encoding) {
  if (encoding.size() > 5) {
    return absl::InvalidArgumentError("MSH-2 has more than 5 encoding characters");
  }
  // A common quirk of messages written from source code: the escape character doubled
  // ("^~\\\\&"). Read it as one.
  std::string fixed;
  if (encoding.size() == 5 && encoding[2] == encoding[3] && encoding[2] == '\\') {
    fixed = std::string(encoding.substr(0, 3)) + std::string(encoding.substr(4));
    encoding = fixed;
  }
  Delimiters d;
  d.field = field;
  char* slots[] = {&d.component, &d.repetition, &d.escape, &d.subcomponent, &d.truncation};
  for (char* s : slots) *s = '\0';
  for (size_t i = 0; i < encoding.size(); ++i) *slots[i] = encoding[i];

  std::string all(1, field);
  all.append(encoding);
  for (size_t i = 0; i < all.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(all[i]);
    std::string_view which = i == 0 ? "MSH-1 (field separator)" : "MSH-2 (encoding characters)";
    if (c == '\r' || c == '\n' || c == '\0') {
      return absl::InvalidArgumentError(
          base::StrCat(which, " holds a line break or NUL where a delimiter belongs"));
    }
    if (std::isalnum(c) || c == ' ') {
      return absl::InvalidArgumentError(
          base::StrCat(which, " uses a letter, digit or space as a delimiter"));
    }
    if (all.find(all[i], i + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          base::StrCat(which, " uses the same character for two delimiters"));
    }
  }
  return d;
}

std::string Delimiters::EncodingCharacters() const {
  std::string out;
  for (char c : {component, repetition, escape, subcomponent, truncation}) {
    if (c == '\0') break;
    out.push_back(c);
  }
  return out;
}

}  // namespace isthmus::hl7v2
