#include "fhir_search/indexer.h"

#include "base/status_macros.h"
#include "base/str.h"
#include "fhir_search/extract.h"

namespace isthmus::fhir_search {

// The doubles of a resource's rows as text, formatted before the writer op when prepared
// (snprintf was ~4% of the writer thread's instructions per Bundle resource).
struct DoubleTexts {
  std::vector<std::string> numbers;     // per number row
  std::vector<std::string> quantities;  // per quantity row: value, canonical value
};

namespace {

constexpr const char* kTables[] = {"fhir_idx_string",   "fhir_idx_token",     "fhir_idx_date",
                                   "fhir_idx_number",   "fhir_idx_quantity",  "fhir_idx_reference",
                                   "fhir_idx_uri"};

absl::Status StepDone(db::Statement* s) {
  absl::StatusOr<bool> r = s->Step();
  s->Reset();
  return r.status();
}

// Doubles go through text so the db interface stays INTEGER/TEXT/BLOB; SQLite stores the
// CAST result as REAL.
std::string DoubleText(double d) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

DoubleTexts FormatDoubles(const IndexRows& rows) {
  DoubleTexts t;
  t.numbers.reserve(rows.numbers.size());
  for (const auto& r : rows.numbers) t.numbers.push_back(DoubleText(r.value));
  t.quantities.reserve(2 * rows.quantities.size());
  for (const auto& r : rows.quantities) {
    t.quantities.push_back(DoubleText(r.value));
    t.quantities.push_back(DoubleText(r.canonical_value));
  }
  return t;
}

struct PreparedRows : store::FhirIndexer::Prepared {
  IndexRows rows;
  DoubleTexts doubles;
};

// Rows of one table go in statements of up to this many rows each: a statement's fixed cost
// (opening its cursors, halting; ~10% of the writer's instructions with one row each) is
// shared, and the cached statements stay few (one per row count and table).
constexpr size_t kRowsPerStatement = 16;

// Inserts `rows` into the table of `insert` ("INSERT OR IGNORE INTO t (res_type, res_id, param,
// ...) VALUES "; `values` is one row's placeholder list, "(?, ?, ?, ...)" with `columns`
// parameters, the first two res_type and res_id). bind(statement, first, i) binds row i's
// other columns from parameter `first`. Text is bound without a copy (BindTextRef): `v`, the
// rows and their double texts outlive the statement's Step here.
template <typename Bind>
absl::Status InsertInStatements(db::Connection& conn, const store::FhirVersion& v,
                                std::string_view insert, std::string_view values, int columns,
                                size_t n, const Bind& bind) {
  for (size_t done = 0; done < n;) {
    const size_t k = std::min(kRowsPerStatement, n - done);
    std::string sql(insert);
    for (size_t i = 0; i < k; ++i) {
      if (i > 0) sql += ", ";
      sql += values;
    }
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, conn.PrepareCached(sql));
    for (size_t i = 0; i < k; ++i) {
      const int first = static_cast<int>(i) * columns + 1;
      s->BindTextRef(first, v.type);
      s->BindTextRef(first + 1, v.id);
      bind(s, first + 2, done + i);
    }
    ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    done += k;
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<store::FhirIndexer::Prepared> SearchIndexer::Prepare(std::string_view type,
                                                                     std::string_view json) const {
  absl::StatusOr<IndexRows> rows = Extract(*registry_, type, json);
  if (!rows.ok()) return nullptr;  // OnWrite extracts again and reports it
  auto p = std::make_unique<PreparedRows>();
  p->rows = *std::move(rows);
  p->doubles = FormatDoubles(p->rows);
  return p;
}

absl::Status SearchIndexer::OnWritePrepared(db::Connection& conn, const store::FhirVersion& v,
                                            const Prepared& prepared) {
  ISTHMUS_RETURN_IF_ERROR(DeleteRows(conn, v));
  if (v.deleted) return absl::OkStatus();
  const auto& p = static_cast<const PreparedRows&>(prepared);
  if (p.rows.errors > 0) errors_.fetch_add(p.rows.errors, std::memory_order_relaxed);
  return InsertRows(conn, v, p.rows, p.doubles);
}

absl::Status SearchIndexer::OnWrite(db::Connection& conn, const store::FhirVersion& v) {
  ISTHMUS_RETURN_IF_ERROR(DeleteRows(conn, v));
  if (v.deleted) return absl::OkStatus();
  ISTHMUS_ASSIGN_OR_RETURN(IndexRows rows, Extract(*registry_, v.type, v.json));
  if (rows.errors > 0) errors_.fetch_add(rows.errors, std::memory_order_relaxed);
  return InsertRows(conn, v, rows, FormatDoubles(rows));
}

absl::Status SearchIndexer::DeleteRows(db::Connection& conn, const store::FhirVersion& v) {
  if (v.version_id > 1) {  // a first version has no rows yet
    if (defer_) {
      text_deletes_.push_back({v.type, v.id, v.version_id});
    } else {
      ISTHMUS_RETURN_IF_ERROR(DeleteFullText(conn, v.type, v.id, v.version_id));
    }
    for (const char* table : kTables) {
      ISTHMUS_ASSIGN_OR_RETURN(
          db::Statement* del,
          conn.PrepareCached(base::StrCat("DELETE FROM ", table,
                                          " WHERE res_type = ? AND res_id = ?")));
      del->BindText(1, v.type);
      del->BindText(2, v.id);
      ISTHMUS_RETURN_IF_ERROR(StepDone(del));
    }
  }
  return absl::OkStatus();
}

absl::Status SearchIndexer::InsertRows(db::Connection& conn, const store::FhirVersion& v,
                                       const IndexRows& rows, const DoubleTexts& doubles) {
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_string (res_type, res_id, param, norm, exact, grp) "
      "VALUES ", "(?, ?, ?, ?, ?, ?)", 6, rows.strings.size(),
      [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.strings[i];
        s->BindTextRef(c, r.param);
        s->BindTextRef(c + 1, r.norm);
        s->BindTextRef(c + 2, r.exact);
        s->BindInt64(c + 3, r.grp);
      }));
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_token (res_type, res_id, param, system, code, text, "
      "grp) VALUES ", "(?, ?, ?, ?, ?, ?, ?)", 7, rows.tokens.size(),
      [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.tokens[i];
        s->BindTextRef(c, r.param);
        s->BindTextRef(c + 1, r.system);
        s->BindTextRef(c + 2, r.code);
        s->BindTextRef(c + 3, r.text);
        s->BindInt64(c + 4, r.grp);
      }));
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_date (res_type, res_id, param, low, high, grp) "
      "VALUES ", "(?, ?, ?, ?, ?, ?)", 6, rows.dates.size(),
      [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.dates[i];
        s->BindTextRef(c, r.param);
        s->BindInt64(c + 1, r.low);
        s->BindInt64(c + 2, r.high);
        s->BindInt64(c + 3, r.grp);
      }));
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_number (res_type, res_id, param, value, grp) "
      "VALUES ", "(?, ?, ?, CAST(? AS REAL), ?)", 5, rows.numbers.size(),
      [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.numbers[i];
        s->BindTextRef(c, r.param);
        s->BindTextRef(c + 1, doubles.numbers[i]);
        s->BindInt64(c + 2, r.grp);
      }));
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_quantity (res_type, res_id, param, value, system, "
      "code, canonical_value, canonical_unit, grp) VALUES ",
      "(?, ?, ?, CAST(? AS REAL), ?, ?, CAST(? AS REAL), ?, ?)", 9, rows.quantities.size(),
      [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.quantities[i];
        s->BindTextRef(c, r.param);
        s->BindTextRef(c + 1, doubles.quantities[2 * i]);
        s->BindTextRef(c + 2, r.system);
        s->BindTextRef(c + 3, r.code);
        s->BindTextRef(c + 4, doubles.quantities[2 * i + 1]);
        s->BindTextRef(c + 5, r.canonical_unit);
        s->BindInt64(c + 6, r.grp);
      }));
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_reference (res_type, res_id, param, target_type, "
      "target_id, url, grp) VALUES ", "(?, ?, ?, ?, ?, ?, ?)", 7, rows.references.size(),
      [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.references[i];
        s->BindTextRef(c, r.param);
        s->BindTextRef(c + 1, r.target_type);
        s->BindTextRef(c + 2, r.target_id);
        s->BindTextRef(c + 3, r.url);
        s->BindInt64(c + 4, r.grp);
      }));
  ISTHMUS_RETURN_IF_ERROR(InsertInStatements(
      conn, v, "INSERT OR IGNORE INTO fhir_idx_uri (res_type, res_id, param, uri, grp) VALUES ",
      "(?, ?, ?, ?, ?)", 5, rows.uris.size(), [&](db::Statement* s, int c, size_t i) {
        const auto& r = rows.uris[i];
        s->BindTextRef(c, r.param);
        s->BindTextRef(c + 1, r.uri);
        s->BindInt64(c + 2, r.grp);
      }));
  if (defer_) {
    if (!rows.narrative.empty() || !rows.content.empty()) {
      text_rows_.push_back({v.seq, rows.narrative, rows.content});
    }
    return absl::OkStatus();
  }
  return InsertFullText(conn, v.seq, rows.narrative, rows.content);
}

