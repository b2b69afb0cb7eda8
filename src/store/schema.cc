#include "store/schema.h"

namespace isthmus::store {

const std::vector<std::string_view>& SchemaMigrations() {
  static const std::vector<std::string_view> kMigrations = {
      // 1: the inbound journal.
      R"sql(
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  channel TEXT NOT NULL,
  sender TEXT NOT NULL,
  control_id TEXT NOT NULL,
  message_type TEXT NOT NULL,
  peer TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  raw BLOB NOT NULL
);
CREATE INDEX messages_dedupe ON messages (sender, control_id, received_at);
CREATE INDEX messages_received ON messages (received_at);
CREATE TABLE message_events (
  id INTEGER PRIMARY KEY,
  message_id INTEGER NOT NULL REFERENCES messages(id),
  at INTEGER NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX message_events_by_message ON message_events (message_id, id);
)sql",
      // 2: per-destination delivery queues (the outbox), dead letters, delivery counters.
      // Portable SQL: the PostgreSQL driver maps INTEGER PRIMARY KEY to an identity column;
      // the upsert in store/queue.cc uses ON CONFLICT, which both engines accept.
      R"sql(
CREATE TABLE queue (
  id INTEGER PRIMARY KEY,
  destination TEXT NOT NULL,
  message_id INTEGER NOT NULL REFERENCES messages(id),
  partition_key TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL,
  lease_owner TEXT,
  lease_until INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  payload BLOB
);
CREATE INDEX queue_by_partition ON queue (destination, partition_key, id);
CREATE INDEX queue_by_message ON queue (message_id);
CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY,
  destination TEXT NOT NULL,
  message_id INTEGER NOT NULL REFERENCES messages(id),
  partition_key TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  reason TEXT NOT NULL,
  enqueued_at INTEGER NOT NULL,
  dead_at INTEGER NOT NULL,
  reprocessed_at INTEGER,
  payload BLOB
);
CREATE INDEX dead_letters_by_destination ON dead_letters (destination, id);
CREATE INDEX dead_letters_by_message ON dead_letters (message_id);
CREATE TABLE destination_counters (
  destination TEXT PRIMARY KEY,
  delivered INTEGER NOT NULL
);
)sql",
      // 3: the raw bytes move to their own table. A message's row is rewritten at every state
      // change; with the ~2 KB body in it, each rewrite dirtied (and wrote to the WAL) a page
      // of its own. Bodies are written once and never change.
      R"sql(
CREATE TABLE message_bodies (
  id INTEGER PRIMARY KEY REFERENCES messages(id),
  raw BLOB NOT NULL
);
INSERT INTO message_bodies (id, raw) SELECT id, raw FROM messages;
ALTER TABLE messages DROP COLUMN raw;
)sql",
      // 4: the FHIR resource store (store/fhir_store.h). Every version of every resource, in
      // write order (seq), and a pointer to each resource's current version. A deletion is a
      // version with deleted = 1 and an empty body. Search index tables come with search.
      R"sql(
CREATE TABLE fhir_resource_versions (
  seq INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version_id INTEGER NOT NULL,
  last_updated INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  method TEXT NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (type, id, version_id)
);
CREATE INDEX fhir_resource_versions_by_type ON fhir_resource_versions (type, seq);
CREATE TABLE fhir_resources (
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version_id INTEGER NOT NULL,
  last_updated INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  version_seq INTEGER NOT NULL REFERENCES fhir_resource_versions(seq),
  PRIMARY KEY (type, id)
);
)sql",
      // 5: search indexes (fhir_search/indexer.h), written in the transaction of each version
      // and holding the current version of each resource only. One table per search-parameter
      // type; rows name the resource by (res_type, res_id) and the parameter by its code. Dates
      // are inclusive UTC ranges in microseconds; strings are kept normalized (lower case,
      // accents folded) and exact; numbers are doubles. fhir_idx_pending lists resources
      // stored before the index existed: SearchIndexer::Backfill indexes them at startup.
      R"sql(
