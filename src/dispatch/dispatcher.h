// A Dispatcher delivers one destination's queue (store/queue.h): it claims rows, calls
// Destination::Deliver and settles each claim: Ack when delivered, Nack with exponential backoff
// and jitter for a retryable failure (core::IsRetryable), DeadLetter for anything else or once
// the retry policy's max attempts / max age is exceeded (the reason says which).
//
// Runs: a claim takes, with each partition's head, up to `batch_size` consecutive rows of that
// partition (Queue::Claim's run); one worker delivers the run in order
// (Destination::DeliverBatch) and settles it with one commit for all the delivered rows. A
// failure stops the run: the failed row is retried or dead-lettered as below and the rows after
// it are released unattempted, so order is kept.
//
// Threads: one loop thread claims, `parallelism` worker threads deliver. A non-partitioned
// destination (partition key "") is strictly FIFO whatever the parallelism, because the queue
// only ever hands out the oldest row of a partition; with partition keys, up to `parallelism`
// partitions are delivered at once, each in order. Each destination has its own dispatcher, so a
// destination that is down only delays its own queue.
//
// Waking up: Notify() (new rows were enqueued) or when the queue's next row falls due (a retry
// or an expired lease, Queue::NextDueMicros), re-checked at most every `idle_poll` (rows
// enqueued by another process or node). No busy polling.
//
// Delivery is at least once: a process that dies between Deliver and the Ack commit leaves the
// row leased; it is delivered again once the lease expires. Destinations that can, should make
// deliveries idempotent (the message id is in every Delivery).
//
// Stop() drains: deliveries in progress finish and are settled; claimed rows not yet started
// are released; everything else stays queued. The destructor calls Stop().
//
// Thread-safety: Notify, Stop, stats from any thread. The destination must be thread-safe when
// parallelism > 1 (core/destination.h).
//
// Example:
//   DispatcherOptions o;
//   o.retry.max_attempts = 5;
//   ISTHMUS_ASSIGN_OR_RETURN(auto d, Dispatcher::Start(*queue, *file_destination, o));
//   ... after enqueueing rows for file_destination->name(): d->Notify();
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "core/destination.h"
#include "store/queue.h"

namespace isthmus::dispatch {

struct RetryPolicy {
  int max_attempts = 10;                         // deliveries in all; 0 = unlimited
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);
  double multiplier = 2.0;
  double jitter = 0.2;                           // ±20% of the delay, applied after the cap
  absl::Duration max_age = absl::Hours(24);      // since enqueue (or reprocess); 0 = unlimited

  // The delay after the `failed_attempts`-th failure (>= 1): initial * multiplier^(n-1), capped
  // at max_backoff, then scaled by 1 + jitter * (2u - 1) for `u` in [0, 1).
  absl::Duration Backoff(int failed_attempts, double u) const;
  // kInvalidArgument for a policy that makes no sense (negative durations, multiplier < 1, ...).
  absl::Status Validate() const;
};

// What happened to one claimed row; reported to DispatcherOptions::on_settled.
struct Settled {
  enum Outcome {
    kDelivered,    // acked
    kRetry,        // nacked; due at next_attempt_micros
    kDead,         // dead-lettered with `reason`
    kReleased,     // given back unattempted (Stop)
    kLeaseLost,    // delivered or failed, but another owner holds the row now
    kStoreError,   // the settle failed in the store; the row is retried when its lease expires
  };
  Outcome outcome;
  int64_t queue_id = 0;
  int64_t message_id = 0;
  int attempt = 0;              // the delivery attempt, 1 for the first (0 for kReleased)
  absl::Status delivery;        // what the destination returned
  int64_t next_attempt_micros = 0;
  std::string reason;
  std::string channel;          // the message's channel (per-channel counters)
};

struct DispatcherOptions {
  RetryPolicy retry;
  int parallelism = 1;                           // worker threads; > 1 for partitioned queues
  int batch_size = 100;                          // longest run of one partition per claim
  absl::Duration lease = absl::Minutes(5);       // longer than the slowest delivery
  absl::Duration idle_poll = absl::Seconds(30);  // longest sleep without a Notify
  std::string node_id = "local";                 // lease owner prefix (scale-out)
  base::Clock* clock = &base::RealClock::Get();  // backoff and age; must be the queue's clock
  uint64_t jitter_seed = 0;                      // 0: seeded from std::random_device
  // Called on a worker thread after each settle (logs, metrics, tests). Must be quick.
  std::function<void(const Settled&)> on_settled;
};

struct DispatcherStats {
  uint64_t delivered = 0;
  uint64_t retried = 0;
  uint64_t dead_lettered = 0;
  uint64_t released = 0;
  uint64_t lease_lost = 0;
  uint64_t store_errors = 0;   // Claim/settle failures (the store is down or full)
  uint64_t claims = 0;         // Claim calls
  uint64_t empty_claims = 0;   // Claim calls that found nothing due
};

class Dispatcher {
 public:
  // Starts the threads for `destination.name()`'s queue. `queue` and `destination` must outlive
  // the dispatcher. kInvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<Dispatcher>> Start(store::Queue& queue,
                                                           core::Destination& destination,
                                                           DispatcherOptions opts);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // New rows may be claimable: look now instead of at the next due time.
  void Notify();
  // Drains (see above) and joins the threads. Idempotent.
  void Stop();
  // Tests only: stops like a crashed process would: deliveries in progress are not settled and
  // claimed rows not released (they stay leased until the lease expires). Returns at once; the
  // destructor joins the threads.
  void AbandonForTest();

  const std::string& destination() const { return name_; }
  const std::string& lease_owner() const { return owner_; }
  DispatcherStats stats() const;
  // True once Stop() (or AbandonForTest) was called.
  bool stopping() const;

 private:
  Dispatcher(store::Queue& queue, core::Destination& destination, DispatcherOptions opts);
  void Loop();
  void Work();
  void DeliverRun(std::vector<store::QueueItem>& run);
  // Settles one failed delivery (retry or dead letter) and reports it.
  void SettleFailure(const store::QueueItem& item, int attempt, absl::Status delivery);
  // Calls on_settled with `s` for `item` (its channel filled in).
  void Report(const store::QueueItem& item, Settled s);
  double NextUniform();

  store::Queue& queue_;
  core::Destination& destination_;
  const DispatcherOptions opts_;
  const std::string name_;
  std::string owner_;

  mutable std::mutex mu_;
  std::condition_variable loop_cv_;   // the loop: notified, a worker freed, stopping
  std::condition_variable work_cv_;   // workers: claimed items, stopping
  std::deque<std::vector<store::QueueItem>> claimed_;  // guarded by mu_: runs not yet started
  int busy_ = 0;                          // guarded by mu_: deliveries in progress
  bool notified_ = false;                 // guarded by mu_
  bool stopping_ = false;                 // guarded by mu_
  std::atomic<bool> abandon_{false};
  std::mt19937_64 rng_;                   // guarded by mu_

  std::thread loop_;
  std::vector<std::thread> workers_;

  std::atomic<uint64_t> delivered_{0}, retried_{0}, dead_{0}, released_{0}, lease_lost_{0},
      store_errors_{0}, claims_{0}, empty_claims_{0};
};

}  // namespace isthmus::dispatch
