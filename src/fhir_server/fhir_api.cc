#include "fhir_server/fhir_api.h"

#include <future>
#include <optional>
#include <utility>
#include <vector>

#include <set>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "base/str.h"
#include "fhir/validator.h"
#include "fhir_conformance/conformance.h"
#include "fhir_server/fhirpath_patch.h"
#include "fhir_server/json_patch.h"
#include "fhir_server/json_util.h"
#include "fhir_server/rest_tables.h"
#include "fhir_server/shaping.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir_server {
namespace {

using net::HttpRequest;
using net::HttpResponse;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr char kFhirJson[] = "application/fhir+json; charset=utf-8";
constexpr int kDefaultPageSize = 50;

void Str(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// A FHIR response: application/fhir+json, indented with _pretty=true.
HttpResponse Fhir(const HttpRequest& req, int status, std::string body) {
  if (req.Query("_pretty") == "true" && !body.empty()) {
    if (absl::StatusOr<std::string> p = store::FhirJsonPretty(body); p.ok()) body = *std::move(p);
  }
  return HttpResponse{status, kFhirJson, std::move(body), {}};
}

std::string OutcomeJson(std::string_view severity, std::string_view code,
                        std::string_view diagnostics) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("OperationOutcome");
  w.Key("issue");
  w.StartArray();
  w.StartObject();
  w.Key("severity");
  Str(w, severity);
  w.Key("code");
  Str(w, code);
  w.Key("diagnostics");
  Str(w, diagnostics);
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

HttpResponse Outcome(const HttpRequest& req, int status, std::string_view code,
                     std::string_view diagnostics) {
  return Fhir(req, status, OutcomeJson("error", code, diagnostics));
}

HttpResponse FromStatus(const HttpRequest& req, const absl::Status& s) {
  return Fhir(req, store::FhirHttpStatus(s), store::FhirOperationOutcome(s));
}

std::string BaseUrl(const HttpRequest& req) {
  std::string host = req.Header("host");
  return base::StrCat("http://", host.empty() ? std::string("localhost") : host, "/fhir");
}

std::string HttpDate(int64_t micros) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

std::string ETag(int64_t version) { return base::StrCat("W/\"", version, "\""); }

// _format and the request body's Content-Type: JSON only (415 otherwise).
std::optional<HttpResponse> CheckFormat(const HttpRequest& req, bool with_body) {
  std::string f = req.Query("_format");
  if (!f.empty() && f != "json" && f != "application/json" && f != "application/fhir+json" &&
      f != "application/json+fhir") {
    return Outcome(req, 415, "not-supported",
                   "only JSON is supported (_format=json or application/fhir+json)");
  }
  if (with_body) {
    std::string ct = req.Header("content-type");
    if (!ct.empty() && ct.find("json") == std::string::npos) {
      return Outcome(req, 415, "not-supported",
                     "the body must be JSON (Content-Type: application/fhir+json)");
    }
  }
  return std::nullopt;
}

// The URL's type: 404 for an unknown one, 501 for an operation ($name).
std::optional<HttpResponse> CheckType(const HttpRequest& req, const std::string& type) {
  if (!type.empty() && type[0] == '$') {
    return Outcome(req, 501, "not-supported",
                   base::StrCat("operation ", type, " is not implemented"));
  }
  if (!store::IsFhirResourceType(type)) {
    return Outcome(req, 404, "not-supported",
                   base::StrCat("unknown resource type (not a FHIR R4 resource)"));
  }
  return std::nullopt;
}

enum class Prefer { kRepresentation, kMinimal, kOutcome };

Prefer ParsePrefer(const HttpRequest& req) {
  std::string p = req.Header("prefer");
  if (p.find("return=minimal") != std::string::npos) return Prefer::kMinimal;
  if (p.find("return=OperationOutcome") != std::string::npos) return Prefer::kOutcome;
  return Prefer::kRepresentation;
}

// If-Match: W/"n" (or "n"). 0 when absent; -1 when malformed.
int64_t IfMatch(const HttpRequest& req) {
  std::string m = req.Header("if-match");
  if (m.empty()) return 0;
  std::string_view s = m;
  if (s.substr(0, 2) == "W/") s.remove_prefix(2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  int64_t v = 0;
  if (!base::ParseInt(s, &v) || v <= 0) return -1;
  return v;
}

// Conditional read (FHIR R4 http.html#cread, RFC 7232): 304 Not Modified, without a body but
// with ETag and Last-Modified, when If-None-Match names the version's ETag (W/"n" or "n", one
// of a comma-separated list, or *), or, without If-None-Match, when If-Modified-Since (an HTTP
// date) is not earlier than lastUpdated (compared at whole seconds, the precision of HTTP
// dates). A malformed If-Modified-Since is ignored, as RFC 7232 3.3 says.
std::optional<HttpResponse> NotModified(const HttpRequest& req, const store::FhirVersion& v) {
  bool not_modified = false;
  if (std::string inm = req.Header("if-none-match"); !inm.empty()) {
    for (std::string_view tag : base::Split(inm, ',')) {
      while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
      while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
      if (tag == "*") {
        not_modified = true;
        break;
      }
      if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);  // weak comparison
      if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') {
        tag = tag.substr(1, tag.size() - 2);
      }
      int64_t n = 0;
      if (base::ParseInt(tag, &n) && n == v.version_id) {
        not_modified = true;
        break;
      }
    }
  } else if (std::string ims = req.Header("if-modified-since"); !ims.empty()) {
    absl::Time since;
    std::string err;
    if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", ims, absl::UTCTimeZone(), &since, &err)) {
      not_modified = v.last_updated_micros / 1000000 <= absl::ToUnixSeconds(since);
    }
  }
  if (!not_modified) return std::nullopt;
  HttpResponse r{304, kFhirJson, "", {}};
  r.headers.emplace_back("ETag", ETag(v.version_id));
  r.headers.emplace_back("Last-Modified", HttpDate(v.last_updated_micros));
  return r;
}

// If-Match into `o`; 400 when it is not a version ETag.
std::optional<HttpResponse> TakeIfMatch(const HttpRequest& req, store::FhirWriteOptions& o) {
  o.if_match_version = IfMatch(req);
  if (o.if_match_version >= 0) return std::nullopt;
  return Outcome(req, 400, "invalid", "If-Match must be a version ETag: W/\"n\"");
}

// The response to a write (or a read): headers ETag, Last-Modified, Location when asked.
HttpResponse VersionResponse(const HttpRequest& req, int status, const store::FhirVersion& v,
                             bool location, Prefer prefer) {
  HttpResponse r;
  switch (prefer) {
    case Prefer::kMinimal: r = HttpResponse{status, kFhirJson, "", {}}; break;
    case Prefer::kOutcome:
      r = Fhir(req, status, OutcomeJson("information", "informational",
                                        base::StrCat(v.type, " version ", v.version_id, " stored")));
      break;
    case Prefer::kRepresentation: r = Fhir(req, status, v.json); break;
  }
  r.headers.emplace_back("ETag", ETag(v.version_id));
  r.headers.emplace_back("Last-Modified", HttpDate(v.last_updated_micros));
  if (location) {
    r.headers.emplace_back("Location", base::StrCat(BaseUrl(req), "/", v.type, "/", v.id,
                                                    "/_history/", v.version_id));
  }
  return r;
}

HttpResponse Gone(const HttpRequest& req, const store::FhirVersion& v) {
  HttpResponse r = Outcome(req, 410, "deleted", base::StrCat("this ", v.type, " was deleted"));
  r.headers.emplace_back("ETag", ETag(v.version_id));
  return r;
}