CREATE TABLE fhir_idx_string (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  norm TEXT NOT NULL, exact TEXT NOT NULL
);
CREATE INDEX fhir_idx_string_by_value ON fhir_idx_string (res_type, param, norm);
CREATE INDEX fhir_idx_string_by_res ON fhir_idx_string (res_type, res_id);
CREATE TABLE fhir_idx_token (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX fhir_idx_token_by_value ON fhir_idx_token (res_type, param, code, system);
CREATE INDEX fhir_idx_token_by_res ON fhir_idx_token (res_type, res_id);
CREATE TABLE fhir_idx_date (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  low INTEGER NOT NULL, high INTEGER NOT NULL
);
CREATE INDEX fhir_idx_date_by_value ON fhir_idx_date (res_type, param, low);
CREATE INDEX fhir_idx_date_by_res ON fhir_idx_date (res_type, res_id);
CREATE TABLE fhir_idx_number (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  value REAL NOT NULL
);
CREATE INDEX fhir_idx_number_by_value ON fhir_idx_number (res_type, param, value);
CREATE INDEX fhir_idx_number_by_res ON fhir_idx_number (res_type, res_id);
CREATE TABLE fhir_idx_quantity (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
  canonical_value REAL NOT NULL, canonical_unit TEXT NOT NULL
);
CREATE INDEX fhir_idx_quantity_by_value ON fhir_idx_quantity (res_type, param, value);
CREATE INDEX fhir_idx_quantity_by_res ON fhir_idx_quantity (res_type, res_id);
CREATE TABLE fhir_idx_reference (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  target_type TEXT NOT NULL, target_id TEXT NOT NULL, url TEXT NOT NULL
);
CREATE INDEX fhir_idx_reference_by_value ON fhir_idx_reference (res_type, param, target_id);
CREATE INDEX fhir_idx_reference_by_target ON fhir_idx_reference (target_type, target_id);
CREATE INDEX fhir_idx_reference_by_res ON fhir_idx_reference (res_type, res_id);
CREATE TABLE fhir_idx_uri (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  uri TEXT NOT NULL
);
CREATE INDEX fhir_idx_uri_by_value ON fhir_idx_uri (res_type, param, uri);
CREATE INDEX fhir_idx_uri_by_res ON fhir_idx_uri (res_type, res_id);
CREATE INDEX fhir_resources_by_updated ON fhir_resources (type, last_updated);
CREATE TABLE fhir_idx_pending (
  type TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (type, id)
);
INSERT INTO fhir_idx_pending (type, id) SELECT type, id FROM fhir_resources WHERE deleted = 0;
)sql",
      // 6: search groups and sort keys (fhir_search/extract.h). `grp` ties the rows of one
      // element together: the components of a composite parameter (code-value-quantity) and an
      // Identifier with its type codings (:of-type); other rows have 0. The per-resource indexes
      // now cover the parameter and its sort value, so a sort key or a composite's other part
      // is one index seek per resource. Every stored resource is indexed again at the next
      // start (fhir_idx_pending) to get its groups.
      R"sql(
