// Where a listener hands a journaled message for processing (the pipeline implements it). The
// listener and the pipeline are both L3 modules: they meet through this interface, wired in
// server/.
// Thread-safety: Accept may be called from any thread; `done` runs on a worker thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "hl7v2/issue.h"

namespace isthmus::hl7v2 {
class Message;
}  // namespace isthmus::hl7v2

namespace isthmus::core {

struct ProcessingResult {
  int64_t message_id = 0;
  // queued | processed | filtered | unrouted | invalid | error
  std::string state;
  std::string reason;                     // no PHI
  std::vector<hl7v2::Issue> issues;       // validation findings, for an application ACK
  std::vector<std::string> destinations;  // where it was queued
};

using ProcessingDone = absl::AnyInvocable<void(ProcessingResult) &&>;

class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // `raw` is the message as journaled under `message_id`. `done` may be null.
  virtual void Accept(int64_t message_id, std::string channel,
                      std::shared_ptr<const std::string> raw, ProcessingDone done) = 0;
  // The same, with the message the listener already parsed from *raw (its fields view raw's
  // bytes, which travel with it): a sink that would parse it again takes this one instead
  // (parsing was most of a pipeline worker's time per message). `parsed` is not null.
  virtual void AcceptParsed(int64_t message_id, std::string channel,
                            std::shared_ptr<const std::string> raw,
                            std::shared_ptr<hl7v2::Message> parsed, ProcessingDone done) {
    (void)parsed;
    Accept(message_id, std::move(channel), std::move(raw), std::move(done));
  }
  // Messages accepted but not yet processed. Listeners stop reading while it is above their
  // limit, so a slow pipeline slows senders down instead of growing memory.
  virtual size_t Backlog() const { return 0; }
};

}  // namespace isthmus::core
