#include "store/queue.h"

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/str.h"
#include "store/journal.h"

namespace isthmus::store {
namespace {

// The oldest row of each partition of one destination: the only rows that may be claimed.
// The head (lowest id) of each partition of destination ?1. A loose index scan over
// queue_by_partition (destination, partition_key, id): one index seek per partition, whatever
// the number of queued rows (a plain GROUP BY partition_key reads every queued row, which made
// each claim O(backlog)). Portable: PostgreSQL has WITH RECURSIVE too.
constexpr char kHeads[] =
    "WITH RECURSIVE parts(k) AS ("
    "SELECT (SELECT partition_key FROM queue WHERE destination = ?1 ORDER BY partition_key LIMIT 1) "
    "UNION ALL "
    "SELECT (SELECT partition_key FROM queue WHERE destination = ?1 AND partition_key > parts.k "
    "ORDER BY partition_key LIMIT 1) FROM parts WHERE parts.k IS NOT NULL) "
    "SELECT (SELECT MIN(id) FROM queue WHERE destination = ?1 AND partition_key = parts.k) "
    "FROM parts WHERE parts.k IS NOT NULL";

absl::Status LeaseLost(const QueueItem& item, std::string_view why) {
  return absl::FailedPreconditionError(
      base::StrCat("queue row ", item.id, " of ", item.destination, ": lease lost (", why, ")"));
}

// The caller must still hold the row's lease.
absl::Status CheckLease(db::Connection& conn, const QueueItem& item) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* q,
                           conn.PrepareCached("SELECT lease_owner FROM queue WHERE id = ?"));
  q->BindInt64(1, item.id);
  ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return LeaseLost(item, "row gone");
  bool mine = !q->ColumnIsNull(0) && q->ColumnText(0) == item.lease_owner;
  std::string owner = q->ColumnIsNull(0) ? "none" : std::string(q->ColumnText(0));
  q->Reset();
  if (!mine) return LeaseLost(item, base::StrCat("now held by ", owner));
  return absl::OkStatus();
}

absl::Status StepDone(db::Statement* s) {
  absl::Status st = s->Step().status();
  s->Reset();
  return st;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Queue>> Queue::Open(Writer& writer, base::Clock& clock) {
  std::unique_ptr<Queue> q(new Queue(writer, clock));
  ISTHMUS_ASSIGN_OR_RETURN(q->reader_, writer.OpenReader());
  return q;
}

absl::Status Queue::Enqueue(db::Connection& conn, int64_t message_id,
                            std::string_view destination, std::string_view partition_key,
                            int64_t now_micros, std::optional<std::string_view> payload) {
  if (destination.empty()) return absl::InvalidArgumentError("enqueue: empty destination name");
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* ins, conn.PrepareCached(
      "INSERT INTO queue (destination, message_id, partition_key, attempt, next_attempt_at, "
      "enqueued_at, lease_owner, lease_until, last_error, payload) "
      "VALUES (?, ?, ?, 0, ?, ?, NULL, 0, '', ?)"));
  ins->BindTextRef(1, destination);
  ins->BindInt64(2, message_id);
  ins->BindTextRef(3, partition_key);
  ins->BindInt64(4, now_micros);
  ins->BindInt64(5, now_micros);
  if (payload) {
    ins->BindBlobRef(6, *payload);
  } else {
    ins->BindNull(6);
  }
  return StepDone(ins);
}

