#include "mapping/v2fhir/loader.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>

#include "base/file.h"
#include "base/str.h"
#include "base/yaml_util.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace isthmus::v2fhir {

std::string SourceRef::ToString() const { return base::StrCat(file, ":", line); }

const MessageMap* MapSet::FindMessage(std::string_view name) const {
  auto it = messages.find(absl::string_view(name.data(), name.size()));
  return it == messages.end() ? nullptr : it->second.get();
}

const std::vector<ConceptMap::Target>* ConceptMap::Find(std::string_view system,
                                                        std::string_view code,
                                                        bool any_source) const {
  std::string key = base::StrCat(system, "|", code);
  auto it = targets.find(key);
  if (it == targets.end() && any_source && !system.empty()) {
    it = targets.find(base::StrCat("|", code));
  }
  return it == targets.end() ? nullptr : &it->second;
}

const MessageMap* MapSet::FindEvent(std::string_view type, std::string_view trigger) const {
  std::string key = base::StrCat(type, "^", trigger);
  auto it = by_event.find(key);
  return it == by_event.end() ? nullptr : it->second;
}

namespace {

namespace fs = std::filesystem;
using base::YamlErrors;

// Absent keys read through a const node are invalid nodes, whose type queries throw: check
// IsDefined() first everywhere.
std::string Scalar(const YAML::Node& n) {
  return n.IsDefined() && n.IsScalar() ? std::string(n.Scalar()) : "";
}
bool IsSeq(const YAML::Node& n) { return n.IsDefined() && n.IsSequence(); }

SourceRef Ref(const std::string& file, const YAML::Node& n) {
  SourceRef r;
  r.file = file;
  if (n.IsDefined() && !n.Mark().is_null()) r.line = n.Mark().line + 1;
  return r;
}

// Element paths: steps separated by '.', each `name`, `name[+]`, `name[n]`, `name[k=v]`,
// `name[+k=v]`; "$" = the current element.
absl::StatusOr<ElementPath> ParseElement(std::string_view text) {
  ElementPath p;
  p.text = std::string(text);
  if (text == "$") return p;
  size_t i = 0;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(base::StrCat("element '", text, "': ", why));
  };
  while (i < text.size()) {
    PathStep step;
    size_t start = i;
    while (i < text.size() && text[i] != '.' && text[i] != '[') ++i;
    step.name = std::string(text.substr(start, i - start));
    if (step.name.empty()) return bad("empty step");
    for (char c : step.name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
        return bad(base::StrCat("'", step.name, "' is not an element name"));
      }
    }
    if (i < text.size() && text[i] == '[') {
      size_t close = text.find(']', i);
      if (close == std::string_view::npos) return bad("missing ']'");
      std::string_view inside = text.substr(i + 1, close - i - 1);
      i = close + 1;
      bool append = !inside.empty() && inside[0] == '+';
      if (append) inside.remove_prefix(1);
      size_t eq = inside.find('=');
      if (eq != std::string_view::npos) {
        step.mode = append ? PathStep::Mode::kAppendWhere : PathStep::Mode::kWhere;
        step.where_key = std::string(inside.substr(0, eq));
        step.where_value = std::string(inside.substr(eq + 1));
        if (step.where_key.empty()) return bad("[key=value] needs a key");
      } else if (append && inside.empty()) {
        step.mode = PathStep::Mode::kAppend;
      } else if (!append && inside == "last") {
        step.mode = PathStep::Mode::kLast;
      } else {
        int n = 0;
        if (append || !base::ParseInt(inside, &n) || n < 1) {
          return bad("expected [+], [n] (1-based), [last], [key=value] or [+key=value]");
        }
        step.mode = PathStep::Mode::kIndex;
        step.index = n - 1;
      }
      if (append) p.appends = true;
    }
    p.steps.push_back(std::move(step));
    if (i < text.size()) {
      if (text[i] != '.') return bad("expected '.' after ']'");
      ++i;
      if (i == text.size()) return bad("ends with '.'");
    }
  }
  return p;
}

bool ParseConversion(std::string_view s, Conversion* out) {
  static const std::pair<std::string_view, Conversion> kNames[] = {
      {"string", Conversion::kString},     {"code", Conversion::kCode},
      {"uri", Conversion::kUri},           {"decimal", Conversion::kDecimal},
      {"integer", Conversion::kInteger},   {"boolean", Conversion::kBoolean},
      {"dateTime", Conversion::kDateTime}, {"date", Conversion::kDate},
      {"instant", Conversion::kInstant},   {"time", Conversion::kTime},
      {"Coding", Conversion::kCoding},     {"coding-system", Conversion::kCodingSystem},
      {"hd-uri", Conversion::kHdUri},      {"base64", Conversion::kBase64},
      {"base64Binary", Conversion::kBase64Binary},
      {"segment-resource", Conversion::kSegmentResource},
      {"scope-resource", Conversion::kScopeResource},
  };
  for (const auto& [name, c] : kNames) {
    if (s == name) {
      *out = c;
      return true;
    }
  }
  return false;
}

// "PID-11.9" (segment maps, `segment` set) or "CX.4", "4", "4.1" (datatype maps).
bool ParseSelect(std::string_view text, std::string_view scope_name, bool segment,
                 std::vector<int>* out, std::string* why) {
  std::string_view rest = text;
  if (segment) {
    size_t dash = text.find('-');
    if (dash == std::string_view::npos || text.substr(0, dash) != scope_name) {
      *why = base::StrCat("field '", text, "' must be ", scope_name, "-F[.C[.S]]");
      return false;
    }
    rest = text.substr(dash + 1);
  } else if (size_t dot = text.find('.');
             dot != std::string_view::npos && text.substr(0, dot) == scope_name) {
    rest = text.substr(dot + 1);
  }
  for (std::string_view piece : base::Split(rest, '.')) {
    int n = 0;
    if (!base::ParseInt(piece, &n) || n < 1) {
      *why = base::StrCat("'", text, "' is not a ", segment ? "field" : "component", " path");
      return false;
    }
    out->push_back(n);
  }
  if (out->size() > (segment ? 3u : 2u)) {
    *why = base::StrCat("'", text, "' is too deep");
    return false;
  }
  return true;
}

