#include "dispatch/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/status/status.h"
#include "base/str.h"
#include "base/thread_name.h"

namespace isthmus::dispatch {
namespace {

std::string StatusText(const absl::Status& s) {
  return base::StrCat(absl::StatusCodeToString(s.code()), ": ", std::string(s.message()));
}

std::string DurationText(absl::Duration d) { return absl::FormatDuration(d); }

// Pause after a failed Claim (the store is down or busy) before trying again.
constexpr absl::Duration kStoreErrorPause = absl::Seconds(1);
// Shortest sleep when the queue says something is due but Claim found nothing (a race with
// another process): avoids spinning.
constexpr absl::Duration kMinSleep = absl::Milliseconds(20);

}  // namespace

absl::Duration RetryPolicy::Backoff(int failed_attempts, double u) const {
  double seconds = absl::ToDoubleSeconds(initial_backoff) *
                   std::pow(multiplier, std::max(0, failed_attempts - 1));
  const double cap = absl::ToDoubleSeconds(max_backoff);
  if (!(seconds < cap)) seconds = cap;  // also catches inf/nan from a large exponent
  seconds *= 1.0 + jitter * (2.0 * u - 1.0);
  return absl::Seconds(std::max(0.0, seconds));
}

absl::Status RetryPolicy::Validate() const {
  if (max_attempts < 0) return absl::InvalidArgumentError("retry: max_attempts must be >= 0");
  if (initial_backoff < absl::ZeroDuration() || max_backoff < initial_backoff) {
    return absl::InvalidArgumentError("retry: need 0 <= initial_backoff <= max_backoff");
  }
  if (!(multiplier >= 1.0)) return absl::InvalidArgumentError("retry: multiplier must be >= 1");
  if (!(jitter >= 0.0 && jitter < 1.0)) {
    return absl::InvalidArgumentError("retry: jitter must be in [0, 1)");
  }
  if (max_age < absl::ZeroDuration()) return absl::InvalidArgumentError("retry: max_age < 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Dispatcher>> Dispatcher::Start(store::Queue& queue,
                                                              core::Destination& destination,
                                                              DispatcherOptions opts) {
  if (absl::Status s = opts.retry.Validate(); !s.ok()) return s;
  if (opts.parallelism < 1 || opts.parallelism > 256) {
    return absl::InvalidArgumentError("dispatcher: parallelism must be in [1, 256]");
  }
  if (opts.batch_size < 1 || opts.batch_size > 10000) {
    return absl::InvalidArgumentError("dispatcher: batch_size must be in [1, 10000]");
  }
  if (opts.lease <= absl::ZeroDuration() || opts.idle_poll <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("dispatcher: lease and idle_poll must be positive");
  }
  if (opts.clock == nullptr) return absl::InvalidArgumentError("dispatcher: no clock");
  if (destination.name().empty()) {
    return absl::InvalidArgumentError("dispatcher: the destination has no name");
  }
  std::unique_ptr<Dispatcher> d(new Dispatcher(queue, destination, std::move(opts)));
  for (int i = 0; i < d->opts_.parallelism; ++i) {
    d->workers_.emplace_back([raw = d.get(), i] {
      base::SetThreadName(base::StrCat("out-", raw->name_, "-", i));
      raw->Work();
    });
  }
  d->loop_ = std::thread([raw = d.get()] {
    base::SetThreadName("claim-" + raw->name_);
    raw->Loop();
  });
  return d;
}

Dispatcher::Dispatcher(store::Queue& queue, core::Destination& destination,
                       DispatcherOptions opts)
    : queue_(queue),
      destination_(destination),
      opts_(std::move(opts)),
      name_(destination.name()) {
  std::random_device rd;
  uint64_t seed = opts_.jitter_seed != 0 ? opts_.jitter_seed
                                         : (uint64_t{rd()} << 32) ^ uint64_t{rd()};
  rng_.seed(seed);
  // Unique per dispatcher instance, so a restarted process never mistakes an old lease for its
  // own.
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016llx",
                static_cast<unsigned long long>((uint64_t{rd()} << 32) ^ uint64_t{rd()}));
  owner_ = base::StrCat(opts_.node_id, "/", name_, "/", std::string_view(tag, 16));
}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
  }
  loop_cv_.notify_one();
}

void Dispatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  loop_cv_.notify_all();
  work_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

void Dispatcher::AbandonForTest() {
  abandon_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  loop_cv_.notify_all();
  work_cv_.notify_all();
}

bool Dispatcher::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