namespace {

constexpr char kItemColumns[] =
    "SELECT q.id, q.message_id, q.partition_key, q.attempt, q.next_attempt_at, "
    "q.enqueued_at, q.last_error, m.channel, m.control_id, m.message_type, "
    "COALESCE(q.payload, b.raw), q.lease_owner, q.lease_until "
    "FROM queue q JOIN messages m ON m.id = q.message_id "
    "JOIN message_bodies b ON b.id = q.message_id ";

// Items [first, last] of a claim or ack list: consecutive rows of one partition of one
// destination, held under one lease owner, in id order.
struct Run {
  size_t first;
  size_t last;
};

std::vector<Run> Runs(const std::vector<QueueItem>& items) {
  std::vector<Run> runs;
  for (size_t i = 0; i < items.size(); ++i) {
    const QueueItem& it = items[i];
    if (!runs.empty()) {
      const QueueItem& prev = items[runs.back().last];
      if (prev.destination == it.destination && prev.partition_key == it.partition_key &&
          prev.lease_owner == it.lease_owner && prev.id < it.id) {
        runs.back().last = i;
        continue;
      }
    }
    runs.push_back(Run{i, i});
  }
  return runs;
}

// Reads the current row of a kItemColumns query.
QueueItem ReadItem(db::Statement* q, std::string_view destination) {
  QueueItem it;
  it.id = q->ColumnInt64(0);
  it.destination = std::string(destination);
  it.message_id = q->ColumnInt64(1);
  it.partition_key = std::string(q->ColumnText(2));
  it.attempt = static_cast<int>(q->ColumnInt64(3));
  it.next_attempt_at_micros = q->ColumnInt64(4);
  it.enqueued_at_micros = q->ColumnInt64(5);
  it.last_error = std::string(q->ColumnText(6));
  it.channel = std::string(q->ColumnText(7));
  it.control_id = std::string(q->ColumnText(8));
  it.message_type = std::string(q->ColumnText(9));
  it.payload = std::string(q->ColumnText(10));
  return it;
}

// Claimable: due, and not leased (or the lease expired).
bool Claimable(db::Statement* q, int64_t now) {
  return q->ColumnInt64(4) <= now && (q->ColumnIsNull(11) || q->ColumnInt64(12) <= now);
}

}  // namespace

absl::StatusOr<std::vector<QueueItem>> Queue::Claim(std::string_view destination,
                                                    std::string_view owner, int max_partitions,
                                                    absl::Duration lease, int run_length) {
  if (owner.empty()) return absl::InvalidArgumentError("claim: empty lease owner");
  std::vector<QueueItem> items;
  if (max_partitions <= 0) return items;
  run_length = std::max(run_length, 1);
  // The candidates are read on the reader connection and only leased on the writer, which is the
  // engine's serial resource (the reads and the payload copies were a sixth of its work per
  // delivered message). The lease's UPDATE repeats the claimable test, so a row that changed in
  // between (only this destination's dispatcher touches its rows: a race is a retry or a lost
  // lease of its own) fails the count check; the claim then reads again.
  for (int attempt = 0;; ++attempt) {
    const int64_t now = clock_.NowMicros();
    const int64_t until = now + absl::ToInt64Microseconds(lease);
    ISTHMUS_ASSIGN_OR_RETURN(items, ReadClaimable(destination, max_partitions, run_length, now));
    if (items.empty()) return items;
    for (QueueItem& it : items) {
      it.lease_owner = std::string(owner);
      it.lease_until_micros = until;
    }
    bool changed = false;
    absl::Status s = writer_.Run([&](db::Connection& conn) -> absl::Status {
      changed = false;
      // One UPDATE per run: a run is every row of its partition from its head to its last item
      // (the read stops at the first row it does not take), so the id range within the
      // partition names exactly the run's rows.
      ISTHMUS_ASSIGN_OR_RETURN(db::Statement* up, conn.PrepareCached(
          "UPDATE queue SET lease_owner = ?, lease_until = ? WHERE destination = ? AND "
          "partition_key = ? AND id >= ? AND id <= ? AND next_attempt_at <= ? AND "
          "(lease_owner IS NULL OR lease_until <= ?)"));
      for (const Run& run : Runs(items)) {
        up->BindText(1, owner);
        up->BindInt64(2, until);
        up->BindText(3, destination);
        up->BindText(4, items[run.first].partition_key);
        up->BindInt64(5, items[run.first].id);
        up->BindInt64(6, items[run.last].id);
        up->BindInt64(7, now);
        up->BindInt64(8, now);
        ISTHMUS_RETURN_IF_ERROR(StepDone(up));
        if (conn.Changes() != static_cast<int64_t>(run.last - run.first + 1)) {
          changed = true;  // roll back this op's leases (its savepoint), read again
          return absl::AbortedError(base::StrCat("claim of ", destination, ": the run from queue row ",
                                                 items[run.first].id, " changed while claimed"));
        }
      }
      return absl::OkStatus();
    });
    if (s.ok()) return items;
    if (!changed || attempt >= 2) return s;
  }
}