ALTER TABLE fhir_idx_string ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fhir_idx_token ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fhir_idx_date ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fhir_idx_number ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fhir_idx_quantity ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fhir_idx_reference ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fhir_idx_uri ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
DROP INDEX fhir_idx_string_by_res;
CREATE INDEX fhir_idx_string_by_res ON fhir_idx_string (res_type, res_id, param, norm);
DROP INDEX fhir_idx_token_by_res;
CREATE INDEX fhir_idx_token_by_res ON fhir_idx_token (res_type, res_id, param, code);
DROP INDEX fhir_idx_date_by_res;
CREATE INDEX fhir_idx_date_by_res ON fhir_idx_date (res_type, res_id, param, low, high);
DROP INDEX fhir_idx_number_by_res;
CREATE INDEX fhir_idx_number_by_res ON fhir_idx_number (res_type, res_id, param, value);
DROP INDEX fhir_idx_quantity_by_res;
CREATE INDEX fhir_idx_quantity_by_res ON fhir_idx_quantity (res_type, res_id, param, value);
DROP INDEX fhir_idx_reference_by_res;
CREATE INDEX fhir_idx_reference_by_res ON fhir_idx_reference (res_type, res_id, param, target_id);
DROP INDEX fhir_idx_uri_by_res;
CREATE INDEX fhir_idx_uri_by_res ON fhir_idx_uri (res_type, res_id, param, uri);
INSERT INTO fhir_idx_pending (type, id)
  SELECT r.type, r.id FROM fhir_resources r WHERE r.deleted = 0 AND NOT EXISTS
    (SELECT 1 FROM fhir_idx_pending p WHERE p.type = r.type AND p.id = r.id);
)sql",
      // 7: search expressions read `X as T` over a repeating X as ofType(T)
      // (fhir_search::CollectionSafeCasts): a blood pressure's component values, several
      // useContexts and the like now have rows. Every stored resource is indexed again at the
      // next start.
      R"sql(
INSERT INTO fhir_idx_pending (type, id)
  SELECT r.type, r.id FROM fhir_resources r WHERE r.deleted = 0 AND NOT EXISTS
    (SELECT 1 FROM fhir_idx_pending p WHERE p.type = r.type AND p.id = r.id);
)sql",
      // 8: the search index tables and fhir_resources are WITHOUT ROWID, clustered by resource
      // (res_type, res_id, param, value..., grp): the per-resource index (`_by_res`) is the table
      // itself, so an index row is one B-tree insert fewer (a heap row plus by-value and by-res
      // indexes before; now the table plus by-value), and with time-ordered ids (FhirStore::NewId)
      // the table's inserts append at its right edge. The primary key is the whole row (but
      // quantities' canonical value and unit, which follow from value, system and code), so a
      // row repeated within one resource is stored once (INSERT OR IGNORE; searches never
      // counted rows). Existing rows are copied as they are; fhir_idx_pending is untouched.
      // SQLite only: a PostgreSQL schema would drop `WITHOUT ROWID` (its tables are heaps).
      R"sql(
CREATE TABLE fhir_idx_string_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  norm TEXT NOT NULL, exact TEXT NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, norm, exact, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_string_new (res_type, res_id, param, norm, exact, grp)
  SELECT res_type, res_id, param, norm, exact, grp FROM fhir_idx_string;
DROP TABLE fhir_idx_string;
ALTER TABLE fhir_idx_string_new RENAME TO fhir_idx_string;
CREATE INDEX fhir_idx_string_by_value ON fhir_idx_string (res_type, param, norm);
CREATE TABLE fhir_idx_token_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, code, system, text, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_token_new (res_type, res_id, param, system, code, text, grp)
  SELECT res_type, res_id, param, system, code, text, grp FROM fhir_idx_token;
DROP TABLE fhir_idx_token;
ALTER TABLE fhir_idx_token_new RENAME TO fhir_idx_token;
CREATE INDEX fhir_idx_token_by_value ON fhir_idx_token (res_type, param, code, system);
CREATE TABLE fhir_idx_date_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  low INTEGER NOT NULL, high INTEGER NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, low, high, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_date_new (res_type, res_id, param, low, high, grp)
  SELECT res_type, res_id, param, low, high, grp FROM fhir_idx_date;
DROP TABLE fhir_idx_date;
ALTER TABLE fhir_idx_date_new RENAME TO fhir_idx_date;
CREATE INDEX fhir_idx_date_by_value ON fhir_idx_date (res_type, param, low);
CREATE TABLE fhir_idx_number_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  value REAL NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, value, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_number_new (res_type, res_id, param, value, grp)
  SELECT res_type, res_id, param, value, grp FROM fhir_idx_number;
