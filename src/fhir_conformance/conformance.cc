#include "fhir_conformance/conformance.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "base/str.h"
#include "fhir_conformance/conformance_defs.h"
#include "fhirpath/fhirpath.h"
#include "fhirpath/model.h"

namespace isthmus::fhir_conformance {
namespace {

using fhir::ValidationIssue;
using fhirpath::ElementInfo;
using fhirpath::TypeInfo;
using internal::kCConstraints;
using internal::kCExpressions;
using internal::kCPathCount;
using internal::kCPaths;
using Severity = ValidationIssue::Severity;
using Json = rapidjson::Value;

constexpr char kNumberMark = '\xFF';  // the FHIR store's number text (fhir/validator.h)

// Functions the engine refuses at evaluation because they need a service it does not have
// (fhirpath functions.cc): a constraint using one is listed, not evaluated.
constexpr std::string_view kNeedsService[][2] = {
    {"htmlChecks(", "htmlChecks() needs XHTML rules the engine does not implement"},
    {"memberOf(", "memberOf() needs a terminology service"},
    {"conformsTo(", "conformsTo() needs profile validation inside FHIRPath"},
    {"elementDefinition(", "elementDefinition() needs the definitions inside FHIRPath"},
    {"checkModifiers(", "checkModifiers() needs the definitions inside FHIRPath"},
    {"subsumes(", "subsumes() needs a terminology service"},
    {"subsumedBy(", "subsumedBy() needs a terminology service"},
};

// Every expression of the tables compiled once: the expression, or why it is not evaluated.
struct Compiled {
  std::vector<std::optional<fhirpath::Expression>> exprs;
  std::vector<std::string> why_not;

  static const Compiled& Get() {
    static const Compiled* c = new Compiled();
    return *c;
  }