absl::StatusOr<std::vector<QueueItem>> Queue::ReadClaimable(std::string_view destination,
                                                            int max_partitions, int run_length,
                                                            int64_t now) const {
  std::lock_guard<std::mutex> lock(read_mu_);
  std::vector<QueueItem> items;
  std::vector<QueueItem> heads;
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* q, reader_->PrepareCached(base::StrCat(
      kItemColumns, "WHERE q.id IN (", kHeads, ") AND q.next_attempt_at <= ? "
      "AND (q.lease_owner IS NULL OR q.lease_until <= ?) ORDER BY q.id LIMIT ?")));
  q->BindText(1, destination);
  q->BindInt64(2, now);
  q->BindInt64(3, now);
  q->BindInt64(4, max_partitions);
  while (true) {
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) {
      q->Reset();
      return row.status();
    }
    if (!*row) break;
    heads.push_back(ReadItem(q, destination));
  }
  q->Reset();
  // The rest of each run: the rows after the head in its partition, while claimable.
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* next, reader_->PrepareCached(base::StrCat(
      kItemColumns, "WHERE q.destination = ? AND q.partition_key = ? AND q.id > ? "
      "ORDER BY q.id LIMIT ?")));
  for (QueueItem& head : heads) {
    const int64_t head_id = head.id;
    const std::string partition = head.partition_key;
    items.push_back(std::move(head));
    if (run_length == 1) continue;
    next->BindText(1, destination);
    next->BindText(2, partition);
    next->BindInt64(3, head_id);
    next->BindInt64(4, run_length - 1);
    while (true) {
      absl::StatusOr<bool> row = next->Step();
      if (!row.ok()) {
        next->Reset();
        return row.status();
      }
      if (!*row || !Claimable(next, now)) break;
      items.push_back(ReadItem(next, destination));
    }
    next->Reset();
  }
  return items;
}

namespace {

absl::Status WriteDeliveredEvent(db::Connection& conn, const QueueItem& item, int64_t now) {
  return Journal::WriteEvent(conn, item.message_id, now,
                             base::StrCat("delivered:", item.destination),
                             base::StrCat("attempt ", item.attempt + 1));
}

// Deletes the acked row and writes its `delivered:` event; the caller counts it.
absl::Status AckOne(db::Connection& conn, const QueueItem& item, int64_t now) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* del,
                           conn.PrepareCached("DELETE FROM queue WHERE id = ?"));
  del->BindInt64(1, item.id);
  ISTHMUS_RETURN_IF_ERROR(StepDone(del));
  return WriteDeliveredEvent(conn, item, now);
}

absl::Status CountDelivered(db::Connection& conn, std::string_view destination, int64_t n) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* count, conn.PrepareCached(
      "INSERT INTO destination_counters (destination, delivered) VALUES (?, ?) "
      "ON CONFLICT (destination) DO UPDATE SET delivered = destination_counters.delivered + "
      "excluded.delivered"));
  count->BindText(1, destination);
  count->BindInt64(2, n);
  return StepDone(count);
}

}  // namespace

absl::Status Queue::Ack(const QueueItem& item) {
  const int64_t now = clock_.NowMicros();
  return writer_.Run([&](db::Connection& conn) -> absl::Status {
    ISTHMUS_RETURN_IF_ERROR(CheckLease(conn, item));
    ISTHMUS_RETURN_IF_ERROR(AckOne(conn, item, now));
    return CountDelivered(conn, item.destination, 1);
  });
}

absl::Status Queue::AckInOp(db::Connection& conn, const QueueItem& item, int64_t now_micros) {
  ISTHMUS_RETURN_IF_ERROR(CheckLease(conn, item));
  ISTHMUS_RETURN_IF_ERROR(AckOne(conn, item, now_micros));
  return CountDelivered(conn, item.destination, 1);
}

