// FHIR R4 conformance checks that need FHIRPath, beside the structural validator
// (fhir/validator.h, layer L1, which cannot use the L1 fhirpath module):
//   - invariants: every `constraint` with an `expression` of the R4 base StructureDefinitions
//     (profiles-types.json, profiles-resources.json: dom-3, obs-6, pat-1, per-1, qty-3, ele-1 ...)
//     evaluated on each element it belongs to, with our FHIRPath engine; each expression is
//     compiled once, at first use, for the life of the process;
//   - absolute references (`http://host/fhir/Organization/1`, `.../_history/2`) whose URL ends in
//     an R4 resource type and an id: that type must be one the Reference element allows (the
//     validator checks relative ones; same message);
//   - resource profiles (profiles-others.json: the vital signs profiles, genetics, shareable
//     definitions ...; and the base resource URLs): cardinality tighter than the base, fixed[x] and
//     pattern[x] values, choice types a profile restricts, slices selected by their
//     discriminators' fixed or pattern values, the REQUIRED bindings the profile adds (ValueSets
//     expanded at build time, valuesets.mjs; issue code "code-invalid") and the profile's own
//     invariants (vs-1, vs-2 ...), each turned into a FHIRPath rule at build time
//     (gen_conformance_defs.mjs).
// Issues are the validator's (fhir::ValidationIssue): code "invariant" with the constraint key
// and its text, or "processing" when an expression cannot be evaluated on this input (the engine's
// error, never a value of the resource); the element in `expression` (`Observation.component[1]`;
// for a profile rule, the profile's element id `Observation.code.coding:BodyWeightCode`).
// A constraint whose result is empty counts as met (only `false` violates it).
//
// Not evaluated (UnsupportedInvariants() lists each with the reason; docs/fhir-validation.md):
// constraints that need a terminology server, XHTML rules or references across resources; ele-1
// on primitive values (a JSON primitive has a value; the validator checks the `_name` objects).
//
// Numbers: the FHIRPath engine reads RapidJSON numbers, not the FHIR store's marked number text;
// pass a document parsed normally, or use WithJsonNumbers to convert one.
//
// Thread-safety: all functions may be called concurrently (the compiled expressions are built
// once under a static initializer and are immutable).
//
// Example:
//   rapidjson::Document doc;  doc.Parse(json);
//   std::vector<fhir::ValidationIssue> issues = fhir_conformance::CheckInvariants(doc);
//   auto more = fhir_conformance::CheckProfile(doc, "http://hl7.org/fhir/StructureDefinition/bp",
//                                              fhir::ValidationIssue::Severity::kError);
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fhir/validator.h"
#include "rapidjson/document.h"

namespace isthmus::fhir_conformance {

struct ConformanceOptions {
  size_t max_issues = 100;  // then one "too-costly" issue
};

// The invariants of the R4 base definitions over `resource` and everything inside it (contained
// resources, Bundle entries) with %resource and %rootResource set as FHIRPath for FHIR says.
std::vector<fhir::ValidationIssue> CheckInvariants(const rapidjson::Value& resource,
                                                   const ConformanceOptions& options = {});

// True when `url` (a canonical; a `|version` suffix is ignored) names a profile this checker has.
bool IsKnownProfile(std::string_view url);

// Checks `resource` against the profile `url`: its rules, and that it constrains the resource's
// type. An unknown profile is one issue of `unknown_severity` (code "not-supported") naming the
// URL; so is each part of the profile that could not be turned into rules (warning).
std::vector<fhir::ValidationIssue> CheckProfile(const rapidjson::Value& resource,
                                                std::string_view url,
                                                fhir::ValidationIssue::Severity unknown_severity);

// CheckProfile for each URL in the resource's meta.profile (unknown ones are warnings).
std::vector<fhir::ValidationIssue> CheckMetaProfiles(const rapidjson::Value& resource);

// A copy of `v` whose marked numbers (the FHIR store's "\xFF1.50" strings,
// fhir::ParseFhirJsonKeepingNumbers) are RapidJSON numbers again.
void WithJsonNumbers(const rapidjson::Value& v, rapidjson::Document& out);

// The base constraints that are not evaluated, one line each: "key path: reason".
std::vector<std::string> UnsupportedInvariants();

}  // namespace isthmus::fhir_conformance