 private:
  Compiled() : exprs(internal::kCExpressionCount), why_not(internal::kCExpressionCount) {
    for (int i = 0; i < internal::kCExpressionCount; ++i) {
      std::string_view text = kCExpressions[i];
      for (const auto& [fn, reason] : kNeedsService) {
        if (text.find(fn) != std::string_view::npos) why_not[i] = std::string(reason);
      }
      if (!why_not[i].empty()) continue;
      // dom-3 writes `%resource.descendants().as(canonical)`: as() on a collection, which our
      // engine (as FHIRPath N1 says) refuses for more than one item; the R4 tools read it as a
      // filter, which is ofType(). And `descendants().where(reference = '#')`: the engine refuses
      // `reference` on a primitive descendant (an unknown element of a known type); only
      // References have it. Rewritten here so dom-3 is evaluated (test: the dom-3 cases).
      std::string rewritten(text);
      for (auto [from, to] : {std::pair<std::string, std::string>{"descendants().as(canonical)",
                                                                   "descendants().ofType(canonical)"},
                              {"descendants().as(uri)", "descendants().ofType(uri)"},
                              {"descendants().as(url)", "descendants().ofType(url)"},
                              {"descendants().where(reference = '#')",
                               "descendants().ofType(Reference).where(reference = '#')"}}) {
        for (size_t at = rewritten.find(from); at != std::string::npos;
             at = rewritten.find(from, at + to.size())) {
          rewritten.replace(at, from.size(), to);
        }
      }
      absl::StatusOr<fhirpath::Expression> e = fhirpath::Expression::Compile(rewritten);
      if (e.ok()) {
        exprs[i] = *std::move(e);
      } else {
        why_not[i] = base::StrCat("does not compile: ", std::string(e.status().message()));
      }
    }
  }
};

const internal::CPath* FindPath(std::string_view path) {
  const internal::CPath* first = kCPaths;
  const internal::CPath* last = kCPaths + kCPathCount;
  const internal::CPath* it = std::lower_bound(
      first, last, path, [](const internal::CPath& p, std::string_view s) { return p.path < s; });
  return it != last && it->path == path ? it : nullptr;
}

// The allowed target types of the Reference element at `path` ("Patient|Group"), or empty.
std::string_view RefTargets(std::string_view path) {
  const internal::CRefTargets* first = internal::kCRefTargets;
  const internal::CRefTargets* last = first + internal::kCRefTargetCount;
  const internal::CRefTargets* it =
      std::lower_bound(first, last, path, [](const internal::CRefTargets& r, std::string_view s) {
        return r.path < s;
      });
  return it != last && it->path == path ? it->targets : std::string_view();
}

// The resource type an absolute RESTful reference names (`http://host/fhir/Patient/1`,
// `https://host/Patient/1/_history/2`: http.html#general, references.html#literal), or empty
// (another scheme, no `Type/id` at the end, a type that is not an R4 resource). Relative ones are
// the validator's.
std::string_view AbsoluteReferenceType(std::string_view ref, const fhirpath::Model& model) {
  if (!ref.starts_with("http://") && !ref.starts_with("https://")) return {};
  std::string_view path = ref.substr(ref.find("://") + 3);
  if (size_t q = path.find_first_of("?#"); q != std::string_view::npos) return {};
  auto last_segment = [](std::string_view& p) {
    size_t slash = p.rfind('/');
    if (slash == std::string_view::npos) return std::string_view();
    std::string_view seg = p.substr(slash + 1);
    p = p.substr(0, slash);
    return seg;
  };
  std::string_view id = last_segment(path);
  std::string_view type = last_segment(path);
  if (type == "_history") {  // Type/id/_history/vid
    id = last_segment(path);
    type = last_segment(path);
  }
  if (id.empty() || id.size() > 64 || type.empty()) return {};
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return {};
  }
  const fhirpath::TypeInfo* t = model.Find(type);
  return t != nullptr && t->kind == fhirpath::TypeInfo::kResource ? type : std::string_view();
}

bool SuffixMatches(std::string_view suffix, const std::string& type_name) {
  if (suffix.empty() || suffix.size() != type_name.size()) return false;
  char c = type_name[0];
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return suffix[0] == c && suffix.substr(1) == std::string_view(type_name).substr(1);
}

std::string_view Str(const Json& v) { return {v.GetString(), v.GetStringLength()}; }

// Issues are capped at max_issues, then one "too-costly".
class Sink {
 public:
  Sink(size_t max, std::vector<ValidationIssue>* out) : max_(max), out_(out) {}
  bool stopped() const { return stopped_; }
  void Add(ValidationIssue i) {
    if (stopped_) return;
    if (out_->size() >= max_) {
      stopped_ = true;
      out_->push_back({Severity::kError, "too-costly",
                       base::StrCat("checking stopped after ", max_, " issues"), ""});
      return;
    }
    out_->push_back(std::move(i));
  }

 private:
  size_t max_;
  std::vector<ValidationIssue>* out_;
  bool stopped_ = false;
};

// Evaluates expression `index` on `context`; adds an issue when it is false or fails. One it
// does not evaluate is reported when `report_unsupported` (profile rules); base invariants are
// listed by UnsupportedInvariants() instead (they would repeat on every element).
void Evaluate(int index, const fhirpath::Collection& context, const fhirpath::Environment& env,
              std::string_view key, bool error, std::string_view text, const std::string& where,
              Sink& sink, bool report_unsupported = false, const char* code = "invariant") {
  const Compiled& c = Compiled::Get();
  if (!c.exprs[index]) {
    if (report_unsupported) {
      sink.Add({Severity::kWarning, "not-supported",
                base::StrCat(key, ": ", text, ": not checked (", c.why_not[index], ")"), where});
    }
    return;
  }
  absl::StatusOr<fhirpath::Collection> r = fhirpath::EvaluateOn(*c.exprs[index], context, env);
  if (!r.ok()) {
    sink.Add({Severity::kWarning, "processing",
              base::StrCat(key, ": the invariant could not be evaluated here (",
                           std::string(r.status().message()), ")"),
              where});
    return;
  }
  if (r->size() == 1 && (*r)[0].kind == fhirpath::Kind::kBoolean && !(*r)[0].b) {
    sink.Add({error ? Severity::kError : Severity::kWarning, code,
              base::StrCat(key, ": ", text), where});
  }
}

class Walker {
 public:
  Walker(const ConformanceOptions& o, std::vector<ValidationIssue>* out)
      : sink_(o.max_issues, out), model_(fhirpath::Model::Get()) {}

