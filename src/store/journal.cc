#include "store/journal.h"

#include <future>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/str.h"
#include "db/sqlite.h"

namespace isthmus::store {
namespace {

// Schema versions, applied in order by db::Migrate. Never edit a shipped entry: add one.
const std::vector<std::string_view>& Migrations() {
  static const std::vector<std::string_view> kMigrations = {
      R"sql(
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  channel TEXT NOT NULL,
  sender TEXT NOT NULL,
  control_id TEXT NOT NULL,
  message_type TEXT NOT NULL,
  peer TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  raw BLOB NOT NULL
);
CREATE INDEX messages_dedupe ON messages (sender, control_id, received_at);
CREATE INDEX messages_received ON messages (received_at);
CREATE TABLE message_events (
  id INTEGER PRIMARY KEY,
  message_id INTEGER NOT NULL REFERENCES messages(id),
  at INTEGER NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX message_events_by_message ON message_events (message_id, id);
)sql",
  };
  return kMigrations;
}

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

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& opts) {
  if (opts.path.empty() || opts.path == ":memory:") {
    return absl::InvalidArgumentError("the journal needs a database file");
  }
  std::unique_ptr<Journal> j(new Journal(opts));
  ISTHMUS_RETURN_IF_ERROR(j->Init());
  j->writer_thread_ = std::thread([raw = j.get()] { raw->WriterLoop(); });
  return j;
}

absl::Status Journal::Init() {
  ISTHMUS_ASSIGN_OR_RETURN(writer_, db::OpenSqlite(opts_.path));
  ISTHMUS_RETURN_IF_ERROR(db::Migrate(*writer_, Migrations()));
  ISTHMUS_ASSIGN_OR_RETURN(find_dup_, writer_->Prepare(
      "SELECT id FROM messages WHERE sender = ? AND control_id = ? AND received_at >= ? "
      "ORDER BY id LIMIT 1"));
  ISTHMUS_ASSIGN_OR_RETURN(insert_msg_, writer_->Prepare(
      "INSERT INTO messages (channel, sender, control_id, message_type, peer, received_at, "
      "state, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  ISTHMUS_ASSIGN_OR_RETURN(insert_event_, writer_->Prepare(
      "INSERT INTO message_events (message_id, at, state, reason) VALUES (?, ?, ?, ?)"));
  ISTHMUS_ASSIGN_OR_RETURN(update_state_, writer_->Prepare(
      "UPDATE messages SET state = ? WHERE id = ?"));
  ISTHMUS_ASSIGN_OR_RETURN(reader_, db::OpenSqlite(opts_.path));
  return absl::OkStatus();
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_thread_.joinable()) writer_thread_.join();
}

void Journal::Append(IncomingMessage msg, AppendCallback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      Pending p;
      p.msg = std::move(msg);
      p.done = std::move(done);
      queue_.push_back(std::move(p));
      cv_.notify_one();
      return;
    }
  }
  std::move(done)(absl::UnavailableError("the journal is shutting down"));
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
  std::promise<absl::Status> promise;
  auto future = promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the journal is shutting down");
    Pending p;
    p.event_id = id;
    p.event_state = std::move(state);
    p.event_reason = std::move(reason);
    p.done = [&promise](absl::StatusOr<AppendResult> r) mutable { promise.set_value(r.status()); };
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
  return future.get();
}

void Journal::WriterLoop() {
  std::vector<Pending> batch;
  std::vector<absl::StatusOr<AppendResult>> results;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < opts_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    results.clear();
    absl::Status s = WriteBatch(batch, &results);
    uint64_t appended = 0, duplicates = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!s.ok()) {
        results[i] = s;
      } else if (results[i].ok() && batch[i].msg.has_value()) {
        (results[i]->duplicate ? duplicates : appended) += 1;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.appended += appended;
      stats_.duplicates += duplicates;
      (s.ok() ? stats_.commits : stats_.failed_commits) += 1;
    }
    for (size_t i = 0; i < batch.size(); ++i) std::move(batch[i].done)(std::move(results[i]));
    batch.clear();
  }
}