absl::Status Queue::AckAll(const std::vector<QueueItem>& items, std::vector<bool>* lease_lost) {
  const int64_t now = clock_.NowMicros();
  return writer_.Run([&](db::Connection& conn) -> absl::Status {
    lease_lost->assign(items.size(), false);
    std::map<std::string, int64_t, std::less<>> counts;
    std::vector<bool> acked(items.size(), false);
    // Fast path, one check and one DELETE per run: when the partition's rows in the run's id
    // range are exactly the run's items, all still leased to their owner, delete them at once.
    // Anything else (a lost lease, a row gone, an item list that skips rows) takes the row by
    // row path below.
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* count, conn.PrepareCached(
        "SELECT COUNT(*), COALESCE(SUM(lease_owner = ?), 0) FROM queue WHERE destination = ? AND "
        "partition_key = ? AND id >= ? AND id <= ?"));
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* del, conn.PrepareCached(
        "DELETE FROM queue WHERE destination = ? AND partition_key = ? AND id >= ? AND id <= ?"));
    // The run's `delivered:` events and message states, one statement each (as WriteDeliveredEvent
    // writes them row by row: same rows, same order, without a statement per message).
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* events, conn.PrepareCached(
        "INSERT INTO message_events (message_id, at, state, reason) SELECT message_id, ?, ?, "
        "'attempt ' || (attempt + 1) FROM queue WHERE destination = ? AND partition_key = ? AND "
        "id >= ? AND id <= ? ORDER BY id"));
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* states, conn.PrepareCached(
        "UPDATE messages SET state = ? WHERE id IN (SELECT message_id FROM queue WHERE "
        "destination = ? AND partition_key = ? AND id >= ? AND id <= ?)"));
    std::string delivered_state;
    for (const Run& run : Runs(items)) {
      const QueueItem& head = items[run.first];
      const int64_t n = static_cast<int64_t>(run.last - run.first + 1);
      if (n == 1) continue;
      count->BindText(1, head.lease_owner);
      count->BindText(2, head.destination);
      count->BindText(3, head.partition_key);
      count->BindInt64(4, head.id);
      count->BindInt64(5, items[run.last].id);
      ISTHMUS_ASSIGN_OR_RETURN(bool row, count->Step());
      const bool whole = row && count->ColumnInt64(0) == n && count->ColumnInt64(1) == n;
      count->Reset();
      if (!whole) continue;
      delivered_state = base::StrCat("delivered:", head.destination);
      events->BindInt64(1, now);
      events->BindText(2, delivered_state);
      states->BindText(1, delivered_state);
      // Each statement ends with "destination = ? AND partition_key = ? AND id >= ? AND id <= ?"
      // from parameter `first` on; the events and states are written before the rows go.
      auto over_run = [&](db::Statement* st, int first) {
        st->BindText(first, head.destination);
        st->BindText(first + 1, head.partition_key);
        st->BindInt64(first + 2, head.id);
        st->BindInt64(first + 3, items[run.last].id);
        return StepDone(st);
      };
      ISTHMUS_RETURN_IF_ERROR(over_run(events, 3));
      ISTHMUS_RETURN_IF_ERROR(over_run(states, 2));
      ISTHMUS_RETURN_IF_ERROR(over_run(del, 1));
      for (size_t i = run.first; i <= run.last; ++i) acked[i] = true;
      counts[head.destination] += n;
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (acked[i]) continue;
      absl::Status held = CheckLease(conn, items[i]);
      if (held.code() == absl::StatusCode::kFailedPrecondition) {
        (*lease_lost)[i] = true;
        continue;
      }
      ISTHMUS_RETURN_IF_ERROR(held);
      ISTHMUS_RETURN_IF_ERROR(AckOne(conn, items[i], now));
      counts[items[i].destination]++;
    }
    for (const auto& [destination, n] : counts) {
      ISTHMUS_RETURN_IF_ERROR(CountDelivered(conn, destination, n));
    }
    return absl::OkStatus();
  });
}

