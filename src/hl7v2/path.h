// Locations inside an HL7 v2 message in HL7 notation: `PID-3`, `PID-3[2].4.1`, `OBX[3]-5`.
// A Path names a segment (and which occurrence of it), a field, a repetition, a component and a
// subcomponent. Unset parts are 0. The same type serves as an error location (ERR-2, reports).
// Thread-safety: a value type.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(Path p, Path::Parse("PID-3[2].4.1"));
//   p.segment == "PID"; p.field == 3; p.repetition == 2; p.component == 4; p.subcomponent == 1
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::hl7v2 {

struct Path {
  std::string segment;    // "PID"; empty only for a default-constructed Path
  int segment_index = 0;  // 1-based occurrence of the segment in the message; 0 = the first
  int field = 0;          // 1-based; MSH-1 is the field separator, MSH-2 the encoding characters
  int repetition = 0;     // 1-based; 0 = the first
  int component = 0;      // 1-based; 0 = the whole repetition
  int subcomponent = 0;   // 1-based; 0 = the whole component

  // Accepts SEG[, [n]] then optionally -F[, [r]], .C, .S. Also accepts `SEG.F` for the field
  // (a common shorthand) when no '-' is present. InvalidArgument on anything else.
  static absl::StatusOr<Path> Parse(std::string_view text);

  // HL7 notation; omits unset parts and the [1] of a first segment occurrence (PID-3, not
  // PID[1]-3); a repetition index is written when set.
  std::string ToString() const;

  bool operator==(const Path&) const = default;
};

}  // namespace isthmus::hl7v2