DROP TABLE fhir_idx_number;
ALTER TABLE fhir_idx_number_new RENAME TO fhir_idx_number;
CREATE INDEX fhir_idx_number_by_value ON fhir_idx_number (res_type, param, value);
CREATE TABLE fhir_idx_quantity_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
  canonical_value REAL NOT NULL, canonical_unit TEXT NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, value, system, code, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_quantity_new (res_type, res_id, param, value, system, code, canonical_value, canonical_unit, grp)
  SELECT res_type, res_id, param, value, system, code, canonical_value, canonical_unit, grp FROM fhir_idx_quantity;
DROP TABLE fhir_idx_quantity;
ALTER TABLE fhir_idx_quantity_new RENAME TO fhir_idx_quantity;
CREATE INDEX fhir_idx_quantity_by_value ON fhir_idx_quantity (res_type, param, value);
CREATE TABLE fhir_idx_reference_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  target_type TEXT NOT NULL, target_id TEXT NOT NULL, url TEXT NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, target_id, target_type, url, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_reference_new (res_type, res_id, param, target_type, target_id, url, grp)
  SELECT res_type, res_id, param, target_type, target_id, url, grp FROM fhir_idx_reference;
DROP TABLE fhir_idx_reference;
ALTER TABLE fhir_idx_reference_new RENAME TO fhir_idx_reference;
CREATE INDEX fhir_idx_reference_by_value ON fhir_idx_reference (res_type, param, target_id);
CREATE INDEX fhir_idx_reference_by_target ON fhir_idx_reference (target_type, target_id);
CREATE TABLE fhir_idx_uri_new (
  res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
  uri TEXT NOT NULL, grp INTEGER NOT NULL,
  PRIMARY KEY (res_type, res_id, param, uri, grp)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fhir_idx_uri_new (res_type, res_id, param, uri, grp)
  SELECT res_type, res_id, param, uri, grp FROM fhir_idx_uri;
DROP TABLE fhir_idx_uri;
ALTER TABLE fhir_idx_uri_new RENAME TO fhir_idx_uri;
CREATE INDEX fhir_idx_uri_by_value ON fhir_idx_uri (res_type, param, uri);
CREATE TABLE fhir_resources_new (
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version_id INTEGER NOT NULL,
  last_updated INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  version_seq INTEGER NOT NULL REFERENCES fhir_resource_versions(seq),
  PRIMARY KEY (type, id)
) WITHOUT ROWID;
INSERT INTO fhir_resources_new (type, id, version_id, last_updated, deleted, version_seq)
  SELECT type, id, version_id, last_updated, deleted, version_seq FROM fhir_resources;
DROP TABLE fhir_resources;
ALTER TABLE fhir_resources_new RENAME TO fhir_resources;
CREATE INDEX fhir_resources_by_updated ON fhir_resources (type, last_updated);
)sql",
      // 9: queue_by_message goes: no query looks queue rows up by message (the admin API reads a
      // message's deliveries from its events) and messages are never deleted, so the foreign
      // key never needs it either; it cost every queued message an index insert and delete
      // (writer instructions per MLLP -> file message -2.9%, WAL frames -3.3%;
      // docs/PERFORMANCE.md). Add it back with the first query that needs it.
      R"sql(
DROP INDEX IF EXISTS queue_by_message;
)sql",
      // 10: full-text search (_text, _content; fhir_search/indexer.h). One FTS5 row per
      // resource's current version, its rowid that version's seq: the narrative (text.div
      // without tags) and the other string values; an update replaces it, a deletion drops it.
      // Words are matched case- and accent-insensitively (unicode61, diacritics removed).
      // fhir_text_pending lists the resources stored before: SearchIndexer::Backfill gives
      // them their row at the next start (their strings only, no search expression). SQLite
      // only (FTS5); a PostgreSQL store would use a tsvector column instead.
      R"sql(
CREATE VIRTUAL TABLE fhir_text USING fts5(narrative, content,
  tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE fhir_text_pending (
  type TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (type, id)
) WITHOUT ROWID;
INSERT INTO fhir_text_pending (type, id) SELECT type, id FROM fhir_resources WHERE deleted = 0;
)sql",
  };
  return kMigrations;
}

}  // namespace isthmus::store
