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
//   composite  each element of the expression is a group (`grp`, numbered from 1 within the
//              resource): its components' rows, of their own types, under the parameter
//              "<code>$<n>" (n = the component's position from 0) and that group number, so a
//              search joins the parts of one element only
// An Identifier with type codings also gets a group: its token row carries the group number and
// each type coding is a token row "<code>:of-type" (system, code) of the same group (for
// `identifier:of-type`). Other rows have grp 0.// An expression that fails to evaluate on a resource contributes no rows (counted in
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
  struct String { std::string param, norm, exact; int grp = 0; };
  struct Token { std::string param, system, code, text; int grp = 0; };
  struct Date { std::string param; int64_t low = 0, high = 0; int grp = 0; };
  struct Number { std::string param; double value = 0; int grp = 0; };
  struct Quantity {
    std::string param;
    double value = 0;
    std::string system, code;
    double canonical_value = 0;
    std::string canonical_unit;  // empty when the unit is not UCUM-convertible
    int grp = 0;
  };
  struct Reference { std::string param, target_type, target_id, url; int grp = 0; };
  struct Uri { std::string param, uri; int grp = 0; };

  std::vector<String> strings;
  std::vector<Token> tokens;
  std::vector<Date> dates;
  std::vector<Number> numbers;
  std::vector<Quantity> quantities;
  std::vector<Reference> references;
  std::vector<Uri> uris;
  // The full-text row (_text, _content; table fhir_text): the narrative, text.div without its
  // tags, and the resource's other string values (but base64 `data` and the `system`, `url`,
  // `reference`, `profile` and `id` strings), each joined by spaces.
  std::string narrative, content;
  int errors = 0;  // expressions that failed to evaluate
};

// The index parameter name of component `n` of composite `code`: "code-value-quantity$1".
std::string ComponentParam(std::string_view code, size_t n);
// The index table of a parameter type ("fhir_idx_token"); null for composite and special.
const char* IndexTable(ParamType t);
// The index parameter name of the type codings of identifier parameter `code`.
std::string OfTypeParam(std::string_view code);

// kInvalidArgument when `json` is not a JSON object.
absl::StatusOr<IndexRows> Extract(const Registry& registry, std::string_view type,
                                  std::string_view json);

// The narrative and content of IndexRows only (no search expression is evaluated): for stores
// that had no full-text rows (SearchIndexer::Backfill). kInvalidArgument when `json` is not a
// JSON object.
absl::Status ExtractFullText(std::string_view json, std::string* narrative, std::string* content);

// XHTML as text: tags become spaces, the XML entities and character references are decoded.
std::string StripTags(std::string_view xhtml);

// Lower case (ASCII and Latin-1/Latin Extended-A letters) with accents folded: "Müller" ->
// "muller". Other characters are kept as they are.
std::string NormalizeString(std::string_view s);

// A FHIR date, dateTime or instant text as an inclusive UTC range by its precision
// ("2024-03" -> 2024-03-01T00:00:00Z .. 2024-03-31T23:59:59.999999Z). An offset-less time is
// taken as UTC. False when malformed.
bool DateRange(std::string_view text, int64_t* low, int64_t* high);

}  // namespace isthmus::fhir_search
