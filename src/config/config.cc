#include "config/config.h"

#include <cctype>
#include <charconv>
#include <exception>
#include <filesystem>
#include <span>
#include <system_error>
#include <utility>

#include "base/file.h"
#include "base/str.h"
#include "base/yaml_util.h"
#include "yaml-cpp/yaml.h"

namespace isthmus::config {
namespace {

namespace fs = std::filesystem;
using base::StrAppend;
using base::StrCat;

constexpr std::string_view kTopKeys[] = {"server", "listeners", "channels", "destinations"};
constexpr std::string_view kServerKeys[] = {"data_dir", "http_address", "threads", "http_threads",
                                            "dedupe_window"};
constexpr std::string_view kListenerKeys[] = {
    "name",          "type",          "address",         "channel", "ack_mode", "max_frame_bytes",
    "idle_timeout", "frame_timeout", "max_connections", "allow",   "tls"};
constexpr std::string_view kTlsKeys[] = {"cert", "key", "ca", "require_client_cert",
                                         "min_version"};
constexpr std::string_view kChannelKeys[] = {"name", "filter", "transformer", "routes",
                                             "destinations"};
constexpr std::string_view kTransformerKeys[] = {"type", "script", "maps", "timezone", "bundle"};
constexpr std::string_view kRouteKeys[] = {"when", "to"};
constexpr std::string_view kRetryKeys[] = {"max_attempts", "initial_backoff", "max_backoff",
                                           "multiplier",   "jitter",          "max_age"};
constexpr std::string_view kDestinationCommonKeys[] = {"name", "type", "partition_by",
                                                       "parallelism", "batch_size", "retry"};
constexpr std::string_view kFileKeys[] = {"directory", "filename"};
constexpr std::string_view kMllpKeys[] = {"address", "timeout", "retry_on_ae", "tls"};
constexpr std::string_view kHttpKeys[] = {"url",     "headers",    "content_type", "timeout",
                                           "tls",     "keep_alive", "idle_timeout"};
constexpr std::string_view kClientTlsKeys[] = {"ca", "cert", "key", "verify", "server_name",
                                               "min_version"};
constexpr std::string_view kFilenameVariables[] = {"channel", "destination", "message_id",
                                                   "control_id", "type"};

std::string Join(std::span<const std::string_view> items) {
  std::string out;
  for (std::string_view s : items) StrAppend(&out, out.empty() ? "" : ", ", s);
  return out;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// A name referenced from elsewhere in the file, remembered for the cross-checks.
struct Reference {
  std::string name;
  YAML::Node node;
};

class Reader {
 public:
  Reader(std::string source, std::string_view text) : errors_(source), source_(std::move(source)) {
    base_dir_ = source_ == "<string>" ? fs::path() : fs::path(source_).parent_path();
    for (std::string_view line : base::Split(text, '\n')) lines_.push_back(line);
  }

  absl::StatusOr<std::shared_ptr<const Config>> Read(const YAML::Node& root) {
    auto cfg = std::make_shared<Config>();
    cfg->source = source_;
    cfg->server.http = *ParseHostPort(cfg->server.http_address);
    if (!root.IsDefined() || root.IsNull()) {
      errors_.AddAt(1, 1, StrCat("the config is empty (expected the keys ", Join(kTopKeys),
                                 "; see docs/configuration.md)"));
      return errors_.ToStatus();
    }
    if (base::CheckKeys(root, kTopKeys, errors_, "the top level")) {
      for (const auto& kv : root) {
        const std::string& k = kv.first.Scalar();
        if (k == "server") ReadServer(kv.second, &cfg->server);
        if (k == "listeners") ReadList(kv.second, "listeners", [&](const YAML::Node& n) {
          ReadListener(n, cfg.get());
        });
        if (k == "channels") ReadList(kv.second, "channels", [&](const YAML::Node& n) {
          ReadChannel(n, cfg.get());
        });
        if (k == "destinations") ReadList(kv.second, "destinations", [&](const YAML::Node& n) {
          ReadDestination(n, cfg.get());
        });
      }
      CrossCheck(cfg.get());
    }
    if (!errors_.empty()) return errors_.ToStatus();
    return std::shared_ptr<const Config>(std::move(cfg));
  }

 private:
  // ---- Locations and errors ------------------------------------------------------------------

  Location Loc(const YAML::Node& n) const {
    Location l{source_};
    if (n.IsDefined() && !n.Mark().is_null()) {
      l.line = n.Mark().line + 1;
      l.column = n.Mark().column + 1;
    }
    return l;
  }
  void Error(const YAML::Node& n, std::string_view what) { errors_.Add(n, what); }

  // ---- Scalars -------------------------------------------------------------------------------

  bool Str(const YAML::Node& v, std::string_view key, std::string* out, std::string_view expect) {
    if (!v.IsScalar() || v.Scalar().empty()) {
      Error(v, StrCat("'", key, "' must be a single non-empty value (expected ", expect, ")"));
      return false;
    }
    *out = v.Scalar();
    return true;
  }

  void Name(const YAML::Node& v, std::string_view what, std::string* out) {
    if (!Str(v, "name", out, "a name like adt-in")) return;
    for (char c : *out) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
        Error(v, StrCat(what, " name '", *out, "' may only contain letters, digits, '-', '_' and "
                              "'.' (it appears in URLs, metrics and file names)"));
        return;
      }
    }
  }