absl::Status Journal::WriteBatch(std::vector<Pending>& batch,
                                 std::vector<absl::StatusOr<AppendResult>>* results) {
  results->assign(batch.size(), absl::UnknownError("not written"));
  ISTHMUS_RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  const int64_t now = opts_.clock->NowMicros();
  for (size_t i = 0; i < batch.size(); ++i) {
    Pending& p = batch[i];
    if (p.msg.has_value()) {
      (*results)[i] = WriteOne(*p.msg, now);
    } else {
      absl::Status s = InsertEvent(p.event_id, now, p.event_state, p.event_reason);
      if (s.ok()) {
        update_state_->Reset();
        update_state_->BindText(1, p.event_state);
        update_state_->BindInt64(2, p.event_id);
        s = update_state_->Step().status();
      }
      (*results)[i] = s.ok() ? absl::StatusOr<AppendResult>(AppendResult{p.event_id, false})
                             : absl::StatusOr<AppendResult>(s);
    }
    // A failure of one statement must not commit a half-written message: roll back all.
    if (!(*results)[i].ok()) {
      absl::Status s = (*results)[i].status();
      writer_->Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  absl::Status s = writer_->Exec("COMMIT");
  if (!s.ok()) writer_->Exec("ROLLBACK").IgnoreError();
  return s;
}

absl::StatusOr<AppendResult> Journal::WriteOne(const IncomingMessage& m, int64_t now) {
  if (opts_.dedupe_window > absl::ZeroDuration() && !m.control_id.empty() &&
      m.state == "received") {
    find_dup_->Reset();
    find_dup_->BindText(1, m.sender);
    find_dup_->BindText(2, m.control_id);
    find_dup_->BindInt64(3, now - absl::ToInt64Microseconds(opts_.dedupe_window));
    ISTHMUS_ASSIGN_OR_RETURN(bool found, find_dup_->Step());
    if (found) {
      int64_t original = find_dup_->ColumnInt64(0);
      find_dup_->Reset();
      ISTHMUS_RETURN_IF_ERROR(InsertEvent(original, now, "duplicate",
                                          base::StrCat("retransmission from ", m.peer)));
      return AppendResult{original, true};
    }
  }
  insert_msg_->Reset();
  insert_msg_->BindText(1, m.channel);
  insert_msg_->BindText(2, m.sender);
  insert_msg_->BindText(3, m.control_id);
  insert_msg_->BindText(4, m.message_type);
  insert_msg_->BindText(5, m.peer);
  insert_msg_->BindInt64(6, now);
  insert_msg_->BindText(7, m.state);
  insert_msg_->BindBlob(8, m.raw);
  ISTHMUS_RETURN_IF_ERROR(insert_msg_->Step().status());
  int64_t id = writer_->LastInsertId();
  ISTHMUS_RETURN_IF_ERROR(InsertEvent(
      id, now, m.state, m.reason.empty() ? base::StrCat("from ", m.peer) : m.reason));
  return AppendResult{id, false};
}

absl::Status Journal::InsertEvent(int64_t id, int64_t at, std::string_view state,
                                  std::string_view reason) {
  insert_event_->Reset();
  insert_event_->BindInt64(1, id);
  insert_event_->BindInt64(2, at);
  insert_event_->BindText(3, state);
  insert_event_->BindText(4, reason);
  return insert_event_->Step().status();
}

absl::StatusOr<MessageRecord> Journal::Get(int64_t id) const {
  std::lock_guard<std::mutex> lock(read_mu_);
  ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
      base::StrCat("SELECT ", kSummaryColumns, ", raw FROM messages WHERE id = ?")));
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
  std::string where = " WHERE received_at >= ?";
  if (!query.control_id.empty()) where += " AND control_id = ?";
  if (!query.channel.empty()) where += " AND channel = ?";
  if (!query.state.empty()) where += " AND state = ?";
  auto bind = [&](db::Statement& s) {
    int i = 1;
    s.BindInt64(i++, query.since_micros);
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
      base::StrCat("SELECT ", kSummaryColumns, " FROM messages", where, " ORDER BY id DESC LIMIT ?")));
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
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t Journal::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace isthmus::store