// Percent-encodes a query string key or value.
std::string QueryEscape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == ',') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// The search part of a conditional URL (PUT/DELETE /fhir/{type}?...): the request's parameters
// without _format and _pretty, encoded again.
std::string ConditionQuery(const HttpRequest& req) {
  std::string q;
  for (const auto& [k, v] : req.query) {
    if (k == "_format" || k == "_pretty") continue;
    base::StrAppend(&q, q.empty() ? "" : "&", QueryEscape(k), "=", QueryEscape(v));
  }
  return q;
}

// The resource with _summary/_elements applied (the stored JSON when not asked).
std::string Shaped(const Shape& shape, const std::string& json) {
  if (!shape.active() || json.empty()) return json;
  absl::StatusOr<std::string> s = ApplyShape(shape, json);
  return s.ok() ? *std::move(s) : json;
}

// Query string for a link: the request's parameters with `replace` set (empty value: removed).
std::string LinkUrl(const HttpRequest& req, const std::string& path,
                    std::vector<std::pair<std::string, std::string>> replace) {
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& [k, v] : req.query) {
    bool replaced = false;
    for (const auto& [rk, rv] : replace) replaced |= rk == k;
    if (!replaced) params.emplace_back(k, v);
  }
  for (auto& kv : replace) {
    if (!kv.second.empty()) params.push_back(std::move(kv));
  }
  auto escape = [](const std::string& s) { return QueryEscape(s); };
  std::string url = base::StrCat(BaseUrl(req), path);
  for (size_t i = 0; i < params.size(); ++i) {
    base::StrAppend(&url, i == 0 ? "?" : "&", escape(params[i].first), "=",
                    escape(params[i].second));
  }
  return url;
}

// One searchset entry with search.mode "match": fullUrl, the stored resource as written.
void WriteMatchEntry(JsonWriter& w, const std::string& base_url, const store::FhirVersion& v) {
  w.StartObject();
  w.Key("fullUrl");
  Str(w, base::StrCat(base_url, "/", v.type, "/", v.id));
  w.Key("resource");
  w.RawValue(v.json.data(), v.json.size(), rapidjson::kObjectType);
  w.Key("search");
  w.StartObject();
  w.Key("mode");
  w.String("match");
  w.EndObject();
  w.EndObject();
}

void WriteLinks(JsonWriter& w, const std::string& self, const std::string& next) {
  w.Key("link");
  w.StartArray();
  w.StartObject();
  w.Key("relation");
  w.String("self");
  w.Key("url");
  Str(w, self);
  w.EndObject();
  if (!next.empty()) {
    w.StartObject();
    w.Key("relation");
    w.String("next");
    w.Key("url");
    Str(w, next);
    w.EndObject();
  }
  w.EndArray();
}

// The path after /fhir, for links.
std::string SubPath(const HttpRequest& req) {
  return req.path.size() > 5 ? req.path.substr(5) : std::string();
}

bool ParseCount(const HttpRequest& req, int* count) {
  std::string c = req.Query("_count");
  if (c.empty()) {
    *count = kDefaultPageSize;
    return true;
  }
  int64_t n = 0;
  if (!base::ParseInt(c, &n) || n < 1) return false;
  *count = static_cast<int>(std::min<int64_t>(n, 1000));
  return true;
}

bool ParseSince(const std::string& s, int64_t* micros) {
  if (s.empty()) return true;
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, s, &t, &err) ||
      absl::ParseTime("%Y-%m-%dT%H:%M:%S%Ez", s, &t, &err) ||
      absl::ParseTime("%Y-%m-%d", s, absl::UTCTimeZone(), &t, &err)) {
    *micros = absl::ToUnixMicros(t);
    return *micros > 0;
  }
  return false;
}

HttpResponse NotAllowed(const HttpRequest& req, std::string_view allow) {
  HttpResponse r = Outcome(req, 405, "not-supported",
                           base::StrCat(req.method, " is not allowed on this URL (allowed: ", allow,
                                        ")"));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

HttpResponse NotImplemented(const HttpRequest& req, std::string_view what) {
  return Outcome(req, 501, "not-supported", what);
}

}  // namespace

