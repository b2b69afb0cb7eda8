// Durable per-destination delivery queues (the outbox) with leases, retries and dead letters.
//
// A queue row says "deliver message M to destination D". The pipeline writes it with
// Queue::Enqueue inside the same writer op as the message's routing event, so a routed message
// and its queue rows commit together or not at all (outbox pattern). Dispatchers then Claim
// rows, deliver them, and settle each claim with Ack (delivered), Nack (retry later) or
// DeadLetter (give up; an operator may Reprocess it).
//
// Ordering. Every row has a partition key; "" for a destination that is not partitioned. Only
// the oldest row (lowest id) of a (destination, partition key) is ever claimable: items of one
// partition are delivered one at a time, in enqueue order, and a later item never overtakes an
// earlier one that is waiting for a retry. Different partitions are independent, so a
// partitioned destination can deliver them in parallel. A dead-lettered item leaves its
// partition (the next item proceeds); reprocessing re-enqueues it at the tail.
//
// Leases. Claim sets lease_owner/lease_until on the rows it returns. A row is claimable when
// next_attempt_at <= now and it has no lease or its lease expired: the rows of a process that
// crashed (or a node that died) become claimable to others once their leases run out, so
// delivery is at least once. Ack/Nack/DeadLetter/Release check that the caller still holds the
// lease (same owner) and fail with kFailedPrecondition ("lease lost") otherwise.
//
// Durability. Every write goes through the store Writer (store/writer.h): a method returns OK
// once its transaction committed with synchronous=FULL, i.e. it survives a process crash and a
// power loss. What a crash at any point leaves behind is stated per method.
//
// Events. Ack, Nack, DeadLetter and Reprocess write a message event (store/journal.h) in the same
// transaction: `delivered:<destination>`, `retry:<destination>`, `dead:<destination>`,
// `reprocess`. Reasons hold status codes and ids, never message content.
//
// Thread-safety: all methods are safe from any thread. Reads use one reader connection behind a
// mutex.
//
// Example:
//   // In the pipeline's writer op, with the message's routing event:
//   ISTHMUS_RETURN_IF_ERROR(Journal::WriteEvent(conn, id, now, "routed", "2 destinations"));
//   ISTHMUS_RETURN_IF_ERROR(Queue::Enqueue(conn, id, "lab-out", "", now));
//   // In a dispatcher:
//   ISTHMUS_ASSIGN_OR_RETURN(auto items, queue->Claim("lab-out", owner, 1, absl::Minutes(5)));
//   for (auto& item : items) {
//     absl::Status s = destination.Deliver(...);
//     if (s.ok()) queue->Ack(item); else queue->Nack(item, next_attempt_micros, reason);
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "db/db.h"
#include "store/writer.h"

namespace isthmus::store {

// A claimed queue row, with what a destination needs to deliver it.
struct QueueItem {
  int64_t id = 0;
  std::string destination;
  int64_t message_id = 0;
  std::string partition_key;
  int attempt = 0;  // failed attempts so far; this delivery is attempt + 1
  int64_t next_attempt_at_micros = 0;
  int64_t enqueued_at_micros = 0;
  std::string lease_owner;
  int64_t lease_until_micros = 0;
  std::string last_error;
  // From the message: for the destination's file names, headers and logs.
  std::string channel, control_id, message_type;
  // The enqueued payload, or the message's raw bytes when none was enqueued.
  std::string payload;
};

struct DeadLetterRecord {
  int64_t id = 0;
  std::string destination;
  int64_t message_id = 0;
  std::string partition_key;
  int attempts = 0;
  std::string reason;
  int64_t enqueued_at_micros = 0;
  int64_t dead_at_micros = 0;
  int64_t reprocessed_at_micros = 0;  // 0 while not reprocessed
};

struct DeadLetterQuery {
  std::string destination;          // "" = all destinations
  bool include_reprocessed = false;
  int64_t before_id = 0;            // paging: only ids below this (0 = from the newest)
  int limit = 100;                  // clamped to [1, 1000]
};

struct DestinationCounts {
  std::string destination;
  int64_t queued = 0;      // waiting (due or in backoff), not leased
  int64_t in_flight = 0;   // leased and the lease has not expired
  int64_t retrying = 0;    // of queued + in_flight: at least one failed attempt
  int64_t delivered = 0;   // acknowledged since the store was created
  int64_t dead = 0;        // dead letters not (yet) reprocessed
  int64_t oldest_enqueued_at_micros = 0;  // of the rows still queued; 0 when empty
};

// Queue rows (waiting, in backoff or being delivered) per channel of their messages.
struct QueuedByChannel {
  std::vector<std::pair<std::string, int64_t>> channels;  // by name; channels with rows only
  bool truncated = false;  // more rows than the scan limit: the counts cover the oldest ones
};

class Queue {
 public:
  // `writer` and `clock` must outlive the queue.
  static absl::StatusOr<std::unique_ptr<Queue>> Open(Writer& writer,
                                                     base::Clock& clock = base::RealClock::Get());

  // A piece of a writer op: adds a row at the tail of `destination`'s queue (partition
  // `partition_key`, "" when not partitioned), due now. `payload`, when given, is what the
  // destination delivers (e.g. the transformer's output); otherwise the message's raw bytes.
  // Writes no event: the caller records the routing decision in the same op.
  // Crash: the row exists iff the caller's transaction committed.
  static absl::Status Enqueue(db::Connection& conn, int64_t message_id,
                              std::string_view destination, std::string_view partition_key,
                              int64_t now_micros,
                              std::optional<std::string_view> payload = std::nullopt);