DispatcherStats Dispatcher::stats() const {
  DispatcherStats s;
  s.delivered = delivered_.load();
  s.retried = retried_.load();
  s.dead_lettered = dead_.load();
  s.released = released_.load();
  s.lease_lost = lease_lost_.load();
  s.store_errors = store_errors_.load();
  s.claims = claims_.load();
  s.empty_claims = empty_claims_.load();
  return s;
}

void Dispatcher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    const int free = opts_.parallelism - busy_ - static_cast<int>(claimed_.size());
    if (free <= 0) {
      // Every worker is busy: a finishing worker (or Stop) wakes us.
      loop_cv_.wait(lock, [&] {
        return stopping_ ||
               opts_.parallelism - busy_ - static_cast<int>(claimed_.size()) > 0;
      });
      continue;
    }
    notified_ = false;  // a Notify from here on is seen by the wait below
    lock.unlock();
    claims_++;
    absl::StatusOr<std::vector<store::QueueItem>> items =
        queue_.Claim(name_, owner_, free, opts_.lease, opts_.batch_size);
    absl::Duration sleep = opts_.idle_poll;
    if (!items.ok()) {
      store_errors_++;
      sleep = kStoreErrorPause;
    } else if (!items->empty()) {
      lock.lock();
      if (stopping_) {
        lock.unlock();
        if (absl::StatusOr<int> n = queue_.ReleaseAll(*items); n.ok()) released_ += *n;
        lock.lock();
        break;
      }
      // Split into runs: the rows of one partition are consecutive.
      std::vector<store::QueueItem> run;
      for (auto& item : *items) {
        if (!run.empty() && run.front().partition_key != item.partition_key) {
          claimed_.push_back(std::move(run));
          run.clear();
        }
        run.push_back(std::move(item));
      }
      if (!run.empty()) claimed_.push_back(std::move(run));
      work_cv_.notify_all();
      continue;
    } else {
      empty_claims_++;
      absl::StatusOr<std::optional<int64_t>> due = queue_.NextDueMicros(name_);
      if (!due.ok()) {
        store_errors_++;
        sleep = kStoreErrorPause;
      } else if (due->has_value()) {
        absl::Duration until = absl::Microseconds(**due - opts_.clock->NowMicros());
        sleep = std::clamp(until, kMinSleep, opts_.idle_poll);
      }
    }
    lock.lock();
    loop_cv_.wait_for(lock, absl::ToChronoMicroseconds(sleep),
                      [&] { return stopping_ || notified_; });
  }
}

void Dispatcher::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !claimed_.empty(); });
    if (claimed_.empty()) return;  // stopping and nothing claimed
    std::vector<store::QueueItem> run = std::move(claimed_.front());
    claimed_.pop_front();
    if (stopping_) {
      // Drain: leave unstarted rows for the next run (or another node).
      lock.unlock();
      if (abandon_) {
        // A crash releases nothing.
      } else if (absl::StatusOr<int> n = queue_.ReleaseAll(run); n.ok()) {
        released_ += *n;
        for (const auto& item : run) {
          Report(item, Settled{Settled::kReleased, item.id, item.message_id, 0, {}, 0, {}});
        }
      }
      lock.lock();
      continue;
    }
    busy_++;
    lock.unlock();
    DeliverRun(run);
    lock.lock();
    busy_--;
    notified_ = true;  // the partition's next row may be claimable now
    loop_cv_.notify_one();
  }
}

double Dispatcher::NextUniform() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

void Dispatcher::Report(const store::QueueItem& item, Settled s) {
  if (!opts_.on_settled) return;
  s.channel = item.channel;
  opts_.on_settled(s);
}