FhirApi::FhirApi(store::FhirStore& store, const fhir_search::Searcher* search)
    : store_(store), search_(search) {
  if (search_ != nullptr) {
    matcher_ = [search](db::Connection& conn, std::string_view type,
                        std::string_view query) -> absl::StatusOr<std::vector<std::string>> {
      fhir_search::Params params;
      for (std::string_view pair : base::Split(query, '&')) {
        if (pair.empty()) continue;
        const size_t eq = pair.find('=');
        std::string k = net::UrlDecode(pair.substr(0, eq), true);
        std::string v = eq == std::string_view::npos ? std::string()
                                                     : net::UrlDecode(pair.substr(eq + 1), true);
        if (k == "_format" || k == "_pretty" || k == "_count" || k == "_sort" || k == "_total" ||
            k == "_cursor" || k == "_summary" || k == "_elements" || k.starts_with("_include") ||
            k.starts_with("_revinclude")) {
          continue;  // result parameters do not change what matches
        }
        if (v.empty()) {
          return absl::InvalidArgumentError(
              base::StrCat("the condition's parameter ", k, " has no value"));
        }
        params.emplace_back(std::move(k), std::move(v));
      }
      if (params.empty()) {
        return absl::InvalidArgumentError("the condition has no search parameters");
      }
      params.emplace_back("_count", "2");
      fhir_search::SearchOptions o;
      o.strict = true;  // an unknown parameter must not widen the match
      o.conn = &conn;
      ISTHMUS_ASSIGN_OR_RETURN(fhir_search::SearchResult r, search->Search(type, params, o));
      if (!r.issues.empty()) {
        return absl::InvalidArgumentError(base::StrCat("the condition: ", r.issues[0]));
      }
      std::vector<std::string> ids;
      for (const store::FhirVersion& v : r.matches) ids.push_back(v.id);
      return ids;
    };
  }
  patcher_ = [](std::string_view current, std::string_view content_type,
                std::string_view patch) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> out;
    if (content_type.find("json-patch+json") != std::string_view::npos) {
      out = ApplyJsonPatch(current, patch);
    } else if (content_type.find("fhir+json") != std::string_view::npos ||
               content_type.find("json+fhir") != std::string_view::npos) {
      out = ApplyFhirPathPatch(current, patch);  // a Parameters body (fhirpatch.html)
    } else {
      return absl::InvalidArgumentError(
          "a patch is JSON Patch (application/json-patch+json) or FHIRPath Patch (a Parameters "
          "resource, application/fhir+json)");
    }
    if (!out.ok() && out.status().code() == absl::StatusCode::kFailedPrecondition) {
      return store::WithHttpStatus(absl::InvalidArgumentError(out.status().message()), 422);
    }
    return out;
  };
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("CapabilityStatement");
  w.Key("status");
  w.String("active");
  w.Key("date");
  Str(w, store::FhirInstant(store.clock().NowMicros()));
  w.Key("publisher");
  w.String("Isthmus");
  w.Key("kind");
  w.String("instance");
  w.Key("software");
  w.StartObject();
  w.Key("name");
  w.String("Isthmus");
  w.Key("version");
  w.String("0.1.0");
  w.EndObject();
  w.Key("implementation");
  w.StartObject();
  w.Key("description");
  w.String("Isthmus built-in FHIR R4 server");
  w.EndObject();
  w.Key("fhirVersion");
  w.String("4.0.1");
  w.Key("format");
  w.StartArray();
  w.String("json");
  w.String("application/fhir+json");
  w.EndArray();
  w.Key("patchFormat");  // JSON Patch, and FHIRPath Patch (a Parameters resource)
  w.StartArray();
  w.String("application/json-patch+json");
  w.String("application/fhir+json");
  w.EndArray();
  w.Key("rest");
  w.StartArray();
  w.StartObject();
  w.Key("mode");
  w.String("server");
  w.Key("documentation");
  if (search_ != nullptr) {
    w.String(
        "Read, vread, create, update (and update-as-create), delete, history, "
        "transaction/batch Bundles and search (GET and POST _search) by the listed R4 search "
        "parameters: string (:exact, :contains), token (:not, :text), date, number and "
        "quantity (prefixes eq ne gt lt ge le sa eb ap), reference (:Type, chained one or two "
        "levels, _has), uri (:below, :above), :missing; _count, _sort, _total, "
        "_summary (true, text, data, count), _elements, _include and _revinclude (with "
        ":iterate), composite parameters, :of-type on identifiers, previous/next/last links. "
        "_text (the narrative) and _content (every string value) match whole words. Other "
        "special parameters are not supported. Conditional read "
        "(If-None-Match, If-Modified-Since: 304), conditional create (If-None-Exist), update, "
        "patch and delete (one match; several are 412) and conditional references in "
        "transactions; JSON Patch (application/json-patch+json, also as Binary in transactions) "
        "and FHIRPath Patch (a Parameters resource, application/fhir+json, also in "
        "transactions); Patient/{id}/$everything (start, end, _since, _type, _count). Every write is "
        "checked against the R4 StructureDefinitions (types, cardinality, required bindings, "
        "primitive formats, reference targets); $validate (mode create, update, delete, "
        "profile) reports the same plus the R4 invariants and profiles (meta.profile, profile=).");
  } else {
    w.String(
        "Read, vread, create, update (and update-as-create), delete, history, "
        "transaction/batch Bundles, JSON Patch (application/json-patch+json) and FHIRPath "
        "Patch (Parameters, application/fhir+json), conditional read (If-None-Match, "
        "If-Modified-Since). Search supports _id (and _count) only; no other conditional "
        "operations. Writes are checked against the R4 StructureDefinitions; $validate.");
  }
  w.Key("resource");
  w.StartArray();
  for (std::string_view type : store::FhirResourceTypes()) {
    w.StartObject();
    w.Key("type");
    Str(w, type);
    w.Key("interaction");
    w.StartArray();
    for (const char* code : {"read", "vread", "update", "patch", "delete", "history-instance",
                             "history-type", "create", "search-type"}) {
      w.StartObject();
      w.Key("code");
      w.String(code);
      w.EndObject();
    }
    w.EndArray();
    w.Key("versioning");
    w.String("versioned");
    w.Key("readHistory");
    w.Bool(true);
    w.Key("updateCreate");
    w.Bool(true);
    w.Key("conditionalCreate");
    w.Bool(search_ != nullptr);
    w.Key("conditionalRead");
    w.String("full-support");  // If-None-Match and If-Modified-Since on read and vread
    w.Key("conditionalUpdate");
    w.Bool(search_ != nullptr);
    w.Key("conditionalDelete");
    w.String(search_ != nullptr ? "single" : "not-supported");
    if (search_ != nullptr) {
      w.Key("referencePolicy");
      w.StartArray();
      w.String("literal");
      w.String("logical");  // conditional references in transactions (resolved to literal)
      w.EndArray();
    }
    w.Key("operation");
    w.StartArray();
    w.StartObject();
    w.Key("name");
    w.String("validate");
    w.Key("definition");
    w.String("http://hl7.org/fhir/OperationDefinition/Resource-validate");
    w.EndObject();
    if (search_ != nullptr && type == "Patient") {
      w.StartObject();
      w.Key("name");
      w.String("everything");
      w.Key("definition");
      w.String("http://hl7.org/fhir/OperationDefinition/Patient-everything");
      w.EndObject();
    }
    w.EndArray();
    if (search_ != nullptr) {
      std::vector<const fhir_search::SearchParam*> params = search_->registry().Supported(type);
      w.Key("searchInclude");
      w.StartArray();
      w.String("*");
      for (const fhir_search::SearchParam* p : params) {
        if (p->type == fhir_search::ParamType::kReference) {
          Str(w, base::StrCat(type, ":", p->code));
        }
      }
      w.EndArray();
      w.Key("searchParam");
      w.StartArray();
      for (const fhir_search::SearchParam* p : params) {
        w.StartObject();
        w.Key("name");
        Str(w, p->code);
        w.Key("definition");
        Str(w, p->url);
        w.Key("type");
        Str(w, fhir_search::ParamTypeName(p->type));
        w.EndObject();
      }
      w.EndArray();
    } else {
      w.Key("searchParam");
      w.StartArray();
      w.StartObject();
      w.Key("name");
      w.String("_id");
      w.Key("definition");
      w.String("http://hl7.org/fhir/SearchParameter/Resource-id");
      w.Key("type");
      w.String("token");
      w.EndObject();
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("interaction");
  w.StartArray();
  for (const char* code : {"transaction", "batch", "history-system"}) {
    w.StartObject();
    w.Key("code");
    w.String(code);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  capability_.assign(buf.GetString(), buf.GetSize());
}

HttpResponse FhirApi::Metadata(const HttpRequest& req) const {
  if (auto bad = CheckFormat(req, false)) return *bad;
  return Fhir(req, 200, capability_);
}

HttpResponse FhirApi::Transaction(const HttpRequest& req) const {
  if (auto bad = CheckFormat(req, true)) return *bad;
  store::FhirTransactionOptions o;
  // Response entries carry their resources only when asked (Prefer: return=representation).
  o.return_resources = req.Header("prefer").find("return=representation") != std::string::npos;
  o.matcher = matcher_ ? &matcher_ : nullptr;
  o.patcher = &patcher_;
  absl::StatusOr<store::FhirTransactionResult> r = store_.Transaction(req.body, o);
  if (!r.ok()) return FromStatus(req, r.status());
  return Fhir(req, 200, std::move(r->response_json));
}

HttpResponse FhirApi::History(const HttpRequest& req, std::string type, std::string id) const {
  if (auto bad = CheckFormat(req, false)) return *bad;
  store::FhirHistoryQuery q;
  q.type = std::move(type);
  q.id = std::move(id);
  for (const auto& [k, v] : req.query) {
    if (k != "_since" && k != "_count" && k != "_cursor" && k != "_format" && k != "_pretty") {
      return NotImplemented(req, base::StrCat("history parameter ", k, " is not implemented"));
    }
  }
  if (!ParseCount(req, &q.count)) return Outcome(req, 400, "invalid", "_count must be >= 1");
  if (!ParseSince(req.Query("_since"), &q.since_micros)) {
    return Outcome(req, 400, "invalid", "_since must be a FHIR instant (2024-01-15T10:30:00Z)");
  }
  if (std::string c = req.Query("_cursor"); !c.empty()) {
    if (!base::ParseInt(c, &q.before_seq) || q.before_seq <= 0) {
      return Outcome(req, 400, "invalid", "_cursor is not a paging position of this server");
    }
  }
  absl::StatusOr<store::FhirHistoryPage> page = store_.History(q);
  if (!page.ok()) return FromStatus(req, page.status());
  const std::string base_url = BaseUrl(req);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("type");
  w.String("history");
  WriteLinks(w, LinkUrl(req, SubPath(req), {}),
             page->next_before_seq == 0
                 ? std::string()
                 : LinkUrl(req, SubPath(req),
                           {{"_cursor", base::StrCat(page->next_before_seq)}}));
  w.Key("entry");
  w.StartArray();
  for (const store::FhirVersion& v : page->versions) {
    w.StartObject();
    w.Key("fullUrl");
    Str(w, base::StrCat(base_url, "/", v.type, "/", v.id));
    if (!v.deleted) {
      w.Key("resource");
      w.RawValue(v.json.data(), v.json.size(), rapidjson::kObjectType);
    }
    w.Key("request");
    w.StartObject();
    w.Key("method");
    Str(w, v.method);
    w.Key("url");
    Str(w, v.method == "POST" ? v.type : base::StrCat(v.type, "/", v.id));
    w.EndObject();
    w.Key("response");
    w.StartObject();
    w.Key("status");
    Str(w, v.deleted ? "204 No Content" : v.version_id == 1 || v.method == "POST"
                                              ? "201 Created"
                                              : "200 OK");
    w.Key("etag");
    Str(w, ETag(v.version_id));
    w.Key("lastModified");
    Str(w, store::FhirInstant(v.last_updated_micros));
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return Fhir(req, 200, std::string(buf.GetString(), buf.GetSize()));
}

HttpResponse FhirApi::SystemHistory(const HttpRequest& req) const { return History(req, "", ""); }

HttpResponse FhirApi::TypeHistory(const HttpRequest& req) const {
  std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  return History(req, type, "");
}

HttpResponse FhirApi::InstanceHistory(const HttpRequest& req) const {
  std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  return History(req, type, req.PathParam("id"));
}

HttpResponse FhirApi::Search(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, false)) return *bad;
  if (search_ == nullptr) return IdSearch(req, type);
  return ParamSearch(req, type, req.query);
}

HttpResponse FhirApi::SearchPost(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, false)) return *bad;
  if (search_ == nullptr) return NotImplemented(req, "search is not implemented yet (only GET with _id)");
  std::string ct = req.Header("content-type");
  if (!ct.empty() && ct.find("application/x-www-form-urlencoded") == std::string::npos) {
    return Outcome(req, 415, "not-supported",
                   "POST _search takes an application/x-www-form-urlencoded body");
  }
  fhir_search::Params params = req.query;
  for (std::string_view pair : base::Split(req.body, '&')) {
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view k = pair.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    params.emplace_back(net::UrlDecode(k, true), net::UrlDecode(v, true));
  }
  return ParamSearch(req, type, params);
}

