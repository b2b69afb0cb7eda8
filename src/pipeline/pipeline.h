// The pipeline runs each journaled message through its channel: parse, validate, filter,
// transform, route. Its outcome is written in one transaction: the message's state event and,
// when routed, one queue row per destination (outbox), so a routed message and its deliveries
// commit together or not at all. Messages are processed on a worker pool, never on the network
// loop.
//
// States a message ends in: `queued` (routed to at least one destination), `processed` (the
// channel has no destinations: journaled only), `filtered` (the
// channel's filter or transformer dropped it), `unrouted` (no route matched), `invalid`
// (validation errors and the channel rejects invalid messages), `error` (unparsable, unknown
// channel, transformer failure). Every outcome is an event with its reason; nothing is dropped
// silently.
//
// Counting: with PipelineOptions::counters, each outcome is counted for its channel once it
// committed (filtered; errored = error, invalid, unrouted: channel_counters.h), an atomic
// increment on counters found in a map fixed at Create (no lock), no store write.
//
// Order: messages are processed in parallel, but the outcomes of one channel are recorded in the
// order the messages were submitted, so queue rows (and deliveries) keep arrival order.
//
// Crash safety: a message that was journaled (`received`) but whose outcome was not committed is
// processed again by Recover() at startup.
//
// Storage failures (a full disk, an I/O error): an outcome whose commit fails is kept in memory
// with every later outcome of its channel (in order, so deliveries keep arrival order) and
// written again with backoff (0.1 s, then 0.2 s doubling to 12.8 s) until the store takes it.
// Its `done` hears at once (state "error", the reason; an application ACK is not held back),
// the channel's messages are still processed meanwhile, and back-pressure (Backlog) stops the
// listeners if it lasts. At shutdown what is still kept stays `received` for Recover().
//
// Thread-safety: Submit and Recover from any thread; callbacks run on a worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "base/clock.h"
#include "base/thread_pool.h"
#include "pipeline/channel_counters.h"
#include "core/message_sink.h"
#include "core/transformer.h"
#include "hl7v2/issue.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"
#include "hl7v2/validator.h"
#include "store/journal.h"
#include "store/queue.h"
#include "store/writer.h"

namespace isthmus::pipeline {

using Predicate = std::function<bool(const hl7v2::Message&)>;

struct RoutePlan {
  Predicate when;  // empty = always
  std::vector<std::string> to;
};

struct ChannelPlan {
  std::string name;
  Predicate filter;                               // empty = accept everything
  std::optional<hl7v2::Validator> validator;      // empty = no validation
  bool reject_invalid = false;                    // validation errors end in `invalid`
  core::TransformerFactory transformer;           // empty = no transformer
  std::vector<RoutePlan> routes;
};

struct DestinationPlan {
  std::string name;
  std::optional<hl7v2::Path> partition_by;  // e.g. PID-3: per-patient order
};

struct PipelineOptions {
  int workers = 2;
  base::Clock* clock = &base::RealClock::Get();
  // Where committed outcomes are counted per channel (filtered, errored; see
  // channel_counters.h); must outlive the pipeline. Null: not counted.
  ChannelCounterRegistry* counters = nullptr;
};

using PipelineResult = core::ProcessingResult;

class Pipeline final : public core::MessageSink {
 public:
  using Done = core::ProcessingDone;
  // Called after queue rows for `destination` committed, to wake its dispatcher.
  using Notify = std::function<void(const std::string& destination)>;

  // Route targets must name destinations in `destinations` (InvalidArgument otherwise).
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(
      store::Writer& writer, store::Journal& journal, std::vector<ChannelPlan> channels,
      std::vector<DestinationPlan> destinations, Notify notify, PipelineOptions opts = {});
  // Finishes every submitted message, then stops the workers.
  ~Pipeline() override;

  // Processes a journaled message; `raw` is its bytes as journaled.
  // `parsed`, if given, is the message parsed from *raw (it views raw's bytes).
  void Submit(int64_t message_id, std::string channel, std::shared_ptr<const std::string> raw,
              Done done = nullptr, std::shared_ptr<hl7v2::Message> parsed = nullptr);
  void Accept(int64_t message_id, std::string channel, std::shared_ptr<const std::string> raw,
              core::ProcessingDone done) override {
    Submit(message_id, std::move(channel), std::move(raw), std::move(done));
  }
  void AcceptParsed(int64_t message_id, std::string channel, std::shared_ptr<const std::string> raw,
                    std::shared_ptr<hl7v2::Message> parsed, core::ProcessingDone done) override {
    Submit(message_id, std::move(channel), std::move(raw), std::move(done), std::move(parsed));
  }
  // A channel without a transformer is decided here, on the listener's thread, and its outcome
  // written in the journal's transaction (no hand-off to a worker, one op instead of two).
  bool NeedsMessageBody(const std::string& channel) const override;
  std::optional<core::PreCommitOutcome> DecideBeforeCommit(const std::string& channel,
                                                           hl7v2::Message& msg) override;
  // Messages submitted whose outcome has not committed yet: listeners stop reading while it is
  // high (back-pressure), so memory stays bounded.
  size_t Backlog() const override;