struct Loaded {
  const MapFile* file;
  YAML::Node root;
};

class Compiler {
 public:
  explicit Compiler(MapSet* set) : set_(set) {}

  // Rules of a segment map (`segment` true) or datatype map.
  void CompileRules(const YAML::Node& list, const std::string& file, const std::string& scope,
                    bool segment, std::vector<Rule>* out, YamlErrors& errors,
                    std::vector<std::string>* as_names = nullptr) {
    if (!list.IsDefined()) return;
    if (!list.IsSequence()) {
      errors.Add(list, "'rules' must be a list");
      return;
    }
    std::vector<std::string> own;  // `as:` names, index = slot
    std::vector<std::string>& labels = as_names != nullptr ? *as_names : own;
    for (const YAML::Node& r : list) {
      if (!base::CheckKeys(r, {"field", "component", "when", "element", "type", "datatype",
                               "vocabulary", "components", "value", "resource", "repeat", "join",
                               "prefix", "as", "into", "rules", "if_absent", "conceptmap",
                               "note"},
                           errors, "a rule")) {
        continue;
      }
      Rule rule;
      rule.src = Ref(file, r);
      const char* select_key = segment ? "field" : "component";
      if (r[segment ? "component" : "field"].IsDefined()) {
        errors.Add(r[segment ? "component" : "field"],
                   segment ? "segment map rules name a 'field' (PID-3.1)"
                           : "datatype map rules name a 'component' (CX.4)");
        continue;
      }
      if (YAML::Node s = r[select_key]; s.IsDefined()) {
        std::string why;
        rule.select_text = Scalar(s);
        if (!ParseSelect(rule.select_text, scope, segment, &rule.select, &why)) {
          errors.Add(s, why);
          continue;
        }
      }
      if (YAML::Node w = r["when"]; w.IsDefined()) {
        auto c = Condition::Compile(Scalar(w), ConditionScope{segment, scope});
        if (!c.ok()) {
          errors.Add(w, base::StrCat("condition: ", std::string(c.status().message())));
          continue;
        }
        rule.when = std::move(*c);
      }
      YAML::Node el = r["element"];
      if (!el.IsDefined() && r["resource"].IsDefined() && r["datatype"].IsDefined()) {
        rule.no_reference = true;  // the resource is made, nothing here refers to it
      } else if (!el.IsDefined()) {
        errors.Add(r, "a rule needs an 'element'");
        continue;
      } else {
        auto path = ParseElement(Scalar(el));
        if (!path.ok()) {
          errors.Add(el, std::string(path.status().message()));
          continue;
        }
        rule.element = std::move(*path);
      }
      int kinds = 0;
      if (YAML::Node t = r["type"]; t.IsDefined()) {
        ++kinds;
        if (!ParseConversion(Scalar(t), &rule.conversion)) {
          errors.Add(t, base::StrCat("unknown type '", Scalar(t),
                                     "' (string, code, uri, decimal, integer, boolean, dateTime, "
                                     "date, instant, time, Coding, coding-system, hd-uri)"));
          continue;
        }
      }
      if (YAML::Node d = r["datatype"]; d.IsDefined()) {
        ++kinds;
        rule.datatype = FindDatatype(Scalar(d));
        if (rule.datatype == nullptr) {
          errors.Add(d, base::StrCat("no datatype map '", Scalar(d), "' (datatypes/", Scalar(d),
                                     ".yaml)"));
          continue;
        }
      }
      if (YAML::Node v = r["value"]; v.IsDefined()) {
        ++kinds;
        rule.constant = Scalar(v);
        if (!rule.select.empty()) {
          errors.Add(v, "a constant 'value' does not read a field; remove the field/component");
          continue;
        }
      }
      // A typed constant: `value: "true", type: boolean` (also integer, decimal).
      bool typed_constant = rule.constant && kinds == 2 && rule.datatype == nullptr &&
                            (rule.conversion == Conversion::kBoolean ||
                             rule.conversion == Conversion::kInteger ||
                             rule.conversion == Conversion::kDecimal);
      if (YAML::Node nested = r["rules"]; nested.IsDefined()) {
        if (!segment || kinds != 0 || rule.select.empty()) {
          errors.Add(nested, "nested 'rules' belong to a segment map rule with a 'field' and no "
                             "'type', 'datatype' or 'value'");
          continue;
        }
        CompileRules(nested, file, scope, true, &rule.children, errors);
        rule.each_repetition = rule.element.appends;
        out->push_back(std::move(rule));
        continue;
      }
      if (kinds != 1 && !typed_constant) {
        errors.Add(r, "a rule needs exactly one of 'type', 'datatype' or 'value' (a 'value' may "
                      "have type boolean, integer or decimal)");
        continue;
      }
      if (YAML::Node v = r["vocabulary"]; v.IsDefined()) {
        std::string name = Scalar(v);
        if (name == "inherit") {
          rule.inherit_vocabulary = true;
        } else {
          rule.vocabulary = FindVocabulary(name);
          if (rule.vocabulary == nullptr) {
            errors.Add(v, base::StrCat("no vocabulary '", name, "' (vocabulary/", name, ".yaml)"));
            continue;
          }
        }
      }
      if (YAML::Node c = r["components"]; c.IsDefined()) {
        rule.coding_components.clear();
        bool ok = c.IsSequence() && c.size() >= 1 && c.size() <= 3;
        if (ok) {
          for (const YAML::Node& n : c) {
            int v = 0;
            if (!base::ParseInt(Scalar(n), &v) || v < 1) ok = false;
            rule.coding_components.push_back(v);
          }
        }
        if (!ok) {
          errors.Add(c, "'components' is a list of 1 to 3 component numbers: [code, display, system]");
          continue;
        }
      }
      if (YAML::Node res = r["resource"]; res.IsDefined()) {
        rule.resource = Scalar(res);
        if (rule.datatype == nullptr && rule.conversion != Conversion::kSegmentResource &&
            rule.conversion != Conversion::kScopeResource) {
          errors.Add(res, "'resource' needs a 'datatype' map that builds the resource (or type "
                          "segment-resource: the resource of that type this segment made, or "
                          "scope-resource: the nearest one in the segment's scope)");
          continue;
        }
      }
      if (rule.conversion == Conversion::kScopeResource && rule.resource.empty()) {
        errors.Add(r, "type scope-resource needs 'resource: Type' (the resource type referred to)");
        continue;
      }
      if (YAML::Node j = r["join"]; j.IsDefined()) {
        rule.join = Scalar(j);
        if (rule.conversion != Conversion::kString) {
          errors.Add(j, "'join' goes with type: string");
          continue;
        }
      }
      if (YAML::Node pf = r["prefix"]; pf.IsDefined()) {
        rule.prefix = Scalar(pf);
        if (rule.conversion != Conversion::kString && rule.conversion != Conversion::kUri &&
            rule.conversion != Conversion::kCodingSystem) {
          errors.Add(pf, "'prefix' goes with type: string, uri or coding-system");
          continue;
        }
      }
      if (YAML::Node a = r["as"]; a.IsDefined()) {
        std::string name = Scalar(a);
        if (!segment || (rule.resource.empty() && rule.datatype == nullptr)) {
          errors.Add(a, "'as' names the resource a segment map rule with 'resource' makes, or "
                        "that its datatype map makes (a rule with 'datatype')");
          continue;
        }
        auto it = std::find(labels.begin(), labels.end(), name);
        if (it != labels.end()) {
          rule.as_slot = static_cast<int>(it - labels.begin());
        } else if (labels.size() == static_cast<size_t>(Rule::kMaxSlots)) {
          errors.Add(a, base::StrCat("at most ", Rule::kMaxSlots, " 'as' names per map"));
          continue;
        } else {
          rule.as_slot = static_cast<int>(labels.size());
          labels.push_back(name);
        }
      }
      if (YAML::Node in = r["into"]; in.IsDefined()) {
        std::string name = Scalar(in);
        auto it = std::find(labels.begin(), labels.end(), name);
        if (!segment || it == labels.end()) {
          errors.Add(in, base::StrCat("'into: ", name, "' needs an earlier rule of this segment "
                                      "map with 'as: ", name, "'"));
          continue;
        }
        rule.into_slot = static_cast<int>(it - labels.begin());
      }
      rule.each_repetition = rule.element.appends;
      if (YAML::Node rep = r["repeat"]; rep.IsDefined()) {
        std::string v = Scalar(rep);
        int index = 0;
        bool numbered = !v.empty() && v.size() < 4 &&
                        std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (numbered) index = std::stoi(v);
        if (v != "each" && v != "first" && v != "join" && v != "rest" && index < 1) {
          errors.Add(rep, "'repeat' is 'each', 'first', 'rest' (every repetition but the first), "
                          "a repetition number (1-based) or 'join'");
          continue;
        }
        if ((v == "rest" || index > 0) && (!segment || rule.select.empty())) {
          errors.Add(rep, base::StrCat("'repeat: ", v, "' needs a segment map rule with a 'field'"));
          continue;
        }
        if (v == "rest" || index > 0) {
          rule.each_repetition = true;
          rule.first_repetition = v == "rest" ? 2 : index;
          rule.last_repetition = v == "rest" ? 0 : index;
        }
        if (v == "join" && (!segment || rule.select.empty() || !rule.join)) {
          errors.Add(rep, "'repeat: join' needs a segment map rule with a 'field' and 'join' (the "
                          "separator between repetitions)");
          continue;
        }
        if (v != "rest" && index == 0) {
          rule.each_repetition = v == "each";
          rule.join_repetitions = v == "join";
        }
      }
      if (YAML::Node ia = r["if_absent"]; ia.IsDefined()) {
        // true (the rule's element), an element, or a list of elements (any present: skipped).
        std::vector<std::string> texts;
        if (ia.IsSequence()) {
          for (const YAML::Node& x : ia) texts.push_back(Scalar(x));
        } else {
          texts.push_back(Scalar(ia));
        }
        bool ok = rule.children.empty() && !texts.empty();
        for (const std::string& v : texts) {
          ElementPath check = rule.element;
          if (ok && (v != "true" || ia.IsSequence())) {
            auto p = ParseElement(v);
            ok = p.ok();
            if (ok) check = *p;
          }
          for (const PathStep& st : check.steps) ok = ok && st.mode == PathStep::Mode::kMember;
          ok = ok && !check.steps.empty();
          if (ok) rule.if_absent.push_back(std::move(check));
        }
        if (!ok) {
          errors.Add(ia, "'if_absent' (true or an element, or a list of elements) needs "
                         "elements of plain member names and a rule without nested 'rules'");
          continue;
        }
      }
      if (YAML::Node cm = r["conceptmap"]; cm.IsDefined()) {
        auto it = set_->conceptmaps.find(Scalar(cm));
        if (it == set_->conceptmaps.end()) {
          errors.Add(cm, base::StrCat("no ConceptMap '", Scalar(cm), "' (conceptmaps/", Scalar(cm),
                                      ".json)"));
          continue;
        }
        if (rule.datatype == nullptr || !rule.resource.empty()) {
          errors.Add(cm, "'conceptmap' goes with a 'datatype' that builds a CodeableConcept "
                         "(CWE[CodeableConcept])");
          continue;
        }
        rule.conceptmap = it->second.get();
      }
      out->push_back(std::move(rule));
    }
  }