HttpResponse FhirApi::ParamSearch(const HttpRequest& req, const std::string& type,
                                  const fhir_search::Params& params) const {
  fhir_search::SearchOptions o;
  o.strict = req.Header("prefer").find("handling=strict") != std::string::npos;
  o.default_count = kDefaultPageSize;
  // _summary (but count) and _elements shape the entries here; search does not see them.
  absl::StatusOr<Shape> shape = ParseShape(params);
  if (!shape.ok()) return FromStatus(req, shape.status());
  fhir_search::Params search_params;
  for (const auto& kv : params) {
    if (kv.first == "_elements" || (kv.first == "_summary" && kv.second != "count")) continue;
    search_params.push_back(kv);
  }
  absl::StatusOr<fhir_search::SearchResult> r = search_->Search(type, search_params, o);
  if (!r.ok()) return FromStatus(req, r.status());
  // Links are GET URLs of /fhir/{type} with the parameters (POST _search included).
  HttpRequest link_req = req;
  link_req.path = base::StrCat("/fhir/", type);
  link_req.query = params;
  const std::string base_url = BaseUrl(req);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("type");
  w.String("searchset");
  if (r->total) {
    w.Key("total");
    w.Int64(*r->total);
  }
  // self, first, previous, next, last: keyset cursors (search.h), stable under writes.
  w.Key("link");
  w.StartArray();
  const std::string no_cursor;
  for (const auto& [relation, cursor] :
       {std::pair<const char*, const std::string*>{"self", nullptr}, {"first", &no_cursor},
        {"previous", &r->previous_cursor}, {"next", &r->next_cursor}, {"last", &r->last_cursor}}) {
    if (cursor != nullptr && cursor != &no_cursor && cursor->empty()) continue;
    w.StartObject();
    w.Key("relation");
    w.String(relation);
    w.Key("url");
    if (cursor == nullptr) {  // self: the request's own parameters, its _cursor included
      Str(w, LinkUrl(link_req, SubPath(link_req), {}));
    } else {
      Str(w, LinkUrl(link_req, SubPath(link_req), {{"_cursor", *cursor}}));
    }
    w.EndObject();
  }
  w.EndArray();
  if (!r->count_only || !r->issues.empty()) {
    w.Key("entry");
    w.StartArray();
    auto entry = [&](const store::FhirVersion& v, const char* mode) {
      w.StartObject();
      w.Key("fullUrl");
      Str(w, base::StrCat(base_url, "/", v.type, "/", v.id));
      w.Key("resource");
      const std::string json = Shaped(*shape, v.json);
      w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
      w.Key("search");
      w.StartObject();
      w.Key("mode");
      w.String(mode);
      w.EndObject();
      w.EndObject();
    };
    if (!r->count_only) {
      for (const store::FhirVersion& v : r->matches) entry(v, "match");
      for (const store::FhirVersion& v : r->included) entry(v, "include");
    }
    if (!r->issues.empty()) {
      w.StartObject();
      w.Key("resource");
      w.StartObject();
      w.Key("resourceType");
      w.String("OperationOutcome");
      w.Key("issue");
      w.StartArray();
      for (const std::string& issue : r->issues) {
        w.StartObject();
        w.Key("severity");
        w.String("warning");
        w.Key("code");
        w.String("not-supported");
        w.Key("diagnostics");
        Str(w, issue);
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
      w.Key("search");
      w.StartObject();
      w.Key("mode");
      w.String("outcome");
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  return Fhir(req, 200, std::string(buf.GetString(), buf.GetSize()));
}

HttpResponse FhirApi::IdSearch(const HttpRequest& req, const std::string& type) const {
  for (const auto& [k, v] : req.query) {
    if (k != "_id" && k != "_count" && k != "_cursor" && k != "_format" && k != "_pretty") {
      return NotImplemented(req, "search is not implemented yet (only _id and _count)");
    }
  }
  int count = 0;
  if (!ParseCount(req, &count)) return Outcome(req, 400, "invalid", "_count must be >= 1");
  std::vector<store::FhirVersion> found;
  std::string next;
  if (std::string ids = req.Query("_id"); !ids.empty()) {
    for (std::string_view id : base::Split(ids, ',')) {
      if (!store::IsValidFhirId(id)) continue;  // matches nothing
      absl::StatusOr<store::FhirVersion> v = store_.Read(type, id);
      if (v.ok() && !v->deleted) {
        found.push_back(*std::move(v));
      } else if (!v.ok() && v.status().code() != absl::StatusCode::kNotFound) {
        return FromStatus(req, v.status());
      }
    }
  } else {
    absl::StatusOr<std::vector<store::FhirVersion>> page =
        store_.List(type, req.Query("_cursor"), count + 1);
    if (!page.ok()) return FromStatus(req, page.status());
    found = *std::move(page);
    if (static_cast<int>(found.size()) > count) {
      found.resize(count);
      next = LinkUrl(req, SubPath(req), {{"_cursor", found.back().id}});
    }
  }
  const std::string base_url = BaseUrl(req);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("type");
  w.String("searchset");
  if (next.empty() && req.Query("_cursor").empty()) {
    w.Key("total");
    w.Uint64(found.size());
  }
  WriteLinks(w, LinkUrl(req, SubPath(req), {}), next);
  w.Key("entry");
  w.StartArray();
  for (const store::FhirVersion& v : found) {
    WriteMatchEntry(w, base_url, v);
  }
  w.EndArray();
  w.EndObject();
  return Fhir(req, 200, std::string(buf.GetString(), buf.GetSize()));
}

HttpResponse FhirApi::Create(const HttpRequest& req) const {
  std::promise<HttpResponse> promise;
  std::future<HttpResponse> answered = promise.get_future();
  CreateAsync(req, [&promise](HttpResponse r) mutable { promise.set_value(std::move(r)); });
  return answered.get();
}

void FhirApi::CreateAsync(const HttpRequest& req, net::HttpResponder respond) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return std::move(respond)(*std::move(bad));
  if (auto bad = CheckFormat(req, true)) return std::move(respond)(*std::move(bad));
  store::FhirWriteOptions o;
  if (std::string cond = req.Header("if-none-exist"); !cond.empty()) {
    // If-None-Exist: "identifier=a|b" (also accepted: "Patient?identifier=a|b", "?...").
    if (size_t q = cond.find('?'); q != std::string::npos) cond.erase(0, q + 1);
    if (!matcher_) {
      return std::move(respond)(
          NotImplemented(req, "conditional create (If-None-Exist) needs search"));
    }
    o.if_none_exist = std::move(cond);
    o.matcher = &matcher_;
  }
  // Answered from the writer's commit callback: no pool thread waits for the fsync, so every
  // create in flight can share one commit. `req` lives until `respond` is called.
  store_.CreateAsync(type, req.body, std::move(o),
                     [&req, respond = std::move(respond)](
                         absl::StatusOr<store::FhirWriteResult> w) mutable {
                       std::move(respond)(
                           !w.ok()       ? FromStatus(req, w.status())
                           : w->existing ? VersionResponse(req, 200, w->version, false,
                                                           ParsePrefer(req))
                                         : VersionResponse(req, 201, w->version, true,
                                                           ParsePrefer(req)));
                     });
}

HttpResponse FhirApi::Read(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  const std::string id = req.PathParam("id");
  if (auto bad = CheckType(req, type)) return *bad;
  if (!id.empty() && id[0] == '$') {
    return NotImplemented(req, base::StrCat("operation ", id, " is not implemented"));
  }
  if (auto bad = CheckFormat(req, false)) return *bad;
  absl::StatusOr<Shape> shape = ParseShape(req.query);
  if (!shape.ok()) return FromStatus(req, shape.status());
  absl::StatusOr<store::FhirVersion> v = store_.Read(type, id);
  if (!v.ok()) return FromStatus(req, v.status());
  if (v->deleted) return Gone(req, *v);
  if (auto not_modified = NotModified(req, *v)) return *not_modified;
  v->json = Shaped(*shape, v->json);
  return VersionResponse(req, 200, *v, false, Prefer::kRepresentation);
}

HttpResponse FhirApi::VRead(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, false)) return *bad;
  int64_t vid = 0;
  if (!base::ParseInt(req.PathParam("vid"), &vid) || vid <= 0) {
    return Outcome(req, 404, "not-found", "no such version");
  }
  absl::StatusOr<Shape> shape = ParseShape(req.query);
  if (!shape.ok()) return FromStatus(req, shape.status());
  absl::StatusOr<store::FhirVersion> v = store_.VRead(type, req.PathParam("id"), vid);
  if (!v.ok()) return FromStatus(req, v.status());
  if (v->deleted) return Gone(req, *v);
  if (auto not_modified = NotModified(req, *v)) return *not_modified;
  v->json = Shaped(*shape, v->json);
  return VersionResponse(req, 200, *v, false, Prefer::kRepresentation);
}

