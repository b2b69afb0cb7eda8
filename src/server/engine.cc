#include "server/engine.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "base/status_macros.h"
#include "base/str.h"
#include "core/destination.h"
#include "core/message_sink.h"
#include "dispatch/dispatcher.h"
#include "listeners/mllp/mllp_listener.h"
#include "pipeline/pipeline.h"
#include "server/wiring.h"

namespace isthmus::server {
namespace {

listeners::AckMode ToAckMode(config::AckMode m) {
  switch (m) {
    case config::AckMode::kAfterPersist: return listeners::AckMode::kAfterPersist;
    case config::AckMode::kAfterProcessing: return listeners::AckMode::kAfterProcessing;
    case config::AckMode::kEnhanced: return listeners::AckMode::kEnhanced;
    case config::AckMode::kNone: return listeners::AckMode::kNone;
  }
  return listeners::AckMode::kAfterPersist;
}

// Everything that makes a listener different: equal fingerprints mean it can keep running.
std::string Fingerprint(const config::Listener& l) {
  std::string f = base::StrCat(l.name, "|", l.type, "|", l.bind.ToString(), "|", l.channel, "|",
                               config::AckModeName(l.ack_mode), "|", l.max_frame_bytes, "|",
                               absl::ToInt64Milliseconds(l.idle_timeout), "|",
                               absl::ToInt64Milliseconds(l.frame_timeout), "|", l.max_connections);
  for (const config::Cidr& c : l.allow) base::StrAppend(&f, "|allow=", c.text);
  if (l.tls.has_value()) {
    base::StrAppend(&f, "|tls=", l.tls->cert, ",", l.tls->key, ",", l.tls->ca, ",",
                    l.tls->require_client_cert ? "mtls" : "tls");
  }
  return f;
}

void WaitForDrain(const listeners::MllpListener& l, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (l.stats().connections_open.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

// Forwards to the current pipeline; a reload swaps it atomically. The old pipeline lives until
// the last Accept that reached it returned, then drains in its destructor.
class SwappableSink final : public core::MessageSink {
 public:
  void Accept(int64_t id, std::string channel, std::shared_ptr<const std::string> raw,
              core::ProcessingDone done) override {
    std::shared_ptr<pipeline::Pipeline> p = current();
    p->Accept(id, std::move(channel), std::move(raw), std::move(done));
  }
  std::optional<core::PreCommitOutcome> DecideBeforeCommit(const std::string& channel,
                                                           hl7v2::Message& msg) override {
    std::shared_ptr<pipeline::Pipeline> p = current();
    std::optional<core::PreCommitOutcome> out = p->DecideBeforeCommit(channel, msg);
    // The pipeline (its notify) must outlive the commit even if a reload swaps it meanwhile.
    if (out) out->committed = [p, committed = std::move(out->committed)] { committed(); };
    return out;
  }
  void AcceptParsed(int64_t id, std::string channel, std::shared_ptr<const std::string> raw,
                    std::shared_ptr<hl7v2::Message> parsed, core::ProcessingDone done) override {
    std::shared_ptr<pipeline::Pipeline> p = current();
    p->AcceptParsed(id, std::move(channel), std::move(raw), std::move(parsed), std::move(done));
  }
  bool NeedsMessageBody(const std::string& channel) const override {
    std::shared_ptr<pipeline::Pipeline> p = current();
    return p == nullptr || p->NeedsMessageBody(channel);
  }
  size_t Backlog() const override {
    std::shared_ptr<pipeline::Pipeline> p = current();
    return p ? p->Backlog() : 0;
  }
  std::shared_ptr<pipeline::Pipeline> current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pipeline_;
  }
  std::shared_ptr<pipeline::Pipeline> Swap(std::shared_ptr<pipeline::Pipeline> next) {
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(pipeline_, next);
    return next;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<pipeline::Pipeline> pipeline_;  // guarded by mu_
};

struct Engine::DispatcherSet {
  std::vector<std::unique_ptr<core::Destination>> destinations;
  std::map<std::string, std::unique_ptr<dispatch::Dispatcher>> dispatchers;
  ~DispatcherSet() {
    for (auto& [name, d] : dispatchers) d->Stop();  // before the destinations they use
    dispatchers.clear();
  }
};

struct Engine::Listener {
  std::string fingerprint;
  std::unique_ptr<listeners::MllpListener> mllp;
};

Engine::Engine(net::EventLoop& loop) : loop_(loop) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Start(const config::Config& cfg, net::EventLoop& loop) {
  std::unique_ptr<Engine> e(new Engine(loop));
  ISTHMUS_RETURN_IF_ERROR(e->OpenStore(cfg));
  ISTHMUS_ASSIGN_OR_RETURN(e->dispatchers_, e->StartDispatchers(cfg));
  ISTHMUS_ASSIGN_OR_RETURN(std::vector<pipeline::ChannelPlan> plans, BuildChannelPlans(cfg));
  pipeline::PipelineOptions po;
  po.workers = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  po.counters = &e->counters_;
  Engine* raw = e.get();
  ISTHMUS_ASSIGN_OR_RETURN(
      std::unique_ptr<pipeline::Pipeline> p,
      pipeline::Pipeline::Create(*e->writer_, *e->journal_, std::move(plans), BuildDestinationPlans(cfg),
                                 [raw](const std::string& d) { raw->Notify(d); }, po));
  e->sink_ = std::make_unique<SwappableSink>();
  e->sink_->Swap(std::shared_ptr<pipeline::Pipeline>(std::move(p)));
  ISTHMUS_ASSIGN_OR_RETURN(int64_t recovered, e->sink_->current()->Recover());
  if (recovered > 0) {
    std::fprintf(stderr, "isthmus serve: processing %lld message(s) received before a restart\n",
                 static_cast<long long>(recovered));
  }
  for (const config::Listener& l : cfg.listeners) ISTHMUS_RETURN_IF_ERROR(e->StartListener(l));
  return e;
}

Engine::~Engine() {
  StopListeners();
  {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_.clear();
  }
  if (sink_) sink_->Swap(nullptr);  // the pipeline finishes the messages it was given
  {
    std::lock_guard<std::mutex> lock(mu_);
    dispatchers_.reset();
  }
  queue_.reset();
  fhir_search_.reset();
  fhir_store_.reset();
  journal_.reset();
  writer_.reset();  // commits whatever was submitted
}

absl::Status Engine::OpenStore(const config::Config& cfg) {
  std::error_code ec;
  std::filesystem::create_directories(cfg.server.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        base::StrCat("cannot create data directory ", cfg.server.data_dir, ": ", ec.message()));
  }
  ISTHMUS_ASSIGN_OR_RETURN(
      writer_, store::Writer::Open((std::filesystem::path(cfg.server.data_dir) / "isthmus.db").string()));
  store::JournalOptions journal_options;
  journal_options.dedupe_window = cfg.server.dedupe_window;
  ISTHMUS_ASSIGN_OR_RETURN(journal_, store::Journal::Open(*writer_, journal_options));
  ISTHMUS_ASSIGN_OR_RETURN(queue_, store::Queue::Open(*writer_));
  // Deliveries a killed process had in flight are resumed now, not when their leases expire.
  ISTHMUS_ASSIGN_OR_RETURN(int released, queue_->ReleaseLeasesOfEarlierProcesses());
  if (released > 0) {
    std::fprintf(stderr, "isthmus serve: %d delivery lease(s) of a previous run released\n",
                 released);
  }
  ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<const fhir_search::Registry> registry,
                           fhir_search::Registry::Build());
  fhir_indexer_ = std::make_unique<fhir_search::SearchIndexer>(registry);
  ISTHMUS_RETURN_IF_ERROR(fhir_indexer_->Backfill(*writer_));  // resources stored before search
  store::FhirStoreOptions fo;
  fo.indexer = fhir_indexer_.get();
  ISTHMUS_ASSIGN_OR_RETURN(fhir_store_, store::FhirStore::Open(*writer_, fo));
  fhir_search_ = std::make_unique<fhir_search::Searcher>(*writer_, registry);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Engine::DispatcherSet>> Engine::StartDispatchers(const config::Config& cfg) {
  auto set = std::make_shared<DispatcherSet>();
  for (const config::Destination& d : cfg.destinations) {
    ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<core::Destination> dest,
                             BuildDestination(d, StoreParts{writer_.get(), fhir_store_.get()}));
    dispatch::DispatcherOptions opts = BuildDispatcherOptions(d);
    opts.on_settled = [this](const dispatch::Settled& s) {
      if (s.outcome == dispatch::Settled::kDelivered) {
        counters_.For(s.channel)->delivered.fetch_add(1, std::memory_order_relaxed);
      } else if (s.outcome == dispatch::Settled::kDead) {
        counters_.For(s.channel)->dead.fetch_add(1, std::memory_order_relaxed);
      }
    };
    auto disp = dispatch::Dispatcher::Start(*queue_, *dest, std::move(opts));
    if (!disp.ok()) {
      return absl::InvalidArgumentError(
          base::StrCat("destination '", d.name, "': ", std::string(disp.status().message())));
    }
    set->destinations.push_back(std::move(dest));
    set->dispatchers.emplace(d.name, std::move(disp).value());
  }
  return set;
}

absl::Status Engine::StartListener(const config::Listener& l) {
  listeners::MllpListenerOptions lo;
  lo.channel = l.channel;
  lo.host = l.bind.host;
  lo.port = l.bind.port;
  lo.max_frame_bytes = l.max_frame_bytes;
  lo.idle_timeout = l.idle_timeout;
  lo.frame_timeout = l.frame_timeout;
  lo.max_connections = l.max_connections;
  lo.ack_mode = ToAckMode(l.ack_mode);
  lo.sink = sink_.get();
  lo.on_rejected = [counters = counters_.For(l.channel)] { counters->CountOutcome("rejected"); };
  for (const config::Cidr& c : l.allow) lo.allow.push_back(c.text);
  if (l.tls.has_value()) {
    net::TlsServerOptions t;
    t.cert_file = l.tls->cert;
    t.key_file = l.tls->key;
    t.ca_file = l.tls->ca;
    t.require_client_cert = l.tls->require_client_cert;
    t.min_version = l.tls->tls13_only ? net::TlsVersion::kTls13 : net::TlsVersion::kTls12;
    lo.tls = t;
  }
  // A listener that was just stopped on the same address may hold the port a moment longer.
  absl::StatusOr<std::unique_ptr<listeners::MllpListener>> started;
  for (int attempt = 0; attempt < 50; ++attempt) {
    started = listeners::MllpListener::Start(loop_, lo, *journal_);
    if (started.ok() || started.status().code() != absl::StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  if (!started.ok()) {
    return absl::Status(started.status().code(),
                        base::StrCat("listener '", l.name, "': ", std::string(started.status().message())));
  }
  auto entry = std::make_unique<Listener>();
  entry->fingerprint = Fingerprint(l);
  entry->mllp = std::move(started).value();
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(std::move(entry));
  return absl::OkStatus();
}

void Engine::Notify(const std::string& destination) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!dispatchers_) return;
  auto it = dispatchers_->dispatchers.find(destination);
  if (it != dispatchers_->dispatchers.end()) it->second->Notify();
}

absl::StatusOr<std::string> Engine::Reload(const config::Config& cfg) {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  // Everything that can fail is built before anything running is touched.
  ISTHMUS_ASSIGN_OR_RETURN(std::vector<pipeline::ChannelPlan> plans, BuildChannelPlans(cfg));
  pipeline::PipelineOptions po;
  po.workers = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  po.counters = &counters_;
  ISTHMUS_ASSIGN_OR_RETURN(
      std::unique_ptr<pipeline::Pipeline> next,
      pipeline::Pipeline::Create(*writer_, *journal_, std::move(plans), BuildDestinationPlans(cfg),
                                 [this](const std::string& d) { Notify(d); }, po));
  ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<DispatcherSet> dispatchers, StartDispatchers(cfg));

