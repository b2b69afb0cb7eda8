#include "pipeline/pipeline.h"

#include <algorithm>
#include <cstdio>
#include <future>
#include <utility>

#include "base/status_macros.h"
#include "base/thread_name.h"
#include "base/str.h"

namespace isthmus::pipeline {
namespace {

PipelineResult Outcome(int64_t id, std::string state, std::string reason) {
  PipelineResult r;
  r.message_id = id;
  r.state = std::move(state);
  r.reason = std::move(reason);
  return r;
}

std::string IssueText(const hl7v2::Issue& i) {
  return i.location.segment.empty() ? i.message : base::StrCat(i.location.ToString(), ": ", i.message);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(
    store::Writer& writer, store::Journal& journal, std::vector<ChannelPlan> channels,
    std::vector<DestinationPlan> destinations, Notify notify, PipelineOptions opts) {
  std::unique_ptr<Pipeline> p(new Pipeline(writer, journal, opts));
  for (DestinationPlan& d : destinations) {
    std::string name = d.name;
    p->destinations_.emplace(std::move(name), std::move(d));
  }
  for (ChannelPlan& c : channels) {
    for (const RoutePlan& r : c.routes) {
      for (const std::string& to : r.to) {
        if (p->destinations_.find(to) == p->destinations_.end()) {
          return absl::InvalidArgumentError(
              base::StrCat("channel '", c.name, "' routes to unknown destination '", to, "'"));
        }
      }
    }
    if (opts.counters != nullptr) p->counters_.emplace(c.name, opts.counters->For(c.name));
    std::string name = c.name;
    p->channels_.emplace(std::move(name), std::move(c));
  }
  p->notify_ = std::move(notify);
  int workers = std::max(1, opts.workers);
  p->transformers_.resize(static_cast<size_t>(workers));
  p->pool_ = std::make_unique<base::ThreadPool>(workers, "pipeline");
  p->retry_thread_ = std::thread([raw = p.get()] {
    base::SetThreadName("pipeline-retry");
    raw->RetryLoop();
  });
  return p;
}

Pipeline::~Pipeline() {
  pool_.reset();
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    retry_stop_ = true;
  }
  retry_cv_.notify_all();
  if (retry_thread_.joinable()) retry_thread_.join();
  // Every outcome op is with the writer now (the workers are gone); after them, outcomes still
  // kept are given up: they stay `received`, and Recover() processes them at the next start.
  // (Only after a storage failure: otherwise nothing is kept and there is nothing to wait for.)
  if (parked_ever_.load()) {
    std::promise<void> given_up;
    auto give_up = [this, &given_up](absl::Status) {
      for (auto& [channel, s] : sequences_) {
        s.shut_down = true;
        while (!s.parked.empty()) {
          Parked p = std::move(s.parked.front());
          s.parked.pop_front();
          Finish(std::move(p), absl::UnavailableError("shut down before the store took the outcome"));
        }
      }
      given_up.set_value();
    };
    writer_.Submit([](db::Connection&) { return absl::OkStatus(); }, std::move(give_up));
    given_up.get_future().wait();
  }
  // Outcomes handed to the writer finish (and call back into this object) before it goes.
  std::unique_lock<std::mutex> lock(seq_mu_);
  seq_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

size_t Pipeline::Backlog() const {
  std::lock_guard<std::mutex> lock(seq_mu_);
  return in_flight_;
}

void Pipeline::Submit(int64_t message_id, std::string channel,
                      std::shared_ptr<const std::string> raw, Done done,
                      std::shared_ptr<hl7v2::Message> parsed) {
  // std::function needs a copyable task: keep the move-only callback behind a shared_ptr.
  auto callback = std::make_shared<Done>(std::move(done));
  // The sequence number fixes this message's place among its channel's outcomes; taking it and
  // queueing the task under one lock keeps the pool's FIFO in sequence order.
  std::lock_guard<std::mutex> lock(seq_mu_);
  ++in_flight_;
  uint64_t seq = sequences_[channel].next_assign++;
  pool_->Submit([this, message_id, seq, channel = std::move(channel), raw = std::move(raw),
                 parsed = std::move(parsed), callback](int worker) {
    Decision d = Process(worker, message_id, channel, *raw, parsed.get());
    d.counters = CountersFor(channel);
    Commit(message_id, channel, seq, std::move(d), std::move(*callback));
  });
}

absl::StatusOr<int64_t> Pipeline::Recover() {
  int64_t submitted = 0;
  store::MessageQuery q;
  q.state = "received";
  q.oldest_first = true;  // recovered messages keep their arrival order per destination
  q.limit = 500;
  while (true) {
    int64_t total = 0;
    ISTHMUS_ASSIGN_OR_RETURN(std::vector<store::MessageRecord> page, journal_.List(q, &total));
    if (page.empty()) return submitted;
    for (const store::MessageRecord& summary : page) {
      ISTHMUS_ASSIGN_OR_RETURN(store::MessageRecord m, journal_.Get(summary.id));
      Submit(m.id, m.channel, std::make_shared<const std::string>(std::move(m.raw)));
      ++submitted;
    }
    q.after_id = page.back().id;  // a message whose outcome failed to commit is not retried here
    // Let this page finish before reading the next, so memory stays bounded.
    std::vector<std::shared_ptr<std::promise<void>>> barriers;
    for (int i = 0; i < pool_->size(); ++i) {
      auto b = std::make_shared<std::promise<void>>();
      barriers.push_back(b);
      pool_->Submit([b](int) { b->set_value(); });
    }
    for (auto& b : barriers) b->get_future().wait();
  }
}

ChannelOutcomeCounters* Pipeline::CountersFor(std::string_view channel) const {
  auto it = counters_.find(channel);
  if (it != counters_.end()) return it->second;
  // A channel this pipeline does not know (a listener of another configuration): rare.
  return opts_.counters != nullptr ? opts_.counters->For(channel) : nullptr;
}

Pipeline::Decision Pipeline::Process(int worker, int64_t id, const std::string& channel_name,
                                     const std::string& raw, hl7v2::Message* parsed_by_listener) {
  auto ch = channels_.find(channel_name);
  if (ch == channels_.end()) {
    return Decision{Outcome(id, "error", base::StrCat("unknown channel '", channel_name, "'")), {},
                    std::nullopt};
  }
  const ChannelPlan& channel = ch->second;
  absl::StatusOr<hl7v2::Message> parsed = absl::UnknownError("not parsed");
  if (parsed_by_listener == nullptr) {
    parsed = hl7v2::Message::Parse(raw);
    if (!parsed.ok()) {
      return Decision{Outcome(id, "error", std::string(parsed.status().message())), {}, std::nullopt};
    }
  }
  hl7v2::Message& msg = parsed_by_listener != nullptr ? *parsed_by_listener : *parsed;
  return Decide(worker, id, channel, msg);
}

Pipeline::Decision Pipeline::Decide(int worker, int64_t id, const ChannelPlan& channel,
                                    hl7v2::Message& msg) {
  PipelineResult result = Outcome(id, "", "");
  if (channel.validator.has_value()) {
    result.issues = channel.validator->Validate(msg);
    if (channel.reject_invalid) {
      auto first_error = std::find_if(result.issues.begin(), result.issues.end(), [](const hl7v2::Issue& i) {
        return i.severity == hl7v2::Severity::kError;
      });
      if (first_error != result.issues.end()) {
        result.state = "invalid";
        result.reason = IssueText(*first_error);
        return Decision{std::move(result), {}, std::nullopt};
      }
    }
  }
  if (channel.filter && !channel.filter(msg)) {
    result.state = "filtered";
    result.reason = "the channel filter did not match";
    return Decision{std::move(result), {}, std::nullopt};
  }

  std::optional<std::string> payload;
  std::string note;
  if (channel.transformer) {
    auto& slot = transformers_[static_cast<size_t>(worker)][channel.name];
    if (!slot) {
      auto made = channel.transformer();
      if (!made.ok()) {
        result.state = "error";
        result.reason = base::StrCat("transformer: ", std::string(made.status().message()));
        return Decision{std::move(result), {}, std::nullopt};
      }
      slot = std::move(made).value();
    }
    auto outcome = slot->Run(msg);
    if (!outcome.ok()) {
      result.state = "error";
      result.reason = base::StrCat("transformer: ", std::string(outcome.status().message()));
      return Decision{std::move(result), {}, std::nullopt};
    }
    note = std::move(outcome->note);
    switch (outcome->kind) {
      case core::TransformOutcome::kFilter:
        result.state = "filtered";
        result.reason = outcome->reason.empty() ? "filtered by the transformer" : outcome->reason;
        return Decision{std::move(result), {}, std::nullopt};
      case core::TransformOutcome::kReplace:
        payload = std::move(outcome->payload);
        break;
      case core::TransformOutcome::kContinue:
        if (msg.modified()) payload = msg.Encode();
        break;
    }
  }

  // Routes: every matching route adds its destinations, each once, in configuration order.
  std::vector<std::pair<std::string, std::string>> rows;  // destination, partition key
  for (const RoutePlan& route : channel.routes) {
    if (route.when && !route.when(msg)) continue;
    for (const std::string& to : route.to) {
      bool seen = std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return r.first == to; });
      if (seen) continue;
      const DestinationPlan& dest = destinations_.find(to)->second;
      std::string key = dest.partition_by.has_value() ? msg.GetText(*dest.partition_by) : "";
      rows.emplace_back(to, std::move(key));
    }
  }
  if (channel.routes.empty()) {
    result.state = "processed";
    result.reason = "the channel has no destinations";
    return Decision{std::move(result), {}, std::nullopt};
  }
  if (rows.empty()) {
    result.state = "unrouted";
    result.reason = "no route matched";
    return Decision{std::move(result), {}, std::nullopt};
  }
  result.state = "queued";
  for (const auto& r : rows) result.destinations.push_back(r.first);
  std::string to;
  for (const auto& d : result.destinations) base::StrAppend(&to, to.empty() ? "" : ", ", d);
  result.reason = base::StrCat("to ", to);
  if (!note.empty()) base::StrAppend(&result.reason, "; ", note);
  return Decision{std::move(result), rows, payload};
}

absl::Status Pipeline::WriteOutcome(db::Connection& conn, int64_t id, int64_t now,
                                    const Decision& d, bool row_has_state) {
  ISTHMUS_RETURN_IF_ERROR(row_has_state
                              ? store::Journal::AddEvent(conn, id, now, d.result.state, d.result.reason)
                              : store::Journal::WriteEvent(conn, id, now, d.result.state, d.result.reason));
  for (const auto& [dest, key] : d.rows) {
    std::optional<std::string_view> body;
    if (d.payload.has_value()) body = *d.payload;
    ISTHMUS_RETURN_IF_ERROR(store::Queue::Enqueue(conn, id, dest, key, now, body));
  }
  return absl::OkStatus();
}

bool Pipeline::NeedsMessageBody(const std::string& channel_name) const {
  auto ch = channels_.find(channel_name);
  if (ch == channels_.end()) return true;
  const ChannelPlan& c = ch->second;
  if (c.validator.has_value() || c.filter || c.transformer) return true;
  for (const RoutePlan& route : c.routes) {
    if (route.when) return true;
    for (const std::string& to : route.to) {
      auto d = destinations_.find(to);
      if (d == destinations_.end() || d->second.partition_by.has_value()) return true;
    }
  }
  return false;  // routed by nothing but the channel: the header is enough
}

std::optional<core::PreCommitOutcome> Pipeline::DecideBeforeCommit(const std::string& channel_name,
                                                                   hl7v2::Message& msg) {
  auto ch = channels_.find(channel_name);
  // A transformer may be slow (Lua, the FHIR converter): it runs on the workers, after the ACK.
  if (ch == channels_.end() || ch->second.transformer) return std::nullopt;
  // Only the header was parsed but the channel reads more (it changed since the listener
  // asked): decide after the commit, from the raw bytes.
  if (msg.header_only() && NeedsMessageBody(channel_name)) return std::nullopt;
  Decision decided = Decide(/*worker=*/-1, 0, ch->second, msg);
  decided.counters = CountersFor(channel_name);
  auto d = std::make_shared<const Decision>(std::move(decided));
  const int64_t now = opts_.clock->NowMicros();
  core::PreCommitOutcome out;
  // The journal inserts the message's row with the outcome's state: only the event is written.
  out.write = [d, now](db::Connection& conn, int64_t id) {
    return WriteOutcome(conn, id, now, *d, /*row_has_state=*/true);
  };
  out.state = d->result.state;
  out.committed = [this, d] {
    if (d->counters != nullptr) d->counters->CountOutcome(d->result.state);
    if (notify_) {
      for (const std::string& dest : d->result.destinations) notify_(dest);
    }
  };
  return out;
}

void Pipeline::Commit(int64_t id, const std::string& channel, uint64_t seq, Decision d, Done done) {
  auto p = std::make_shared<Parked>(Parked{id, opts_.clock->NowMicros(), std::move(d), std::move(done)});
  // Outcomes of one channel reach the writer in arrival order, so its queue rows are in arrival
  // order too (the writer runs ops in submission order): processing is parallel, recording is
  // not. The worker does not wait for the commit: outcomes share group commits.
  std::unique_lock<std::mutex> lock(seq_mu_);
  auto node = sequences_.try_emplace(channel).first;  // a map node: stays where it is
  Sequence* s = &node->second;
  const std::string* name = &node->first;
  store::Writer::Op op = [s, p](db::Connection& conn) -> absl::Status {
    if (!s->parked.empty()) {  // an earlier outcome of the channel waits: keep the order
      p->deferred = true;
      return absl::OkStatus();
    }
    return WriteOutcome(conn, p->id, p->now, p->decision);
  };
  // Runs on the writer thread once the outcome committed (or failed): must stay quick.
  store::Writer::Done on_commit = [this, name, s, p](absl::Status st) {
    if (p->deferred || !st.ok()) {
      Park(*name, s, std::move(*p), st);
    } else {
      Finish(std::move(*p), st);
    }
  };
  seq_cv_.wait(lock, [&] { return s->next_submit == seq; });
  // The outcome's statements fail only on I/O errors or a full disk (destination names were
  // checked with the config), when the whole group fails too: no savepoint of its own.
  writer_.Submit(std::move(op), std::move(on_commit), store::Writer::Isolation::kGroup);
  ++s->next_submit;
  lock.unlock();
  seq_cv_.notify_all();
}

PipelineResult Pipeline::NotRecorded(PipelineResult r, std::string reason) {
  r.state = "error";
  r.reason = std::move(reason);
  r.destinations.clear();
  return r;
}

void Pipeline::Finish(Parked p, const absl::Status& committed) {
  // Counted before `done` runs, so whoever hears the outcome sees it counted.
  if (committed.ok() && p.decision.counters != nullptr) {
    p.decision.counters->CountOutcome(p.decision.result.state);
  }
  PipelineResult r = std::move(p.decision.result);
  if (!committed.ok()) {
    // Not committed: the message stays `received` and Recover() picks it up after a restart.
    r = NotRecorded(std::move(r), base::StrCat("could not record the outcome: ",
                                               std::string(committed.message())));
  } else if (notify_) {
    for (const std::string& dest : r.destinations) notify_(dest);
  }
  if (p.done) std::move(p.done)(std::move(r));
  {
    std::lock_guard<std::mutex> lock(seq_mu_);
    --in_flight_;
  }
  seq_cv_.notify_all();
}

void Pipeline::Park(const std::string& channel, Sequence* s, Parked p, const absl::Status& why) {
  if (s->shut_down) {
    Finish(std::move(p), why.ok() ? absl::UnavailableError("shut down") : why);
    return;
  }
  const bool first = s->parked.empty();
  parked_ever_.store(true);
  if (p.done) {
    // Whoever waits for the outcome (an application ACK) hears now, as for any failure, not
    // when the store is back: the outcome itself is still recorded later.
    std::move(p.done)(NotRecorded(
        p.decision.result,
        why.ok() ? "could not record the outcome yet: an earlier message of the channel waits for the store"
                 : base::StrCat("could not record the outcome: ", std::string(why.message()))));
    p.done = nullptr;
  }
  s->parked.push_back(std::move(p));
  if (first && !why.ok()) {
    // Ids and status only: no message content in logs.
    std::fprintf(stderr,
                 "isthmus serve: channel '%s': the outcome of message %lld could not be recorded "
                 "(%s); it and the channel's later outcomes are kept in order and written again "
                 "when the store takes them\n",
                 channel.c_str(), static_cast<long long>(s->parked.front().id),
                 std::string(why.message()).c_str());
  }
  if (!s->retry_pending) ScheduleRetry(s, std::chrono::milliseconds(100));
}

void Pipeline::ScheduleRetry(Sequence* s, std::chrono::milliseconds delay) {
  s->retry_pending = true;
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    retry_due_.emplace_back(std::chrono::steady_clock::now() + delay, s);
  }
  retry_cv_.notify_all();
}

