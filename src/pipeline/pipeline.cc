#include "pipeline/pipeline.h"

#include <algorithm>
#include <future>

#include "base/status_macros.h"
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
    std::string name = c.name;
    p->channels_.emplace(std::move(name), std::move(c));
  }
  p->notify_ = std::move(notify);
  int workers = std::max(1, opts.workers);
  p->transformers_.resize(static_cast<size_t>(workers));
  p->pool_ = std::make_unique<base::ThreadPool>(workers, "pipeline");
  return p;
}

Pipeline::~Pipeline() {
  pool_.reset();
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
                                    const Decision& d) {
  ISTHMUS_RETURN_IF_ERROR(store::Journal::WriteEvent(conn, id, now, d.result.state, d.result.reason));
  for (const auto& [dest, key] : d.rows) {
    std::optional<std::string_view> body;
    if (d.payload.has_value()) body = *d.payload;
    ISTHMUS_RETURN_IF_ERROR(store::Queue::Enqueue(conn, id, dest, key, now, body));
  }
  return absl::OkStatus();
}

std::optional<core::PreCommitOutcome> Pipeline::DecideBeforeCommit(const std::string& channel_name,
                                                                   hl7v2::Message& msg) {
  auto ch = channels_.find(channel_name);
  // A transformer may be slow (Lua, the FHIR converter): it runs on the workers, after the ACK.
  if (ch == channels_.end() || ch->second.transformer) return std::nullopt;
  auto d = std::make_shared<const Decision>(Decide(/*worker=*/-1, 0, ch->second, msg));
  const int64_t now = opts_.clock->NowMicros();
  core::PreCommitOutcome out;
  out.write = [d, now](db::Connection& conn, int64_t id) { return WriteOutcome(conn, id, now, *d); };
  out.committed = [this, d] {
    if (notify_) {
      for (const std::string& dest : d->result.destinations) notify_(dest);
    }
  };
  return out;
}

void Pipeline::Commit(int64_t id, const std::string& channel, uint64_t seq, Decision d, Done done) {
  const int64_t now = opts_.clock->NowMicros();
  auto decision = std::make_shared<Decision>(std::move(d));
  auto result = std::shared_ptr<PipelineResult>(decision, &decision->result);
  store::Writer::Op op = [id, now, decision](db::Connection& conn) -> absl::Status {
    return WriteOutcome(conn, id, now, *decision);
  };
  // Runs on the writer thread once the outcome committed (or failed): must stay quick.
  store::Writer::Done on_commit = [this, result, done = std::move(done)](absl::Status st) mutable {
    PipelineResult r = std::move(*result);
    if (!st.ok()) {
      // Not committed: the message stays `received` and Recover() picks it up after a restart.
      r.state = "error";
      r.reason = base::StrCat("could not record the outcome: ", std::string(st.message()));
      r.destinations.clear();
    } else if (notify_) {
      for (const std::string& dest : r.destinations) notify_(dest);
    }
    if (done) std::move(done)(std::move(r));
    {
      std::lock_guard<std::mutex> lock(seq_mu_);
      --in_flight_;
    }
    seq_cv_.notify_all();
  };
  // Outcomes of one channel reach the writer in arrival order, so its queue rows are in arrival
  // order too (the writer runs ops in submission order): processing is parallel, recording is
  // not. The worker does not wait for the commit: outcomes share group commits.
  {
    std::unique_lock<std::mutex> lock(seq_mu_);
    Sequence& s = sequences_[channel];
    seq_cv_.wait(lock, [&] { return s.next_submit == seq; });
    // The outcome's statements fail only on I/O errors or a full disk (destination names were
    // checked with the config), when the whole group fails too: no savepoint of its own.
    writer_.Submit(std::move(op), std::move(on_commit), store::Writer::Isolation::kGroup);
    ++s.next_submit;
  }
  seq_cv_.notify_all();
}

}  // namespace isthmus::pipeline
