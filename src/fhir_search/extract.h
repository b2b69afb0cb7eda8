// Search-index extraction: the rows a resource contributes to the index tables, computed by
// evaluating each supported SearchParameter expression of its type (registry.h) with FHIRPath.
//
// What each parameter type indexes (docs/fhir-server.md, "Search"):
//   string     one row per string (HumanName and Address: each part): `norm` (lower case, Latin
//              accents folded) and `exact`
//   token      Coding/CodeableConcept (system, code, display/text), Identifier (system, value,
//              type.text), ContactPoint (system, value), code/string/uri/id/boolean (code)
//   date       date/dateTime/instant/Period/Timing as a UTC range [low, high] in microseconds,
//              the precision widening it (2024-03 covers the whole month)
//   number     the value; quantity: value, system, code, and the UCUM-canonical value and unit
//   reference  target type and id (Type/id, absolute URLs ending in Type/id), and the text
//   uri        the text
// An expression that fails to evaluate on a resource contributes no rows (counted in
// `errors`), so a resource the spec allows is never refused for its index.
//
// Thread-safety: a pure function of its inputs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fhir_search/registry.h"

namespace isthmus::fhir_search {

// Date ranges are inclusive microseconds since the epoch, UTC.
inline constexpr int64_t kMinMicros = -62135596800000000;  // 0001-01-01T00:00:00Z
inline constexpr int64_t kMaxMicros = 253402300799999999;  // 9999-12-31T23:59:59.999999Z

struct IndexRows {
  struct String { std::string param, norm, exact; };
  struct Token { std::string param, system, code, text; };
  struct Date { std::string param; int64_t low = 0, high = 0; };
  struct Number { std::string param; double value = 0; };
  struct Quantity {
    std::string param;
    double value = 0;
    std::string system, code;
    double canonical_value = 0;
    std::string canonical_unit;  // empty when the unit is not UCUM-convertible
  };
  struct Reference { std::string param, target_type, target_id, url; };
  struct Uri { std::string param, uri; };

  std::vector<String> strings;
  std::vector<Token> tokens;
  std::vector<Date> dates;
  std::vector<Number> numbers;
  std::vector<Quantity> quantities;
  std::vector<Reference> references;
  std::vector<Uri> uris;
  int errors = 0;  // expressions that failed to evaluate
};

// kInvalidArgument when `json` is not a JSON object.
absl::StatusOr<IndexRows> Extract(const Registry& registry, std::string_view type,
                                  std::string_view json);

// Lower case (ASCII and Latin-1/Latin Extended-A letters) with accents folded: "Müller" ->
// "muller". Other characters are kept as they are.
std::string NormalizeString(std::string_view s);

// A FHIR date, dateTime or instant text as an inclusive UTC range by its precision
// ("2024-03" -> 2024-03-01T00:00:00Z .. 2024-03-31T23:59:59.999999Z). An offset-less time is
// taken as UTC. False when malformed.
bool DateRange(std::string_view text, int64_t* low, int64_t* high);

}  // namespace isthmus::fhir_search