  void Duration(const YAML::Node& v, std::string_view key, absl::Duration* out,
                bool allow_zero = false) {
    std::string s;
    if (!Str(v, key, &s, "a duration like 500ms, 30s, 5m, 24h")) return;
    absl::StatusOr<absl::Duration> d = ParseDuration(s);
    if (!d.ok()) return Error(v, StrCat("'", key, "': ", Msg(d.status())));
    if (*d <= absl::ZeroDuration() && !allow_zero) {
      return Error(v, StrCat("'", key, "' must be longer than 0 (expected e.g. 30s)"));
    }
    *out = *d;
  }

  void Size(const YAML::Node& v, std::string_view key, size_t* out) {
    std::string s;
    if (!Str(v, key, &s, "a size like 16MiB")) return;
    absl::StatusOr<size_t> n = ParseByteSize(s);
    if (!n.ok()) return Error(v, StrCat("'", key, "': ", Msg(n.status())));
    if (*n == 0) return Error(v, StrCat("'", key, "' must be more than 0 bytes"));
    *out = *n;
  }

  void Int(const YAML::Node& v, std::string_view key, int min, int max, int* out) {
    int n = 0;
    if (!v.IsScalar() || !base::ParseInt(std::string_view(v.Scalar()), &n) || n < min || n > max) {
      return Error(v, StrCat("'", key, "' must be a whole number from ", min, " to ", max));
    }
    *out = n;
  }

  void Double(const YAML::Node& v, std::string_view key, double min, double max,
              std::string_view range, double* out) {
    double d = 0;
    bool ok = v.IsScalar() && !v.Scalar().empty();
    if (ok) {
      const std::string& s = v.Scalar();
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
      ok = ec == std::errc() && end == s.data() + s.size() && d >= min && d <= max;
    }
    if (!ok) return Error(v, StrCat("'", key, "' must be a number ", range));
    *out = d;
  }

  void Bool(const YAML::Node& v, std::string_view key, bool* out) {
    if (!base::ParseYamlBool(v, out)) Error(v, StrCat("'", key, "' must be true or false"));
  }

  // A file path relative to the config file's directory; must exist when `must_exist` (as a
  // directory when `directory`).
  void FilePath(const YAML::Node& v, std::string_view key, std::string* out, bool must_exist,
                std::string_view expect, bool directory = false) {
    std::string s;
    if (!Str(v, key, &s, expect)) return;
    fs::path p(s);
    if (p.is_relative() && !base_dir_.empty()) p = base_dir_ / p;
    *out = p.lexically_normal().string();
    if (!must_exist) return;
    std::error_code ec;
    if (directory) {
      if (!fs::is_directory(*out, ec)) {
        Error(v, StrCat("'", key, "': ", *out, " is not a directory (expected ", expect,
                        "; relative paths start at the config file's directory)"));
      }
      return;
    }
    if (!fs::is_regular_file(*out, ec)) {
      Error(v, StrCat("'", key, "': ", *out, " is not a readable file (expected ", expect,
                      "; relative paths start at the config file's directory)"));
    }
  }

  std::optional<hl7v2::Path> FieldPath(const YAML::Node& v, std::string_view key) {
    std::string s;
    if (!Str(v, key, &s, "an HL7 field path like PID-3 or PID-3.1")) return std::nullopt;
    absl::StatusOr<hl7v2::Path> p = hl7v2::Path::Parse(s);
    if (!p.ok() || p->field <= 0) {
      Error(v, StrCat("'", key, "': '", s, "' is not an HL7 field path (expected e.g. PID-3, "
                                           "PID-3.1, PV1-3.1)"));
      return std::nullopt;
    }
    return *std::move(p);
  }

