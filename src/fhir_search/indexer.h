// The search indexer: store::FhirIndexer over the registry (registry.h). On every version the
// store writes, in the same transaction, it replaces the resource's rows in the index tables
// (schema migration 5) with those extracted from the new body (extract.h); a deletion drops
// them. So the index always describes the current version of each resource, and a crash leaves
// index and resources consistent (both or neither).
//
// Thread-safety: OnWrite runs on the store's writer thread only; the indexer holds no mutable
// state besides its counters (atomics).
#pragma once

#include <atomic>
#include <memory>

#include "fhir_search/registry.h"
#include "store/fhir_store.h"
#include "store/writer.h"

namespace isthmus::fhir_search {

class SearchIndexer : public store::FhirIndexer {
 public:
  explicit SearchIndexer(std::shared_ptr<const Registry> registry)
      : registry_(std::move(registry)) {}

  absl::Status OnWrite(db::Connection& conn, const store::FhirVersion& v) override;

  // Indexes the resources listed in fhir_idx_pending (stored before migration 5), in writer
  // ops of `batch` resources each, and empties the list. Run once at startup, before serving.
  absl::Status Backfill(store::Writer& writer, int batch = 500);

  // Expressions that failed to evaluate on a written resource (the resource was stored; those
  // parameters just have no rows for it).
  uint64_t extraction_errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<const Registry> registry_;
  std::atomic<uint64_t> errors_{0};
};

}  // namespace isthmus::fhir_search