  // Leases claimable rows of `destination` to `owner` for `lease`: the heads of up to
  // `max_partitions` partitions, oldest head first (see Ordering), and with each head up to
  // `run_length` - 1 of the rows that follow it in its partition, as long as they are due and
  // unleased (a run: one dispatcher worker delivers it in order, so order is kept). The result
  // lists each run's rows consecutively, in id order. Empty when nothing is due.
  // Crash: a committed lease only delays the rows until lease_until; nothing is lost.
  absl::StatusOr<std::vector<QueueItem>> Claim(std::string_view destination,
                                               std::string_view owner, int max_partitions,
                                               absl::Duration lease, int run_length = 1);

  // Delivered: deletes the row, counts it and writes `delivered:<destination>`.
  // Crash: before the commit the row stays leased and is delivered again after the lease
  // expires (at least once); after it the row is gone for good.
  absl::Status Ack(const QueueItem& item);
  // Ack for many rows in one transaction (one commit for a whole run). Rows whose lease was lost
  // are left alone and reported: `lease_lost[i]` is true for them (the vector is resized to
  // items.size()). Any other failure fails the whole transaction (nothing acked).
  absl::Status AckAll(const std::vector<QueueItem>& items, std::vector<bool>* lease_lost);
  // Ack as a piece of a writer op: for a destination whose own writes go to this store (the
  // FHIR store), so its writes and the ack commit together (exactly once). Needs item.id,
  // destination, message_id, attempt and lease_owner. kFailedPrecondition ("lease lost") when
  // the caller no longer holds the lease: the caller's op must then fail, rolling back its
  // writes. Crash: the row is acked iff the caller's transaction committed.
  static absl::Status AckInOp(db::Connection& conn, const QueueItem& item, int64_t now_micros);

  // Failed, retry later: attempt + 1, due at `next_attempt_micros`, lease cleared, last_error =
  // `reason`, event `retry:<destination>`.
  // Crash: before the commit the row is retried when its lease expires, with the old attempt
  // count; after it, at next_attempt_micros.
  absl::Status Nack(const QueueItem& item, int64_t next_attempt_micros, std::string_view reason);

  // Gave up: moves the row to dead_letters (attempts = item.attempt + 1, the failed delivery
  // counted) with `reason` and writes `dead:<destination>`. The partition's next item proceeds.
  // Crash: before the commit as for Nack; after it the row is a dead letter (in one
  // transaction: never both or neither).
  absl::Status DeadLetter(const QueueItem& item, std::string_view reason);

  // Gives a claimed row back without a delivery attempt (a stopping dispatcher): lease cleared,
  // attempt and due time unchanged, no event.
  // Crash: the lease expires by itself; Release only makes the row claimable sooner.
  absl::Status Release(const QueueItem& item);
  // Release for many rows in one transaction; rows whose lease was lost are skipped.
  // Returns how many were released.
  absl::StatusOr<int> ReleaseAll(const std::vector<QueueItem>& items);
  // At process start, before any dispatcher claims: every lease still set was taken by a process
  // that is gone (one process serves a store), so its rows become claimable now instead of when
  // the lease expires (minutes: a kill -9 mid-delivery would otherwise stall that partition).
  // Attempt and due time are unchanged. Returns how many rows were released. Never call it while
  // dispatchers of this process run (a reload keeps their leases).
  absl::StatusOr<int> ReleaseLeasesOfEarlierProcesses();

  // Re-enqueues a dead letter at the tail of its destination's queue (its partition), attempt
  // 0, due now; marks it reprocessed and writes `reprocess` (reason: the destination).
  // kNotFound for an unknown id, kFailedPrecondition when already reprocessed.
  // Crash: either the dead letter is marked and the row queued, or neither.
  absl::Status Reprocess(int64_t dead_letter_id);
  // Reprocess for every unreprocessed dead letter of `destination`, oldest first, in one
  // transaction. Returns how many were re-enqueued.
  absl::StatusOr<int64_t> ReprocessAll(std::string_view destination);

  // Newest first.
  absl::StatusOr<std::vector<DeadLetterRecord>> ListDeadLetters(const DeadLetterQuery& q) const;
  // Every destination that has queued rows, dead letters or deliveries, by name.
  absl::StatusOr<std::vector<DestinationCounts>> Counts() const;
  absl::StatusOr<DestinationCounts> CountsFor(std::string_view destination) const;
  // Counts the queue rows per channel of their messages (dead letters are not queue rows), on
  // the reader connection. Reads at most `scan_limit` rows (the oldest rows first, in the
  // table's own id order — there is no index on message_id since migration 9 — each joined to
  // its message by primary key), so the cost stays bounded when a destination is down and its
  // queue grows.
  absl::StatusOr<QueuedByChannel> CountQueuedByChannel(int64_t scan_limit) const;
  // When the next row of `destination` may become claimable: the earliest, over the head of each
  // partition, of max(next_attempt_at, lease_until). nullopt when the queue is empty. A value
  // <= now means something is claimable now.
  absl::StatusOr<std::optional<int64_t>> NextDueMicros(std::string_view destination) const;

 private:
  Queue(Writer& writer, base::Clock& clock) : writer_(writer), clock_(clock) {}
  // Claim's read: the claimable runs of `destination` at `now`, on the reader connection.
  absl::StatusOr<std::vector<QueueItem>> ReadClaimable(std::string_view destination,
                                                       int max_partitions, int run_length,
                                                       int64_t now) const;

  Writer& writer_;
  base::Clock& clock_;
  mutable std::mutex read_mu_;
  std::unique_ptr<db::Connection> reader_;  // guarded by read_mu_
};

}  // namespace isthmus::store
