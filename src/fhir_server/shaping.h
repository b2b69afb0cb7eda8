// Result shaping of reads and searches (FHIR R4 search.html#summary and #elements):
//   _summary=true   resourceType, id, meta and the top-level elements marked isSummary in the
//                   R4 StructureDefinition (generated table; a kept element is kept whole)
//   _summary=text   resourceType, id, meta, text and the top-level mandatory elements (min >= 1)
//   _summary=data   everything but text
//   _summary=false  the whole resource (no shaping)
//   _elements=a,b   resourceType, id, meta, the named top-level elements (`name` or
//                   `Type.name`; a choice `value` keeps valueQuantity...) and, as the spec says
//                   servers SHOULD, the mandatory ones
// A shaped resource carries the tag SUBSETTED (system
// http://terminology.hl7.org/CodeSystem/v3-ObservationValue) in meta.tag, as the spec requires,
// so that it is not mistaken for the whole resource. `_summary=count` is search's, not here.
// Primitive extensions (`_birthDate`) follow their element. Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace isthmus::fhir_server {

struct Shape {
  enum class Summary { kFalse, kTrue, kText, kData };
  Summary summary = Summary::kFalse;
  bool has_elements = false;
  std::vector<std::string> elements;  // _elements, "Type." prefixes kept (stripped per type)
  bool active() const { return summary != Summary::kFalse || has_elements; }
};

// Reads _summary (true, text, data, false; `count` is left to the caller) and _elements from
// query parameters. kInvalidArgument for another _summary value, or both _summary and _elements
// (the spec: "_summary and _elements SHALL NOT be used together").
absl::StatusOr<Shape> ParseShape(const std::vector<std::pair<std::string, std::string>>& params);

// `json` (a stored resource) shaped; the same text when the shape is not active.
// kInvalidArgument only for JSON that is not a resource object.
absl::StatusOr<std::string> ApplyShape(const Shape& shape, std::string_view json);

}  // namespace isthmus::fhir_server