absl::Status SearchIndexer::DeleteFullText(db::Connection& conn, std::string_view type,
                                           std::string_view id, int64_t version_id) {
  // The full-text row is the previous version's (its rowid is that version's seq).
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* text, conn.PrepareCached(
      "DELETE FROM fhir_text WHERE rowid IN (SELECT seq FROM fhir_resource_versions "
      "WHERE type = ? AND id = ? AND version_id = ?)"));
  text->BindText(1, type);
  text->BindText(2, id);
  text->BindInt64(3, version_id - 1);
  return StepDone(text);
}

absl::Status SearchIndexer::FlushDeferred(db::Connection& conn) {
  absl::Status s;
  for (const TextDelete& d : text_deletes_) {
    if (s.ok()) s = DeleteFullText(conn, d.type, d.id, d.version_id);
  }
  for (const TextRow& r : text_rows_) {
    if (s.ok()) s = InsertFullText(conn, r.seq, r.narrative, r.content);
  }
  DiscardDeferred();
  return s;
}

void SearchIndexer::DiscardDeferred() {
  defer_ = false;
  text_deletes_.clear();
  text_rows_.clear();
}

absl::Status SearchIndexer::InsertFullText(db::Connection& conn, int64_t seq,
                                           std::string_view narrative, std::string_view content) {
  if (narrative.empty() && content.empty()) return absl::OkStatus();
  // OR REPLACE: Backfill may index a version that has its row already.
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, conn.PrepareCached(
      "INSERT OR REPLACE INTO fhir_text (rowid, narrative, content) VALUES (?, ?, ?)"));
  s->BindInt64(1, seq);
  s->BindTextRef(2, narrative);
  s->BindTextRef(3, content);
  return StepDone(s);
}

