// Evaluation speed of compiled FHIRPath expressions as search extraction uses them: each
// SearchParameter expression is compiled once and evaluated on every write. The resources are
// built in-process (a Patient and an Observation of typical size), so no input files are needed.
//
// Benchmarks:
//   BM_Evaluate/<n>    Evaluate(expr, resource) for the n-th expression of kCases
//   BM_Compile/<n>     Expression::Compile of the same expression (for scale)
//   BM_AllPatientParams  every R4 Patient search parameter expression on one Patient
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fhirpath/fhirpath.h"

namespace isthmus::fhirpath {
namespace {

const char kPatient[] = R"({
  "resourceType": "Patient", "id": "example", "active": true, "gender": "male",
  "meta": {"versionId": "1", "lastUpdated": "2024-01-01T10:00:00Z"},
  "identifier": [{"use": "usual", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345",
                  "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
           {"use": "usual", "given": ["Jim"]},
           {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"], "period": {"end": "2002"}}],
  "telecom": [{"use": "home"}, {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
              {"system": "email", "value": "p@example.org"}],
  "birthDate": "1974-12-25", "deceasedBoolean": false,
  "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille", "district": "Rainbow",
               "state": "Vic", "postalCode": "3999", "country": "AU"}],
  "generalPractitioner": [{"reference": "Practitioner/gp1"}],
  "managingOrganization": {"reference": "Organization/1"}
})";

const char kObservation[] = R"({
  "resourceType": "Observation", "id": "o1", "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}]},
  "subject": {"reference": "Patient/example"},
  "effectiveDateTime": "2016-03-28T10:30:00+10:00",
  "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}
})";

struct BenchCase {
  const char* resource;  // "patient" or "observation"
  const char* expression;
};

const BenchCase kCases[] = {
    {"patient", "Patient.name.family"},
    {"patient", "Patient.name"},
    {"patient", "Patient.identifier"},
    {"patient", "Patient.birthDate"},
    {"patient", "Patient.telecom.where(system='phone')"},
    {"patient", "Patient.deceased.exists() and Patient.deceased != false"},
    {"observation", "Observation.value.as(Quantity)"},
    {"observation", "(Observation.value as Quantity)"},
    {"observation", "Observation.subject.where(resolve() is Patient)"},
    {"observation", "Observation.effective"},
    {"observation", "Observation.code"},
};

rapidjson::Document& Doc(const char* which) {
  static rapidjson::Document* patient = [] {
    auto* d = new rapidjson::Document;
    d->Parse(kPatient);
    return d;
  }();
  static rapidjson::Document* observation = [] {
    auto* d = new rapidjson::Document;
    d->Parse(kObservation);
    return d;
  }();
  return std::string_view(which) == "patient" ? *patient : *observation;
}

void BM_Evaluate(benchmark::State& state) {
  const BenchCase& c = kCases[state.range(0)];
  auto expr = Expression::Compile(c.expression);
  if (!expr.ok()) {
    state.SkipWithError(std::string(expr.status().message()).c_str());
    return;
  }
  const rapidjson::Document& doc = Doc(c.resource);
  for (auto _ : state) {
    auto r = Evaluate(*expr, doc);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(c.expression);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Evaluate)->DenseRange(0, sizeof(kCases) / sizeof(kCases[0]) - 1);

void BM_Compile(benchmark::State& state) {
  const BenchCase& c = kCases[state.range(0)];
  for (auto _ : state) {
    auto expr = Expression::Compile(c.expression);
    benchmark::DoNotOptimize(expr);
  }
  state.SetLabel(c.expression);
}
BENCHMARK(BM_Compile)->DenseRange(0, sizeof(kCases) / sizeof(kCases[0]) - 1);

// The R4 Patient search parameters that apply to a Patient (expressions as in the spec).
void BM_AllPatientParams(benchmark::State& state) {
  static const char* const kExprs[] = {
      "Patient.active", "Patient.address", "Patient.address.city", "Patient.address.country",
      "Patient.address.postalCode", "Patient.address.state", "Patient.address.use",
      "Patient.birthDate", "Patient.deceased.exists() and Patient.deceased != false",
      "Patient.telecom.where(system='email')", "Patient.name.family", "Patient.gender",
      "Patient.generalPractitioner", "Patient.name.given", "Patient.identifier",
      "Patient.communication.language", "Patient.link.other", "Patient.name",
      "Patient.managingOrganization", "Patient.telecom.where(system='phone')",
      "Patient.name", "Patient.telecom", "Resource.id", "Resource.meta.lastUpdated",
      "Resource.meta.profile", "Resource.meta.security", "Resource.meta.tag",
  };
  std::vector<Expression> exprs;
  for (const char* e : kExprs) exprs.push_back(*Expression::Compile(e));
  const rapidjson::Document& doc = Doc("patient");
  for (auto _ : state) {
    for (const Expression& e : exprs) {
      auto r = Evaluate(e, doc);
      benchmark::DoNotOptimize(r);
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("27 expressions per item");
}
BENCHMARK(BM_AllPatientParams);

}  // namespace
}  // namespace isthmus::fhirpath

BENCHMARK_MAIN();
