// FHIR date/time values from HL7 v2 DTM, TS (component 1), DT and TM text.
//
// HL7 DTM is YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. The FHIR value keeps the precision
// that was sent (a year stays a year, a fraction keeps its digits) and the offset that was sent.
// FHIR requires seconds and an offset once a time is present: minutes and seconds missing from
// the HL7 value are written as 00, and an offset-less value gets the offset that `tz` (the
// configured zone of the sender) had at that local time.
//
// Thread-safety: stateless functions.
//
// Example:
//   std::string out;
//   ISTHMUS_RETURN_IF_ERROR(AppendFhirTime("200102031405-0500", TimeType::kDateTime, tz, &out));
//   // out == "2001-02-03T14:05:00-05:00"
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace isthmus::fhir {

enum class TimeType {
  kDateTime,  // FHIR dateTime: partial dates allowed; a time needs seconds and an offset
  kDate,      // FHIR date: YYYY[-MM[-DD]]; any time part is dropped
  kInstant,   // FHIR instant: always YYYY-MM-DDThh:mm:ss[.f]+zz:zz
  kTime,      // FHIR time: hh:mm:ss[.f] from HL7 TM (HH[MM[SS[.S...]]][+/-ZZZZ], offset dropped)
};

// Appends the FHIR form of `v2` to `out`. InvalidArgument (naming the value) when `v2` is not a
// well-formed HL7 date/time; `out` is unchanged then. Leading/trailing spaces are ignored.
absl::Status AppendFhirTime(std::string_view v2, TimeType type, const absl::TimeZone& tz,
                            std::string* out);

// Convenience: the converted value, or the error.
absl::StatusOr<std::string> FhirTime(std::string_view v2, TimeType type, const absl::TimeZone& tz);

}  // namespace isthmus::fhir