  // Resubmits every message still in state `received` (after a crash). Returns how many.
  absl::StatusOr<int64_t> Recover();

 private:
  Pipeline(store::Writer& writer, store::Journal& journal, PipelineOptions opts)
      : writer_(writer), journal_(journal), opts_(opts) {}
  // What processing decided, before it is recorded.
  struct Decision {
    PipelineResult result;
    std::vector<std::pair<std::string, std::string>> rows;  // destination, partition key
    std::optional<std::string> payload;                     // transformed payload, if any
    ChannelOutcomeCounters* counters = nullptr;             // the channel's, once committed
  };
  // An outcome on its way to the writer, or kept after its commit failed.
  struct Parked {
    int64_t id = 0;
    int64_t now = 0;
    Decision decision;
    Done done;
    bool deferred = false;  // its op found the channel's earlier outcomes kept, and wrote nothing
  };
  struct Sequence {
    uint64_t next_assign = 0;  // given to the next Submit of the channel
    uint64_t next_submit = 0;  // the next outcome allowed to reach the writer
    // Writer thread only (ops and their callbacks): outcomes whose commit failed, and the later
    // ones of the channel, in order. While `parked` is not empty, the channel's outcome ops write
    // nothing and join it, and a retry op writes the first `in_retry` of it in one savepoint.
    std::deque<Parked> parked;
    size_t in_retry = 0;
    int attempts = 0;          // failed retries in a row (backoff)
    bool retry_pending = false;
    bool shut_down = false;    // the pipeline is going: keep nothing more
  };
  // The channel's counters (null when the pipeline counts nothing).
  ChannelOutcomeCounters* CountersFor(std::string_view channel) const;
  Decision Process(int worker, int64_t id, const std::string& channel, const std::string& raw,
                   hl7v2::Message* parsed);
  // Validation, filter, transformer (with worker's instance; none when worker < 0), routes.
  Decision Decide(int worker, int64_t id, const ChannelPlan& channel, hl7v2::Message& msg);
  // The outcome event and the queue rows: one transaction with whatever else the op writes.
  // `row_has_state`: the message's row was inserted with the outcome's state in this transaction
  // (decided before the commit), so only the event is written, not an UPDATE of the row.
  static absl::Status WriteOutcome(db::Connection& conn, int64_t id, int64_t now, const Decision& d,
                                   bool row_has_state = false);
  // Hands `d` to the writer (one transaction), after every earlier message of `channel`; `done`
  // runs once it committed.
  void Commit(int64_t id, const std::string& channel, uint64_t seq, Decision d, Done done);
  // Writer thread: the outcome's commit failed, or its channel has outcomes kept already.
  void Park(const std::string& channel, Sequence* s, Parked p, const absl::Status& why);
  // Writer thread: asks the retry thread to submit the channel's retry op after `delay`.
  void ScheduleRetry(Sequence* s, std::chrono::milliseconds delay);
  void SubmitRetry(Sequence* s);
  void RetryLoop();
  // Reports the outcome (notify the dispatchers, `done`) and ends its back-pressure count.
  void Finish(Parked p, const absl::Status& committed);
  // What a caller hears of an outcome that was not recorded (state "error", the reason).
  static PipelineResult NotRecorded(PipelineResult r, std::string reason);

  store::Writer& writer_;
  store::Journal& journal_;
  const PipelineOptions opts_;
  std::map<std::string, ChannelPlan, std::less<>> channels_;
  std::map<std::string, DestinationPlan, std::less<>> destinations_;
  std::map<std::string, ChannelOutcomeCounters*, std::less<>> counters_;  // set by Create
  Notify notify_;
  mutable std::mutex seq_mu_;
  std::condition_variable seq_cv_;
  size_t in_flight_ = 0;  // submitted, outcome not yet committed; guarded by seq_mu_
  std::map<std::string, Sequence, std::less<>> sequences_;  // guarded by seq_mu_ (the Sequence
                                                            // nodes' writer-thread fields: no lock)
  // Retries of kept outcomes, submitted to the writer when due.
  std::mutex retry_mu_;
  std::condition_variable retry_cv_;
  std::vector<std::pair<std::chrono::steady_clock::time_point, Sequence*>> retry_due_;  // retry_mu_
  bool retry_stop_ = false;  // guarded by retry_mu_
  std::atomic<bool> parked_ever_{false};
  std::thread retry_thread_;
  // transformers_[worker][channel]: one instance per worker (Lua states are not thread-safe).
  std::vector<std::map<std::string, std::unique_ptr<core::Transformer>, std::less<>>> transformers_;
  std::unique_ptr<base::ThreadPool> pool_;  // last: destroyed (drained) first
};

}  // namespace isthmus::pipeline
