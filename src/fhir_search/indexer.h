// The search indexer: store::FhirIndexer over the registry (registry.h). On every version the
// store writes, in the same transaction, it replaces the resource's rows in the index tables
// (schema migration 5) with those extracted from the new body (extract.h); a deletion drops
// them. So the index always describes the current version of each resource, and a crash leaves
// index and resources consistent (both or neither).
//
// The expressions are evaluated in Prepare, on the thread that calls the store (an HTTP handler),
// when the store can (Create, POST entries of Bundles without conditions); OnWritePrepared then
// only runs the inserts on the writer thread. Other writes extract in OnWrite.
//
// Thread-safety: OnWrite and OnWritePrepared run on the store's writer thread only; Prepare on
// any thread; the indexer holds no mutable state besides its counters (atomics).
#pragma once

#include <atomic>
#include <memory>

#include "fhir_search/extract.h"
#include "fhir_search/registry.h"
#include "store/fhir_store.h"
#include "store/writer.h"

namespace isthmus::fhir_search {

struct DoubleTexts;  // the doubles of IndexRows as SQL text (indexer.cc)

class SearchIndexer : public store::FhirIndexer {
 public:
  explicit SearchIndexer(std::shared_ptr<const Registry> registry)
      : registry_(std::move(registry)) {}

  absl::Status OnWrite(db::Connection& conn, const store::FhirVersion& v) override;
  std::unique_ptr<Prepared> Prepare(std::string_view type, std::string_view json) const override;
  absl::Status OnWritePrepared(db::Connection& conn, const store::FhirVersion& v,
                               const Prepared& prepared) override;

  // Indexes the resources listed in fhir_idx_pending (stored before migration 5), in writer
  // ops of `batch` resources each, and empties the list. Run once at startup, before serving.
  absl::Status Backfill(store::Writer& writer, int batch = 500);

  // Deletes the rows of parameters answered from other parameters' rows (SearchParam::stored_as)
  // that stores written by earlier versions hold. Backfill runs it.
  absl::Status DropRowsOfAliases(db::Connection& conn);

  // Expressions that failed to evaluate on a written resource (the resource was stored; those
  // parameters just have no rows for it).
  uint64_t extraction_errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  // Drops the rows of the version before `v` (none for a first version).
  absl::Status DeleteRows(db::Connection& conn, const store::FhirVersion& v);
  absl::Status InsertRows(db::Connection& conn, const store::FhirVersion& v,
                          const IndexRows& rows, const DoubleTexts& doubles);

  std::shared_ptr<const Registry> registry_;
  std::atomic<uint64_t> errors_{0};
};

}  // namespace isthmus::fhir_search