absl::Status Queue::Nack(const QueueItem& item, int64_t next_attempt_micros,
                         std::string_view reason) {
  const int64_t now = clock_.NowMicros();
  return writer_.Run([&](db::Connection& conn) -> absl::Status {
    ISTHMUS_RETURN_IF_ERROR(CheckLease(conn, item));
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* up, conn.PrepareCached(
        "UPDATE queue SET attempt = attempt + 1, next_attempt_at = ?, lease_owner = NULL, "
        "lease_until = 0, last_error = ? WHERE id = ?"));
    up->BindInt64(1, next_attempt_micros);
    up->BindText(2, reason);
    up->BindInt64(3, item.id);
    ISTHMUS_RETURN_IF_ERROR(StepDone(up));
    return Journal::WriteEvent(conn, item.message_id, now,
                               base::StrCat("retry:", item.destination),
                               base::StrCat("attempt ", item.attempt + 1, ": ", reason));
  });
}

absl::Status Queue::DeadLetter(const QueueItem& item, std::string_view reason) {
  const int64_t now = clock_.NowMicros();
  return writer_.Run([&](db::Connection& conn) -> absl::Status {
    ISTHMUS_RETURN_IF_ERROR(CheckLease(conn, item));
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* ins, conn.PrepareCached(
        "INSERT INTO dead_letters (destination, message_id, partition_key, attempts, reason, "
        "enqueued_at, dead_at, reprocessed_at, payload) "
        "SELECT destination, message_id, partition_key, attempt + 1, ?, enqueued_at, ?, NULL, "
        "payload FROM queue WHERE id = ?"));
    ins->BindText(1, reason);
    ins->BindInt64(2, now);
    ins->BindInt64(3, item.id);
    ISTHMUS_RETURN_IF_ERROR(StepDone(ins));
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* del,
                             conn.PrepareCached("DELETE FROM queue WHERE id = ?"));
    del->BindInt64(1, item.id);
    ISTHMUS_RETURN_IF_ERROR(StepDone(del));
    return Journal::WriteEvent(conn, item.message_id, now, base::StrCat("dead:", item.destination),
                               base::StrCat("after ", item.attempt + 1, " attempts: ", reason));
  });
}

absl::Status Queue::Release(const QueueItem& item) {
  return writer_.Run([&](db::Connection& conn) -> absl::Status {
    ISTHMUS_RETURN_IF_ERROR(CheckLease(conn, item));
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* up, conn.PrepareCached(
        "UPDATE queue SET lease_owner = NULL, lease_until = 0 WHERE id = ?"));
    up->BindInt64(1, item.id);
    return StepDone(up);
  });
}

absl::StatusOr<int> Queue::ReleaseLeasesOfEarlierProcesses() {
  int released = 0;
  ISTHMUS_RETURN_IF_ERROR(writer_.Run([&](db::Connection& conn) -> absl::Status {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* count, conn.PrepareCached(
        "SELECT COUNT(*) FROM queue WHERE lease_owner IS NOT NULL"));
    ISTHMUS_ASSIGN_OR_RETURN(bool row, count->Step());
    released = row ? static_cast<int>(count->ColumnInt64(0)) : 0;
    count->Reset();
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* up, conn.PrepareCached(
        "UPDATE queue SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL"));
    return StepDone(up);
  }));
  return released;
}

absl::StatusOr<int> Queue::ReleaseAll(const std::vector<QueueItem>& items) {
  int released = 0;
  absl::Status s = writer_.Run([&](db::Connection& conn) -> absl::Status {
    released = 0;
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* up, conn.PrepareCached(
        "UPDATE queue SET lease_owner = NULL, lease_until = 0 WHERE id = ?"));
    for (const QueueItem& item : items) {
      absl::Status held = CheckLease(conn, item);
      if (held.code() == absl::StatusCode::kFailedPrecondition) continue;
      ISTHMUS_RETURN_IF_ERROR(held);
      up->BindInt64(1, item.id);
      ISTHMUS_RETURN_IF_ERROR(StepDone(up));
      released++;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return released;
}

namespace {

// Re-enqueues one dead letter (known to exist and not be reprocessed) in the caller's op.
absl::Status ReprocessOne(db::Connection& conn, int64_t id, int64_t message_id,
                          std::string_view destination, int64_t now) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* ins, conn.PrepareCached(
      "INSERT INTO queue (destination, message_id, partition_key, attempt, next_attempt_at, "
      "enqueued_at, lease_owner, lease_until, last_error, payload) "
      "SELECT destination, message_id, partition_key, 0, ?, ?, NULL, 0, '', payload "
      "FROM dead_letters WHERE id = ?"));
  ins->BindInt64(1, now);
  ins->BindInt64(2, now);
  ins->BindInt64(3, id);
  ISTHMUS_RETURN_IF_ERROR(StepDone(ins));
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* mark, conn.PrepareCached(
      "UPDATE dead_letters SET reprocessed_at = ? WHERE id = ?"));
  mark->BindInt64(1, now);
  mark->BindInt64(2, id);
  ISTHMUS_RETURN_IF_ERROR(StepDone(mark));
  return Journal::WriteEvent(conn, message_id, now, "reprocess",
                             base::StrCat(destination, " (dead letter ", id, ")"));
}

}  // namespace