void Pipeline::RetryLoop() {
  std::unique_lock<std::mutex> lock(retry_mu_);
  while (!retry_stop_) {
    if (retry_due_.empty()) {
      retry_cv_.wait(lock);
      continue;
    }
    auto next = std::min_element(retry_due_.begin(), retry_due_.end());
    if (std::chrono::steady_clock::now() < next->first) {
      retry_cv_.wait_until(lock, next->first);
      continue;
    }
    Sequence* s = next->second;
    retry_due_.erase(next);
    lock.unlock();
    SubmitRetry(s);
    lock.lock();
  }
}

void Pipeline::SubmitRetry(Sequence* s) {
  store::Writer::Op op = [s](db::Connection& conn) -> absl::Status {
    s->in_retry = s->parked.size();
    for (size_t i = 0; i < s->in_retry; ++i) {
      const Parked& p = s->parked[i];
      ISTHMUS_RETURN_IF_ERROR(WriteOutcome(conn, p.id, p.now, p.decision));
    }
    return absl::OkStatus();
  };
  store::Writer::Done done = [this, s](absl::Status st) {
    s->retry_pending = false;
    const size_t written = std::exchange(s->in_retry, 0);
    if (s->shut_down) return;  // the destructor finishes what is kept
    if (!st.ok()) {
      s->attempts = std::min(s->attempts + 1, 7);
      ScheduleRetry(s, std::chrono::milliseconds(100 << s->attempts));  // 0.2 s .. 12.8 s
      return;
    }
    s->attempts = 0;
    for (size_t i = 0; i < written && !s->parked.empty(); ++i) {
      Parked p = std::move(s->parked.front());
      s->parked.pop_front();
      Finish(std::move(p), absl::OkStatus());
    }
    // Outcomes deferred in the retry's own group joined after it: write them next.
    if (!s->parked.empty()) ScheduleRetry(s, std::chrono::milliseconds(0));
  };
  // Its own savepoint: a failing retry leaves the other ops of its group alone.
  writer_.Submit(std::move(op), std::move(done), store::Writer::Isolation::kSavepoint);
}

}  // namespace isthmus::pipeline
