#include "store/journal.h"

#include <future>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/str.h"

namespace isthmus::store {
namespace {

// The columns every message query selects first, in this order.
constexpr char kSummaryColumns[] =
    "id, channel, sender, control_id, message_type, peer, state, received_at";

MessageRecord ReadSummary(const db::Statement& q) {
  MessageRecord r;
  r.id = q.ColumnInt64(0);
  r.channel = std::string(q.ColumnText(1));
  r.sender = std::string(q.ColumnText(2));
  r.control_id = std::string(q.ColumnText(3));
  r.message_type = std::string(q.ColumnText(4));
  r.peer = std::string(q.ColumnText(5));
  r.state = std::string(q.ColumnText(6));
  r.received_at_micros = q.ColumnInt64(7);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(Writer& writer, const JournalOptions& opts) {
  std::unique_ptr<Journal> j(new Journal(writer, opts));
  ISTHMUS_ASSIGN_OR_RETURN(j->reader_, writer.OpenReader());
  return j;
}

Journal::~Journal() { writer_.Barrier(); }

void Journal::Append(IncomingMessage msg, AppendCallback done) {
  auto result = std::make_shared<AppendResult>();
  auto m = std::make_shared<IncomingMessage>(std::move(msg));
  writer_.Submit(
      [this, m, result](db::Connection& conn) { return Insert(conn, *m, result.get()); },
      [this, result, done = std::move(done)](absl::Status s) mutable {
        if (!s.ok()) {
          failed_++;
          std::move(done)(s);
          return;
        }
        (result->duplicate ? duplicates_ : appended_)++;
        std::move(done)(*result);
      },
      // Insert fails only on I/O errors or a full disk, when its whole group fails too.
      Writer::Isolation::kGroup);
}

absl::StatusOr<AppendResult> Journal::AppendAndWait(IncomingMessage msg) {
  std::promise<absl::StatusOr<AppendResult>> promise;
  auto future = promise.get_future();
  Append(std::move(msg), [&promise](absl::StatusOr<AppendResult> r) mutable {
    promise.set_value(std::move(r));
  });
  return future.get();
}

absl::Status Journal::RecordEvent(int64_t id, std::string state, std::string reason) {
  int64_t now = opts_.clock->NowMicros();
  return writer_.Run([id, now, state = std::move(state), reason = std::move(reason)](db::Connection& c) {
    return WriteEvent(c, id, now, state, reason);
  });
}

absl::Status Journal::AddEvent(db::Connection& conn, int64_t id, int64_t at_micros,
                              std::string_view state, std::string_view reason) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* ev, conn.PrepareCached(
      "INSERT INTO message_events (message_id, at, state, reason) VALUES (?, ?, ?, ?)"));
  ev->BindInt64(1, id);
  ev->BindInt64(2, at_micros);
  ev->BindTextRef(3, state);
  ev->BindTextRef(4, reason);
  return ev->Step().status();
}

absl::Status Journal::WriteEvent(db::Connection& conn, int64_t id, int64_t at_micros,
                                 std::string_view state, std::string_view reason) {
  ISTHMUS_RETURN_IF_ERROR(AddEvent(conn, id, at_micros, state, reason));
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* up, conn.PrepareCached(
      "UPDATE messages SET state = ? WHERE id = ?"));
  up->BindText(1, state);
  up->BindInt64(2, id);
  return up->Step().status();
}

