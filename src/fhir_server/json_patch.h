// JSON Patch (RFC 6902) over JSON text, for PATCH /fhir/{type}/{id} with
// Content-Type: application/json-patch+json. All six operations (add, remove, replace, move,
// copy, test) with JSON Pointers (RFC 6901: "" is the whole document, ~1 is '/', ~0 is '~',
// "-" is the end of an array for add). Operations apply in order to a copy; the first failure
// fails the whole patch and nothing is changed. Numbers keep their text ("1.50" stays "1.50");
// `test` compares numbers by value and objects regardless of member order (RFC 6902 §4.6).
//
// Errors:
//   kInvalidArgument     the patch is malformed: not an array of operation objects, an unknown
//                        op, a missing or non-string member, a pointer that is not one (400)
//   kFailedPrecondition  the patch cannot be applied to this document: a `test` that fails, a
//                        path or `from` that does not exist, an array index out of range, a move
//                        into its own child (FHIR: 422 Unprocessable Entity)
// Messages name the operation's index, op and pointer, never values.
//
// Thread-safety: a pure function.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::string out, ApplyJsonPatch(R"({"a":1})",
//       R"([{"op":"replace","path":"/a","value":2}])"));  // {"a":2}
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace isthmus::fhir_server {

// Applies `patch` (a JSON array of operations) to `doc` (any JSON value); compact JSON out.
absl::StatusOr<std::string> ApplyJsonPatch(std::string_view doc, std::string_view patch);

}  // namespace isthmus::fhir_server
