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
  };
  return kMigrations;
}

}  // namespace isthmus::store
