// FHIR search over the index tables (schema migration 5, written by indexer.h): parses the
// parameters of `GET /fhir/{type}?...` into one SQL query over fhir_resources and the index
// tables, and pages its result with a keyset cursor.
//
// Supported (docs/fhir-server.md, "Search"): string (default starts-with, :exact, :contains),
// token (code, system|code, |code, system|, :not, :text, :of-type), date (eq ne gt lt ge le sa
// eb ap with precision ranges), number and quantity (the same prefixes; UCUM units compared
// canonically), reference (Type/id, id, absolute URL, :Type), uri (:below, :above), composite
// (parts separated by $, matched within one element), :missing on all; comma = OR, a repeated
// parameter = AND; _id, _lastUpdated, _count, _sort (several keys, '-' for descending; on _id,
// _lastUpdated and string, date, number, quantity, token, reference and uri parameters), _total
// (accurate, none, estimate), _summary=count, _include and _revinclude (with :iterate/:recurse,
// Type:*, *), and the cursors of next, previous and last links (_cursor).
//
// Paging: results are ordered by the sort keys and then by id; a cursor holds a row's keys, and
// the next page starts strictly after the page's last row, the previous page ends strictly
// before its first row (read in reverse order), the last page is the end read in reverse. A
// resource written between two pages appears on a later page if its keys sort after the cursor,
// never twice, and resources that did not change are neither skipped nor repeated.
//
// Errors: kInvalidArgument (400) for a malformed value, an unsupported modifier, or, when
// `strict`, an unknown parameter (lenient: it is ignored and named in `issues`).
//
// Thread-safety: Search may be called concurrently; it uses a small pool of reader connections.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "db/db.h"
#include "fhir_search/registry.h"
#include "store/fhir_store.h"
#include "store/writer.h"

namespace isthmus::fhir_search {

using Params = std::vector<std::pair<std::string, std::string>>;

struct SearchOptions {
  bool strict = false;        // Prefer: handling=strict
  int default_count = 50;     // page size without _count
  int max_count = 1000;       // _count is clamped to this
  int max_included = 1000;    // _include/_revinclude resources per page
  // When set, the search runs on this connection (e.g. the writer's, inside a write op, so a
  // conditional create/update/delete sees the op's own uncommitted writes) instead of a reader.
  db::Connection* conn = nullptr;
};

struct SearchResult {
  std::vector<store::FhirVersion> matches;   // this page, in order
  std::vector<store::FhirVersion> included;  // _include / _revinclude (search.mode include)
  std::optional<int64_t> total;              // when known or asked for (_total=accurate)
  std::string next_cursor;                   // empty on the last page
  std::string previous_cursor;               // empty on the first page
  std::string last_cursor;                   // empty on the last page
  std::vector<std::string> issues;           // warnings: parameters ignored, limits hit
  bool count_only = false;                   // _summary=count: no entries
};

class Searcher {
 public:
  // `writer` (for reader connections) must outlive the searcher.
  Searcher(store::Writer& writer, std::shared_ptr<const Registry> registry,
           base::Clock* clock = &base::RealClock::Get())
      : writer_(writer), registry_(std::move(registry)), clock_(clock) {}

  // REQUIRES: `type` is a FHIR R4 resource type.
  absl::StatusOr<SearchResult> Search(std::string_view type, const Params& params,
                                      const SearchOptions& o = {}) const;

  const Registry& registry() const { return *registry_; }

 private:
  absl::StatusOr<std::unique_ptr<db::Connection>> Acquire() const;
  void Release(std::unique_ptr<db::Connection> c) const;

  store::Writer& writer_;
  std::shared_ptr<const Registry> registry_;
  base::Clock* clock_;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<db::Connection>> readers_;  // guarded by mu_
};

}  // namespace isthmus::fhir_search