  void Top(const Json& resource) {
    if (!resource.IsObject()) return;
    const TypeInfo* t = ResourceType(resource);
    if (t == nullptr) return;  // the validator reports it
    Node(resource, t, /*def_path=*/{}, t->name, &resource, &resource);
  }

 private:
  const TypeInfo* ResourceType(const Json& v) {
    auto rt = v.FindMember("resourceType");
    if (rt == v.MemberEnd() || !rt->value.IsString()) return nullptr;
    const TypeInfo* t = model_.Find(Str(rt->value));
    return t != nullptr && t->kind == TypeInfo::kResource ? t : nullptr;
  }

  // The constraints of `def_path` and of the type's own definition (a datatype's root, a
  // backbone element's definition), each key once, on `value` of type `t`.
  void Check(const fhirpath::Value& value, const TypeInfo* t, std::string_view def_path,
             const std::string& where, const Json* resource, const Json* root, bool primitive) {
    fhirpath::Environment env;
    env.resource = resource;
    env.root_resource = root;
    const fhirpath::Collection context{value};
    std::string_view seen[64];
    int n_seen = 0;
    for (std::string_view path : {def_path, std::string_view(t->name)}) {
      if (path.empty()) continue;
      const internal::CPath* p = FindPath(path);
      if (p == nullptr) continue;
      for (int k = 0; k < p->count && !sink_.stopped(); ++k) {
        const internal::CConstraint& c = kCConstraints[p->first + k];
        if (primitive && c.key == "ele-1") continue;  // a JSON primitive has a value
        if (std::find(seen, seen + n_seen, c.key) != seen + n_seen) continue;
        if (n_seen < 64) seen[n_seen++] = c.key;
        Evaluate(c.expression, context, env, c.key, c.error, c.human, where, sink_);
      }
    }
  }

  void Node(const Json& obj, const TypeInfo* t, std::string_view def_path,
            const std::string& where, const Json* resource, const Json* root) {
    if (sink_.stopped() || ++depth_ > 64) {
      --depth_;
      return;
    }
    Check(fhirpath::FhirValue(obj, t->name), t, def_path, where, resource, root, false);
    const TypeInfo* element_type = model_.Find("Element");
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd() && !sink_.stopped(); ++m) {
      std::string_view key = Str(m->name);
      if (key == "resourceType" || key.empty()) continue;
      if (key[0] == '_') {
        // A primitive's id and extensions: an Element.
        ForEach(m->value, where, key, [&](const Json& item, const std::string& at) {
          if (item.IsObject() && element_type != nullptr) {
            Node(item, element_type, {}, at, resource, root);
          }
        });
        continue;
      }
      const TypeInfo* child = nullptr;
      std::string child_def;
      if (const ElementInfo* e = t->Element(key); e != nullptr && !e->choice) {
        if (!e->types.empty()) child = e->types[0];
        child_def = base::StrCat(t->name, ".", key);
      } else {
        for (size_t cut = key.size() - 1; cut > 0 && child == nullptr; --cut) {
          if (key[cut] < 'A' || key[cut] > 'Z') continue;
          const ElementInfo* ce = t->Element(key.substr(0, cut));
          if (ce != nullptr && ce->choice) {
            for (const TypeInfo* ct : ce->types) {
              if (SuffixMatches(key.substr(cut), ct->name)) child = ct;
            }
            child_def = base::StrCat(t->name, ".", key.substr(0, cut), "[x]");
          }
          break;
        }
      }
      if (child == nullptr) continue;  // not an element: the validator reports it
      ForEach(m->value, where, key, [&](const Json& item, const std::string& at) {
        if (item.IsNull()) return;
        switch (child->kind) {
          case TypeInfo::kPrimitive:
            Check(fhirpath::FhirValue(item, child->name), child, child_def, at, resource, root,
                  true);
            return;
          case TypeInfo::kResource: {
            if (!item.IsObject()) return;
            const TypeInfo* rt = ResourceType(item);
            if (rt == nullptr) return;
            // A contained resource's %rootResource is its container's; a Bundle entry's or a
            // Parameters resource is a resource of its own.
            Node(item, rt, child_def, at, &item, key == "contained" ? root : &item);
            return;
          }
          default:
            if (!item.IsObject()) return;
            if (child->name == "Reference") ReferenceTarget(item, child_def, at);
            Node(item, child, child_def, at, resource, root);
        }
      });
    }
    --depth_;
  }

