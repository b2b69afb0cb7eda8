// The running engine: store, dispatchers, pipeline and MLLP listeners built from a configuration,
// and the hot reload that swaps them for a new configuration without dropping a message.
//
// Reload: a configuration that does not load is refused and the running one keeps serving. A
// valid one is applied as follows: a new pipeline (channels) takes over atomically, and the old
// one finishes the messages it was given; dispatchers are restarted (each finishes its current
// delivery; queued rows stay queued); listeners whose settings did not change keep running
// (their connections are not touched), changed or removed ones stop accepting and drain, new
// ones start. The store (data_dir) and the HTTP address cannot change without a restart.
//
// Thread-safety: Reload() and the accessors may be called from any thread; reloads are
// serialized. Never call Reload() on the event loop's threads (it waits for drains).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "admin/admin_api.h"
#include "config/config.h"
#include "fhir_search/indexer.h"
#include "fhir_search/search.h"
#include "net/event_loop.h"
#include "store/fhir_store.h"
#include "store/journal.h"
#include "store/queue.h"
#include "store/writer.h"
#include "pipeline/channel_counters.h"

namespace isthmus::listeners {
class MllpListener;
}
namespace isthmus::dispatch {
class Dispatcher;
}
namespace isthmus::core {
class Destination;
}

namespace isthmus::server {

class SwappableSink;

class Engine {
 public:
  // Opens the store under cfg.server.data_dir and starts everything on `loop`.
  static absl::StatusOr<std::unique_ptr<Engine>> Start(const config::Config& cfg, net::EventLoop& loop);
  // Stops listeners, drains the pipeline and dispatchers, closes the store.
  ~Engine();

  // Applies `cfg` as described above. The returned summary says what changed.
  absl::StatusOr<std::string> Reload(const config::Config& cfg);

  // Stops accepting on every listener (shutdown).
  void StopListeners();
  int64_t OpenConnections() const;
  // MLLP port of the first listener (0 without listeners).
  int FirstMllpPort() const;
  std::string ListenerSummary() const;
  size_t destination_count() const;

  // Fills the admin API's context (journal, queue, channel counters, notify, reprocess).
  void FillAdminContext(admin::AdminContext* ctx);
  // The built-in FHIR store (the /fhir API and fhir_local destinations use it).
  store::FhirStore& fhir_store() { return *fhir_store_; }
  // FHIR search over the store's index (the /fhir API uses it).
  const fhir_search::Searcher* fhir_search() const { return fhir_search_.get(); }

 private:
  struct Listener;
  struct DispatcherSet;
  explicit Engine(net::EventLoop& loop);
  absl::Status OpenStore(const config::Config& cfg);
  absl::StatusOr<std::shared_ptr<DispatcherSet>> StartDispatchers(const config::Config& cfg);
  absl::Status StartListener(const config::Listener& l);
  void Notify(const std::string& destination);

  net::EventLoop& loop_;
  // Outcome counters per channel since start (admin API); outlives pipelines and dispatchers.
  pipeline::ChannelCounterRegistry counters_;
  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<store::Journal> journal_;
  std::unique_ptr<store::Queue> queue_;
  std::unique_ptr<fhir_search::SearchIndexer> fhir_indexer_;  // outlives fhir_store_
  std::unique_ptr<store::FhirStore> fhir_store_;
  std::unique_ptr<fhir_search::Searcher> fhir_search_;
  std::unique_ptr<SwappableSink> sink_;

  std::mutex reload_mu_;  // serializes Reload
  mutable std::mutex mu_;
  std::shared_ptr<DispatcherSet> dispatchers_;        // guarded by mu_
  std::vector<std::unique_ptr<Listener>> listeners_;  // guarded by mu_
};

}  // namespace isthmus::server