  // Compiles an expression; a compile error points at the offending column inside the YAML
  // value when the value is written on one line (plain or quoted).
  std::shared_ptr<const Expression> Expr(const YAML::Node& v, std::string_view key) {
    std::string s;
    if (!Str(v, key, &s, "an expression like type = ADT and PV1-2 = I")) return nullptr;
    absl::StatusOr<Expression> e = Expression::Compile(s);
    if (e.ok()) return std::make_shared<const Expression>(*std::move(e));
    int col = ExpressionErrorColumn(e.status());
    std::string_view msg(e.status().message().data(), e.status().message().size());
    if (col > 0) msg.remove_prefix(msg.find(':') + 2);
    Location at = Loc(v);
    if (col > 0 && at.line > 0 && static_cast<size_t>(at.line) <= lines_.size()) {
      std::string_view line = lines_[static_cast<size_t>(at.line - 1)];
      size_t start = static_cast<size_t>(at.column - 1);
      if (start < line.size()) {
        char first = line[start];
        size_t quote = (first == '\'' || first == '"') ? 1 : 0;
        bool one_line = first != '|' && first != '>' &&
                        start + quote + static_cast<size_t>(col) - 1 <= line.size();
        if (one_line) at.column += static_cast<int>(quote) + col - 1;
      }
    }
    errors_.AddAt(at.line, at.column, StrCat("'", key, "': ", msg));
    return nullptr;
  }

  template <typename Fn>
  void ReadList(const YAML::Node& v, std::string_view key, Fn&& each) {
    if (v.IsNull()) return;
    if (!v.IsSequence()) {
      return Error(v, StrCat("'", key, "' must be a list (expected entries starting with '- ')"));
    }
    for (const auto& item : v) each(item);
  }

  std::vector<Reference> Names(const YAML::Node& v, std::string_view key) {
    std::vector<Reference> out;
    if (v.IsScalar() && !v.Scalar().empty()) {
      out.push_back({v.Scalar(), v});
      return out;
    }
    if (!v.IsSequence()) {
      Error(v, StrCat("'", key, "' must be a list of destination names (expected e.g. [fhir, "
                                "archive])"));
      return out;
    }
    for (const auto& item : v) {
      std::string s;
      if (Str(item, key, &s, "a destination name")) out.push_back({s, item});
    }
    if (out.empty() && v.size() == 0) Error(v, StrCat("'", key, "' is empty (expected at least "
                                                      "one destination name)"));
    return out;
  }

  // ---- Sections ------------------------------------------------------------------------------