  // An absolute reference whose URL names a resource type must name one the element allows,
  // as the validator requires of relative ones (same message).
  void ReferenceTarget(const Json& ref, std::string_view def_path, const std::string& where) {
    auto r = ref.FindMember("reference");
    if (r == ref.MemberEnd() || !r->value.IsString()) return;
    std::string_view type = AbsoluteReferenceType(Str(r->value), model_);
    std::string_view targets = RefTargets(def_path);
    if (type.empty() || targets.empty()) return;
    for (std::string_view rest = targets; !rest.empty();) {
      size_t bar = rest.find('|');
      if (rest.substr(0, bar) == type) return;
      rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
    }
    std::string allowed(targets);
    for (size_t k = allowed.find('|'); k != std::string::npos; k = allowed.find('|', k + 3)) {
      allowed.replace(k, 1, " | ");
    }
    sink_.Add({Severity::kError, "structure",
               base::StrCat("a reference to a ", type, " is not allowed here: ", def_path,
                            " is Reference(", allowed, ")"),
               base::StrCat(where, ".reference")});
  }

  template <typename F>
  void ForEach(const Json& v, const std::string& where, std::string_view key, F&& f) {
    if (v.IsArray()) {
      for (rapidjson::SizeType i = 0; i < v.Size() && !sink_.stopped(); ++i) {
        f(v[i], base::StrCat(where, ".", key, "[", i, "]"));
      }
    } else {
      f(v, base::StrCat(where, ".", key));
    }
  }

  Sink sink_;
  const fhirpath::Model& model_;
  int depth_ = 0;
};

const internal::CProfile* FindProfile(std::string_view url) {
  url = url.substr(0, url.find('|'));
  const internal::CProfile* first = internal::kCProfiles;
  const internal::CProfile* last = first + internal::kCProfileCount;
  const internal::CProfile* it =
      std::lower_bound(first, last, url, [](const internal::CProfile& p, std::string_view s) {
        return p.url < s;
      });
  return it != last && it->url == url ? it : nullptr;
}

}  // namespace

std::vector<ValidationIssue> CheckInvariants(const rapidjson::Value& resource,
                                             const ConformanceOptions& options) {
  std::vector<ValidationIssue> issues;
  Walker(options, &issues).Top(resource);
  return issues;
}

bool IsKnownProfile(std::string_view url) { return FindProfile(url) != nullptr; }