void Dispatcher::DeliverRun(std::vector<store::QueueItem>& run) {
  std::vector<core::Delivery> deliveries(run.size());
  for (size_t i = 0; i < run.size(); ++i) {
    const store::QueueItem& item = run[i];
    core::Delivery& d = deliveries[i];
    d.queue_id = item.id;
    d.message_id = item.message_id;
    d.attempt = item.attempt + 1;
    d.channel = item.channel;
    d.control_id = item.control_id;
    d.message_type = item.message_type;
    d.payload = item.payload;
    d.lease_owner = item.lease_owner;
  }
  std::vector<absl::Status> results;
  if (destination_.SupportsBatch()) {
    results = destination_.DeliverBatch(deliveries);
  } else {
    // One at a time; a stopping dispatcher finishes the current delivery and gives back the
    // rest of the run.
    for (size_t i = 0; i < deliveries.size(); ++i) {
      if (i > 0 && stopping()) break;
      results.push_back(destination_.Deliver(deliveries[i]));
      if (!results.back().ok()) break;
    }
  }
  if (abandon_) return;  // simulated crash: no settle, the leases stay
  if (results.empty() || results.size() > run.size()) {
    // A destination that broke the DeliverBatch contract: treat the run as not attempted.
    results.assign(1, absl::InternalError(base::StrCat(
        "destination ", name_, " returned ", results.size(), " results for a run of ",
        run.size())));
  }
  size_t delivered = results.size();
  if (!results.back().ok()) delivered--;

  // A destination that settles in the store acked its delivered rows in its own transaction.
  if (delivered > 0 && destination_.SettlesInStore()) {
    for (size_t i = 0; i < delivered; ++i) {
      delivered_++;
      Report(run[i], Settled{Settled::kDelivered, run[i].id, run[i].message_id, run[i].attempt + 1,
                     absl::OkStatus(), 0, {}});
    }
  }
  // One commit for every delivered row of the run.
  if (delivered > 0 && !destination_.SettlesInStore()) {
    std::vector<store::QueueItem> done(std::make_move_iterator(run.begin()),
                                       std::make_move_iterator(run.begin() + delivered));
    std::vector<bool> lost;
    absl::Status settle = queue_.AckAll(done, &lost);
    for (size_t i = 0; i < done.size(); ++i) {
      Settled out{Settled::kDelivered, done[i].id, done[i].message_id, done[i].attempt + 1,
                  absl::OkStatus(), 0, {}};
      if (!settle.ok()) {
        store_errors_++;
        out.outcome = Settled::kStoreError;
        out.reason = StatusText(settle);
      } else if (lost[i]) {
        lease_lost_++;
        out.outcome = Settled::kLeaseLost;
        out.reason = base::StrCat("queue row ", done[i].id, " of ", name_, ": lease lost");
      } else {
        delivered_++;
      }
      Report(done[i], std::move(out));
    }
  }
  // The rows after a failure (or a stop) were not attempted: give them back; they follow the
  // failed one. Nothing happened to them, so nothing is reported unless the dispatcher stops.
  if (results.size() < run.size()) {
    std::vector<store::QueueItem> rest(run.begin() + results.size(), run.end());
    const bool stop = stopping();
    if (absl::StatusOr<int> n = queue_.ReleaseAll(rest); !n.ok()) {
      store_errors_++;  // their leases expire by themselves
    } else if (stop) {
      released_ += *n;
      for (const auto& item : rest) {
        Report(item, Settled{Settled::kReleased, item.id, item.message_id, 0, {}, 0, {}});
      }
    }
  }
  // Last, so the run is fully settled when the failure is reported. Until this commit the failed
  // row keeps its lease, so the rows given back above cannot overtake it.
  if (delivered < results.size()) {
    SettleFailure(run[delivered], run[delivered].attempt + 1, results.back());
  }
}

void Dispatcher::SettleFailure(const store::QueueItem& item, int attempt,
                               absl::Status delivery) {
  Settled out{Settled::kRetry, item.id, item.message_id, attempt, delivery, 0, {}};
  const absl::Time now = opts_.clock->Now();
  const RetryPolicy& p = opts_.retry;
  const std::string text = StatusText(delivery);
  const absl::Duration age = now - absl::FromUnixMicros(item.enqueued_at_micros);
  if (!core::IsRetryable(delivery)) {
    out.outcome = Settled::kDead;
    out.reason = text;
  } else if (p.max_attempts > 0 && attempt >= p.max_attempts) {
    out.outcome = Settled::kDead;
    out.reason = base::StrCat("gave up after ", attempt, " attempts (max_attempts): ", text);
  } else if (p.max_age > absl::ZeroDuration() && age >= p.max_age) {
    out.outcome = Settled::kDead;
    out.reason = base::StrCat("gave up after ", attempt, " attempts: queued for ",
                              DurationText(age), " (max_age ", DurationText(p.max_age),
                              "): ", text);
  } else {
    out.reason = text;
    out.next_attempt_micros = absl::ToUnixMicros(now + p.Backoff(attempt, NextUniform()));
  }
  absl::Status settle = out.outcome == Settled::kDead
                            ? queue_.DeadLetter(item, out.reason)
                            : queue_.Nack(item, out.next_attempt_micros, out.reason);
  if (settle.ok()) {
    (out.outcome == Settled::kDead ? dead_ : retried_)++;
  } else {
    const bool lost = settle.code() == absl::StatusCode::kFailedPrecondition;
    (lost ? lease_lost_ : store_errors_)++;
    out.outcome = lost ? Settled::kLeaseLost : Settled::kStoreError;
    out.reason = StatusText(settle);
  }
  Report(item, std::move(out));
}

}  // namespace isthmus::dispatch