  void ReadServer(const YAML::Node& v, ServerSettings* s) {
    if (v.IsNull()) return;
    if (!base::CheckKeys(v, kServerKeys, errors_, "server")) return;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "data_dir") {
        FilePath(val, k, &s->data_dir, false, "a directory");
      } else if (k == "http_address") {
        Address(val, k, &s->http_address, &s->http);
      } else if (k == "threads") {
        Int(val, k, 0, 1024, &s->threads);
      } else if (k == "http_threads") {
        Int(val, k, 1, 1024, &s->http_threads);
      } else if (k == "dedupe_window") {
        Duration(val, k, &s->dedupe_window, /*allow_zero=*/true);
      }
    }
  }

  void Address(const YAML::Node& v, std::string_view key, std::string* text, HostPort* out) {
    if (!Str(v, key, text, "host:port, e.g. 127.0.0.1:2575")) return;
    absl::StatusOr<HostPort> hp = ParseHostPort(*text);
    if (!hp.ok()) return Error(v, StrCat("'", key, "': ", Msg(hp.status())));
    *out = *std::move(hp);
  }

  void ReadListener(const YAML::Node& v, Config* cfg) {
    Listener l;
    l.location = Loc(v);
    l.bind = *ParseHostPort(l.address);
    if (!base::CheckKeys(v, kListenerKeys, errors_, "a listener")) return;
    YAML::Node channel_node;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "name") {
        Name(val, "listener", &l.name);
      } else if (k == "type") {
        if (Str(val, k, &l.type, "mllp") && l.type != "mllp") {
          Error(val, StrCat("unknown listener type '", l.type, "' (expected mllp)"));
        }
      } else if (k == "address") {
        Address(val, k, &l.address, &l.bind);
      } else if (k == "channel") {
        if (Str(val, k, &l.channel, "the name of a channel")) channel_node.reset(val);
      } else if (k == "ack_mode") {
        std::string m;
        if (!Str(val, k, &m, "after-persist, after-processing, enhanced or none")) continue;
        if (m == "after-persist") {
          l.ack_mode = AckMode::kAfterPersist;
        } else if (m == "after-processing") {
          l.ack_mode = AckMode::kAfterProcessing;
        } else if (m == "enhanced") {
          l.ack_mode = AckMode::kEnhanced;
        } else if (m == "none") {
          l.ack_mode = AckMode::kNone;
        } else {
          Error(val, StrCat("unknown ack_mode '", m, "' (expected after-persist, "
                                                     "after-processing, enhanced or none)"));
        }
      } else if (k == "max_frame_bytes") {
        Size(val, k, &l.max_frame_bytes);
      } else if (k == "idle_timeout") {
        Duration(val, k, &l.idle_timeout);
      } else if (k == "frame_timeout") {
        Duration(val, k, &l.frame_timeout);
      } else if (k == "max_connections") {
        Int(val, k, 1, 1'000'000, &l.max_connections);
      } else if (k == "allow") {
        if (!val.IsSequence()) {
          Error(val, "'allow' must be a list of networks (expected e.g. [10.0.0.0/8, 192.0.2.7])");
          continue;
        }
        for (const auto& item : val) {
          std::string s;
          if (!Str(item, "allow", &s, "a network like 10.0.0.0/8")) continue;
          absl::StatusOr<Cidr> c = ParseCidr(s);
          if (!c.ok()) {
            Error(item, StrCat("'allow': ", Msg(c.status())));
          } else {
            l.allow.push_back(*std::move(c));
          }
        }
      } else if (k == "tls") {
        l.tls = ReadTls(val);
      }
    }
    if (l.name.empty() && !v["name"].IsDefined()) {
      Error(v, "a listener needs a 'name' (expected e.g. name: adt-in)");
    }
    if (!v["channel"].IsDefined()) {
      Error(v, StrCat("listener '", l.name, "' needs a 'channel' (the channel its messages "
                                            "enter)"));
    }
    if (channel_node.IsDefined()) listener_channels_.push_back({l.channel, channel_node});
    else listener_channels_.push_back({"", YAML::Node()});
    listener_nodes_.push_back({l.name, v["name"].IsDefined() ? v["name"] : v});
    address_nodes_.push_back({l.bind.port == 0 ? std::string() : l.bind.ToString(),
                              v["address"].IsDefined() ? v["address"] : v});
    cfg->listeners.push_back(std::move(l));
  }

  TlsSettings ReadTls(const YAML::Node& v) {
    TlsSettings t;
    if (!base::CheckKeys(v, kTlsKeys, errors_, "tls")) return t;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "cert") {
        FilePath(val, k, &t.cert, true, "a PEM certificate chain file");
      } else if (k == "key") {
        FilePath(val, k, &t.key, true, "a PEM private key file");
      } else if (k == "ca") {
        FilePath(val, k, &t.ca, true, "a PEM CA bundle file");
      } else if (k == "require_client_cert") {
        Bool(val, k, &t.require_client_cert);
      } else if (k == "min_version") {
        MinTlsVersion(val, &t.tls13_only);
      }
    }
    if (!v["cert"].IsDefined()) Error(v, "tls needs 'cert' (a PEM certificate chain file)");
    if (!v["key"].IsDefined()) Error(v, "tls needs 'key' (a PEM private key file)");
    if (t.require_client_cert && !v["ca"].IsDefined()) {
      Error(v, "tls with require_client_cert needs 'ca' (the CA bundle client certificates are "
               "checked against)");
    }
    return t;
  }

  // `min_version` of a tls mapping: "1.2" (the default) or "1.3".
  void MinTlsVersion(const YAML::Node& v, bool* tls13_only) {
    std::string text;
    if (!Str(v, "min_version", &text, "1.2 or 1.3")) return;
    if (text == "1.2") {
      *tls13_only = false;
    } else if (text == "1.3") {
      *tls13_only = true;
    } else {
      Error(v, StrCat("'min_version' must be 1.2 or 1.3 (older TLS versions are never offered), "
                      "not '", text, "'"));
    }
  }

  // `tls:` of a destination: the client side.
  ClientTlsSettings ReadClientTls(const YAML::Node& v) {
    ClientTlsSettings t;
    if (!base::CheckKeys(v, kClientTlsKeys, errors_, "tls")) return t;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "ca") {
        FilePath(val, k, &t.ca, true, "a PEM CA bundle file");
      } else if (k == "cert") {
        FilePath(val, k, &t.cert, true, "a PEM client certificate chain file");
      } else if (k == "key") {
        FilePath(val, k, &t.key, true, "a PEM private key file");
      } else if (k == "verify") {
        Bool(val, k, &t.verify);
      } else if (k == "server_name") {
        if (Str(val, k, &t.server_name, "the DNS name on the receiver's certificate") &&
            t.server_name.find_first_of(" /:@") != std::string::npos) {
          Error(val, StrCat("'server_name' must be a host name like ris.example, not '",
                            t.server_name, "'"));
        }
      } else if (k == "min_version") {
        MinTlsVersion(val, &t.tls13_only);
      }
    }
    if (v["cert"].IsDefined() && !v["key"].IsDefined()) {
      Error(v, "tls 'cert' needs 'key' (the client certificate's PEM private key file)");
    }
    if (v["key"].IsDefined() && !v["cert"].IsDefined()) {
      Error(v, "tls 'key' needs 'cert' (the PEM client certificate chain file)");
    }
    return t;
  }

  void ReadChannel(const YAML::Node& v, Config* cfg) {
    Channel c;
    c.location = Loc(v);
    if (!base::CheckKeys(v, kChannelKeys, errors_, "a channel")) return;
    std::optional<Route> shorthand;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "name") {
        Name(val, "channel", &c.name);
      } else if (k == "filter") {
        c.filter = Expr(val, k);
      } else if (k == "transformer") {
        c.transformer = ReadTransformer(val);
      } else if (k == "routes") {
        ReadList(val, "routes", [&](const YAML::Node& r) { ReadRoute(r, &c); });
      } else if (k == "destinations") {
        Route r;
        r.location = Loc(val);
        for (Reference& ref : Names(val, k)) {
          r.to.push_back(ref.name);
          route_targets_.push_back(std::move(ref));
        }
        shorthand = std::move(r);
      }
    }
    if (shorthand.has_value()) c.routes.push_back(*std::move(shorthand));
    if (!v["name"].IsDefined()) Error(v, "a channel needs a 'name' (expected e.g. name: adt)");
    if (c.routes.empty() && !c.name.empty()) {
      cfg->warnings.push_back(StrCat(c.location.ToString(), ": channel '", c.name,
                                     "' has no routes or destinations: its messages are "
                                     "processed but delivered nowhere"));
    }
    channel_nodes_.push_back({c.name, v["name"].IsDefined() ? v["name"] : v});
    cfg->channels.push_back(std::move(c));
  }

  Transformer ReadTransformer(const YAML::Node& v) {
    Transformer t;
    std::string type;
    if (v.IsMap()) {
      if (!base::CheckKeys(v, kTransformerKeys, errors_, "transformer")) return t;
      if (!v["type"].IsDefined()) {
        Error(v, "transformer needs a 'type' (expected none, fhir or lua)");
        return t;
      }
    }
    // Never assign one YAML::Node to another: yaml-cpp's operator= writes through to the
    // node the left side refers to. Copy-construct (or reset()) instead.
    const YAML::Node type_node = v.IsMap() ? v["type"] : v;
    if (!Str(type_node, "transformer", &type, "none, fhir, or {type: lua, script: FILE}")) return t;
    if (type == "none") {
      t.type = TransformerType::kNone;
    } else if (type == "fhir") {
      t.type = TransformerType::kFhir;
    } else if (type == "lua") {
      t.type = TransformerType::kLua;
      if (!v.IsMap() || !v["script"].IsDefined()) {
        Error(v, "a lua transformer needs a script (expected transformer: {type: lua, script: "
                 "scripts/fix.lua})");
      }
    } else {
      Error(type_node, StrCat("unknown transformer '", type, "' (expected none, fhir or lua)"));
    }
    if (v.IsMap() && v["script"].IsDefined()) {
      if (t.type != TransformerType::kLua) {
        Error(v["script"], "'script' applies only to transformer type lua");
      } else {
        FilePath(v["script"], "script", &t.script, true, "a Lua script file");
      }
    }
    if (!v.IsMap()) return t;
    for (std::string_view key : {"maps", "timezone", "bundle"}) {
      const YAML::Node n = v[std::string(key)];
      if (!n.IsDefined()) continue;
      if (t.type != TransformerType::kFhir) {
        Error(n, StrCat("'", key, "' applies only to transformer type fhir"));
      } else if (key == "maps") {
        FilePath(n, key, &t.maps, true, "a directory of site maps (docs/mapping-guide.md)",
                 /*directory=*/true);
      } else if (key == "timezone") {
        absl::TimeZone tz;
        if (Str(n, key, &t.timezone, "a time zone name such as Europe/Paris") &&
            !absl::LoadTimeZone(t.timezone, &tz)) {
          Error(n, StrCat("unknown time zone '", t.timezone,
                          "' (expected an IANA name such as Europe/Paris or UTC)"));
        }
      } else if (Str(n, key, &t.bundle, "transaction or batch") && t.bundle != "transaction" &&
                 t.bundle != "batch") {
        Error(n, StrCat("unknown bundle type '", t.bundle, "' (expected transaction or batch)"));
      }
    }
    return t;
  }

  void ReadRoute(const YAML::Node& v, Channel* c) {
    Route r;
    r.location = Loc(v);
    if (!base::CheckKeys(v, kRouteKeys, errors_, "a route")) return;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      if (k == "when") {
        r.when = Expr(kv.second, k);
      } else if (k == "to") {
        for (Reference& ref : Names(kv.second, k)) {
          r.to.push_back(ref.name);
          route_targets_.push_back(std::move(ref));
        }
      }
    }
    if (!v["to"].IsDefined()) Error(v, "a route needs 'to' (the destinations it sends to)");
    c->routes.push_back(std::move(r));
  }

  void ReadRetry(const YAML::Node& v, RetryPolicy* r) {
    if (!base::CheckKeys(v, kRetryKeys, errors_, "retry")) return;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "max_attempts") {
        Int(val, k, 0, 1'000'000, &r->max_attempts);  // 0 = no limit (the dispatcher's)
      } else if (k == "initial_backoff") {
        Duration(val, k, &r->initial_backoff);
      } else if (k == "max_backoff") {
        Duration(val, k, &r->max_backoff);
      } else if (k == "multiplier") {
        Double(val, k, 1.0, 100.0, "from 1 to 100", &r->multiplier);
      } else if (k == "jitter") {
        Double(val, k, 0.0, 1.0, "from 0 to 1", &r->jitter);
      } else if (k == "max_age") {
        Duration(val, k, &r->max_age, /*allow_zero=*/true);  // 0 = no limit
      }
    }
    if (r->max_backoff < r->initial_backoff && v["max_backoff"].IsDefined()) {
      Error(v["max_backoff"], "'max_backoff' must not be shorter than 'initial_backoff'");
    }
  }

  void ReadDestination(const YAML::Node& v, Config* cfg) {
    Destination d;
    d.location = Loc(v);
    if (!v.IsMap()) {
      Error(v, "a destination must be a mapping of keys to values");
      return;
    }
    // The type decides which keys are allowed.
    std::span<const std::string_view> specific;
    std::string type;
    YAML::Node type_node = v["type"];
    bool type_ok = false;
    if (!type_node.IsDefined()) {
      Error(v, "a destination needs a 'type' (expected file, mllp, http or fhir_local)");
    } else if (Str(type_node, "type", &type, "file, mllp, http or fhir_local")) {
      type_ok = true;
      if (type == "file") {
        d.type = DestinationType::kFile;
        d.options = FileOptions{};
        specific = kFileKeys;
      } else if (type == "mllp") {
        d.type = DestinationType::kMllp;
        d.options = MllpOptions{};
        specific = kMllpKeys;
      } else if (type == "http") {
        d.type = DestinationType::kHttp;
        d.options = HttpOptions{};
        specific = kHttpKeys;
      } else if (type == "fhir_local") {
        d.type = DestinationType::kFhirLocal;
        d.options = FhirLocalOptions{};
      } else {
        type_ok = false;
        Error(type_node, StrCat("unknown destination type '", type,
                                "' (expected file, mllp, http or fhir_local)"));
      }
    }
    std::vector<std::string_view> allowed(std::begin(kDestinationCommonKeys),
                                          std::end(kDestinationCommonKeys));
    if (type_ok) {
      allowed.insert(allowed.end(), specific.begin(), specific.end());
    } else {
      for (auto keys : {std::span<const std::string_view>(kFileKeys),
                        std::span<const std::string_view>(kMllpKeys),
                        std::span<const std::string_view>(kHttpKeys)}) {
        for (std::string_view k : keys) {
          bool dup = false;
          for (std::string_view a : allowed) dup |= a == k;
          if (!dup) allowed.push_back(k);
        }
      }
    }
    base::CheckKeys(v, allowed, errors_,
                    type_ok ? StrCat("a ", type, " destination") : std::string("a destination"));
    YAML::Node parallelism_node;
    for (const auto& kv : v) {
      const std::string& k = kv.first.Scalar();
      const YAML::Node& val = kv.second;
      if (k == "name") {
        Name(val, "destination", &d.name);
      } else if (k == "partition_by") {
        d.partition_by = FieldPath(val, k);
      } else if (k == "parallelism") {
        Int(val, k, 1, 1024, &d.parallelism);
        parallelism_node.reset(val);
      } else if (k == "batch_size") {
        Int(val, k, 1, 10000, &d.batch_size);
      } else if (k == "retry") {
        ReadRetry(val, &d.retry);
      } else if (!type_ok) {
        continue;
      } else if (auto* f = std::get_if<FileOptions>(&d.options)) {
        if (k == "directory") FilePath(val, k, &f->directory, false, "a directory");
        if (k == "filename") Filename(val, &f->filename);
      } else if (auto* m = std::get_if<MllpOptions>(&d.options)) {
        if (k == "address") {
          Address(val, k, &m->address, &m->target);
          if (!m->address.empty() && m->target.port == 0 && ParseHostPort(m->address).ok()) {
            Error(val, "'address': an MLLP destination needs a port other than 0");
          }
        }
        if (k == "timeout") Duration(val, k, &m->timeout);
        if (k == "retry_on_ae") Bool(val, k, &m->retry_on_ae);
        if (k == "tls") m->tls = ReadClientTls(val);
      } else if (auto* h = std::get_if<HttpOptions>(&d.options)) {
        if (k == "url") Url(val, &h->url);
        if (k == "content_type") Str(val, k, &h->content_type, "a media type like application/json");
        if (k == "timeout") Duration(val, k, &h->timeout);
        if (k == "keep_alive") Bool(val, k, &h->keep_alive);
        if (k == "idle_timeout") Duration(val, k, &h->idle_timeout);
        if (k == "headers") Headers(val, &h->headers);
        if (k == "tls") {
          h->tls = ReadClientTls(val);
          // A copy: Scalar() refers into the temporary node that v["url"] returns.
          const std::string url = v["url"].IsScalar() ? v["url"].Scalar() : std::string();
          if (url.starts_with("http://")) {
            Error(val, "'tls' needs an https:// url (this one is http://)");
          }
        }
      }
    }
    if (!v["name"].IsDefined()) Error(v, "a destination needs a 'name' (expected e.g. name: archive)");
    if (type_ok) {
      auto required = [&](std::string_view key, std::string_view what) {
        if (!v[std::string(key)].IsDefined()) {
          Error(v, StrCat(type, " destination '", d.name, "' needs '", key, "' (", what, ")"));
        }
      };
      if (d.type == DestinationType::kFile) required("directory", "where files are written");
      if (d.type == DestinationType::kMllp) required("address", "host:port of the receiver");
      if (d.type == DestinationType::kHttp) required("url", "http:// or https:// endpoint");
    }
    if (d.parallelism > 1 && !d.partition_by.has_value()) {
      Error(parallelism_node, StrCat("'parallelism' ", d.parallelism, " needs 'partition_by' "
                                     "(expected e.g. partition_by: PID-3, so that messages of one "
                                     "patient stay in order)"));
    }
    destination_nodes_.push_back({d.name, v["name"].IsDefined() ? v["name"] : v});
    cfg->destinations.push_back(std::move(d));
  }

  void Filename(const YAML::Node& v, std::string* out) {
    std::string s;
    if (!Str(v, "filename", &s, "a file name template like ${channel}-${message_id}.hl7")) return;
    if (s.find('/') != std::string::npos || s == "." || s == "..") {
      return Error(v, "'filename' must be a file name without '/' (the directory is 'directory')");
    }
    for (size_t i = s.find('$'); i != std::string::npos; i = s.find('$', i + 1)) {
      size_t close = s.find('}', i);
      if (i + 1 >= s.size() || s[i + 1] != '{' || close == std::string::npos) {
        return Error(v, "'filename': '$' starts a variable written ${name}");
      }
      std::string_view var = std::string_view(s).substr(i + 2, close - i - 2);
      bool known = false;
      for (std::string_view k : kFilenameVariables) known |= k == var;
      if (!known) {
        return Error(v, StrCat("'filename': unknown variable ${", var, "} (expected one of: ",
                               Join(kFilenameVariables), ")"));
      }
    }
    if (s.find("${message_id}") == std::string::npos) {
      return Error(v, "'filename' must contain ${message_id} so that messages never overwrite "
                      "each other");
    }
    *out = s;
  }

  void Url(const YAML::Node& v, std::string* out) {
    if (!Str(v, "url", out, "http:// or https:// URL")) return;
    std::string_view u = *out;
    bool ok = (u.substr(0, 7) == "http://" && u.size() > 7) ||
              (u.substr(0, 8) == "https://" && u.size() > 8);
    if (!ok || u.find_first_of(" \t\r\n") != std::string_view::npos) {
      Error(v, StrCat("'url': '", u, "' is not an http:// or https:// URL (expected e.g. "
                                     "https://fhir.example.org/r4)"));
    }
  }

  void Headers(const YAML::Node& v, std::map<std::string, std::string>* out) {
    if (!v.IsMap()) return Error(v, "'headers' must map header names to values");
    for (const auto& kv : v) {
      const std::string& name = kv.first.Scalar();
      bool ok = !name.empty();
      for (char c : name) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      if (!ok) {
        Error(kv.first, StrCat("'", name, "' is not an HTTP header name"));
        continue;
      }
      if (!kv.second.IsScalar() ||
          kv.second.Scalar().find_first_of("\r\n") != std::string::npos) {
        Error(kv.second, StrCat("header '", name, "' must be a single-line value"));
        continue;
      }
      (*out)[name] = kv.second.Scalar();
    }
  }

  // ---- Cross-checks --------------------------------------------------------------------------

  void Duplicates(const std::vector<Reference>& refs, std::string_view what) {
    for (size_t i = 0; i < refs.size(); ++i) {
      if (refs[i].name.empty()) continue;
      for (size_t j = 0; j < i; ++j) {
        if (refs[j].name == refs[i].name) {
          Error(refs[i].node, StrCat("duplicate ", what, " '", refs[i].name, "' (first at ",
                                     base::YamlLocation(source_, refs[j].node), ")"));
          break;
        }
      }
    }
  }

  // "(expected one of: a, b)" or "(none is defined)".
  static std::string NameList(const std::vector<Reference>& refs, std::string_view what) {
    std::string out;
    for (const Reference& r : refs) {
      if (!r.name.empty()) StrAppend(&out, out.empty() ? "" : ", ", r.name);
    }
    return out.empty() ? StrCat("(no ", what, " is defined)") : StrCat("(expected one of: ", out, ")");
  }

  static bool Defined(const std::vector<Reference>& refs, std::string_view name) {
    for (const Reference& r : refs) {
      if (r.name == name) return true;
    }
    return false;
  }

  void CrossCheck(Config* cfg) {
    Duplicates(listener_nodes_, "listener name");
    Duplicates(channel_nodes_, "channel name");
    Duplicates(destination_nodes_, "destination name");
    Duplicates(address_nodes_, "listener address");
    for (size_t i = 0; i < listener_channels_.size(); ++i) {
      const Reference& r = listener_channels_[i];
      if (r.name.empty() || Defined(channel_nodes_, r.name)) continue;
      Error(r.node, StrCat("listener '", cfg->listeners[i].name, "': unknown channel '", r.name,
                           "' ", NameList(channel_nodes_, "channel")));
    }
    for (const Reference& r : route_targets_) {
      if (Defined(destination_nodes_, r.name)) continue;
      Error(r.node, StrCat("unknown destination '", r.name, "' ",
                           NameList(destination_nodes_, "destination")));
    }
    for (const Destination& d : cfg->destinations) {
      if (d.name.empty()) continue;
      bool used = false;
      for (const Reference& r : route_targets_) used |= r.name == d.name;
      if (!used) {
        cfg->warnings.push_back(StrCat(d.location.ToString(), ": destination '", d.name,
                                       "' is not used by any route"));
      }
    }
    for (const Channel& c : cfg->channels) {
      bool fed = false;
      for (const Listener& l : cfg->listeners) fed |= l.channel == c.name;
      if (!fed && !c.name.empty()) {
        cfg->warnings.push_back(StrCat(c.location.ToString(), ": channel '", c.name,
                                       "' has no listener (only reprocessing can feed it)"));
      }
    }
  }

  base::YamlErrors errors_;
  std::string source_;
  fs::path base_dir_;
  std::vector<std::string_view> lines_;
  std::vector<Reference> listener_nodes_, channel_nodes_, destination_nodes_, address_nodes_;
  std::vector<Reference> listener_channels_, route_targets_;
};

}  // namespace