HttpResponse FhirApi::Update(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, true)) return *bad;
  store::FhirWriteOptions o;
  if (auto bad = TakeIfMatch(req, o)) return *bad;
  absl::StatusOr<store::FhirWriteResult> w = store_.Update(type, req.PathParam("id"), req.body, o);
  if (!w.ok()) return FromStatus(req, w.status());
  return VersionResponse(req, w->created ? 201 : 200, w->version, true, ParsePrefer(req));
}

HttpResponse FhirApi::Delete(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, false)) return *bad;
  store::FhirWriteOptions o;
  if (auto bad = TakeIfMatch(req, o)) return *bad;
  absl::StatusOr<store::FhirWriteResult> w = store_.Delete(type, req.PathParam("id"), o);
  if (!w.ok()) return FromStatus(req, w.status());
  HttpResponse r = ParsePrefer(req) == Prefer::kMinimal
                       ? HttpResponse{204, kFhirJson, "", {}}
                       : Fhir(req, 200, OutcomeJson("information", "informational",
                                                    w->version.version_id > 0
                                                        ? "deleted"
                                                        : "nothing to delete"));
  if (w->version.version_id > 0) r.headers.emplace_back("ETag", ETag(w->version.version_id));
  return r;
}

std::optional<HttpResponse> FhirApi::ConditionalChecks(const HttpRequest& req,
                                                       std::string_view interaction,
                                                       bool with_body, Conditional& c) const {
  c.type = req.PathParam("type");
  if (auto bad = CheckType(req, c.type)) return bad;
  if (auto bad = CheckFormat(req, with_body)) return bad;
  c.query = ConditionQuery(req);
  if (c.query.empty()) {
    return Outcome(req, 400, "invalid",
                   base::StrCat(req.method, " needs an id (/{type}/{id}) or search parameters "
                                            "(conditional ", interaction, ")"));
  }
  if (!matcher_) return NotImplemented(req, base::StrCat("conditional ", interaction,
                                                         " needs search"));
  if (auto bad = TakeIfMatch(req, c.o)) return bad;
  c.o.matcher = &matcher_;
  return std::nullopt;
}

HttpResponse FhirApi::ConditionalUpdate(const HttpRequest& req) const {
  Conditional c;
  if (auto bad = ConditionalChecks(req, "update", true, c)) return *bad;
  absl::StatusOr<store::FhirWriteResult> w =
      store_.ConditionalUpdate(c.type, c.query, req.body, c.o);
  if (!w.ok()) return FromStatus(req, w.status());
  return VersionResponse(req, w->created ? 201 : 200, w->version, true, ParsePrefer(req));
}

HttpResponse FhirApi::ConditionalDelete(const HttpRequest& req) const {
  Conditional c;
  if (auto bad = ConditionalChecks(req, "delete", false, c)) return *bad;
  absl::StatusOr<store::FhirWriteResult> w = store_.ConditionalDelete(c.type, c.query, c.o);
  if (!w.ok()) return FromStatus(req, w.status());
  HttpResponse r = ParsePrefer(req) == Prefer::kMinimal
                       ? HttpResponse{204, kFhirJson, "", {}}
                       : Fhir(req, 200, OutcomeJson("information", "informational",
                                                    w->version.version_id > 0
                                                        ? "deleted"
                                                        : "nothing matched: nothing to delete"));
  if (w->version.version_id > 0) r.headers.emplace_back("ETag", ETag(w->version.version_id));
  return r;
}

namespace {

// The patch's media type: JSON Patch, or FHIRPath Patch (a Parameters resource sent as
// application/fhir+json). 415 for anything else, 400 for a FHIR body that is not Parameters.
std::optional<HttpResponse> CheckPatchBody(const HttpRequest& req, const std::string& ct) {
  if (ct.find("application/json-patch+json") != std::string::npos) return std::nullopt;
  if (ct.find("fhir+json") != std::string::npos || ct.find("json+fhir") != std::string::npos) {
    if (IsParametersBody(req.body)) return std::nullopt;
    return Outcome(req, 400, "invalid",
                   "a FHIRPath Patch (Content-Type: application/fhir+json) is a Parameters "
                   "resource");
  }
  return Outcome(req, 415, "not-supported",
                 "PATCH takes a JSON Patch (Content-Type: application/json-patch+json) or a "
                 "FHIRPath Patch (a Parameters resource, Content-Type: application/fhir+json)");
}

}  // namespace