absl::Status Queue::Reprocess(int64_t dead_letter_id) {
  const int64_t now = clock_.NowMicros();
  return writer_.Run([&](db::Connection& conn) -> absl::Status {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* q, conn.PrepareCached(
        "SELECT message_id, destination, reprocessed_at FROM dead_letters WHERE id = ?"));
    q->BindInt64(1, dead_letter_id);
    ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) {
      q->Reset();
      return absl::NotFoundError(base::StrCat("no dead letter with id ", dead_letter_id));
    }
    const int64_t message_id = q->ColumnInt64(0);
    const std::string destination(q->ColumnText(1));
    const bool done = !q->ColumnIsNull(2);
    q->Reset();
    if (done) {
      return absl::FailedPreconditionError(
          base::StrCat("dead letter ", dead_letter_id, " was already reprocessed"));
    }
    return ReprocessOne(conn, dead_letter_id, message_id, destination, now);
  });
}

absl::StatusOr<int64_t> Queue::ReprocessAll(std::string_view destination) {
  const int64_t now = clock_.NowMicros();
  int64_t count = 0;
  absl::Status s = writer_.Run([&](db::Connection& conn) -> absl::Status {
    count = 0;
    std::vector<std::pair<int64_t, int64_t>> ids;  // dead letter id, message id
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* q, conn.PrepareCached(
        "SELECT id, message_id FROM dead_letters WHERE destination = ? "
        "AND reprocessed_at IS NULL ORDER BY id"));
    q->BindText(1, destination);
    while (true) {
      absl::StatusOr<bool> row = q->Step();
      if (!row.ok()) {
        q->Reset();
        return row.status();
      }
      if (!*row) break;
      ids.emplace_back(q->ColumnInt64(0), q->ColumnInt64(1));
    }
    q->Reset();
    for (const auto& [id, message_id] : ids) {
      ISTHMUS_RETURN_IF_ERROR(ReprocessOne(conn, id, message_id, destination, now));
    }
    count = static_cast<int64_t>(ids.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return count;
}

absl::StatusOr<std::vector<DeadLetterRecord>> Queue::ListDeadLetters(const DeadLetterQuery& query) const {
  std::string sql =
      "SELECT id, destination, message_id, partition_key, attempts, reason, enqueued_at, "
      "dead_at, reprocessed_at FROM dead_letters WHERE 1 = 1";
  if (!query.destination.empty()) sql += " AND destination = ?";
  if (!query.include_reprocessed) sql += " AND reprocessed_at IS NULL";
  if (query.before_id > 0) sql += " AND id < ?";
  sql += " ORDER BY id DESC LIMIT ?";
  std::lock_guard<std::mutex> lock(read_mu_);
  ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(sql));
  int i = 1;
  if (!query.destination.empty()) q->BindText(i++, query.destination);
  if (query.before_id > 0) q->BindInt64(i++, query.before_id);
  q->BindInt64(i, std::clamp(query.limit, 1, 1000));
  std::vector<DeadLetterRecord> out;
  while (true) {
    ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    DeadLetterRecord d;
    d.id = q->ColumnInt64(0);
    d.destination = std::string(q->ColumnText(1));
    d.message_id = q->ColumnInt64(2);
    d.partition_key = std::string(q->ColumnText(3));
    d.attempts = static_cast<int>(q->ColumnInt64(4));
    d.reason = std::string(q->ColumnText(5));
    d.enqueued_at_micros = q->ColumnInt64(6);
    d.dead_at_micros = q->ColumnInt64(7);
    d.reprocessed_at_micros = q->ColumnIsNull(8) ? 0 : q->ColumnInt64(8);
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<std::vector<DestinationCounts>> Queue::Counts() const {
  const int64_t now = clock_.NowMicros();
  std::map<std::string, DestinationCounts, std::less<>> by_name;
  auto entry = [&](std::string_view name) -> DestinationCounts& {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      it = by_name.emplace(std::string(name), DestinationCounts{}).first;
      it->second.destination = std::string(name);
    }
    return it->second;
  };
  std::lock_guard<std::mutex> lock(read_mu_);
  {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
        "SELECT destination, "
        "SUM(CASE WHEN lease_owner IS NOT NULL AND lease_until > ? THEN 0 ELSE 1 END), "
        "SUM(CASE WHEN lease_owner IS NOT NULL AND lease_until > ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN attempt > 0 THEN 1 ELSE 0 END), MIN(enqueued_at) "
        "FROM queue GROUP BY destination"));
    q->BindInt64(1, now);
    q->BindInt64(2, now);
    while (true) {
      ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      DestinationCounts& c = entry(q->ColumnText(0));
      c.queued = q->ColumnInt64(1);
      c.in_flight = q->ColumnInt64(2);
      c.retrying = q->ColumnInt64(3);
      c.oldest_enqueued_at_micros = q->ColumnInt64(4);
    }
  }
  {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
        "SELECT destination, COUNT(*) FROM dead_letters WHERE reprocessed_at IS NULL "
        "GROUP BY destination"));
    while (true) {
      ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      entry(q->ColumnText(0)).dead = q->ColumnInt64(1);
    }
  }
  {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
        "SELECT destination, delivered FROM destination_counters"));
    while (true) {
      ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      entry(q->ColumnText(0)).delivered = q->ColumnInt64(1);
    }
  }
  std::vector<DestinationCounts> out;
  out.reserve(by_name.size());
  for (auto& [name, c] : by_name) out.push_back(std::move(c));
  return out;
}