absl::Status Journal::Insert(db::Connection& conn, const IncomingMessage& m, AppendResult* out) const {
  const int64_t now = opts_.clock->NowMicros();
  if (opts_.dedupe_window > absl::ZeroDuration() && !m.control_id.empty() &&
      m.state == "received") {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* find, conn.PrepareCached(
        // MIN(id), not ORDER BY id LIMIT 1: the latter sorts the index matches in a temporary
        // b-tree on every call, and that alone was a fifth of SQLite's work per message.
        "SELECT MIN(id) FROM messages WHERE sender = ? AND control_id = ? AND received_at >= ? "
        "AND state != 'rejected'"));
    find->BindText(1, m.sender);
    find->BindText(2, m.control_id);
    find->BindInt64(3, now - absl::ToInt64Microseconds(opts_.dedupe_window));
    ISTHMUS_ASSIGN_OR_RETURN(bool row, find->Step());
    const bool found = row && !find->ColumnIsNull(0);
    if (!found) find->Reset();
    if (found) {
      int64_t original = find->ColumnInt64(0);
      find->Reset();
      // Recorded as an event only: the message's own state does not change.
      ISTHMUS_ASSIGN_OR_RETURN(db::Statement* ev, conn.PrepareCached(
          "INSERT INTO message_events (message_id, at, state, reason) VALUES (?, ?, 'duplicate', ?)"));
      ev->BindInt64(1, original);
      ev->BindInt64(2, now);
      ev->BindText(3, base::StrCat("retransmission from ", m.peer));
      ISTHMUS_RETURN_IF_ERROR(ev->Step().status());
      *out = AppendResult{original, true};
      return absl::OkStatus();
    }
  }
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* ins, conn.PrepareCached(
      "INSERT INTO messages (channel, sender, control_id, message_type, peer, received_at, "
      "state) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  ins->BindTextRef(1, m.channel);
  ins->BindTextRef(2, m.sender);
  ins->BindTextRef(3, m.control_id);
  ins->BindTextRef(4, m.message_type);
  ins->BindTextRef(5, m.peer);
  ins->BindInt64(6, now);
  // A message whose outcome is written in this transaction goes in with that outcome's state
  // (its events still tell "received", then the outcome).
  const bool then = m.then && m.state == "received";
  if (then && m.then_state.empty()) {
    return absl::InvalidArgumentError("journal: an outcome written with the message needs its state");
  }
  ins->BindTextRef(7, then ? m.then_state : m.state);
  ISTHMUS_RETURN_IF_ERROR(ins->Step().status());
  int64_t id = conn.LastInsertId();
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* body, conn.PrepareCached(
      "INSERT INTO message_bodies (id, raw) VALUES (?, ?)"));
  body->BindInt64(1, id);
  body->BindBlobRef(2, m.shared_raw ? *m.shared_raw : m.raw);
  ISTHMUS_RETURN_IF_ERROR(body->Step().status());
  // The row was inserted with this state: only the event is new (an UPDATE would rewrite the
  // row, raw bytes included, for nothing).
  ISTHMUS_RETURN_IF_ERROR(AddEvent(conn, id, now, m.state,
                                   m.reason.empty() ? base::StrCat("from ", m.peer) : m.reason));
  if (then) ISTHMUS_RETURN_IF_ERROR(m.then(conn, id));
  *out = AppendResult{id, false};
  return absl::OkStatus();
}

absl::StatusOr<MessageRecord> Journal::Get(int64_t id) const {
  std::lock_guard<std::mutex> lock(read_mu_);
  ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
      base::StrCat("SELECT ", kSummaryColumns, ", (SELECT raw FROM message_bodies b WHERE "
                   "b.id = messages.id) FROM messages WHERE id = ?")));
  q->BindInt64(1, id);
  ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(base::StrCat("no message with id ", id));
  MessageRecord r = ReadSummary(*q);
  r.raw = std::string(q->ColumnText(8));
  ISTHMUS_ASSIGN_OR_RETURN(auto ev, reader_->Prepare(
      "SELECT at, state, reason FROM message_events WHERE message_id = ? ORDER BY id"));
  ev->BindInt64(1, id);
  while (true) {
    ISTHMUS_ASSIGN_OR_RETURN(bool more, ev->Step());
    if (!more) break;
    r.events.push_back(MessageEvent{ev->ColumnInt64(0), std::string(ev->ColumnText(1)),
                                    std::string(ev->ColumnText(2))});
  }
  return r;
}

absl::StatusOr<std::vector<MessageRecord>> Journal::List(const MessageQuery& query,
                                                         int64_t* total) const {
  std::string where = " WHERE received_at >= ? AND id > ?";
  if (!query.control_id.empty()) where += " AND control_id = ?";
  if (!query.channel.empty()) where += " AND channel = ?";
  if (!query.state.empty()) where += " AND state = ?";
  auto bind = [&](db::Statement& s) {
    int i = 1;
    s.BindInt64(i++, query.since_micros);
    s.BindInt64(i++, query.after_id);
    if (!query.control_id.empty()) s.BindText(i++, query.control_id);
    if (!query.channel.empty()) s.BindText(i++, query.channel);
    if (!query.state.empty()) s.BindText(i++, query.state);
    return i;
  };
  std::lock_guard<std::mutex> lock(read_mu_);
  ISTHMUS_ASSIGN_OR_RETURN(auto count, reader_->Prepare("SELECT COUNT(*) FROM messages" + where));
  bind(*count);
  ISTHMUS_ASSIGN_OR_RETURN(bool has, count->Step());
  *total = has ? count->ColumnInt64(0) : 0;
  ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
      base::StrCat("SELECT ", kSummaryColumns, " FROM messages", where, query.oldest_first ? " ORDER BY id" : " ORDER BY id DESC",
                   " LIMIT ?")));
  int next = bind(*q);
  q->BindInt64(next, std::clamp(query.limit, 1, 1000));
  std::vector<MessageRecord> out;
  while (true) {
    ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(ReadSummary(*q));
  }
  return out;
}

JournalStats Journal::stats() const {
  return JournalStats{appended_.load(), duplicates_.load(), failed_.load()};
}

}  // namespace isthmus::store