HttpResponse FhirApi::Patch(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, false)) return *bad;
  const std::string ct = req.Header("content-type");
  if (auto bad = CheckPatchBody(req, ct)) return *bad;
  store::FhirWriteOptions o;
  if (auto bad = TakeIfMatch(req, o)) return *bad;
  absl::StatusOr<store::FhirWriteResult> w =
      store_.Patch(type, req.PathParam("id"), ct, req.body, patcher_, o);
  if (!w.ok()) return FromStatus(req, w.status());
  return VersionResponse(req, 200, w->version, true, ParsePrefer(req));
}

HttpResponse FhirApi::ConditionalPatch(const HttpRequest& req) const {
  Conditional c;
  if (auto bad = ConditionalChecks(req, "patch", false, c)) return *bad;
  const std::string ct = req.Header("content-type");
  if (auto bad = CheckPatchBody(req, ct)) return *bad;
  absl::StatusOr<store::FhirWriteResult> w =
      store_.ConditionalPatch(c.type, c.query, ct, req.body, patcher_, c.o);
  if (!w.ok()) return FromStatus(req, w.status());
  return VersionResponse(req, 200, w->version, true, ParsePrefer(req));
}

HttpResponse FhirApi::TypeOperation(const HttpRequest& req) const {
  // POST /fhir/{type}/{id}: only operations ($validate) take POST at this level.
  const std::string op = req.PathParam("id");
  if (op == "$validate") return Validate(req);
  if (!op.empty() && op[0] == '$') {
    return NotImplemented(req, base::StrCat("operation ", op, " is not implemented"));
  }
  return NotAllowed(req, "GET, PUT, DELETE, PATCH");
}

HttpResponse FhirApi::InstanceOperation(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  const std::string op = req.PathParam("op");
  if (op.empty() || op[0] != '$') {
    return Outcome(req, 404, "not-found", "no FHIR interaction at this URL");
  }
  if (auto bad = CheckType(req, type)) return *bad;
  if (type == "Patient" && op == "$everything") return Everything(req);
  if (op == "$validate") return Validate(req);
  return NotImplemented(req, base::StrCat("operation ", op, " is not implemented"));
}

HttpResponse FhirApi::Validate(const HttpRequest& req) const {
  const std::string type = req.PathParam("type");
  const std::string id = req.PathParam("op").empty() ? "" : req.PathParam("id");
  if (auto bad = CheckType(req, type)) return *bad;
  if (auto bad = CheckFormat(req, req.method == "POST")) return *bad;
  // The body: the resource, or a Parameters resource with the parameters resource, mode and
  // profile (http://hl7.org/fhir/R4/resource-operation-validate.html). Query parameters `mode`
  // and `profile` work too.
  rapidjson::Document doc;
  const rapidjson::Value* res = nullptr;
  std::string mode = req.Query("mode");
  std::vector<std::string> profiles;  // $validate?profile= and the Parameters' profile
  if (!req.Query("profile").empty()) profiles.push_back(req.Query("profile"));
  if (req.method == "POST" && !req.body.empty()) {
    std::string error;
    if (!fhir::ParseFhirJsonKeepingNumbers(req.body, doc, &error)) {
      return Outcome(req, 400, "invalid", base::StrCat("the body is not valid JSON: ", error));
    }
    res = &doc;
    if (doc.IsObject() && doc.HasMember("resourceType") && doc["resourceType"].IsString() &&
        internal::Str(doc["resourceType"]) == "Parameters" && type != "Parameters") {
      res = nullptr;
      if (doc.HasMember("parameter") && doc["parameter"].IsArray()) {
        for (const rapidjson::Value& p : doc["parameter"].GetArray()) {
          if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString()) continue;
          const std::string_view name = internal::Str(p["name"]);
          if (name == "resource" && p.HasMember("resource")) {
            res = &p["resource"];
          } else if (name == "mode" && p.HasMember("valueCode") && p["valueCode"].IsString() &&
                     mode.empty()) {
            mode = std::string(internal::Str(p["valueCode"]));
          } else if (name == "profile") {
            for (const char* k : {"valueUri", "valueCanonical"}) {
              if (p.HasMember(k) && p[k].IsString()) profiles.emplace_back(internal::Str(p[k]));
            }
          }
        }
      }
      if (res == nullptr && mode != "delete") {
        return Outcome(req, 400, "required", "the Parameters body has no parameter \"resource\"");
      }
    }
  }
  if (mode == "profile" && profiles.empty()) {
    return Outcome(req, 400, "required", "$validate mode=profile needs a profile");
  }
  if (!mode.empty() && mode != "create" && mode != "update" && mode != "delete" &&
      mode != "profile") {
    return Outcome(req, 400, "invalid", "$validate mode must be create, update, delete or profile");
  }
  if ((mode == "update" || mode == "delete") && id.empty()) {
    return Outcome(req, 400, "required",
                   base::StrCat("$validate mode=", mode, " names the resource: /", type,
                                "/{id}/$validate"));
  }
  if (mode == "delete") {
    // The content is ignored; deletion is allowed when the server would allow it. This server
    // checks no referential integrity: a DELETE always succeeds (of nothing, when the resource
    // is not there).
    absl::StatusOr<store::FhirVersion> v = store_.Read(type, id);
    if (!v.ok() && v.status().code() != absl::StatusCode::kNotFound) {
      return FromStatus(req, v.status());
    }
    const bool live = v.ok() && !v->deleted;
    return Fhir(req, 200,
                OutcomeJson("information", "informational",
                            live ? base::StrCat("this ", type,
                                                " can be deleted (deletions are not restricted)")
                                 : base::StrCat("there is no current ", type,
                                                " with this id: deleting it changes nothing")));
  }
  if (res == nullptr) {
    if (req.method == "POST" || id.empty()) {
      return Outcome(req, 400, "required", "$validate needs a resource: POST it as the body");
    }
    // GET /{type}/{id}/$validate: the stored current version.
    absl::StatusOr<store::FhirVersion> v = store_.Read(type, id);
    if (!v.ok()) return FromStatus(req, v.status());
    if (v->deleted) return Gone(req, *v);
    std::string error;
    if (!fhir::ParseFhirJsonKeepingNumbers(v->json, doc, &error)) {
      return Outcome(req, 500, "exception", "the stored resource does not parse");
    }
    res = &doc;
  }
  std::vector<fhir::ValidationIssue> issues = fhir::ValidateResource(*res);
  if (res->IsObject() && res->HasMember("resourceType") && (*res)["resourceType"].IsString() &&
      internal::Str((*res)["resourceType"]) != type) {
    issues.push_back({.severity = fhir::ValidationIssue::Severity::kError,
                      .code = "invalid",
                      .message = base::StrCat("the resource is not a ", type),
                      .expression = "resourceType"});
  }
  if (mode == "update" && res->IsObject()) {
    // As PUT /{type}/{id} requires: the body's id is the URL's.
    auto body_id = res->FindMember("id");
    if (body_id == res->MemberEnd() || !body_id->value.IsString()) {
      issues.push_back({.severity = fhir::ValidationIssue::Severity::kError,
                        .code = "required",
                        .message = "an update needs the resource's id in the body",
                        .expression = base::StrCat(type, ".id")});
    } else if (internal::Str(body_id->value) != id) {
      issues.push_back({.severity = fhir::ValidationIssue::Severity::kError,
                        .code = "invalid",
                        .message = "the resource's id is not the id in the URL",
                        .expression = base::StrCat(type, ".id")});
    }
  }
  // What needs FHIRPath (fhir_conformance): the R4 invariants, meta.profile, and the profiles
  // asked for (unknown ones are errors here, warnings in meta.profile). Numbers as numbers.
  rapidjson::Document plain;
  fhir_conformance::WithJsonNumbers(*res, plain);
  for (auto more : {fhir_conformance::CheckInvariants(plain),
                    fhir_conformance::CheckMetaProfiles(plain)}) {
    issues.insert(issues.end(), more.begin(), more.end());
  }
  for (const std::string& url : profiles) {
    auto more = fhir_conformance::CheckProfile(plain, url, fhir::ValidationIssue::Severity::kError);
    issues.insert(issues.end(), more.begin(), more.end());
  }
  // $validate answers 200 with the outcome whether or not the resource is valid.
  return Fhir(req, 200, fhir::ValidationOutcomeJson(issues));
}

