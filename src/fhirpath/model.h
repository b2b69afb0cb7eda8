// The FHIR R4 type model FHIRPath navigates with: every resource, datatype and backbone element
// (named by path, `Patient.contact`), its base type and its elements with their types and
// cardinality, generated at build time from the R4 StructureDefinitions
// (tools/gen_fhir_model.mjs) and parsed once on first use.
// Thread-safety: Model::Get() is safe from any thread; the model is immutable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace isthmus::fhirpath {

struct TypeInfo;

struct ElementInfo {
  std::string name;                     // without [x]
  bool many = false;                    // max > 1
  bool choice = false;                  // value[x]
  std::vector<const TypeInfo*> types;   // one unless choice
};

struct TypeInfo {
  enum Kind { kPrimitive, kComplex, kResource, kBackbone, kSystem };
  std::string name;        // "Patient", "HumanName", "string", "Patient.contact", "Boolean"
  Kind kind = kComplex;
  const TypeInfo* base = nullptr;
  absl::flat_hash_map<std::string, ElementInfo> elements;  // own elements only

  // This type's element `name`, searching base types too; null if none.
  const ElementInfo* Element(std::string_view name) const;
  // True when this type is `other` or derives from it.
  bool IsA(const TypeInfo* other) const;
  // The choice-type suffix of a type name: "Quantity", "String" for string.
  std::string ChoiceSuffix() const;
};

class Model {
 public:
  static const Model& Get();
  // A FHIR type by name ("Patient", "string", "Patient.contact"); null if unknown.
  const TypeInfo* Find(std::string_view name) const;
  // A System type by name ("Boolean", "String", ...); null if unknown.
  const TypeInfo* FindSystem(std::string_view name) const;

 private:
  Model();
  absl::flat_hash_map<std::string, TypeInfo*> types_;
  absl::flat_hash_map<std::string, TypeInfo*> system_;
  std::vector<std::unique_ptr<TypeInfo>> owned_;
};

}  // namespace isthmus::fhirpath
