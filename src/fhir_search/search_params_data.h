// The official FHIR R4 SearchParameters as a table generated at build time
// (gen_search_params.mjs). Internal to fhir_search: use registry.h.
#pragma once

#include <string_view>

namespace isthmus::fhir_search::internal {

struct SearchParamDef {
  std::string_view url;
  std::string_view code;
  std::string_view type;        // string token date number quantity reference uri composite special
  std::string_view bases;       // resource types, space-separated ("Resource" for common ones)
  std::string_view expression;  // FHIRPath; empty for some special parameters
  std::string_view targets;     // reference target types, space-separated
  // composite only: "code\ttype\texpression" per component, newline-separated, in order.
  std::string_view components;
};

extern const SearchParamDef kSearchParamDefs[];
extern const int kSearchParamDefCount;

}  // namespace isthmus::fhir_search::internal