std::string_view AckModeName(AckMode m) {
  switch (m) {
    case AckMode::kAfterPersist: return "after-persist";
    case AckMode::kAfterProcessing: return "after-processing";
    case AckMode::kEnhanced: return "enhanced";
    case AckMode::kNone: return "none";
  }
  return "?";
}

std::string_view DestinationTypeName(DestinationType t) {
  switch (t) {
    case DestinationType::kFile: return "file";
    case DestinationType::kMllp: return "mllp";
    case DestinationType::kHttp: return "http";
    case DestinationType::kFhirLocal: return "fhir_local";
  }
  return "?";
}

const Channel* Config::FindChannel(std::string_view name) const {
  for (const Channel& c : channels) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const Destination* Config::FindDestination(std::string_view name) const {
  for (const Destination& d : destinations) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const Config>> LoadConfigFromString(std::string_view yaml,
                                                                   std::string_view source_name) {
  absl::StatusOr<YAML::Node> root = base::ParseYaml(yaml, source_name);
  if (!root.ok()) return root.status();
  // The reader uses non-throwing accessors; this catch is the adapter's last line of defence.
  try {
    return Reader(std::string(source_name), yaml).Read(*root);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat(source_name, ": ", e.what()));
  }
}

absl::StatusOr<std::shared_ptr<const Config>> LoadConfig(const std::string& path) {
  absl::StatusOr<std::string> text = base::ReadFile(path, size_t{4} << 20);
  if (!text.ok()) return text.status();
  return LoadConfigFromString(*text, path);
}

}  // namespace isthmus::config