absl::StatusOr<DestinationCounts> Queue::CountsFor(std::string_view destination) const {
  ISTHMUS_ASSIGN_OR_RETURN(auto all, Counts());
  for (auto& c : all) {
    if (c.destination == destination) return std::move(c);
  }
  DestinationCounts empty;
  empty.destination = std::string(destination);
  return empty;
}

absl::StatusOr<QueuedByChannel> Queue::CountQueuedByChannel(int64_t scan_limit) const {
  QueuedByChannel out;
  std::lock_guard<std::mutex> lock(read_mu_);
  {
    ISTHMUS_ASSIGN_OR_RETURN(auto q, reader_->Prepare(
        "SELECT m.channel, COUNT(*) FROM "
        "(SELECT message_id FROM queue ORDER BY id LIMIT ?) r "
        "JOIN messages m ON m.id = r.message_id GROUP BY m.channel ORDER BY m.channel"));
    q->BindInt64(1, scan_limit);
    while (true) {
      ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      out.channels.emplace_back(std::string(q->ColumnText(0)), q->ColumnInt64(1));
    }
  }
  ISTHMUS_ASSIGN_OR_RETURN(auto more, reader_->Prepare(
      "SELECT 1 FROM queue ORDER BY id LIMIT 1 OFFSET ?"));
  more->BindInt64(1, scan_limit);
  ISTHMUS_ASSIGN_OR_RETURN(out.truncated, more->Step());
  return out;
}

absl::StatusOr<std::optional<int64_t>> Queue::NextDueMicros(std::string_view destination) const {
  std::lock_guard<std::mutex> lock(read_mu_);
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* q, reader_->PrepareCached(base::StrCat(
      "SELECT MIN(CASE WHEN lease_owner IS NOT NULL AND lease_until > next_attempt_at "
      "THEN lease_until ELSE next_attempt_at END) FROM queue WHERE id IN (", kHeads, ")")));
  q->BindText(1, destination);
  ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
  std::optional<int64_t> out;
  if (row && !q->ColumnIsNull(0)) out = q->ColumnInt64(0);
  q->Reset();
  return out;
}

}  // namespace isthmus::store