std::vector<ValidationIssue> CheckProfile(const rapidjson::Value& resource, std::string_view url,
                                          Severity unknown_severity) {
  std::vector<ValidationIssue> issues;
  const internal::CProfile* p = FindProfile(url);
  if (p == nullptr) {
    issues.push_back({unknown_severity, "not-supported",
                      base::StrCat("unknown profile ", url, ": not checked"), ""});
    return issues;
  }
  auto rt = resource.IsObject() ? resource.FindMember("resourceType") : resource.MemberEnd();
  if (!resource.IsObject() || rt == resource.MemberEnd() || !rt->value.IsString() ||
      Str(rt->value) != p->type) {
    issues.push_back({Severity::kError, "invalid",
                      base::StrCat("the profile ", p->url, " is for ", p->type, " resources"),
                      "resourceType"});
    return issues;
  }
  for (int i = 0; i < internal::kCSkippedCount; ++i) {
    const internal::CSkipped& s = internal::kCSkipped[i];
    if (s.url != p->url) continue;
    issues.push_back({Severity::kWarning, "not-supported",
                      base::StrCat(p->url, ": ", s.element, " not checked (", s.reason, ")"),
                      std::string(s.element)});
  }
  Sink sink(ConformanceOptions{}.max_issues, &issues);
  const fhirpath::Collection context{fhirpath::FhirValue(resource)};
  fhirpath::Environment env;
  env.resource = &resource;
  for (int i = 0; i < p->rule_count && !sink.stopped(); ++i) {
    const internal::CRule& r = internal::kCRules[p->first_rule + i];
    // Cardinality, types and values are "structure"; a required binding "code-invalid" (as the
    // validator's); the profile's own constraints "invariant".
    const bool structural = r.key == "min" || r.key == "max" || r.key == "type" ||
                            r.key == "fixed" || r.key == "pattern";
    const char* code = structural ? "structure" : r.key == "binding" ? "code-invalid" : "invariant";
    Evaluate(r.expression, context, env, r.key, r.error,
             base::StrCat(r.message, " (profile ", p->url, ")"), std::string(r.element), sink,
             /*report_unsupported=*/true, code);
  }
  return issues;
}

std::vector<ValidationIssue> CheckMetaProfiles(const rapidjson::Value& resource) {
  std::vector<ValidationIssue> issues;
  if (!resource.IsObject()) return issues;
  auto meta = resource.FindMember("meta");
  if (meta == resource.MemberEnd() || !meta->value.IsObject()) return issues;
  auto profiles = meta->value.FindMember("profile");
  if (profiles == meta->value.MemberEnd() || !profiles->value.IsArray()) return issues;
  for (const Json& url : profiles->value.GetArray()) {
    if (!url.IsString()) continue;
    std::vector<ValidationIssue> more = CheckProfile(resource, Str(url), Severity::kWarning);
    issues.insert(issues.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
  }
  return issues;
}

void WithJsonNumbers(const rapidjson::Value& v, rapidjson::Document& out) {
  out.CopyFrom(v, out.GetAllocator());
  // Depth-first over the copy: a marked string becomes the number it spells.
  std::vector<Json*> stack{&out};
  while (!stack.empty()) {
    Json* x = stack.back();
    stack.pop_back();
    if (x->IsObject()) {
      for (auto m = x->MemberBegin(); m != x->MemberEnd(); ++m) stack.push_back(&m->value);
    } else if (x->IsArray()) {
      for (Json& item : x->GetArray()) stack.push_back(&item);
    } else if (x->IsString() && x->GetStringLength() > 1 && x->GetString()[0] == kNumberMark) {
      rapidjson::Document num;
      num.Parse<rapidjson::kParseFullPrecisionFlag>(x->GetString() + 1, x->GetStringLength() - 1);
      if (!num.HasParseError() && num.IsNumber()) x->CopyFrom(num, out.GetAllocator());
    }
  }
}

std::vector<std::string> UnsupportedInvariants() {
  const Compiled& c = Compiled::Get();
  std::vector<std::string> out;
  for (int p = 0; p < kCPathCount; ++p) {
    for (int k = 0; k < kCPaths[p].count; ++k) {
      const internal::CConstraint& con = kCConstraints[kCPaths[p].first + k];
      if (!c.why_not[con.expression].empty()) {
        out.push_back(base::StrCat(con.key, " ", kCPaths[p].path, ": ", c.why_not[con.expression]));
      }
    }
  }
  return out;
}

}  // namespace isthmus::fhir_conformance
