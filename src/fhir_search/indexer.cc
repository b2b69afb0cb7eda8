#include "fhir_search/indexer.h"

#include "base/status_macros.h"
#include "base/str.h"
#include "fhir_search/extract.h"

namespace isthmus::fhir_search {
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

struct PreparedRows : store::FhirIndexer::Prepared {
  IndexRows rows;
};

}  // namespace

std::unique_ptr<store::FhirIndexer::Prepared> SearchIndexer::Prepare(std::string_view type,
                                                                     std::string_view json) const {
  absl::StatusOr<IndexRows> rows = Extract(*registry_, type, json);
  if (!rows.ok()) return nullptr;  // OnWrite extracts again and reports it
  auto p = std::make_unique<PreparedRows>();
  p->rows = *std::move(rows);
  return p;
}

absl::Status SearchIndexer::OnWritePrepared(db::Connection& conn, const store::FhirVersion& v,
                                            const Prepared& prepared) {
  ISTHMUS_RETURN_IF_ERROR(DeleteRows(conn, v));
  if (v.deleted) return absl::OkStatus();
  const IndexRows& rows = static_cast<const PreparedRows&>(prepared).rows;
  if (rows.errors > 0) errors_.fetch_add(rows.errors, std::memory_order_relaxed);
  return InsertRows(conn, v, rows);
}

absl::Status SearchIndexer::OnWrite(db::Connection& conn, const store::FhirVersion& v) {
  ISTHMUS_RETURN_IF_ERROR(DeleteRows(conn, v));
  if (v.deleted) return absl::OkStatus();
  ISTHMUS_ASSIGN_OR_RETURN(IndexRows rows, Extract(*registry_, v.type, v.json));
  if (rows.errors > 0) errors_.fetch_add(rows.errors, std::memory_order_relaxed);
  return InsertRows(conn, v, rows);
}

absl::Status SearchIndexer::DeleteRows(db::Connection& conn, const store::FhirVersion& v) {
  if (v.version_id > 1) {  // a first version has no rows yet
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
                                       const IndexRows& rows) {
  auto prepare = [&](const char* sql) { return conn.PrepareCached(sql); };
  auto head = [&](db::Statement* s, const std::string& param) {
    s->BindText(1, v.type);
    s->BindText(2, v.id);
    s->BindText(3, param);
  };
  if (!rows.strings.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_string (res_type, res_id, param, norm, exact, grp) "
        "VALUES (?, ?, ?, ?, ?, ?)"));
    for (const auto& r : rows.strings) {
      head(s, r.param);
      s->BindText(4, r.norm);
      s->BindText(5, r.exact);
      s->BindInt64(6, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  if (!rows.tokens.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_token (res_type, res_id, param, system, code, text, "
        "grp) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    for (const auto& r : rows.tokens) {
      head(s, r.param);
      s->BindText(4, r.system);
      s->BindText(5, r.code);
      s->BindText(6, r.text);
      s->BindInt64(7, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  if (!rows.dates.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_date (res_type, res_id, param, low, high, grp) "
        "VALUES (?, ?, ?, ?, ?, ?)"));
    for (const auto& r : rows.dates) {
      head(s, r.param);
      s->BindInt64(4, r.low);
      s->BindInt64(5, r.high);
      s->BindInt64(6, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  if (!rows.numbers.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_number (res_type, res_id, param, value, grp) "
        "VALUES (?, ?, ?, CAST(? AS REAL), ?)"));
    for (const auto& r : rows.numbers) {
      head(s, r.param);
      s->BindText(4, DoubleText(r.value));
      s->BindInt64(5, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  if (!rows.quantities.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_quantity (res_type, res_id, param, value, system, code, "
        "canonical_value, canonical_unit, grp) VALUES (?, ?, ?, CAST(? AS REAL), ?, ?, "
        "CAST(? AS REAL), ?, ?)"));
    for (const auto& r : rows.quantities) {
      head(s, r.param);
      s->BindText(4, DoubleText(r.value));
      s->BindText(5, r.system);
      s->BindText(6, r.code);
      s->BindText(7, DoubleText(r.canonical_value));
      s->BindText(8, r.canonical_unit);
      s->BindInt64(9, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  if (!rows.references.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_reference (res_type, res_id, param, target_type, "
        "target_id, url, grp) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    for (const auto& r : rows.references) {
      head(s, r.param);
      s->BindText(4, r.target_type);
      s->BindText(5, r.target_id);
      s->BindText(6, r.url);
      s->BindInt64(7, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  if (!rows.uris.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, prepare(
        "INSERT OR IGNORE INTO fhir_idx_uri (res_type, res_id, param, uri, grp) "
        "VALUES (?, ?, ?, ?, ?)"));
    for (const auto& r : rows.uris) {
      head(s, r.param);
      s->BindText(4, r.uri);
      s->BindInt64(5, r.grp);
      ISTHMUS_RETURN_IF_ERROR(StepDone(s));
    }
  }
  return absl::OkStatus();
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

absl::Status SearchIndexer::Backfill(store::Writer& writer, int batch) {
  // Stores written before parameters were answered from other parameters' rows (stored_as)
  // still hold rows of their own for them: nothing reads those any more.
  ISTHMUS_RETURN_IF_ERROR(
      writer.Run([&](db::Connection& conn) { return DropRowsOfAliases(conn); }));
  while (true) {
    int done = 0;
    ISTHMUS_RETURN_IF_ERROR(writer.Run([&](db::Connection& conn) -> absl::Status {
      ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<db::Statement> q, conn.Prepare(
          "SELECT p.type, p.id, r.version_id, r.deleted, v.body FROM fhir_idx_pending p "
          "LEFT JOIN fhir_resources r ON r.type = p.type AND r.id = p.id "
          "LEFT JOIN fhir_resource_versions v ON v.seq = r.version_seq "
          "ORDER BY p.type, p.id LIMIT ?"));
      q->BindInt64(1, batch);
      std::vector<store::FhirVersion> todo;
      while (true) {
        ISTHMUS_ASSIGN_OR_RETURN(bool row, q->Step());
        if (!row) break;
        store::FhirVersion v;
        v.type = std::string(q->ColumnText(0));
        v.id = std::string(q->ColumnText(1));
        v.version_id = q->ColumnIsNull(2) ? 0 : q->ColumnInt64(2);
        v.deleted = q->ColumnIsNull(3) || q->ColumnInt64(3) != 0;
        if (!q->ColumnIsNull(4)) v.json = std::string(q->ColumnText(4));
        todo.push_back(std::move(v));
      }
      q.reset();
      ISTHMUS_ASSIGN_OR_RETURN(db::Statement* del, conn.PrepareCached(
          "DELETE FROM fhir_idx_pending WHERE type = ? AND id = ?"));
      for (store::FhirVersion& v : todo) {
        v.version_id = 2;  // replace whatever rows exist
        ISTHMUS_RETURN_IF_ERROR(OnWrite(conn, v));
        del->BindText(1, v.type);
        del->BindText(2, v.id);
        ISTHMUS_RETURN_IF_ERROR(StepDone(del));
      }
      done = static_cast<int>(todo.size());
      return absl::OkStatus();
    }));
    if (done < batch) return absl::OkStatus();
  }
}

}  // namespace isthmus::fhir_search
