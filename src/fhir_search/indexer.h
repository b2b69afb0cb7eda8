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
#include <string>
#include <vector>

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
  // Between Defer and FlushDeferred the full-text rows (table fhir_text) of the written
  // versions, and the deletion of their previous versions' rows, wait in memory: FTS5 writes
  // its pending rows out as a new segment at the start of every later statement of the
  // transaction, so a row per resource of a Bundle made a segment per resource to merge.
  void Defer() override { defer_ = true; }
  absl::Status FlushDeferred(db::Connection& conn) override;
  void DiscardDeferred() override;

  // Indexes the resources listed in fhir_idx_pending (stored before migration 5), in writer
  // ops of `batch` resources each, and empties the list; then gives the resources listed in
  // fhir_text_pending (stored before migration 10) their full-text row. Run once at startup,
  // before serving.
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
  // The full-text row of the version with this seq (none when both texts are empty).
  static absl::Status InsertFullText(db::Connection& conn, int64_t seq,
                                     std::string_view narrative, std::string_view content);

  // The previous version's full-text row of (type, id, version_id - 1) goes.
  static absl::Status DeleteFullText(db::Connection& conn, std::string_view type,
                                     std::string_view id, int64_t version_id);

  std::shared_ptr<const Registry> registry_;
  std::atomic<uint64_t> errors_{0};
  // Deferred full-text writes (writer thread only).
  struct TextRow {
    int64_t seq = 0;
    std::string narrative, content;
  };
  struct TextDelete {
    std::string type, id;
    int64_t version_id = 0;
  };
  bool defer_ = false;
  std::vector<TextDelete> text_deletes_;
  std::vector<TextRow> text_rows_;
};

}  // namespace isthmus::fhir_search
