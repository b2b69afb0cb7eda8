// FHIRPath Patch (FHIR R4 fhirpatch.html) over JSON text, for PATCH /fhir/{type}/{id} with
// Content-Type: application/fhir+json and a Parameters body: one parameter `operation` per
// change, with parts `type` (add | insert | delete | replace | move), `path` (a FHIRPath
// expression, evaluated with our engine, fhirpath/fhirpath.h), and as the type needs `name`,
// `value` (a value[x], a `resource`, or nested `part`s for an anonymous element such as
// Patient.contact or a type Parameters cannot hold such as Extension; each part is typed as the
// element it names), `index`, `source`, `destination`:
//   add      path selects one element; `name` is added to it: appended when the element
//            repeats, set when it does not and is absent (present already: an error)
//   insert   path selects a list (a repeating element, possibly empty); `value` goes in at
//            `index` (0..size)
//   delete   path selects the element to delete; nothing selected: nothing to do
//   replace  path selects one element; it is replaced whole by `value`
//   move     path selects a list; its item at `source` moves to `destination`
// Operations apply in order, each to the result of the previous; the first failure fails the
// patch and nothing changes. A value's type must fit the element (code for a string element,
// Age for a Quantity; a choice element such as Observation.value[x] takes any of its types and
// the JSON key follows the value: replacing valueQuantity by a valueString gives valueString). A
// primitive's extensions (`_name`) follow it: deleted and replaced with it, kept aligned when
// its list changes. Numbers keep their text.
//
// Errors:
//   kInvalidArgument     the patch is malformed: not a Parameters resource, a parameter that is
//                        not `operation`, an unknown type, a missing part, a path that is not
//                        valid FHIRPath or cannot be evaluated on the resource (400)
//   kFailedPrecondition  the patch cannot be applied to this resource: a path that selects
//                        nothing (all but delete) or several elements, or something that is not
//                        an element of the resource; a value of the wrong type; an index out of
//                        range; adding an element that is already there (422)
// Messages name the operation's index, type and path, never values from the resource.
//
// Thread-safety: a pure function.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::string out, ApplyFhirPathPatch(
//       R"({"resourceType":"Patient","birthDate":"1930-01-01"})",
//       R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[
//            {"name":"type","valueCode":"delete"},
//            {"name":"path","valueString":"Patient.birthDate"}]}]})"));
//   // {"resourceType":"Patient"}
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::fhir_server {

// Applies the FHIRPath Patch `parameters` (a Parameters resource, JSON) to `resource` (a FHIR
// resource, JSON); compact JSON out.
absl::StatusOr<std::string> ApplyFhirPathPatch(std::string_view resource,
                                               std::string_view parameters);

// True when `body` is a JSON object whose resourceType is Parameters (a cheap check, for
// telling a FHIRPath Patch from another body).
bool IsParametersBody(std::string_view body);

}  // namespace isthmus::fhir_server
