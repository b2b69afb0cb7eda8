#include "server/wiring.h"

#include "base/str.h"
#include "destinations/fhir_local/fhir_local_destination.h"
#include "destinations/file/file_destination.h"
#include "destinations/http/http_destination.h"
#include "destinations/mllp/mllp_destination.h"
#include "mapping/lua/lua_script.h"
#include "mapping/lua/lua_transformer.h"
#include "mapping/v2fhir/converter.h"
#include "mapping/v2fhir/loader.h"

namespace isthmus::server {
namespace {

net::TlsClientSettings ClientTls(const config::ClientTlsSettings& t) {
  net::TlsClientSettings n;
  n.ca_file = t.ca;
  n.cert_file = t.cert;
  n.key_file = t.key;
  n.verify = t.verify;
  n.server_name = t.server_name;
  n.min_version = t.tls13_only ? net::TlsVersion::kTls13 : net::TlsVersion::kTls12;
  return n;
}

// core::Transformer over the v2 -> FHIR converter: replaces the message with its Bundle. One per
// pipeline worker (each has its own Workspace); the compiled maps are shared.
class FhirAdapter final : public core::Transformer {
 public:
  FhirAdapter(std::shared_ptr<const v2fhir::Converter> converter, v2fhir::ConvertOptions options)
      : converter_(std::move(converter)), options_(std::move(options)) {}
  absl::StatusOr<core::TransformOutcome> Run(hl7v2::Message& msg) override {
    v2fhir::ConvertResult r;
    if (absl::Status s = converter_->Convert(msg, options_, workspace_, &r); !s.ok()) return s;
    core::TransformOutcome out;
    out.kind = core::TransformOutcome::kReplace;
    out.payload = std::move(r.json);
    if (!r.diagnostics.empty()) {
      // Where, not what: a diagnostic's message may quote a value.
      std::string where;
      for (const v2fhir::Diagnostic& d : r.diagnostics) {
        if (d.location.empty() || where.find(d.location) != std::string::npos) continue;
        if (where.size() > 200) {
          where += ", ...";
          break;
        }
        base::StrAppend(&where, where.empty() ? "" : ", ", d.location);
      }
      out.note = base::StrCat(r.diagnostics.size(), " conversion warning",
                              r.diagnostics.size() == 1 ? "" : "s",
                              where.empty() ? "" : " at ", where, " (map ", r.map, ")");
    }
    return out;
  }

 private:
  std::shared_ptr<const v2fhir::Converter> converter_;
  const v2fhir::ConvertOptions options_;
  v2fhir::Workspace workspace_;
};

absl::StatusOr<core::TransformerFactory> FhirTransformer(const config::Channel& ch) {
  std::vector<std::string> dirs = {v2fhir::DefaultMapsDir()};
  if (!ch.transformer.maps.empty()) dirs.push_back(ch.transformer.maps);
  auto maps = v2fhir::LoadMaps(dirs);
  if (!maps.ok()) {
    return absl::InvalidArgumentError(base::StrCat("channel '", ch.name, "': fhir transformer: ",
                                                   std::string(maps.status().message())));
  }
  v2fhir::ConvertOptions options;
  options.bundle = ch.transformer.bundle == "batch" ? fhir::BundleType::kBatch
                                                    : fhir::BundleType::kTransaction;
  if (!ch.transformer.timezone.empty() &&
      !absl::LoadTimeZone(ch.transformer.timezone, &options.tz)) {
    return absl::InvalidArgumentError(base::StrCat("channel '", ch.name, "': unknown time zone '",
                                                   ch.transformer.timezone, "'"));
  }
  auto converter = std::make_shared<const v2fhir::Converter>(*std::move(maps));
  return core::TransformerFactory(
      [converter, options]() -> absl::StatusOr<std::unique_ptr<core::Transformer>> {
        return std::unique_ptr<core::Transformer>(new FhirAdapter(converter, options));
      });
}

// core::Transformer over a Lua transformer (one per pipeline worker).
class LuaAdapter final : public core::Transformer {
 public:
  explicit LuaAdapter(std::unique_ptr<mapping::LuaTransformer> t) : lua_(std::move(t)) {}
  absl::StatusOr<core::TransformOutcome> Run(hl7v2::Message& msg) override {
    auto r = lua_->Run(msg);
    if (!r.ok()) return r.status();
    core::TransformOutcome out;
    switch (r->action) {
      case mapping::TransformResult::kContinue: out.kind = core::TransformOutcome::kContinue; break;
      case mapping::TransformResult::kFilter: out.kind = core::TransformOutcome::kFilter; break;
      case mapping::TransformResult::kReplace: out.kind = core::TransformOutcome::kReplace; break;
    }
    out.reason = std::move(r->reason);
    out.payload = std::move(r->payload);
    return out;
  }