namespace {

// $everything's start/end are FHIR dates: YYYY, YYYY-MM or YYYY-MM-DD. Returns the first day
// of the period the date names and the first day after it (2024-02: 2024-02-01, 2024-03-01);
// nullopt when malformed or not a real date.
std::optional<std::pair<absl::CivilDay, absl::CivilDay>> DatePeriod(std::string_view s) {
  if (s.size() != 4 && s.size() != 7 && s.size() != 10) return std::nullopt;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 4 || i == 7;
    if (dash ? s[i] != '-' : !std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  }
  int64_t y = 0, m = 1, d = 1;
  base::ParseInt(s.substr(0, 4), &y);
  if (s.size() >= 7) base::ParseInt(s.substr(5, 2), &m);
  if (s.size() == 10) base::ParseInt(s.substr(8, 2), &d);
  const absl::CivilDay first(y, m, d);
  if (first.month() != m || first.day() != d) return std::nullopt;  // 2024-02-30, 2024-13
  const absl::CivilDay after = s.size() == 4   ? absl::CivilDay(y + 1, 1, 1)
                               : s.size() == 7 ? absl::CivilDay(y, m + 1, 1)
                                               : first + 1;
  return std::make_pair(first, after);
}

std::string DayInstant(absl::CivilDay d) {
  return absl::FormatCivilTime(d) + "T00:00:00Z";
}

// The search parameter holding a type's care date, for $everything's start/end ("care dates,
// not record currency dates"): the type's `date` parameter (Observation.effective,
// Encounter.period, Procedure.performed, ...) unless it is a record date or absent, where
// another parameter says when care happened. Empty: the type has no care date, and start/end
// do not filter it.
std::string_view CareDateParam(std::string_view type) {
  static constexpr std::pair<std::string_view, std::string_view> kCareDate[] = {
      {"AllergyIntolerance", ""},  // `date` is recordedDate
      {"Condition", "onset-date"},
      {"DocumentReference", "period"},  // `date` is when the document was made
      {"Goal", "start-date"},
      {"MedicationAdministration", "effective-time"},
      {"MedicationRequest", "authoredon"},  // `date` is the dosage timing's events
      {"MedicationStatement", "effective"},
      {"ServiceRequest", "occurrence"},
  };
  for (const auto& [t, code] : kCareDate) {
    if (t == type) return code;
  }
  return "date";
}

}  // namespace

HttpResponse FhirApi::Everything(const HttpRequest& req) const {
  if (auto bad = CheckFormat(req, req.method == "POST" && !req.body.empty())) return *bad;
  // Parameters: the query string, and for POST a Parameters body (_since, _type, _count).
  fhir_search::Params params = req.query;
  if (req.method == "POST" && !req.body.empty()) {
    rapidjson::Document body;
    if (absl::Status st = internal::ParseJson(req.body, body, "the body"); !st.ok()) {
      return FromStatus(req, st);
    }
    if (!body.IsObject() || !body.HasMember("resourceType") ||
        internal::Str(body["resourceType"]) != "Parameters") {
      return Outcome(req, 400, "invalid", "the body of $everything must be a Parameters resource");
    }
    if (body.HasMember("parameter") && body["parameter"].IsArray()) {
      for (const auto& p : body["parameter"].GetArray()) {
        if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString()) continue;
        for (const auto& m : p.GetObject()) {
          std::string_view k = internal::Str(m.name);
          if (!k.starts_with("value") || !m.value.IsString()) continue;
          std::string_view v = internal::Str(m.value);
          if (internal::IsNumber(m.value)) v.remove_prefix(1);
          params.emplace_back(std::string(internal::Str(p["name"])), std::string(v));
        }
      }
    }
  }
  const std::string id = req.PathParam("id");
  absl::StatusOr<store::FhirVersion> patient = store_.Read("Patient", id);
  if (!patient.ok()) return FromStatus(req, patient.status());
  if (patient->deleted) return Gone(req, *patient);
  if (search_ == nullptr) return NotImplemented(req, "$everything needs search");
  int count = kDefaultPageSize;
  int64_t since = 0;
  std::string cursor;
  std::string start, end;  // care date conditions (ge.../lt... instants)
  std::set<std::string, std::less<>> types;  // _type; empty = all
  for (const auto& [k, v] : params) {
    if (k == "_count") {
      int64_t n = 0;
      if (!base::ParseInt(v, &n) || n < 1) return Outcome(req, 400, "invalid", "_count must be >= 1");
      count = static_cast<int>(std::min<int64_t>(n, 1000));
    } else if (k == "_since") {
      if (!ParseSince(v, &since)) {
        return Outcome(req, 400, "invalid", "_since must be a FHIR instant (2024-01-15T10:30:00Z)");
      }
    } else if (k == "_type") {
      for (std::string_view t : base::Split(v, ',')) {
        if (!store::IsFhirResourceType(t)) {
          return Outcome(req, 400, "invalid", "_type names a type that is not a FHIR R4 resource");
        }
        types.emplace(t);
      }
    } else if (k == "_cursor") {
      cursor = v;
    } else if (k == "start" || k == "end") {
      auto period = DatePeriod(v);
      if (!period) {
        return Outcome(req, 400, "invalid",
                       base::StrCat("$everything ", k, " must be a date (2024, 2024-03, 2024-03-05)"));
      }
      // The care date must overlap [start, end] at the dates' precision: end no earlier than
      // the first instant of start's period, begin before the first instant after end's.
      if (k == "start") {
        start = base::StrCat("ge", DayInstant(period->first));
      } else {
        end = base::StrCat("lt", DayInstant(period->second));
      }
    } else if (k != "_format" && k != "_pretty") {
      return Outcome(req, 400, "not-supported",
                     base::StrCat("$everything parameter ", k.substr(0, 64),
                                  " is not supported (start, end, _since, _type, _count are)"));
    }
  }
  // Every member of the compartment, as Type/id sorted: the patient, then every resource that
  // one of its type's compartment parameters points at Patient/{id} with.
  auto wanted = [&](std::string_view t) { return types.empty() || types.count(t) > 0; };
  auto recent = [&](const store::FhirVersion& v) { return v.last_updated_micros >= since; };
  std::set<std::pair<std::string, std::string>> members;
  if (wanted("Patient") && recent(*patient)) members.emplace("Patient", id);
  const std::string patient_ref = base::StrCat("Patient/", id);
  for (int i = 0; i < internal::kPatientCompartmentCount; ++i) {
    const internal::CompartmentMember& m = internal::kPatientCompartment[i];
    if (!wanted(m.type)) continue;
    // start/end: the type's care date overlaps [start, end] (date search on ranges: ge an
    // instant matches a range ending at or after it, lt one starting before it).
    fhir_search::Params care;
    if (!start.empty() || !end.empty()) {
      const std::string_view date_code = CareDateParam(m.type);
      const fhir_search::SearchParam* d =
          date_code.empty() ? nullptr : search_->registry().Find(m.type, date_code);
      if (d != nullptr && d->supported && d->type == fhir_search::ParamType::kDate) {
        if (!start.empty()) care.emplace_back(std::string(date_code), start);
        if (!end.empty()) care.emplace_back(std::string(date_code), end);
      }
    }
    for (std::string_view code : base::Split(m.params, ' ')) {
      const fhir_search::SearchParam* p = search_->registry().Find(m.type, code);
      if (p == nullptr || !p->supported || p->type != fhir_search::ParamType::kReference) continue;
      std::string page_cursor;
      do {
        fhir_search::Params q = {{std::string(code), patient_ref}, {"_count", "1000"}};
        q.insert(q.end(), care.begin(), care.end());
        if (!page_cursor.empty()) q.emplace_back("_cursor", page_cursor);
        fhir_search::SearchOptions so;
        so.strict = true;
        absl::StatusOr<fhir_search::SearchResult> r = search_->Search(m.type, q, so);
        if (!r.ok()) return FromStatus(req, r.status());
        for (const store::FhirVersion& v : r->matches) {
          if (recent(v)) members.emplace(v.type, v.id);
        }
        page_cursor = r->next_cursor;
      } while (!page_cursor.empty());
    }
  }
  // The page: the members after the cursor (Type/id), a keyset position like search's.
  std::pair<std::string, std::string> after;
  if (!cursor.empty()) {
    size_t slash = cursor.find('/');
    if (slash == std::string::npos) {
      return Outcome(req, 400, "invalid", "_cursor is not a paging position of this server");
    }
    after = {cursor.substr(0, slash), cursor.substr(slash + 1)};
  }
  auto it = cursor.empty() ? members.begin() : members.upper_bound(after);
  std::vector<store::FhirVersion> page;
  std::string next;
  for (; it != members.end(); ++it) {
    if (static_cast<int>(page.size()) == count) {
      const store::FhirVersion& last = page.back();
      next = LinkUrl(req, SubPath(req), {{"_cursor", base::StrCat(last.type, "/", last.id)}});
      break;
    }
    absl::StatusOr<store::FhirVersion> v = store_.Read(it->first, it->second);
    if (!v.ok() && v.status().code() != absl::StatusCode::kNotFound) {
      return FromStatus(req, v.status());
    }
    if (v.ok() && !v->deleted) page.push_back(*std::move(v));  // deleted meanwhile: skipped
  }
  const std::string base_url = BaseUrl(req);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("type");
  w.String("searchset");
  w.Key("total");
  w.Uint64(members.size());
  WriteLinks(w, LinkUrl(req, SubPath(req), {}), next);
  w.Key("entry");
  w.StartArray();
  for (const store::FhirVersion& v : page) {
    WriteMatchEntry(w, base_url, v);
  }
  w.EndArray();
  w.EndObject();
  return Fhir(req, 200, std::string(buf.GetString(), buf.GetSize()));
}