  // `hooks: [{lua: site.lua, function: after_pid}]`: the script is lua/site.lua of the maps.
  void CompileHooks(const YAML::Node& list, const std::string& file, std::vector<Hook>* out,
                    YamlErrors& errors) {
    if (!list.IsDefined()) return;
    if (!list.IsSequence()) {
      errors.Add(list, "'hooks' is a list of {lua: FILE.lua, function: NAME}");
      return;
    }
    for (const YAML::Node& h : list) {
      if (!base::CheckKeys(h, {"lua", "function", "note"}, errors, "a hook")) continue;
      CompileHook(h, file, out, errors);
    }
  }
  // One hook {lua, function} (its keys checked by the caller).
  void CompileHook(const YAML::Node& h, const std::string& file, std::vector<Hook>* out,
                   YamlErrors& errors) {
    Hook hook;
    hook.src = Ref(file, h);
    std::string script = Scalar(h["lua"]);
    hook.function = Scalar(h["function"]);
    if (script.empty() || hook.function.empty()) {
      errors.Add(h, "a hook needs 'lua' (a script under lua/) and 'function' (its name)");
      return;
    }
    auto it = script_index.find(script);
    if (it == script_index.end()) {
      errors.Add(h["lua"], base::StrCat("no Lua script '", script, "' (lua/", script, ")"));
      return;
    }
    hook.script = it->second;
    functions[it->second].push_back(hook.function);
    out->push_back(std::move(hook));
  }
  // Scripts under lua/ by name ("site.lua") -> index into MapSet::scripts, and the functions
  // the hooks need from each (checked when the scripts are compiled).
  absl::flat_hash_map<std::string, int> script_index;
  std::vector<std::vector<std::string>> functions;