absl::Status SearchIndexer::DropRowsOfAliases(db::Connection& conn) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* any, conn.PrepareCached(
      "SELECT 1 FROM fhir_resources LIMIT 1"));
  absl::StatusOr<bool> stored = any->Step();
  any->Reset();
  ISTHMUS_RETURN_IF_ERROR(stored.status());
  if (!*stored) return absl::OkStatus();  // a new store has none
  for (std::string_view type : store::FhirResourceTypes()) {
    for (const SearchParam* p : registry_->Supported(type)) {
      if (!p->compiled || HasOwnRows(*p)) continue;
      std::vector<std::pair<const char*, std::string>> rows;  // table, param
      if (p->type == ParamType::kComposite) {
        for (size_t k = 0; k < p->components.size(); ++k) {
          rows.emplace_back(IndexTable(p->components[k].type), ComponentParam(p->code, k));
        }
      } else {
        rows.emplace_back(IndexTable(p->type), p->code);
        if (p->type == ParamType::kToken) rows.emplace_back("fhir_idx_token", OfTypeParam(p->code));
      }
      for (const auto& [table, param] : rows) {
        if (table == nullptr) continue;
        ISTHMUS_ASSIGN_OR_RETURN(db::Statement* del, conn.PrepareCached(base::StrCat(
            "DELETE FROM ", table, " WHERE res_type = ? AND param = ?")));
        del->BindText(1, type);
        del->BindText(2, param);
        ISTHMUS_RETURN_IF_ERROR(StepDone(del));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// A resource listed in a pending table, with its current version (none: deleted or gone).
struct PendingEntry {
  std::string type, id;
  bool live = false;  // a current version that is not a deletion
  int64_t seq = 0;    // of the current version
  std::string body;   // the current version's
};

// Empties the pending list `table` ((type, id) rows: fhir_idx_pending, fhir_text_pending) in
// writer ops of `batch` entries: each reads its entries with their current versions, calls
// `apply` on each and deletes them from the list.
template <typename Apply>
absl::Status DrainPending(store::Writer& writer, std::string_view table, int batch,
                          const Apply& apply) {
  while (true) {
    int done = 0;
    ISTHMUS_RETURN_IF_ERROR(writer.Run([&](db::Connection& conn) -> absl::Status {
      ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<db::Statement> q, conn.Prepare(base::StrCat(
          "SELECT p.type, p.id, r.deleted, r.version_seq, v.body FROM ", table, " p "
          "LEFT JOIN fhir_resources r ON r.type = p.type AND r.id = p.id "
          "LEFT JOIN fhir_resource_versions v ON v.seq = r.version_seq "
          "ORDER BY p.type, p.id LIMIT ?")));
      q->BindInt64(1, batch);
      std::vector<PendingEntry> todo;
      while (true) {
        ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) break;
        PendingEntry e{std::string(q->ColumnText(0)), std::string(q->ColumnText(1))};
        e.live = !q->ColumnIsNull(2) && q->ColumnInt64(2) == 0 && !q->ColumnIsNull(4);
        if (!q->ColumnIsNull(3)) e.seq = q->ColumnInt64(3);
        if (e.live) e.body = std::string(q->ColumnText(4));
        todo.push_back(std::move(e));
      }
      q.reset();
      ISTHMUS_ASSIGN_OR_RETURN(db::Statement* del, conn.PrepareCached(
          base::StrCat("DELETE FROM ", table, " WHERE type = ? AND id = ?")));
      for (PendingEntry& e : todo) {
        ISTHMUS_RETURN_IF_ERROR(apply(conn, e));
        del->BindText(1, e.type);
        del->BindText(2, e.id);
        ISTHMUS_RETURN_IF_ERROR(StepDone(del));
      }
      done = static_cast<int>(todo.size());
      return absl::OkStatus();
    }));
    if (done < batch) return absl::OkStatus();
  }
}

}  // namespace

