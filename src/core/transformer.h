// A transformer changes a message on its way through a channel: the Lua transformer
// (mapping/lua), the v2 -> FHIR converter (mapping, issue #4). The pipeline keeps one instance
// per worker thread, so implementations need not be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "hl7v2/message.h"

namespace isthmus::core {

struct TransformOutcome {
  enum Kind {
    kContinue,  // go on with the (possibly modified) message
    kFilter,    // drop it: the message ends in state `filtered` with `reason`
    kReplace,   // deliver `payload` instead of the message (e.g. a FHIR Bundle)
  };
  Kind kind = kContinue;
  std::string reason;
  std::string payload;
  // kContinue/kReplace: what the transformer noticed (e.g. "2 conversion warnings at ZPI,
  // PID-7"), added to the message's outcome event. Locations and codes only, never values.
  std::string note;
};

class Transformer {
 public:
  virtual ~Transformer() = default;
  // A failed status ends the message in state `error` with the status message (which must not
  // contain PHI) as the reason.
  virtual absl::StatusOr<TransformOutcome> Run(hl7v2::Message& msg) = 0;
};

// Makes one transformer per pipeline worker.
using TransformerFactory = std::function<absl::StatusOr<std::unique_ptr<Transformer>>()>;

}  // namespace isthmus::core
