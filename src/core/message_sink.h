// Where a listener hands a journaled message for processing (the pipeline implements it). The
// listener and the pipeline are both L3 modules: they meet through this interface, wired in
// server/.
// Thread-safety: Accept may be called from any thread; `done` runs on a worker thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "hl7v2/issue.h"

namespace isthmus::hl7v2 {
class Message;
}  // namespace isthmus::hl7v2
namespace isthmus::db {
class Connection;
}  // namespace isthmus::db

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

// A message's outcome decided before its journal commit: `write` runs in the journal's
// transaction right after the message is inserted (not for a duplicate), `committed` after the
// commit (it wakes the destinations' dispatchers).
struct PreCommitOutcome {
  // Writes the outcome's event and queue rows; the message's row is inserted with `state`
  // already (no UPDATE of the row just written).
  std::function<absl::Status(db::Connection&, int64_t message_id)> write;
  std::function<void()> committed;
  std::string state;  // the message's state once the outcome is written ("queued", "filtered", ...)
};

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
  // For a listener that ACKs after the journal commit: the outcome, if this sink can decide it
  // now (cheaply, before the commit); std::nullopt means Accept/AcceptParsed after the commit.
  virtual std::optional<PreCommitOutcome> DecideBeforeCommit(const std::string& channel,
                                                             hl7v2::Message& msg) {
    (void)channel;
    (void)msg;
    return std::nullopt;
  }
  // Whether deciding or processing `channel`'s messages reads more than their MSH (a filter,
  // validation, a transformer, route conditions, partition keys). When false, a listener may
  // parse only the header (hl7v2::ParseOptions::header_only) before DecideBeforeCommit and must
  // then hand the message over with Accept (raw bytes), never AcceptParsed.
  virtual bool NeedsMessageBody(const std::string& channel) const {
    (void)channel;
    return true;
  }
  // Messages accepted but not yet processed. Listeners stop reading while it is above their
  // limit, so a slow pipeline slows senders down instead of growing memory.
  virtual size_t Backlog() const { return 0; }
};

}  // namespace isthmus::core
