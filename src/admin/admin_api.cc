#include "admin/admin_api.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

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

// Where a message stands at each destination it was routed to, read from its events in order:
// "queued" (reason "to a, b[; note]") and a dead letter's "reprocess" (reason "a (dead letter
// N)") queue it; "retry:a", "dead:a", "delivered:a" are the dispatcher's outcomes. Destination
// names are letters, digits, '-', '_' and '.' (config), so the lists split cleanly. In routing
// order; the last event decides.
struct DestinationStatus {
  std::string name, status, reason;
  int64_t at_micros = 0;
};

std::vector<DestinationStatus> DestinationStatuses(const std::vector<store::MessageEvent>& events) {
  std::vector<DestinationStatus> out;
  auto set = [&out](std::string_view name, std::string_view status, const store::MessageEvent& e) {
    if (name.empty()) return;
    auto it = std::find_if(out.begin(), out.end(), [&](const DestinationStatus& d) { return d.name == name; });
    if (it == out.end()) it = out.insert(out.end(), DestinationStatus{std::string(name), "", "", 0});
    it->status = std::string(status);
    it->reason = status == "queued" ? "" : e.reason;
    it->at_micros = e.at_micros;
  };
  for (const store::MessageEvent& e : events) {
    std::string_view state = e.state, reason = e.reason;
    if (state == "queued" && reason.substr(0, 3) == "to ") {
      std::string_view list = reason.substr(3, reason.find(';') == std::string_view::npos
                                                   ? std::string_view::npos
                                                   : reason.find(';') - 3);
      for (std::string_view name : base::Split(list, ',')) {
        while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
        while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
        set(name, "queued", e);
      }
    } else if (state == "reprocess" && reason.find(" (dead letter ") != std::string_view::npos) {
      set(reason.substr(0, reason.find(" (dead letter ")), "queued", e);
    } else if (size_t colon = state.find(':'); colon != std::string_view::npos) {
      std::string_view verb = state.substr(0, colon), name = state.substr(colon + 1);
      if (verb == "delivered") set(name, "delivered", e);
      if (verb == "retry") set(name, "retrying", e);
      if (verb == "dead") set(name, "dead", e);
    }
  }
  return out;
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
    std::vector<ChannelCounters> channels;
    if (ctx.channels) {
      auto got = ctx.channels();
      if (!got.ok()) return net::HttpResponse::Error(503, std::string(got.status().message()));
      channels = std::move(got).value();
    }
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("channels");
    w.StartArray();
    {
      for (const ChannelCounters& c : channels) {
        w.StartObject();
        w.Key("name"); Str(w, c.name);
        w.Key("received"); w.Uint64(c.received);
        w.Key("acked"); w.Uint64(c.acked);
        w.Key("nacked"); w.Uint64(c.nacked);
        w.Key("duplicates"); w.Uint64(c.duplicates);
        w.Key("connections_open"); w.Int64(c.connections_open);
        w.Key("filtered"); w.Uint64(c.filtered);
        w.Key("errored"); w.Uint64(c.errored);
        w.Key("queued"); w.Int64(c.queued);
        w.Key("queued_truncated"); w.Bool(c.queued_truncated);
        w.Key("delivered"); w.Uint64(c.delivered);
        w.Key("dead"); w.Uint64(c.dead);
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
    w.Key("destinations");
    w.StartArray();
    for (const DestinationStatus& d : DestinationStatuses(m->events)) {
      w.StartObject();
      w.Key("name"); Str(w, d.name);
      w.Key("status"); Str(w, d.status);
      w.Key("at"); Str(w, Rfc3339(d.at_micros));
      w.Key("reason"); Str(w, d.reason);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
  http.Handle("POST", "/api/messages/{id}/reprocess", [ctx](const net::HttpRequest& r) {
    int64_t id;
    if (!base::ParseInt(r.PathParam("id"), &id)) return net::HttpResponse::Error(400, "id must be a number");
    if (!ctx.reprocess) return net::HttpResponse::Error(503, "reprocessing is not available");
    absl::Status s = ctx.reprocess(id);
    if (!s.ok()) {
      // A message whose state forbids it (rejected: unparsable) is a conflict, not an outage.
      int code = s.code() == absl::StatusCode::kNotFound             ? 404
                 : s.code() == absl::StatusCode::kFailedPrecondition ? 409
                                                                     : 503;
      return net::HttpResponse::Error(code, std::string(s.message()));
    }
    return net::HttpResponse::Json(202, base::StrCat("{\"id\":", id, ",\"status\":\"reprocessing\"}"));
  });
  http.Handle("GET", "/api/destinations", [ctx](const net::HttpRequest&) {
    if (ctx.queue == nullptr) return net::HttpResponse::Json(200, "{\"destinations\":[]}");
    auto counts = ctx.queue->Counts();
    if (!counts.ok()) return net::HttpResponse::Error(503, std::string(counts.status().message()));
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("destinations");
    w.StartArray();
    for (const store::DestinationCounts& c : *counts) {
      w.StartObject();
      w.Key("name"); Str(w, c.destination);
      w.Key("queued"); w.Int64(c.queued);
      w.Key("in_flight"); w.Int64(c.in_flight);
      w.Key("retrying"); w.Int64(c.retrying);
      w.Key("delivered"); w.Int64(c.delivered);
      w.Key("dead"); w.Int64(c.dead);
      w.Key("oldest_queued_at");
      if (c.oldest_enqueued_at_micros > 0) Str(w, Rfc3339(c.oldest_enqueued_at_micros)); else w.Null();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
  http.Handle("GET", "/api/dead-letters", [ctx](const net::HttpRequest& r) {
    if (ctx.queue == nullptr) return net::HttpResponse::Json(200, "{\"dead_letters\":[]}");
    store::DeadLetterQuery q;
    q.destination = r.Query("destination");
    q.include_reprocessed = r.Query("include_reprocessed") == "true";
    if (!base::ParseInt(r.Query("limit", "100"), &q.limit) || q.limit < 1 || q.limit > 1000) {
      return net::HttpResponse::Error(400, "limit must be a number from 1 to 1000");
    }
    std::string before = r.Query("before_id");
    if (!before.empty() && !base::ParseInt(before, &q.before_id)) {
      return net::HttpResponse::Error(400, "before_id must be a number");
    }
    auto list = ctx.queue->ListDeadLetters(q);
    if (!list.ok()) return net::HttpResponse::Error(503, std::string(list.status().message()));
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("dead_letters");
    w.StartArray();
    for (const store::DeadLetterRecord& d : *list) {
      w.StartObject();
      w.Key("id"); w.Int64(d.id);
      w.Key("destination"); Str(w, d.destination);
      w.Key("message_id"); w.Int64(d.message_id);
      w.Key("attempts"); w.Int(d.attempts);
      w.Key("reason"); Str(w, d.reason);
      w.Key("dead_at"); Str(w, Rfc3339(d.dead_at_micros));
      w.Key("reprocessed_at");
      if (d.reprocessed_at_micros > 0) Str(w, Rfc3339(d.reprocessed_at_micros)); else w.Null();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
  http.Handle("POST", "/api/dead-letters/reprocess", [ctx](const net::HttpRequest& r) {
    if (ctx.queue == nullptr) return net::HttpResponse::Error(503, "no queues");
    std::string id_text = r.Query("id"), destination = r.Query("destination");
    if (id_text.empty() == destination.empty()) {
      return net::HttpResponse::Error(400, "give either ?id=N (one dead letter) or ?destination=NAME (all of it)");
    }
    int64_t count = 0;
    if (!id_text.empty()) {
      int64_t id;
      if (!base::ParseInt(id_text, &id)) return net::HttpResponse::Error(400, "id must be a number");
      absl::Status s = ctx.queue->Reprocess(id);
      if (!s.ok()) {
        int code = s.code() == absl::StatusCode::kNotFound ? 404
                   : s.code() == absl::StatusCode::kFailedPrecondition ? 409 : 503;
        return net::HttpResponse::Error(code, std::string(s.message()));
      }
      count = 1;
      // Wake every dispatcher: the dead letter's destination is not known here without a lookup.
      if (ctx.notify) {
        auto counts = ctx.queue->Counts();
        if (counts.ok()) {
          for (const auto& c : *counts) ctx.notify(c.destination);
        }
      }
    } else {
      auto n = ctx.queue->ReprocessAll(destination);
      if (!n.ok()) return net::HttpResponse::Error(503, std::string(n.status().message()));
      count = *n;
      if (ctx.notify) ctx.notify(destination);
    }
    return net::HttpResponse::Json(200, base::StrCat("{\"reprocessed\":", count, "}"));
  });
  http.Handle("POST", "/api/config/reload", [ctx](const net::HttpRequest&) {
    if (!ctx.reload) return net::HttpResponse::Error(503, "reload is not available");
    auto r = ctx.reload();
    if (!r.ok()) {
      int code = r.status().code() == absl::StatusCode::kInvalidArgument ||
                         r.status().code() == absl::StatusCode::kFailedPrecondition
                     ? 400
                     : 503;
      return net::HttpResponse::Error(code, std::string(r.status().message()));
    }
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("status"); Str(w, "reloaded");
    w.Key("summary"); Str(w, *r);
    w.EndObject();
    return net::HttpResponse::Json(200, buf.GetString());
  });
}

}  // namespace isthmus::admin