  const DatatypeMap* FindDatatype(const std::string& name) const {
    auto it = set_->datatypes.find(name);
    return it == set_->datatypes.end() ? nullptr : it->second.get();
  }
  const Vocabulary* FindVocabulary(const std::string& name) const {
    auto it = set_->vocabularies.find(name);
    return it == set_->vocabularies.end() ? nullptr : it->second.get();
  }
  const SegmentMap* FindSegment(const std::string& name) const {
    auto it = set_->segments.find(name);
    return it == set_->segments.end() ? nullptr : it->second.get();
  }

 private:
  MapSet* set_;
};

std::string Stem(const std::string& rel) {
  std::string name = fs::path(rel).filename().string();
  if (name.size() > 5 && name.ends_with(".yaml")) name.resize(name.size() - 5);
  return name;
}

void LoadVocabulary(const Loaded& l, MapSet* set, YamlErrors& errors) {
  const YAML::Node& root = l.root;
  if (!base::CheckKeys(root, {"vocabulary", "table", "system", "codes", "default", "unknown_prefix", "note"}, errors,
                       "a vocabulary map")) {
    return;
  }
  auto v = std::make_unique<Vocabulary>();
  v->name = Stem(l.file->relative_path);
  v->src = Ref(l.file->display_path, root);
  v->table = Scalar(root["table"]);
  v->system = Scalar(root["system"]);
  v->fallback = Scalar(root["default"]);
  v->unknown_prefix = Scalar(root["unknown_prefix"]);
  if (v->unknown_prefix.find_first_of(" \t\r\n") != std::string::npos) {
    errors.Add(root["unknown_prefix"], "'unknown_prefix' is a URI prefix without blanks");
    return;
  }
  YAML::Node codes = root["codes"];
  if (!codes.IsDefined() || !codes.IsMap()) {
    errors.Add(codes.IsDefined() ? codes : root, "'codes' must be a mapping of v2 code -> FHIR code");
    return;
  }
  for (auto it = codes.begin(); it != codes.end(); ++it) {
    std::string key = Scalar(it->first);
    Concept c;
    if (it->second.IsScalar()) {
      c.code = Scalar(it->second);
    } else if (base::CheckKeys(it->second, {"code", "display", "system"}, errors, "a code")) {
      c.code = Scalar(it->second["code"]);
      c.display = Scalar(it->second["display"]);
      c.system = Scalar(it->second["system"]);
    }
    if (c.code.empty()) {
      errors.Add(it->second, base::StrCat("code '", key, "' maps to nothing"));
      continue;
    }
    v->codes.emplace(key, std::move(c));
  }
  set->vocabularies[v->name] = std::move(v);
}

// 1-based line and column of byte `offset` in `text`.
std::string LineColumn(std::string_view text, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return base::StrCat(line, ":", column);
}