absl::Status SearchIndexer::Backfill(store::Writer& writer, int batch) {
  // Stores written before parameters were answered from other parameters' rows (stored_as)
  // still hold rows of their own for them: nothing reads those any more.
  ISTHMUS_RETURN_IF_ERROR(
      writer.Run([&](db::Connection& conn) { return DropRowsOfAliases(conn); }));
  ISTHMUS_RETURN_IF_ERROR(DrainPending(
      writer, "fhir_idx_pending", batch, [&](db::Connection& conn, PendingEntry& e) {
        store::FhirVersion v;
        v.type = e.type;
        v.id = e.id;
        v.version_id = 2;  // replace whatever rows exist
        v.deleted = !e.live;
        v.seq = e.seq;
        v.json = std::move(e.body);
        return OnWrite(conn, v);
      }));
  // Resources stored before the full-text table (migration 10 lists them): their current
  // version's narrative and strings only, without the search expressions.
  return DrainPending(writer, "fhir_text_pending", batch,
                      [&](db::Connection& conn, PendingEntry& e) -> absl::Status {
                        std::string narrative, content;
                        if (!e.live || !ExtractFullText(e.body, &narrative, &content).ok()) {
                          return absl::OkStatus();
                        }
                        return InsertFullText(conn, e.seq, narrative, content);
                      });
}

}  // namespace isthmus::fhir_search
