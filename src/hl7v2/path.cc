#include "hl7v2/path.h"

#include <cctype>

#include "absl/status/status.h"
#include "base/str.h"

namespace isthmus::hl7v2 {
namespace {

// Reads a positive decimal number at `s[*i]`; false when none or too large.
bool ReadNumber(std::string_view s, size_t* i, int* out) {
  size_t start = *i;
  long v = 0;
  while (*i < s.size() && std::isdigit(static_cast<unsigned char>(s[*i]))) {
    v = v * 10 + (s[*i] - '0');
    if (v > 1'000'000) return false;
    ++*i;
  }
  if (*i == start || v == 0) return false;
  *out = static_cast<int>(v);
  return true;
}

bool ReadIndex(std::string_view s, size_t* i, int* out) {
  if (*i >= s.size() || s[*i] != '[') return true;  // optional
  ++*i;
  if (!ReadNumber(s, i, out)) return false;
  if (*i >= s.size() || s[*i] != ']') return false;
  ++*i;
  return true;
}

}  // namespace

absl::StatusOr<Path> Path::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        base::StrCat("invalid HL7 path '", text, "': ", why,
                     " (expected e.g. PID-3, PID-3[2].4.1, OBX[3]-5)"));
  };
  Path p;
  size_t i = 0;
  while (i < text.size() && i < 3 && std::isalnum(static_cast<unsigned char>(text[i]))) ++i;
  if (i != 3) return bad("a segment name has three letters or digits");
  p.segment = std::string(text.substr(0, 3));
  for (char& c : p.segment) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!ReadIndex(text, &i, &p.segment_index)) return bad("bad segment index");
  if (i == text.size()) return p;
  if (text[i] != '-' && text[i] != '.') return bad("expected '-' after the segment");
  ++i;
  if (!ReadNumber(text, &i, &p.field)) return bad("expected a field number");
  if (!ReadIndex(text, &i, &p.repetition)) return bad("bad repetition index");
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!ReadNumber(text, &i, &p.component)) return bad("expected a component number");
    if (i < text.size() && text[i] == '.') {
      ++i;
      if (!ReadNumber(text, &i, &p.subcomponent)) return bad("expected a subcomponent number");
    }
  }
  if (i != text.size()) return bad("unexpected text at the end");
  return p;
}

std::string Path::ToString() const {
  std::string out = segment;
  if (segment_index > 1) base::StrAppend(&out, "[", segment_index, "]");
  if (field == 0) return out;
  base::StrAppend(&out, "-", field);
  if (repetition > 0) base::StrAppend(&out, "[", repetition, "]");
  if (component > 0) base::StrAppend(&out, ".", component);
  if (component > 0 && subcomponent > 0) base::StrAppend(&out, ".", subcomponent);
  return out;
}

}  // namespace isthmus::hl7v2