  // Dispatchers: the new set takes over; the old one finishes its deliveries in progress.
  std::shared_ptr<DispatcherSet> old_dispatchers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old_dispatchers = std::move(dispatchers_);
    dispatchers_ = std::move(dispatchers);
  }
  old_dispatchers.reset();
  // Pipeline: swapped atomically; the old one drains as its last reference goes.
  std::shared_ptr<pipeline::Pipeline> old_pipeline = sink_->Swap(std::shared_ptr<pipeline::Pipeline>(std::move(next)));
  old_pipeline.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, d] : dispatchers_->dispatchers) d->Notify();
  }

  // Listeners: keep the unchanged, drain the changed and removed, start the new.
  std::map<std::string, const config::Listener*> wanted;
  for (const config::Listener& l : cfg.listeners) wanted[Fingerprint(l)] = &l;
  std::vector<std::unique_ptr<Listener>> stopping;
  int kept = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::unique_ptr<Listener>> keep;
    for (auto& l : listeners_) {
      auto it = wanted.find(l->fingerprint);
      if (it != wanted.end()) {
        wanted.erase(it);
        keep.push_back(std::move(l));
        ++kept;
      } else {
        stopping.push_back(std::move(l));
      }
    }
    listeners_ = std::move(keep);
  }
  for (auto& l : stopping) {
    l->mllp->Stop();
    WaitForDrain(*l->mllp, std::chrono::seconds(10));
  }
  stopping.clear();
  int started = 0;
  for (const config::Listener& l : cfg.listeners) {
    if (wanted.find(Fingerprint(l)) == wanted.end()) continue;
    ISTHMUS_RETURN_IF_ERROR(StartListener(l));
    ++started;
  }
  return base::StrCat(cfg.channels.size(), " channel(s) and ", cfg.destinations.size(),
                      " destination(s) applied; listeners: ", kept, " kept, ", started,
                      " started");
}

