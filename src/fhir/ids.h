// Deterministic resource ids: the same resource type and business key always give the same id,
// so converting a message twice produces the same Bundle and PUTs update instead of duplicating.
//
// The id is UUID-shaped (8-4-4-4-12 lowercase hex, version nibble 8 = "custom", RFC 9562) and
// made of the first 16 bytes of SHA-256(type + '\0' + key). It is a valid FHIR id and can also be
// used as `urn:uuid:<id>`.
//
// Thread-safety: stateless.
//
// Example:
//   std::string id = DeterministicId("Patient", "MRN|12345|HOSP");
#pragma once

#include <string>
#include <string_view>

namespace isthmus::fhir {

std::string DeterministicId(std::string_view type, std::string_view key);

// Appends the id to `out` (no allocation beyond `out`'s growth).
void AppendDeterministicId(std::string_view type, std::string_view key, std::string* out);

}  // namespace isthmus::fhir
