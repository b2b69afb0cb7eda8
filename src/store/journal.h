// The inbound journal: every received message's raw bytes, durably stored before it is
// acknowledged, plus an event row for every state change. Message bodies are immutable.
//
// Durability: Append's callback runs after the transaction holding the message has committed
// (store/writer.h: group commit, synchronous=FULL in WAL mode), i.e. the message survives a
// process crash and a machine crash.
//
// Duplicates: a message with the same sender and control id (MSH-10) as one received within
// `dedupe_window` is not stored again; the original gets a "duplicate" event and the caller is
// told `duplicate = true` with the original's id, so the sender can be ACKed again.
//
// Thread-safety: all methods are safe from any thread. Callbacks run on the writer thread and
// must not block (post to your own executor).
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto writer, Writer::Open("isthmus-data/isthmus.db"));
//   ISTHMUS_ASSIGN_OR_RETURN(auto journal, Journal::Open(*writer, {}));
//   journal->Append(std::move(msg), [](absl::StatusOr<AppendResult> r) { ... send ACK ... });
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "db/db.h"
#include "store/writer.h"

namespace isthmus::store {

struct JournalOptions {
  absl::Duration dedupe_window = absl::Hours(24);  // 0 disables duplicate detection
  base::Clock* clock = &base::RealClock::Get();
};

struct IncomingMessage {
  std::string channel;
  std::string sender;        // e.g. MSH-3^MSH-4; with control_id, the duplicate key
  std::string control_id;    // MSH-10
  std::string message_type;  // MSH-9, for search and display
  std::string peer;          // remote address, for the audit trail
  std::string raw;           // the bytes as received
  // The same bytes shared with whoever else holds them (the listener hands them to the
  // pipeline too); when set, `raw` is not used.
  std::shared_ptr<const std::string> shared_raw;
  // The first event: "received", or e.g. "rejected" for a message that could not be parsed
  // (kept so nothing is silently dropped). Only "received" messages are checked for duplicates.
  std::string state = "received";
  std::string reason;
  // Written in the same transaction right after the message (not for a duplicate or a
  // rejected message): the channel's outcome when it was decided before the commit. The row is
  // inserted in `then_state` (the outcome's, required with `then`), its events still being
  // "received" then the outcome's, so `then` writes the outcome's event without an UPDATE.
  std::function<absl::Status(db::Connection&, int64_t message_id)> then;
  std::string then_state;
};

struct AppendResult {
  int64_t id = 0;
  bool duplicate = false;
};

using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&>;

struct MessageEvent {
  int64_t at_micros = 0;
  std::string state;
  std::string reason;
};

struct MessageRecord {
  int64_t id = 0;
  std::string channel, sender, control_id, message_type, peer, state;
  int64_t received_at_micros = 0;
  std::string raw;
  std::vector<MessageEvent> events;
};

struct MessageQuery {
  std::string control_id;
  std::string channel;
  std::string state;
  int64_t since_micros = 0;
  int64_t after_id = 0;       // only ids above this (paging oldest first)
  bool oldest_first = false;  // default: newest first
  int limit = 100;
};

struct JournalStats {
  uint64_t appended = 0;
  uint64_t duplicates = 0;
  uint64_t failed = 0;
};

class Journal {
 public:
  // `writer` must outlive the journal.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(Writer& writer, const JournalOptions& opts);
  // Waits until every Append submitted before has completed: their writer ops and callbacks
  // refer to the journal (Writer::Barrier).
  ~Journal();

  void Append(IncomingMessage msg, AppendCallback done);
  // Append and wait for the commit (for the CLI and tests).
  absl::StatusOr<AppendResult> AppendAndWait(IncomingMessage msg);

  // Records a state change of a message (through the writer, in order with appends).
  absl::Status RecordEvent(int64_t id, std::string state, std::string reason);
  // The same as a writer op, to combine with other writes in one transaction.
  static absl::Status WriteEvent(db::Connection& conn, int64_t id, int64_t at_micros,
                                 std::string_view state, std::string_view reason);
  // The event row only, for a message whose row has that state already.
  static absl::Status AddEvent(db::Connection& conn, int64_t id, int64_t at_micros,
                               std::string_view state, std::string_view reason);

  absl::StatusOr<MessageRecord> Get(int64_t id) const;
  // Newest first unless `oldest_first`; `total` is the number of matches ignoring `limit`.
  absl::StatusOr<std::vector<MessageRecord>> List(const MessageQuery& q, int64_t* total) const;

  JournalStats stats() const;

 private:
  Journal(Writer& writer, const JournalOptions& opts) : writer_(writer), opts_(opts) {}
  absl::Status Insert(db::Connection& conn, const IncomingMessage& m, AppendResult* out) const;

  Writer& writer_;
  const JournalOptions opts_;
  mutable std::mutex read_mu_;
  std::unique_ptr<db::Connection> reader_;  // guarded by read_mu_
  std::atomic<uint64_t> appended_{0}, duplicates_{0}, failed_{0};
};

}  // namespace isthmus::store
