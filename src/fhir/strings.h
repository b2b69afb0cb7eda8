// FHIR primitive string rules the converter must respect.
//
// FHIR R4's `string` pattern is `[ \r\n\t\S]+`: the only whitespace allowed is space, CR, LF and
// TAB. Real HL7 v2 text carries others (no-break spaces from word processors, form feeds), so
// text copied into FHIR has them replaced by a plain space.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace isthmus::fhir {

// True when `s` (UTF-8) contains whitespace FHIR strings do not allow: U+000B, U+000C, U+0085,
// U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF.
bool HasDisallowedWhitespace(std::string_view s);
// Replaces each such character in `s` with one space (in place).
void ReplaceDisallowedWhitespace(std::string* s);

}  // namespace isthmus::fhir
