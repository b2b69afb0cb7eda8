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

namespace isthmus::server {

// A destination of the configured type. Unimplemented for types not available yet.
absl::StatusOr<std::unique_ptr<core::Destination>> BuildDestination(const config::Destination& d);

dispatch::DispatcherOptions BuildDispatcherOptions(const config::Destination& d);

// Channel plans with compiled filters/routes and Lua transformer factories (scripts compiled once
// here, so a bad script stops startup with its file:line).
absl::StatusOr<std::vector<pipeline::ChannelPlan>> BuildChannelPlans(const config::Config& c);
std::vector<pipeline::DestinationPlan> BuildDestinationPlans(const config::Config& c);

}  // namespace isthmus::server