// A FHIR R4 ConceptMap (JSON) from conceptmaps/NAME.json. Only what the converter can apply is
// accepted: groups of element -> target codes, no dependsOn/product conditions, no `unmapped`.
void LoadConceptMap(const MapFile& f, MapSet* set, std::vector<std::string>* errors) {
  auto fail = [&](std::string_view why) {
    errors->push_back(base::StrCat(f.display_path, ": not a usable FHIR R4 ConceptMap: ", why));
  };
  rapidjson::Document doc;
  doc.Parse(f.text.data(), f.text.size());
  if (doc.HasParseError()) {
    errors->push_back(base::StrCat(f.display_path, ":", LineColumn(f.text, doc.GetErrorOffset()),
                                   ": invalid JSON: ", rapidjson::GetParseError_En(doc.GetParseError())));
    return;
  }
  auto str = [](const rapidjson::Value& o, const char* key) -> std::string {
    if (!o.IsObject()) return {};
    auto it = o.FindMember(key);
    return it != o.MemberEnd() && it->value.IsString()
               ? std::string(it->value.GetString(), it->value.GetStringLength())
               : std::string();
  };
  if (!doc.IsObject() || str(doc, "resourceType") != "ConceptMap") {
    return fail("resourceType is not \"ConceptMap\"");
  }
  auto cm = std::make_unique<ConceptMap>();
  cm->name = Stem(f.relative_path);
  if (cm->name.ends_with(".json")) cm->name.resize(cm->name.size() - 5);
  cm->url = str(doc, "url");
  cm->src = SourceRef{f.display_path, 1};
  auto groups = doc.FindMember("group");
  if (groups == doc.MemberEnd() || !groups->value.IsArray() || groups->value.Empty()) {
    return fail("'group' must be a non-empty array");
  }
  size_t gi = 0;
  for (const rapidjson::Value& g : groups->value.GetArray()) {
    std::string where = base::StrCat("group[", gi++, "]");
    if (!g.IsObject()) return fail(base::StrCat(where, " is not an object"));
    if (g.HasMember("unmapped")) {
      return fail(base::StrCat(where, ".unmapped is not supported (an unmapped code is left as "
                                      "it is)"));
    }
    std::string source = str(g, "source"), target = str(g, "target");
    if (target.empty()) return fail(base::StrCat(where, ".target (the target code system) is missing"));
    auto elements = g.FindMember("element");
    if (elements == g.MemberEnd() || !elements->value.IsArray()) {
      return fail(base::StrCat(where, ".element must be an array"));
    }
    if (std::find(cm->sources.begin(), cm->sources.end(), source) == cm->sources.end()) {
      cm->sources.push_back(source);
    }
    size_t ei = 0;
    for (const rapidjson::Value& e : elements->value.GetArray()) {
      std::string ew = base::StrCat(where, ".element[", ei++, "]");
      std::string code = str(e, "code");
      if (code.empty()) return fail(base::StrCat(ew, ".code is missing"));
      auto targets = e.FindMember("target");
      if (targets == e.MemberEnd()) continue;  // no mapping for this code
      if (!targets->value.IsArray()) return fail(base::StrCat(ew, ".target must be an array"));
      size_t ti = 0;
      for (const rapidjson::Value& t : targets->value.GetArray()) {
        std::string tw = base::StrCat(ew, ".target[", ti++, "]");
        if (!t.IsObject()) return fail(base::StrCat(tw, " is not an object"));
        if (t.HasMember("dependsOn") || t.HasMember("product")) {
          return fail(base::StrCat(tw, ": dependsOn/product are not supported"));
        }
        // R4 ConceptMapEquivalence (1..1): what the target means relative to the source code.
        std::string eq = str(t, "equivalence");
        static constexpr std::string_view kAdd[] = {"equal", "equivalent", "wider", "subsumes"};
        static constexpr std::string_view kKeep[] = {"relatedto", "narrower", "specializes",
                                                     "inexact", "unmatched", "disjoint"};
        bool add = std::find(std::begin(kAdd), std::end(kAdd), eq) != std::end(kAdd);
        if (!add && std::find(std::begin(kKeep), std::end(kKeep), eq) == std::end(kKeep)) {
          return fail(base::StrCat(tw, ".equivalence '", eq, "' is not an R4 ConceptMapEquivalence "
                                   "(equal, equivalent, wider, subsumes, relatedto, narrower, "
                                   "specializes, inexact, unmatched, disjoint)"));
        }
        if (!add) continue;  // not the same or a broader meaning: not added to the concept
        std::string tcode = str(t, "code");
        if (tcode.empty()) return fail(base::StrCat(tw, ".code is missing"));
        cm->targets[base::StrCat(source, "|", code)].push_back({target, tcode, str(t, "display")});
      }
    }
  }
  for (const std::string& s : cm->sources) {
    if (!s.empty()) set->conceptmaps_by_source[s].push_back(cm.get());
  }
  set->conceptmaps[cm->name] = std::move(cm);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const MapSet>> CompileMaps(const std::vector<MapFile>& files) {
  auto set = std::make_shared<MapSet>();
  std::vector<std::string> all_errors;
  auto flush = [&](YamlErrors& e) {
    for (const std::string& m : e.messages()) all_errors.push_back(m);
  };
  std::vector<Loaded> vocab, datatypes, segments, messages, hook_files;
  std::vector<const MapFile*> scripts;
  Compiler compiler(set.get());
  for (const MapFile& f : files) {
    std::string top = fs::path(f.relative_path).parent_path().string();
    if (top == "conceptmaps") {
      LoadConceptMap(f, set.get(), &all_errors);
      continue;
    }
    if (top == "lua") {
      compiler.script_index[fs::path(f.relative_path).filename().string()] =
          static_cast<int>(scripts.size());
      scripts.push_back(&f);
      continue;
    }
    auto root = base::ParseYaml(f.text, f.display_path);
    if (!root.ok()) {
      all_errors.push_back(std::string(root.status().message()));
      continue;
    }
    std::string dir = fs::path(f.relative_path).parent_path().string();
    Loaded l{&f, YAML::Node(*root)};
    if (dir == "vocabulary") {
      vocab.push_back(std::move(l));
    } else if (dir == "datatypes") {
      datatypes.push_back(std::move(l));
    } else if (dir == "segments") {
      segments.push_back(std::move(l));
    } else if (dir == "messages") {
      messages.push_back(std::move(l));
    } else if (dir == "hooks") {
      hook_files.push_back(std::move(l));
    } else {
      all_errors.push_back(base::StrCat(f.display_path,
                                        ": not under messages/, segments/, datatypes/, "
                                        "vocabulary/, hooks/, conceptmaps/ or lua/"));
    }
  }
  for (const Loaded& l : vocab) {
    YamlErrors e(l.file->display_path);
    LoadVocabulary(l, set.get(), e);
    flush(e);
  }
  if (auto it = set->vocabularies.find("CodingSystem"); it != set->vocabularies.end()) {
    set->coding_systems = it->second.get();
  }
  compiler.functions.resize(scripts.size());
  // Datatype maps may use each other: create them all, then compile their rules.
  for (const Loaded& l : datatypes) {
    auto d = std::make_unique<DatatypeMap>();
    d->name = Stem(l.file->relative_path);
    d->src = Ref(l.file->display_path, l.root);
    size_t bracket = d->name.find('[');
    d->datatype = d->name.substr(0, bracket);
    set->datatypes[d->name] = std::move(d);
  }
  for (const Loaded& l : datatypes) {
    YamlErrors e(l.file->display_path);
    DatatypeMap* d = set->datatypes[Stem(l.file->relative_path)].get();
    if (base::CheckKeys(l.root, {"datatype", "target", "rules", "note"}, e, "a datatype map")) {
      if (YAML::Node dt = l.root["datatype"]; dt.IsDefined()) d->datatype = Scalar(dt);
      compiler.CompileRules(l.root["rules"], l.file->display_path, d->datatype, false, &d->rules,
                            e);
    }
    flush(e);
  }
  for (const Loaded& l : segments) {
    YamlErrors e(l.file->display_path);
    if (base::CheckKeys(l.root, {"segment", "resource", "rules", "hooks", "note"}, e,
                        "a segment map")) {
      auto s = std::make_unique<SegmentMap>();
      s->name = Stem(l.file->relative_path);
      s->src = Ref(l.file->display_path, l.root);
      s->segment = Scalar(l.root["segment"]);
      s->resource = Scalar(l.root["resource"]);
      if (s->segment.empty()) {
        e.Add(l.root, "a segment map needs 'segment' (e.g. PID)");
      } else {
        compiler.CompileRules(l.root["rules"], l.file->display_path, s->segment, true, &s->rules,
                              e, &s->as_names);
        compiler.CompileHooks(l.root["hooks"], l.file->display_path, &s->hooks, e);
        set->segments[s->name] = std::move(s);
      }
    }
    flush(e);
  }
  for (const Loaded& l : messages) {
    YamlErrors e(l.file->display_path);
    const YAML::Node& root = l.root;
    if (!base::CheckKeys(root, {"message", "structure", "events", "ignore", "include", "resources",
                                "hooks", "note"},
                         e, "a message map")) {
      flush(e);
      continue;
    }
    auto m = std::make_unique<MessageMap>();
    m->name = Stem(l.file->relative_path);
    m->src = Ref(l.file->display_path, root);
    m->structure = root["structure"].IsDefined() ? Scalar(root["structure"]) : m->name;
    if (YAML::Node ev = root["events"]; ev.IsDefined()) {
      if (!ev.IsSequence()) e.Add(ev, "'events' is a list like [ADT^A01, ADT^A04]");
      if (ev.IsSequence()) {
        for (const YAML::Node& x : ev) m->events.push_back(Scalar(x));
      }
    }
    if (YAML::Node ig = root["ignore"]; ig.IsDefined()) {
      if (!ig.IsSequence()) e.Add(ig, "'ignore' is a list of segment names");
      if (ig.IsSequence()) {
        for (const YAML::Node& x : ig) m->ignore.push_back(Scalar(x));
      }
    }
    if (YAML::Node inc = root["include"]; inc.IsDefined()) {
      if (!inc.IsSequence()) e.Add(inc, "'include' is a list of message map names like [ADT_A01]");
      if (inc.IsSequence()) {
        for (const YAML::Node& x : inc) m->includes.push_back(Scalar(x));
      }
    }
    YAML::Node list = root["resources"];
    if (!IsSeq(list) && !(m->includes.size() > 0 && !list.IsDefined())) {
      e.Add(list.IsDefined() ? list : root, "'resources' must be a list");
    }
    bool header = false, provenance = false;
    for (const YAML::Node& r : IsSeq(list) ? list : YAML::Node(YAML::NodeType::Sequence)) {
      if (!base::CheckKeys(r, {"segment", "resource", "merge", "map", "when", "id", "references",
                               "into", "label", "from", "note"},
                           e, "a resource entry")) {
        continue;
      }
      MessageEntry entry;
      entry.src = Ref(l.file->display_path, r);
      const std::string segment_text = Scalar(r["segment"]);  // Split views into it
      for (std::string_view part : base::Split(segment_text, '.')) {
        entry.segment_path.emplace_back(part);
      }
      std::string seg = entry.segment_path.back();
      if (seg.size() != 3) {
        e.Add(r["segment"].IsDefined() ? r["segment"] : r,
              "'segment' is a segment name, optionally after its groups (ORDER_OBSERVATION.OBR)");
        continue;
      }
      entry.resource = Scalar(r["resource"]);
      if (entry.resource.empty()) {
        e.Add(r, "an entry needs 'resource' (the FHIR resource type)");
        continue;
      }
      if (YAML::Node mg = r["merge"]; mg.IsDefined() && mg.IsScalar() && mg.Scalar() == "scope") {
        entry.merge = entry.merge_scope = true;
      } else if (mg.IsDefined() && mg.IsScalar() && mg.Scalar() == "last") {
        entry.merge = entry.merge_last = true;
      } else if (mg.IsDefined() && !base::ParseYamlBool(mg, &entry.merge)) {
        e.Add(mg, "'merge' is true, false, scope or last");
        continue;
      }
      if (YAML::Node lb = r["label"]; lb.IsDefined()) {
        entry.label = Scalar(lb);
        if (entry.label.empty()) {
          e.Add(lb, "'label' is a name (order, encoded) telling resources of one type apart");
          continue;
        }
      }
      if (entry.merge_last && !entry.label.empty()) {
        e.Add(r["label"], "'merge: last' adds to the last resource filled, whatever its label: no "
                          "'label'");
        continue;
      }
      if (YAML::Node fr = r["from"]; fr.IsDefined()) {
        entry.from = Scalar(fr);
        if (entry.from.size() != 3 || !r["map"].IsDefined()) {
          e.Add(fr, "'from' is a segment name (ORC) whose nearest occurrence in scope the "
                    "entry's 'map' reads");
          continue;
        }
      }
      if (YAML::Node mp = r["map"]; mp.IsDefined()) {
        entry.map = compiler.FindSegment(Scalar(mp));
        if (entry.map == nullptr) {
          e.Add(mp, base::StrCat("no segment map '", Scalar(mp), "' (segments/", Scalar(mp), ".yaml)"));
          continue;
        }
        const std::string& reads = entry.from.empty() ? seg : entry.from;
        if (entry.map->segment != reads) {
          e.Add(mp, base::StrCat("segment map '", Scalar(mp), "' is for ", entry.map->segment,
                                 ", not ", reads));
          continue;
        }
      }
      if (YAML::Node w = r["when"]; w.IsDefined()) {
        auto c = Condition::Compile(Scalar(w), ConditionScope{true, seg});
        if (!c.ok()) {
          e.Add(w, base::StrCat("condition: ", std::string(c.status().message())));
          continue;
        }
        entry.when = std::move(*c);
      }
      if (YAML::Node id = r["id"]; id.IsDefined()) {
        bool ok = id.IsSequence();
        for (const YAML::Node& k : ok ? id : YAML::Node(YAML::NodeType::Sequence)) {
          std::string text = Scalar(k);
          KeyPart part;
          size_t dash = text.find('-');
          std::string why;
          part.segment = text.substr(0, dash == std::string::npos ? 0 : dash);
          if (part.segment.empty() || !ParseSelect(text, part.segment, true, &part.select, &why)) {
            e.Add(k, why.empty() ? base::StrCat("'", text, "' is not a field path") : why);
            ok = false;
            break;
          }
          entry.id.push_back(std::move(part));
        }
        if (!ok) {
          if (!id.IsSequence()) e.Add(id, "'id' is a list of field paths like [PID-3.1, PID-3.4.1]");
          continue;
        }
      }
      if (YAML::Node refs = r["references"]; refs.IsDefined()) {
        if (!refs.IsSequence()) {
          e.Add(refs, "'references' is a list of {element, to}");
          continue;
        }
        for (const YAML::Node& x : refs) {
          if (!base::CheckKeys(x, {"element", "to", "label"}, e, "a reference")) continue;
          Reference ref;
          ref.src = Ref(l.file->display_path, x);
          auto path = ParseElement(Scalar(x["element"]));
          if (!path.ok()) {
            e.Add(x, std::string(path.status().message()));
            continue;
          }
          ref.element = std::move(*path);
          ref.type = Scalar(x["to"]);
          if (ref.type.ends_with("[*]")) {
            ref.all = true;
            ref.type.resize(ref.type.size() - 3);
          }
          if (ref.type.empty()) {
            e.Add(x, "'to' names a resource type (Patient) or all of a type in the group (Observation[*])");
            continue;
          }
          if (x["label"].IsDefined()) ref.label = Scalar(x["label"]);
          if (ref.type == "Bundle") {
            // The Bundle the message becomes (Provenance.target): not an instance of the message.
            if (ref.all || ref.label) {
              e.Add(x, "'to: Bundle' is the Bundle itself: no [*] and no label");
              continue;
            }
            ref.bundle = true;
          }
          entry.references.push_back(std::move(ref));
        }
      }
      if (YAML::Node in = r["into"]; in.IsDefined()) {
        // `into: IN1.holder`: the resource the `as: holder` rule of an earlier entry's segment
        // map made for that segment (the one in this segment's group or an enclosing one).
        std::string text = Scalar(in);
        size_t dot = text.find('.');
        std::string from = text.substr(0, dot == std::string::npos ? 0 : dot);
        std::string name = dot == std::string::npos ? "" : text.substr(dot + 1);
        for (const MessageEntry& prev : m->entries) {
          if (prev.segment_path.back() != from || prev.map == nullptr) continue;
          auto it = std::find(prev.map->as_names.begin(), prev.map->as_names.end(), name);
          if (it == prev.map->as_names.end()) continue;
          entry.into_map = prev.map;
          entry.into_slot = static_cast<int>(it - prev.map->as_names.begin());
          break;
        }
        if (entry.into_map == nullptr) {
          e.Add(in, base::StrCat("'into: ", text, "' needs an earlier entry of this message map "
                                 "for segment ", from.empty() ? "SEG" : from,
                                 " whose segment map has a rule with 'as: ",
                                 name.empty() ? "NAME" : name, "' (write it SEG.NAME)"));
          continue;
        }
        if (entry.merge || !entry.id.empty() || r["references"].IsDefined() ||
            entry.map == nullptr || !entry.label.empty() || !entry.from.empty()) {
          e.Add(in, "an 'into' entry writes with its 'map' into a resource another segment made: "
                    "no 'merge', 'id', 'references', 'label' or 'from'");
          continue;
        }
      }
      if (seg == "MSH" && entry.resource == "MessageHeader") header = true;
      if (seg == "MSH" && entry.resource == "Provenance") provenance = true;
      m->entries.push_back(std::move(entry));
    }
    compiler.CompileHooks(root["hooks"], l.file->display_path, &m->hooks, e);
    if (e.empty() && m->includes.empty() && (!header || !provenance)) {
      e.Add(root, "a message map must map MSH to a MessageHeader and to a Provenance");
    }
    if (e.empty()) {
      for (const std::string& ev : m->events) set->by_event[ev] = m.get();
      set->messages[m->name] = std::move(m);
    }
    flush(e);
  }
  // hooks/*.yaml: hooks added to maps by name, so that a site hooks a shipped map without
  // replacing it. Before includes are resolved: a map including ADT_A01 gets its hooks too.
  for (const Loaded& l : hook_files) {
    YamlErrors e(l.file->display_path);
    if (!IsSeq(l.root)) {
      e.Add(l.root, "a hooks file is a list of {message: NAME or segment: NAME, lua: FILE.lua, "
                    "function: NAME}");
    }
    for (const YAML::Node& h : IsSeq(l.root) ? l.root : YAML::Node(YAML::NodeType::Sequence)) {
      if (!base::CheckKeys(h, {"message", "segment", "lua", "function", "note"}, e, "a hook")) {
        continue;
      }
      const bool message = h["message"].IsDefined();
      if (message == h["segment"].IsDefined()) {
        e.Add(h, "a hook names either a 'message' map or a 'segment' map");
        continue;
      }
      std::string name = Scalar(message ? h["message"] : h["segment"]);
      std::vector<Hook>* target = nullptr;
      if (message) {
        if (auto it = set->messages.find(name); it != set->messages.end()) {
          target = &it->second->hooks;
        }
      } else if (auto it = set->segments.find(name); it != set->segments.end()) {
        target = &it->second->hooks;
      }
      if (target == nullptr) {
        e.Add(message ? h["message"] : h["segment"],
              base::StrCat("no ", message ? "message" : "segment", " map '", name, "' (",
                           message ? "messages/" : "segments/", name, ".yaml)"));
        continue;
      }
      compiler.CompileHook(h, l.file->display_path, target, e);
    }
    flush(e);
  }
  // Includes: copy the included maps' entries (resolved recursively) before each map's own.
  absl::flat_hash_map<std::string, bool> resolved;  // name -> done (false: in progress)
  std::function<bool(MessageMap*)> resolve = [&](MessageMap* m) -> bool {
    if (auto it = resolved.find(m->name); it != resolved.end()) {
      if (!it->second) {
        all_errors.push_back(base::StrCat(m->src.ToString(), ": message map ", m->name,
                                          " includes itself"));
      }
      return it->second;
    }
    resolved[m->name] = false;
    std::vector<MessageEntry> entries;
    std::vector<std::string> ignore;
    std::vector<Hook> hooks;
    for (const std::string& name : m->includes) {
      auto it = set->messages.find(name);
      if (it == set->messages.end()) {
        all_errors.push_back(base::StrCat(m->src.ToString(), ": 'include' names no message map '",
                                          name, "' (messages/", name, ".yaml)"));
        return false;
      }
      if (!resolve(it->second.get())) return false;
      entries.insert(entries.end(), it->second->entries.begin(), it->second->entries.end());
      ignore.insert(ignore.end(), it->second->ignore.begin(), it->second->ignore.end());
      hooks.insert(hooks.end(), it->second->hooks.begin(), it->second->hooks.end());
    }
    if (!m->includes.empty()) {
      entries.insert(entries.end(), m->entries.begin(), m->entries.end());
      ignore.insert(ignore.end(), m->ignore.begin(), m->ignore.end());
      hooks.insert(hooks.end(), m->hooks.begin(), m->hooks.end());
      m->entries = std::move(entries);
      m->ignore = std::move(ignore);
      m->hooks = std::move(hooks);
      bool header = false, provenance = false;
      for (const MessageEntry& x : m->entries) {
        std::string_view seg = x.segment_path.back();
        header |= seg == "MSH" && x.resource == "MessageHeader";
        provenance |= seg == "MSH" && x.resource == "Provenance";
      }
      if (!header || !provenance) {
        all_errors.push_back(base::StrCat(
            m->src.ToString(), ": a message map must map MSH to a MessageHeader and to a Provenance"));
        return false;
      }
    }
    resolved[m->name] = true;
    return true;
  };
  for (auto& [name, m] : set->messages) resolve(m.get());
  // Hook scripts: compiled once each, checking that the functions the hooks name exist.
  for (size_t i = 0; i < scripts.size(); ++i) {
    auto script = mapping::LuaScript::CompileWithFunctions(
        scripts[i]->text, scripts[i]->display_path, compiler.functions[i]);
    if (!script.ok()) {
      all_errors.push_back(std::string(script.status().message()));
      set->scripts.push_back(nullptr);
    } else {
      set->scripts.push_back(*std::move(script));
    }
  }
  if (!all_errors.empty()) {
    std::string msg;
    for (const std::string& s : all_errors) {
      if (!msg.empty()) msg += '\n';
      msg += s;
    }
    return absl::InvalidArgumentError(msg);
  }
  return std::shared_ptr<const MapSet>(std::move(set));
}

absl::StatusOr<std::shared_ptr<const MapSet>> LoadMaps(const std::vector<std::string>& dirs) {
  std::map<std::string, MapFile> by_path;  // sorted: deterministic load order
  for (const std::string& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return absl::NotFoundError(base::StrCat("maps directory not found: ", dir));
    }
    for (const char* sub :
         {"messages", "segments", "datatypes", "vocabulary", "hooks", "conceptmaps", "lua"}) {
      fs::path p = fs::path(dir) / sub;
      if (!fs::is_directory(p, ec)) continue;
      const char* ext = std::string_view(sub) == "conceptmaps" ? ".json"
                        : std::string_view(sub) == "lua"       ? ".lua"
                                                               : ".yaml";
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        if (!entry.is_regular_file() || entry.path().extension() != ext) continue;
        auto text = base::ReadFile(entry.path().string());
        if (!text.ok()) return text.status();
        std::string rel = base::StrCat(sub, "/", entry.path().filename().string());
        by_path[rel] = MapFile{rel, entry.path().string(), std::move(*text)};
      }
    }
  }
  std::vector<MapFile> files;
  for (auto& [rel, f] : by_path) files.push_back(std::move(f));
  return CompileMaps(files);
}

}  // namespace isthmus::v2fhir

namespace isthmus::v2fhir {

absl::StatusOr<ElementPath> ParseElementPath(std::string_view text) { return ParseElement(text); }

std::string DefaultMapsDir() {
  if (const char* env = std::getenv("ISTHMUS_MAPS_DIR"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  if (std::filesystem::is_directory(ISTHMUS_MAPS_INSTALL_DIR, ec)) return ISTHMUS_MAPS_INSTALL_DIR;
  return ISTHMUS_MAPS_SOURCE_DIR;
}

}  // namespace isthmus::v2fhir
