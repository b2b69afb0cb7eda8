#include "fhir_search/registry.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include "base/str.h"
#include "fhir_search/search_params_data.h"
#include "fhirpath/model.h"
#include "store/fhir_store.h"

namespace isthmus::fhir_search {
namespace {

std::optional<ParamType> ParseType(std::string_view t) {
  if (t == "string") return ParamType::kString;
  if (t == "token") return ParamType::kToken;
  if (t == "date") return ParamType::kDate;
  if (t == "number") return ParamType::kNumber;
  if (t == "quantity") return ParamType::kQuantity;
  if (t == "reference") return ParamType::kReference;
  if (t == "uri") return ParamType::kUri;
  if (t == "composite") return ParamType::kComposite;
  if (t == "special") return ParamType::kSpecial;
  return std::nullopt;
}

std::vector<std::string> Words(std::string_view s) {
  std::vector<std::string> out;
  for (std::string_view w : base::Split(s, ' ')) {
    if (!w.empty()) out.emplace_back(w);
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The alternatives of a top-level union, outside parentheses and string literals.
std::vector<std::string_view> SplitUnion(std::string_view e) {
  std::vector<std::string_view> out;
  int depth = 0;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    char c = e[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '\'') quoted = false;
      continue;
    }
    if (c == '\'') quoted = true;
    else if (c == '(' || c == '[') ++depth;
    else if (c == ')' || c == ']') --depth;
    else if (c == '|' && depth == 0) {
      out.push_back(Trim(e.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.push_back(Trim(e.substr(start)));
  return out;
}

// The leading identifier of an alternative ("(Patient.deceased as dateTime)" -> "Patient").
std::string_view LeadingName(std::string_view alt) {
  while (!alt.empty() && (alt.front() == '(' || alt.front() == ' ')) alt.remove_prefix(1);
  size_t n = 0;
  while (n < alt.size() && (std::isalnum(static_cast<unsigned char>(alt[n])) || alt[n] == '_')) ++n;
  return alt.substr(0, n);
}

}  // namespace

std::string CollectionSafeCasts(std::string_view expression) {
  // `X as T` and `X.as(T)` take one item in FHIRPath: over a repeating element (a blood
  // pressure's two component values, several useContexts) they are an error, and the resource
  // would get no rows. The R4 expressions mean "the items of type T", which is ofType(T) (R5
  // rewrote them so); for a single item the two are the same.
  static const std::regex kOperator(R"(\(([A-Za-z_][A-Za-z0-9_.]*) as ([A-Za-z][A-Za-z0-9_]*)\))");
  static const std::regex kFunction(R"(\.as\(([A-Za-z][A-Za-z0-9_]*)\))");
  std::string s = std::regex_replace(std::string(expression), kOperator, "$1.ofType($2)");
  return std::regex_replace(s, kFunction, ".ofType($1)");
}

std::string_view ParamTypeName(ParamType t) {
  switch (t) {
    case ParamType::kString: return "string";
    case ParamType::kToken: return "token";
    case ParamType::kDate: return "date";
    case ParamType::kNumber: return "number";
    case ParamType::kQuantity: return "quantity";
    case ParamType::kReference: return "reference";
    case ParamType::kUri: return "uri";
    case ParamType::kComposite: return "composite";
    case ParamType::kSpecial: return "special";
  }
  return "special";
}

std::string ReduceExpression(std::string_view expression, std::string_view type) {
  std::vector<std::string_view> alts = SplitUnion(expression);
  if (alts.size() <= 1) return std::string(Trim(expression));
  std::string out;
  bool any_typed = false;
  for (std::string_view alt : alts) {
    std::string_view lead = LeadingName(alt);
    bool typed = store::IsFhirResourceType(lead) || lead == "Resource" || lead == "DomainResource";
    any_typed |= typed;
    if (typed && lead != type && lead != "Resource" && lead != "DomainResource") continue;
    if (!out.empty()) out += " | ";
    out += alt;
  }
  if (!any_typed) return std::string(Trim(expression));
  return out;
}

namespace {

// The alternatives of a top-level union ("A.x | (A.y as Quantity)"), sorted and distinct; the
// whole expression as the one alternative when it is not a plain union.
// A path of element names from a type ("Patient.contact.name"): the type of its items, or null
// (a function, a choice element, an unknown name).
const fhirpath::TypeInfo* PathType(std::string_view expression) {
  std::vector<std::string_view> names = base::Split(expression, '.');
  const fhirpath::TypeInfo* t = fhirpath::Model::Get().Find(names[0]);
  for (size_t i = 1; t != nullptr && i < names.size(); ++i) {
    const fhirpath::ElementInfo* e = t->Element(names[i]);
    t = e == nullptr || e->choice || e->types.size() != 1 ? nullptr : e->types[0];
  }
  return t;
}

bool IsPath(std::string_view expression) {
  return !expression.empty() && std::all_of(expression.begin(), expression.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_';
  });
}

// True when every value `part`'s expression yields is one of `whole`'s, extracted the same way:
// `whole` a plain path and `part` the same items filtered (`whole.where(...)`), or, for
// strings, one of the HumanName or Address elements whose strings a string parameter on such an
// element indexes (extract.cc: Extractor::String).
bool IsPartOf(const SearchParam& part, const SearchParam& whole) {
  if (part.type != whole.type || !IsPath(whole.expression)) return false;
  const std::string& w = whole.expression;
  std::string_view rest = part.expression;
  if (!rest.starts_with(w) || rest.size() <= w.size() + 1 || rest[w.size()] != '.') return false;
  rest.remove_prefix(w.size() + 1);
  if (rest.starts_with("where(") && rest.ends_with(")")) {
    int depth = 0;  // the where( must close at the very end
    for (size_t i = 5; i < rest.size(); ++i) {
      depth += rest[i] == '(' ? 1 : rest[i] == ')' ? -1 : 0;
      if (depth == 0 && i + 1 < rest.size()) return false;
    }
    return depth == 0;
  }
  if (part.type != ParamType::kString || !IsPath(rest) || rest.find('.') != rest.npos) return false;
  const fhirpath::TypeInfo* t = PathType(w);
  if (t == nullptr) return false;
  static const std::set<std::string_view> kHumanName = {"family", "given", "prefix", "suffix",
                                                        "text"};
  static const std::set<std::string_view> kAddress = {"line",  "city",       "district", "state",
                                                      "postalCode", "country", "text"};
  return (t->name == "HumanName" && kHumanName.count(rest) > 0) ||
         (t->name == "Address" && kAddress.count(rest) > 0);
}

// Parts (IsPartOf) of string and token parameters with rows of their own: the whole lists them
// in stored_as, and so does every parameter answered from the whole's rows. A part that has
// parts itself is left alone (one level).
void AddParts(std::map<std::string, SearchParam, std::less<>>& params) {
  std::vector<std::pair<SearchParam*, SearchParam*>> pairs;  // whole, part
  std::set<const SearchParam*> wholes;
  for (auto& [code, whole] : params) {
    if (!HasOwnRows(whole) || whole.stored_as.size() != 1 ||
        (whole.type != ParamType::kString && whole.type != ParamType::kToken)) {
      continue;
    }
    for (auto& [part_code, part] : params) {
      if (&part != &whole && HasOwnRows(part) && part.stored_as.size() == 1 &&
          IsPartOf(part, whole)) {
        pairs.emplace_back(&whole, &part);
        wholes.insert(&whole);
      }
    }
  }
  std::map<std::string, std::vector<std::string>> added;  // whole code -> its parts
  for (auto [whole, part] : pairs) {
    if (wholes.count(part) > 0) continue;
    whole->stored_as.push_back(part->code);
    added[whole->code].push_back(part->code);
  }
  for (auto& [code, p] : params) {  // aliases of a whole (Patient phonetic = name)
    if (HasOwnRows(p)) continue;
    std::vector<std::string> more;
    for (const std::string& s : p.stored_as) {
      if (auto it = added.find(s); it != added.end()) {
        more.insert(more.end(), it->second.begin(), it->second.end());
      }
    }
    for (std::string& m : more) {
      if (std::find(p.stored_as.begin(), p.stored_as.end(), m) == p.stored_as.end()) {
        p.stored_as.push_back(std::move(m));
      }
    }
  }
}

std::vector<std::string> UnionAlternatives(std::string_view expression) {
  std::vector<std::string> out;
  int depth = 0;
  char quote = 0;
  size_t start = 0;
  bool plain = true;  // no space outside parentheses and quotes in the current alternative
  auto add = [&](size_t end) {
    std::string_view a = Trim(expression.substr(start, end - start));
    out.emplace_back(a);
  };
  for (size_t i = 0; i < expression.size(); ++i) {
    const char ch = expression[i];
    if (quote != 0) {
      if (ch == '\\') ++i;
      else if (ch == quote) quote = 0;
    } else if (ch == '\'' || ch == '`' || ch == '"') {
      quote = ch;
    } else if (ch == '(' || ch == '[' || ch == '{') {
      ++depth;
    } else if (ch == ')' || ch == ']' || ch == '}') {
      --depth;
    } else if (depth == 0 && ch == '|') {
      add(i);
      start = i + 1;
    } else if (depth == 0 && (ch == ' ' || ch == '\t' || ch == '\n')) {
      // A space outside parentheses may hold an operator that binds looser than `|` (and, =):
      // unless it only pads a `|`, the expression is not a plain union.
      size_t j = i;
      while (j < expression.size() && (expression[j] == ' ' || expression[j] == '\t' ||
                                       expression[j] == '\n')) {
        ++j;
      }
      const bool pads = (j < expression.size() && expression[j] == '|') ||
                        Trim(expression.substr(start, i - start)).empty();
      if (!pads) plain = false;
      i = j - 1;
    }
  }
  add(expression.size());
  if (!plain || out.size() < 2 ||
      std::any_of(out.begin(), out.end(), [](const std::string& a) { return a.empty(); })) {
    return {std::string(Trim(expression))};
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Composites over the whole resource answered from other parameters' rows (component_rows),
// and every composite's component_params. Run after stored_as is settled.
void ResolveComposites(std::string_view type,
                       std::map<std::string, SearchParam, std::less<>>& params) {
  for (auto& [code, p] : params) {
    if (p.type != ParamType::kComposite || !HasOwnRows(p) || p.expression != type) continue;
    std::vector<std::string> from;
    for (const SearchParam::Component& c : p.components) {
      const std::string whole = base::StrCat(type, ".", c.expression);
      for (auto& [other_code, q] : params) {
        // An Identifier's rows may carry a group (:of-type): only parameters without one.
        if (q.type != c.type || !HasOwnRows(q) || q.stored_as.size() != 1 ||
            q.expression.find("identifier") != std::string::npos) {
          continue;
        }
        std::vector<std::string> alts = UnionAlternatives(q.expression);
        // SampledData has no `value`: it never yields a quantity row (value-quantity's second
        // alternative).
        std::erase_if(alts, [&](const std::string& a) {
          return q.type == ParamType::kQuantity && a.ends_with(".ofType(SampledData)");
        });
        if (alts.size() == 1 && alts[0] == whole) {
          from.push_back(q.code);
          break;
        }
      }
      if (from.size() < static_cast<size_t>(&c - p.components.data()) + 1) break;
    }
    if (from.size() == p.components.size()) p.component_rows = std::move(from);
  }
  for (auto& [code, p] : params) {
    if (p.type != ParamType::kComposite) continue;
    p.component_params.assign(p.components.size(), {});
    const std::vector<std::string> by =
        p.stored_as.empty() ? std::vector<std::string>{p.code} : p.stored_as;
    for (const std::string& s : by) {
      auto it = params.find(s);
      const std::vector<std::string>* rows =
          it == params.end() || it->second.component_rows.empty() ? nullptr
                                                                  : &it->second.component_rows;
      for (size_t k = 0; k < p.components.size(); ++k) {
        p.component_params[k].push_back(rows != nullptr ? (*rows)[k] : base::StrCat(s, "$", k));
      }
    }
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Registry>> Registry::Build() {
  std::shared_ptr<Registry> reg(new Registry());
  std::vector<std::string_view> all_types(store::FhirResourceTypes().begin(),
                                          store::FhirResourceTypes().end());
  for (int i = 0; i < internal::kSearchParamDefCount; ++i) {
    const internal::SearchParamDef& d = internal::kSearchParamDefs[i];
    std::optional<ParamType> type = ParseType(d.type);
    if (!type) continue;
    std::vector<std::string> bases = Words(d.bases);
    std::vector<std::string_view> types;
    for (const std::string& b : bases) {
      if (b == "Resource" || b == "DomainResource") {
        types = all_types;  // DomainResource: every type but Bundle, Binary, Parameters
        if (b == "DomainResource") {
          std::erase_if(types, [](std::string_view t) {
            return t == "Bundle" || t == "Binary" || t == "Parameters";
          });
        }
        break;
      }
      if (store::IsFhirResourceType(b)) types.push_back(reg->by_type_.try_emplace(b).first->first);
    }
    const bool common = d.code == "_id" || d.code == "_lastUpdated";
    const bool full_text = d.code == "_text" || d.code == "_content";
    // Composite components: "code\ttype\texpression" lines, each of an indexable type.
    std::vector<SearchParam::Component> parts;
    bool parts_ok = *type == ParamType::kComposite && !d.components.empty();
    if (parts_ok) {
      for (std::string_view line : base::Split(d.components, '\n')) {
        std::vector<std::string_view> f = base::Split(line, '\t');
        std::optional<ParamType> ct = f.size() == 3 ? ParseType(f[1]) : std::nullopt;
        if (!ct || *ct == ParamType::kComposite || *ct == ParamType::kSpecial) {
          parts_ok = false;
          break;
        }
        std::string part_expression = CollectionSafeCasts(f[2]);
        absl::StatusOr<fhirpath::Expression> e = fhirpath::Expression::Compile(part_expression);
        if (!e.ok()) {
          return absl::InternalError(base::StrCat("search parameter ", d.url, " component ",
                                                  f[0], ": ", std::string(e.status().message())));
        }
        parts.push_back({std::string(f[0]), *ct, std::move(part_expression), *std::move(e)});
      }
    }
    const bool indexable = !d.expression.empty() &&
                           (*type == ParamType::kComposite ? parts_ok : *type != ParamType::kSpecial);
    // One compiled expression per distinct reduced text (most parameters have one base).
    std::map<std::string, fhirpath::Expression> compiled;
    for (std::string_view t : types) {
      SearchParam p;
      p.code = std::string(d.code);
      p.url = std::string(d.url);
      p.type = *type;
      p.targets = Words(d.targets);
      p.components = parts;
      p.resource_column = common;
      p.expression = CollectionSafeCasts(ReduceExpression(d.expression, t));
      p.full_text = full_text;
      p.supported = common || indexable || full_text;
      if (indexable && !common) {
        auto it = compiled.find(p.expression);
        if (it == compiled.end()) {
          absl::StatusOr<fhirpath::Expression> e = fhirpath::Expression::Compile(p.expression);
          if (!e.ok()) {
            return absl::InternalError(base::StrCat("search parameter ", d.url, ": ",
                                                    std::string(e.status().message())));
          }
          it = compiled.emplace(p.expression, *std::move(e)).first;
        }
        p.compiled = it->second;
      }
      auto& params = reg->by_type_[std::string(t)];
      params.try_emplace(p.code, std::move(p));  // the first definition of a code wins
    }
  }
  for (auto& [type, params] : reg->by_type_) {
    // Parameters with the fewest alternatives keep their rows; one whose alternatives are all
    // those of kept parameters of the same kind is answered from their rows.
    struct Candidate {
      SearchParam* p;
      std::string kind;  // type and components: rows are interchangeable within a kind
      std::vector<std::string> alts;
    };
    std::vector<Candidate> order;
    for (auto& [code, p] : params) {
      p.stored_as = {p.code};
      if (!p.compiled || p.type == ParamType::kReference) continue;  // references: _include
      Candidate c{&p, std::string(ParamTypeName(p.type)), UnionAlternatives(p.expression)};
      for (const SearchParam::Component& part : p.components) {
        c.kind += base::StrCat("\t", ParamTypeName(part.type), " ", part.expression);
      }
      order.push_back(std::move(c));
    }
    std::stable_sort(order.begin(), order.end(), [](const Candidate& a, const Candidate& b) {
      return a.alts.size() < b.alts.size();
    });
    std::vector<const Candidate*> kept;
    for (const Candidate& c : order) {
      std::vector<std::string> by;
      std::set<std::string> covered;
      for (const Candidate* k : kept) {
        if (k->kind != c.kind) continue;
        if (!std::all_of(k->alts.begin(), k->alts.end(), [&](const std::string& a) {
              return std::find(c.alts.begin(), c.alts.end(), a) != c.alts.end();
            })) {
          continue;
        }
        by.push_back(k->p->code);
        covered.insert(k->alts.begin(), k->alts.end());
      }
      if (!by.empty() && covered.size() == c.alts.size()) {  // alts are distinct
        c.p->stored_as = std::move(by);
      } else {
        kept.push_back(&c);
      }
    }
    // X.where(resolve() is T), X another reference parameter's expression: its rows naming a T.
    // (resolve() of a reference that cannot be fetched is a stub of the type its path names,
    // which is the target_type the indexer records for a well-formed reference.)
    static const std::regex kResolveIs(R"(^(.+)\.where\(resolve\(\) is ([A-Z][A-Za-z]+)\)$)");
    for (auto& [code, p] : params) {
      std::smatch m;
      if (!p.compiled || p.type != ParamType::kReference ||
          !std::regex_match(p.expression, m, kResolveIs) || !store::IsFhirResourceType(m[2].str())) {
        continue;
      }
      for (auto& [other_code, q] : params) {
        if (&q != &p && q.compiled && q.type == ParamType::kReference && q.stored_target.empty() &&
            q.expression == m[1].str()) {
          p.stored_as = {q.code};
          p.stored_target = m[2].str();
          break;
        }
      }
    }
    AddParts(params);
    ResolveComposites(type, params);
    auto& list = reg->extracted_[type];
    for (auto& [code, p] : params) {
      if (HasOwnRows(p)) list.push_back(&p);
    }
  }
  return std::shared_ptr<const Registry>(std::move(reg));
}

const SearchParam* Registry::Find(std::string_view type, std::string_view code) const {
  auto t = by_type_.find(type);
  if (t == by_type_.end()) return nullptr;
  auto p = t->second.find(code);
  return p == t->second.end() ? nullptr : &p->second;
}

std::vector<const SearchParam*> Registry::Supported(std::string_view type) const {
  std::vector<const SearchParam*> out;
  auto t = by_type_.find(type);
  if (t == by_type_.end()) return out;
  for (const auto& [code, p] : t->second) {
    if (p.supported) out.push_back(&p);
  }
  return out;
}

const std::vector<const SearchParam*>& Registry::Extracted(std::string_view type) const {
  static const std::vector<const SearchParam*> kNone;
  auto t = extracted_.find(type);
  return t == extracted_.end() ? kNone : t->second;
}

}  // namespace isthmus::fhir_search