 private:
  std::unique_ptr<mapping::LuaTransformer> lua_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<core::Destination>> BuildDestination(const config::Destination& d,
                                                                    const StoreParts& store) {
  switch (d.type) {
    case config::DestinationType::kFile: {
      const auto& o = std::get<config::FileOptions>(d.options);
      destinations::FileDestinationOptions f;
      f.name = d.name;
      f.directory = o.directory;
      f.filename = o.filename;
      auto made = destinations::FileDestination::Create(std::move(f));
      if (!made.ok()) return made.status();
      return std::unique_ptr<core::Destination>(std::move(made).value());
    }
    case config::DestinationType::kMllp: {
      const auto& o = std::get<config::MllpOptions>(d.options);
      destinations::MllpDestinationOptions m;
      m.name = d.name;
      m.host = o.target.host;
      m.port = o.target.port;
      m.connect_timeout = o.timeout;
      m.ack_timeout = o.timeout;
      m.retry_on_ae = o.retry_on_ae;
      if (o.tls.has_value()) m.tls = ClientTls(*o.tls);
      auto made = destinations::MllpDestination::Create(std::move(m));
      if (!made.ok()) return made.status();
      return std::unique_ptr<core::Destination>(std::move(made).value());
    }
    case config::DestinationType::kHttp: {
      const auto& o = std::get<config::HttpOptions>(d.options);
      destinations::HttpDestinationOptions h;
      h.name = d.name;
      h.url = o.url;
      h.headers = o.headers;
      h.content_type = o.content_type;
      h.timeout = o.timeout;
      h.keep_alive = o.keep_alive;
      h.idle_timeout = o.idle_timeout;
      if (o.tls.has_value()) h.tls = ClientTls(*o.tls);
      auto made = destinations::HttpDestination::Create(std::move(h));
      if (!made.ok()) return made.status();
      return std::unique_ptr<core::Destination>(std::move(made).value());
    }
    case config::DestinationType::kFhirLocal: {
      destinations::FhirLocalDestinationOptions f;
      f.name = d.name;
      f.writer = store.writer;
      f.fhir = store.fhir;
      auto made = destinations::FhirLocalDestination::Create(std::move(f));
      if (!made.ok()) return made.status();
      return std::unique_ptr<core::Destination>(std::move(made).value());
    }
  }
  return absl::InternalError(base::StrCat(d.location.ToString(), ": destination '", d.name,
                                          "': unknown type"));
}

dispatch::DispatcherOptions BuildDispatcherOptions(const config::Destination& d) {
  dispatch::DispatcherOptions o;
  o.retry.max_attempts = d.retry.max_attempts;
  o.retry.initial_backoff = d.retry.initial_backoff;
  o.retry.max_backoff = d.retry.max_backoff;
  o.retry.multiplier = d.retry.multiplier;
  o.retry.jitter = d.retry.jitter;
  o.retry.max_age = d.retry.max_age;
  o.parallelism = d.parallelism;
  o.batch_size = d.batch_size;
  return o;
}

absl::StatusOr<std::vector<pipeline::ChannelPlan>> BuildChannelPlans(const config::Config& c) {
  std::vector<pipeline::ChannelPlan> plans;
  for (const config::Channel& ch : c.channels) {
    pipeline::ChannelPlan p;
    p.name = ch.name;
    if (ch.filter) {
      std::shared_ptr<const config::Expression> f = ch.filter;
      p.filter = [f](const hl7v2::Message& m) { return f->Matches(m); };
    }
    for (const config::Route& r : ch.routes) {
      pipeline::RoutePlan rp;
      if (r.when) {
        std::shared_ptr<const config::Expression> w = r.when;
        rp.when = [w](const hl7v2::Message& m) { return w->Matches(m); };
      }
      rp.to = r.to;
      p.routes.push_back(std::move(rp));
    }
    switch (ch.transformer.type) {
      case config::TransformerType::kNone:
        break;
      case config::TransformerType::kLua: {
        auto script = mapping::LuaScript::CompileFile(ch.transformer.script);
        if (!script.ok()) {
          return absl::InvalidArgumentError(base::StrCat(
              "channel '", ch.name, "': ", std::string(script.status().message())));
        }
        std::shared_ptr<const mapping::LuaScript> s = *script;
        p.transformer = [s]() -> absl::StatusOr<std::unique_ptr<core::Transformer>> {
          auto t = mapping::LuaTransformer::Create(s);
          if (!t.ok()) return t.status();
          return std::unique_ptr<core::Transformer>(new LuaAdapter(std::move(t).value()));
        };
        break;
      }
      case config::TransformerType::kFhir: {
        auto factory = FhirTransformer(ch);
        if (!factory.ok()) return factory.status();
        p.transformer = *std::move(factory);
        break;
      }
    }
    plans.push_back(std::move(p));
  }
  return plans;
}

std::vector<pipeline::DestinationPlan> BuildDestinationPlans(const config::Config& c) {
  std::vector<pipeline::DestinationPlan> plans;
  for (const config::Destination& d : c.destinations) plans.push_back({d.name, d.partition_by});
  return plans;
}

}  // namespace isthmus::server
