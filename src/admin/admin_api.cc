#include "admin/admin_api.h"

#include "absl/time/time.h"
#include "base/str.h"
#include "hl7v2/charset.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::admin {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

std::string Rfc3339(int64_t micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

void WriteSummary(Writer& w, const store::MessageRecord& m) {
  w.Key("id"); w.Int64(m.id);
  w.Key("control_id"); Str(w, m.control_id);
  w.Key("channel"); Str(w, m.channel);
  w.Key("state"); Str(w, m.state);
  w.Key("received_at"); Str(w, Rfc3339(m.received_at_micros));
  w.Key("message_type"); Str(w, m.message_type);
  w.Key("sender"); Str(w, m.sender);
  w.Key("peer"); Str(w, m.peer);
}

// Parses `since` as RFC 3339 or Unix seconds.
bool ParseSince(const std::string& s, int64_t* micros) {
  if (s.empty()) { *micros = 0; return true; }
  int64_t secs;
  if (base::ParseInt(s, &secs)) { *micros = secs * 1'000'000; return true; }
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, s, &t, &err)) { *micros = absl::ToUnixMicros(t); return true; }
  return false;
}

}  // namespace

void RegisterAdminApi(net::HttpServer& http, AdminContext ctx) {
  http.Handle("GET", "/healthz", [](const net::HttpRequest&) {
    return net::HttpResponse::Json(200, "{\"status\":\"ok\"}");
  });
  http.Handle("GET", "/readyz", [ctx](const net::HttpRequest&) {
    bool ready = !ctx.ready || ctx.ready();
    return net::HttpResponse::Json(ready ? 200 : 503,
                                   ready ? "{\"status\":\"ready\"}" : "{\"status\":\"starting\"}");
  });
  http.Handle("GET", "/api/channels", [ctx](const net::HttpRequest&) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("channels");
    w.StartArray();
    if (ctx.channels) {
      for (const ChannelCounters& c : ctx.channels()) {
        w.StartObject();
        w.Key("name"); Str(w, c.name);
        w.Key("received"); w.Uint64(c.received);
        w.Key("acked"); w.Uint64(c.acked);
        w.Key("nacked"); w.Uint64(c.nacked);
        w.Key("duplicates"); w.Uint64(c.duplicates);
        w.Key("connections_open"); w.Int64(c.connections_open);
        w.EndObject();
      }
    }
    w.EndArray();
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
  http.Handle("GET", "/api/messages", [ctx](const net::HttpRequest& r) {
    store::MessageQuery q;
    q.control_id = r.Query("control_id");
    q.channel = r.Query("channel");
    q.state = r.Query("state");
    if (!ParseSince(r.Query("since"), &q.since_micros)) {
      return net::HttpResponse::Error(400, "since must be RFC 3339 (2024-01-31T10:00:00Z) or Unix seconds");
    }
    std::string limit = r.Query("limit", "100");
    if (!base::ParseInt(limit, &q.limit) || q.limit < 1 || q.limit > 1000) {
      return net::HttpResponse::Error(400, "limit must be a number from 1 to 1000");
    }
    int64_t total = 0;
    auto list = ctx.journal->List(q, &total);
    if (!list.ok()) return net::HttpResponse::Error(503, std::string(list.status().message()));
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("total"); w.Int64(total);
    w.Key("messages");
    w.StartArray();
    for (const store::MessageRecord& m : *list) {
      w.StartObject();
      WriteSummary(w, m);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
  http.Handle("GET", "/api/messages/{id}", [ctx](const net::HttpRequest& r) {
    int64_t id;
    if (!base::ParseInt(r.PathParam("id"), &id)) return net::HttpResponse::Error(400, "id must be a number");
    auto m = ctx.journal->Get(id);
    if (!m.ok()) {
      return net::HttpResponse::Error(m.status().code() == absl::StatusCode::kNotFound ? 404 : 503,
                                      std::string(m.status().message()));
    }
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    WriteSummary(w, *m);
    // JSON strings are UTF-8: bytes that are not (undeclared 8859/1) are converted.
    w.Key("raw"); Str(w, hl7v2::ToUtf8(m->raw, hl7v2::CharsetInfo{}));
    w.Key("events");
    w.StartArray();
    for (const store::MessageEvent& e : m->events) {
      w.StartObject();
      w.Key("at"); Str(w, Rfc3339(e.at_micros));
      w.Key("state"); Str(w, e.state);
      w.Key("reason"); Str(w, e.reason);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
}

}  // namespace isthmus::admin