void FhirApi::Register(net::HttpServer& http) {
  using Handler = HttpResponse (FhirApi::*)(const HttpRequest&) const;
  auto bind = [this](Handler h) {
    return [this, h](const HttpRequest& r) { return (this->*h)(r); };
  };
  // Every method of a pattern is registered together, real handlers first (a HEAD is served
  // by the GET handler), so a method not implemented gets an OperationOutcome, not a bare 405.
  struct Route {
    std::string pattern;
    std::vector<std::pair<std::string, net::HttpHandler>> handlers;
    std::function<HttpResponse(const HttpRequest&)> otherwise;
    std::vector<std::pair<std::string, net::AsyncHttpHandler>> async_handlers = {};
  };
  const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "PATCH"};
  auto allow = [](std::string methods) {
    return [methods](const HttpRequest& r) { return NotAllowed(r, methods); };
  };
  std::vector<Route> routes;
  routes.push_back({"/fhir/metadata", {{"GET", bind(&FhirApi::Metadata)}}, allow("GET")});
  routes.push_back({"/fhir/_history", {{"GET", bind(&FhirApi::SystemHistory)}}, allow("GET")});
  routes.push_back({"/fhir", {{"POST", bind(&FhirApi::Transaction)}}, allow("POST")});
  // Clients that join the base URL with "" (fhir-kit-client's transaction) post to "/fhir/".
  routes.push_back({"/fhir/", {{"POST", bind(&FhirApi::Transaction)}}, allow("POST")});
  routes.push_back(
      {"/fhir/{type}/_history", {{"GET", bind(&FhirApi::TypeHistory)}}, allow("GET")});
  routes.push_back({"/fhir/{type}/_search",
                    {{"GET", bind(&FhirApi::Search)}, {"POST", bind(&FhirApi::SearchPost)}},
                    allow("GET, POST")});
  routes.push_back({"/fhir/{type}",
                    {{"GET", bind(&FhirApi::Search)},
                     {"PUT", bind(&FhirApi::ConditionalUpdate)},
                     {"DELETE", bind(&FhirApi::ConditionalDelete)},
                     {"PATCH", bind(&FhirApi::ConditionalPatch)}},
                    allow("GET, POST, PUT, DELETE, PATCH"),
                    {{"POST", [this](const HttpRequest& r, net::HttpResponder respond) {
                        CreateAsync(r, std::move(respond));
                      }}}});
  routes.push_back({"/fhir/{type}/{id}/_history/{vid}", {{"GET", bind(&FhirApi::VRead)}},
                    allow("GET")});
  routes.push_back({"/fhir/{type}/{id}/_history", {{"GET", bind(&FhirApi::InstanceHistory)}},
                    allow("GET")});
  routes.push_back({"/fhir/{type}/{id}",
                    {{"GET", bind(&FhirApi::Read)},
                     {"PUT", bind(&FhirApi::Update)},
                     {"DELETE", bind(&FhirApi::Delete)},
                     {"PATCH", bind(&FhirApi::Patch)},
                     {"POST", bind(&FhirApi::TypeOperation)}},
                    [](const HttpRequest& r) {
                      std::string id = r.PathParam("id");
                      if (!id.empty() && id[0] == '$') {
                        return NotImplemented(r, base::StrCat("operation ", id,
                                                              " is not implemented"));
                      }
                      return NotAllowed(r, "GET, PUT, DELETE, PATCH");
                    }});
  routes.push_back({"/fhir/{type}/{id}/{op}",
                    {{"GET", bind(&FhirApi::InstanceOperation)},
                     {"POST", bind(&FhirApi::InstanceOperation)}},
                    [](const HttpRequest& r) {
                      std::string op = r.PathParam("op");
                      if (!op.empty() && op[0] == '$') {
                        return NotImplemented(r, base::StrCat("operation ", op,
                                                              " is not implemented"));
                      }
                      return Outcome(r, 404, "not-found", "no FHIR interaction at this URL");
                    }});
  for (Route& route : routes) {
    for (auto& [method, handler] : route.handlers) http.Handle(method, route.pattern, handler);
    for (auto& [method, handler] : route.async_handlers) {
      http.HandleAsync(method, route.pattern, handler);
    }
    for (const std::string& method : kMethods) {
      bool taken = false;
      for (const auto& h : route.handlers) taken |= h.first == method;
      for (const auto& h : route.async_handlers) taken |= h.first == method;
      if (!taken) http.Handle(method, route.pattern, route.otherwise);
    }
  }
}

}  // namespace isthmus::fhir_server
