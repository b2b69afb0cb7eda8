// Turns a validated configuration into running parts: destinations, channel plans for the
// pipeline (compiled filters and routes, Lua transformers), dispatcher options.
// Thread-safety: stateless functions.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "core/destination.h"
#include "dispatch/dispatcher.h"
#include "pipeline/pipeline.h"
#include "store/fhir_store.h"
#include "store/writer.h"

namespace isthmus::server {

// What destinations writing into the engine's own store need (fhir_local).
struct StoreParts {
  store::Writer* writer = nullptr;
  store::FhirStore* fhir = nullptr;
};

// A destination of the configured type. Unimplemented for types not available yet.
absl::StatusOr<std::unique_ptr<core::Destination>> BuildDestination(const config::Destination& d,
                                                                    const StoreParts& store = {});

dispatch::DispatcherOptions BuildDispatcherOptions(const config::Destination& d);

// Channel plans with compiled filters/routes and Lua transformer factories (scripts compiled once
// here, so a bad script stops startup with its file:line).
absl::StatusOr<std::vector<pipeline::ChannelPlan>> BuildChannelPlans(const config::Config& c);
std::vector<pipeline::DestinationPlan> BuildDestinationPlans(const config::Config& c);

}  // namespace isthmus::server