void Engine::StopListeners() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& l : listeners_) l->mllp->Stop();
}

int64_t Engine::OpenConnections() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t open = 0;
  for (const auto& l : listeners_) open += l->mllp->stats().connections_open.load();
  return open;
}

int Engine::FirstMllpPort() const {
  std::lock_guard<std::mutex> lock(mu_);
  return listeners_.empty() ? 0 : listeners_[0]->mllp->port();
}

std::string Engine::ListenerSummary() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& l : listeners_) {
    base::StrAppend(&out, out.empty() ? "" : ", ", l->mllp->options().host, ":", l->mllp->port(),
                    " -> ", l->mllp->options().channel);
  }
  return out;
}

size_t Engine::destination_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dispatchers_ ? dispatchers_->dispatchers.size() : 0;
}

void Engine::FillAdminContext(admin::AdminContext* ctx) {
  ctx->journal = journal_.get();
  ctx->queue = queue_.get();
  ctx->notify = [this](const std::string& d) { Notify(d); };
  ctx->channels = [this]() -> absl::StatusOr<std::vector<admin::ChannelCounters>> {
    // A gauge from the store (reader connection), bounded: see Queue::CountQueuedByChannel.
    ISTHMUS_ASSIGN_OR_RETURN(store::QueuedByChannel queued,
                             queue_->CountQueuedByChannel(admin::kQueuedScanLimit));
    std::map<std::string, admin::ChannelCounters> by_channel;
    std::lock_guard<std::mutex> lock(mu_);  // listeners_
    for (const auto& l : listeners_) {
      const listeners::MllpListenerStats& s = l->mllp->stats();
      admin::ChannelCounters& c = by_channel[l->mllp->options().channel];
      c.name = l->mllp->options().channel;
      c.received += s.messages_received;
      c.acked += s.messages_acked;
      c.nacked += s.messages_nacked;
      c.duplicates += s.duplicates;
      c.connections_open += s.connections_open;
    }
    for (const pipeline::ChannelOutcomeSnapshot& o : counters_.Snapshot()) {
      admin::ChannelCounters& c = by_channel[o.name];
      c.name = o.name;
      c.filtered = o.filtered;
      c.errored = o.errored;
      c.delivered = o.delivered;
      c.dead = o.dead;
    }
    for (const auto& [name, n] : queued.channels) {
      admin::ChannelCounters& c = by_channel[name];
      c.name = name;
      c.queued = n;
    }
    for (auto& [name, c] : by_channel) c.queued_truncated = queued.truncated;
    std::vector<admin::ChannelCounters> out;
    for (auto& [name, c] : by_channel) out.push_back(c);
    return out;
  };
  ctx->ready = [] { return true; };
  ctx->reprocess = [this](int64_t id) -> absl::Status {
    ISTHMUS_ASSIGN_OR_RETURN(store::MessageRecord m, journal_->Get(id));
    if (m.state == "rejected") {
      return absl::FailedPreconditionError("a rejected message cannot be parsed; fix and resend it");
    }
    ISTHMUS_RETURN_IF_ERROR(journal_->RecordEvent(id, "reprocess", "requested through the admin API"));
    sink_->current()->Submit(id, m.channel, std::make_shared<const std::string>(std::move(m.raw)));
    return absl::OkStatus();
  };
}

}  // namespace isthmus::server
