#include "fhir_search/search.h"

#include <cmath>
#include <set>
#include <variant>

#include "base/status_macros.h"
#include "base/str.h"
#include "fhir_search/extract.h"
#include "fhirpath/value.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir_search {
namespace {

using Arg = std::variant<int64_t, std::string>;

// SQL text with its positional arguments, in text order.
// The index parameter names whose rows answer `p` (SearchParameter::stored_as): its own code,
// or those of the parameters it repeats; `component` >= 0: that part of a composite.
std::vector<std::string> StoredAs(const SearchParam& p, int component = -1) {
  if (component >= 0 && static_cast<size_t>(component) < p.component_params.size()) {
    return p.component_params[component];  // may name other parameters' rows (component_rows)
  }
  std::vector<std::string> out = p.stored_as.empty() ? std::vector<std::string>{p.code}
                                                     : p.stored_as;
  if (component >= 0) {
    for (std::string& c : out) c = ComponentParam(c, static_cast<size_t>(component));
  }
  return out;
}

std::vector<std::string> OfTypeParams(const std::vector<std::string>& codes) {
  std::vector<std::string> out;
  for (const std::string& c : codes) out.push_back(OfTypeParam(c));
  return out;
}

struct Sql {
  std::string text;
  std::vector<Arg> args;

  Sql& Add(std::string_view s) {
    text += s;
    return *this;
  }
  Sql& Add(const Sql& o) {
    text += o.text;
    args.insert(args.end(), o.args.begin(), o.args.end());
    return *this;
  }
  Sql& Text(std::string v) {
    text += "?";
    args.emplace_back(std::move(v));
    return *this;
  }
  Sql& Int(int64_t v) {
    text += "?";
    args.emplace_back(v);
    return *this;
  }
  // " = ?" for one value, " IN (?, ...)" for several.
  Sql& In(const std::vector<std::string>& vs) {
    if (vs.size() == 1) return Add(" = ").Text(vs[0]);
    Add(" IN (");
    for (size_t k = 0; k < vs.size(); ++k) {
      if (k > 0) Add(", ");
      Text(vs[k]);
    }
    return Add(")");
  }
  // Doubles are written as literals (the db interface binds INTEGER/TEXT/BLOB only); they are
  // numbers this code formatted, never request text.
  Sql& Real(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    text += buf;
    if (std::string_view(buf).find_first_of(".eEn") == std::string_view::npos) text += ".0";
    return *this;
  }
};

// "<i>.param IN (...)" for the rows that answer `p` (StoredAs), and their target type when `p`
// is another reference parameter restricted to one (SearchParam::stored_target).
void RowsOf(Sql& s, const std::string& i, const SearchParam& p) {
  s.Add(i + ".param").In(StoredAs(p));
  if (!p.stored_target.empty()) s.Add(" AND " + i + ".target_type = ").Text(p.stored_target);
}

void Bind(db::Statement& s, const std::vector<Arg>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (const int64_t* v = std::get_if<int64_t>(&args[i])) {
      s.BindInt64(static_cast<int>(i + 1), *v);
    } else {
      s.BindText(static_cast<int>(i + 1), std::get<std::string>(args[i]));
    }
  }
}

absl::Status Bad(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }

// Splits on `sep` outside backslash escapes; the parts keep their escapes.
std::vector<std::string_view> SplitEscaped(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out.push_back(s[i]);
  }
  return out;
}

// The smallest string greater than every string starting with `prefix` (for an index range).
// REQUIRES: !prefix.empty().
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xFF) prefix.pop_back();
  if (prefix.empty()) return std::string();
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

// col starts with `prefix` (index-friendly range).
Sql StartsWith(const std::string& col, const std::string& prefix) {
  Sql s;
  if (prefix.empty()) return s.Add("1=1");
  std::string end = PrefixEnd(prefix);
  s.Add("(").Add(col).Add(" >= ").Text(prefix);
  if (!end.empty()) s.Add(" AND ").Add(col).Add(" < ").Text(end);
  return s.Add(")");
}

std::string LikeEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

enum class Prefix { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };

Prefix SplitPrefix(std::string_view* v) {
  static constexpr std::pair<std::string_view, Prefix> kPrefixes[] = {
      {"eq", Prefix::kEq}, {"ne", Prefix::kNe}, {"gt", Prefix::kGt}, {"lt", Prefix::kLt},
      {"ge", Prefix::kGe}, {"le", Prefix::kLe}, {"sa", Prefix::kSa}, {"eb", Prefix::kEb},
      {"ap", Prefix::kAp}};
  if (v->size() > 2) {
    for (const auto& [text, p] : kPrefixes) {
      if (v->substr(0, 2) == text) {
        v->remove_prefix(2);
        return p;
      }
    }
  }
  return Prefix::kEq;
}

// A target range [lo, hi] (columns) against a search range [sl, sh] (R4 search, 3.1.1.4.5).
Sql DateCondition(const std::string& lo, const std::string& hi, Prefix p, int64_t sl, int64_t sh,
                  int64_t now) {
  Sql s;
  auto contained = [&](Sql& x) {
    x.Add("(").Add(lo).Add(" >= ").Int(sl).Add(" AND ").Add(hi).Add(" <= ").Int(sh).Add(")");
  };
  switch (p) {
    case Prefix::kEq: contained(s); break;
    case Prefix::kNe: s.Add("NOT "); contained(s); break;
    case Prefix::kGt: s.Add("(").Add(hi).Add(" > ").Int(sh).Add(")"); break;
    case Prefix::kLt: s.Add("(").Add(lo).Add(" < ").Int(sl).Add(")"); break;
    case Prefix::kGe:
      s.Add("(").Add(hi).Add(" > ").Int(sh).Add(" OR ");
      contained(s);
      s.Add(")");
      break;
    case Prefix::kLe:
      s.Add("(").Add(lo).Add(" < ").Int(sl).Add(" OR ");
      contained(s);
      s.Add(")");
      break;
    case Prefix::kSa: s.Add("(").Add(lo).Add(" > ").Int(sh).Add(")"); break;
    case Prefix::kEb: s.Add("(").Add(hi).Add(" < ").Int(sl).Add(")"); break;
    case Prefix::kAp: {
      // Approximately: the search range widened by 10% of its distance from now (at least a day).
      const int64_t gap = std::max(std::abs(now - sl), std::abs(now - sh));
      const int64_t widen = std::max<int64_t>(gap / 10, int64_t{86400} * 1000000);
      const int64_t wl = std::max(kMinMicros, sl - widen), wh = std::min(kMaxMicros, sh + widen);
      s.Add("(").Add(lo).Add(" <= ").Int(wh).Add(" AND ").Add(hi).Add(" >= ").Int(wl).Add(")");
      break;
    }
  }
  return s;
}

// A number search value: its double and the half-width of its implicit precision (100 covers
// [99.5, 100.5)). Exponent forms (1e2) are accepted with the precision of their mantissa.
absl::Status ParseNumber(std::string_view text, double* value, double* half) {
  std::string_view mantissa = text;
  int exponent = 0;
  if (size_t e = text.find_first_of("eE"); e != std::string_view::npos) {
    int64_t x = 0;
    if (!base::ParseInt(text.substr(e + 1), &x) || x < -300 || x > 300) {
      return Bad("a number search value is malformed");
    }
    exponent = static_cast<int>(x);
    mantissa = text.substr(0, e);
  }
  std::optional<fhirpath::Decimal> d = fhirpath::Decimal::Parse(mantissa);
  if (!d) return Bad("a number search value is malformed");
  *value = d->ToDouble() * std::pow(10.0, exponent);
  *half = 0.5 * std::pow(10.0, exponent - d->scale);
  return absl::OkStatus();
}

Sql NumberCondition(const std::string& col, Prefix p, double v, double half) {
  Sql s;
  s.Add("(");
  switch (p) {
    case Prefix::kEq:
      s.Add(col).Add(" >= ").Real(v - half).Add(" AND ").Add(col).Add(" < ").Real(v + half);
      break;
    case Prefix::kNe:
      s.Add("NOT (").Add(col).Add(" >= ").Real(v - half).Add(" AND ").Add(col).Add(" < ")
          .Real(v + half).Add(")");
      break;
    case Prefix::kGt:
    case Prefix::kSa: s.Add(col).Add(" > ").Real(v); break;
    case Prefix::kLt:
    case Prefix::kEb: s.Add(col).Add(" < ").Real(v); break;
    case Prefix::kGe: s.Add(col).Add(" >= ").Real(v); break;
    case Prefix::kLe: s.Add(col).Add(" <= ").Real(v); break;
    case Prefix::kAp: {
      const double w = std::max(std::abs(v) * 0.1, half);
      s.Add(col).Add(" >= ").Real(v - w).Add(" AND ").Add(col).Add(" <= ").Real(v + w);
      break;
    }
  }
  return s.Add(")");
}

bool IsResultParam(std::string_view k) {
  return k == "_count" || k == "_sort" || k == "_total" || k == "_summary" || k == "_include" ||
         k == "_revinclude" || k == "_cursor" || k == "_format" || k == "_pretty" ||
         k == "_elements" || k.starts_with("_include:") || k.starts_with("_revinclude:");
}

// Builds the WHERE conditions of one search, over a resource alias.
class Builder {
 public:
  Builder(const Registry& reg, int64_t now, bool strict, std::vector<std::string>* issues)
      : reg_(reg), now_(now), strict_(strict), issues_(issues) {}

  // One `name=value` of the query, as a condition on resources `alias` of `type` (appended to
  // `out` as " AND ...").
  absl::Status AddParam(std::string_view type, const std::string& alias, std::string_view name,
                        std::string_view value, Sql* out, int depth = 0) {
    if (name.starts_with("_has:")) return Has(type, alias, name, value, out, depth);
    std::string_view code = name, modifier, chain;
    if (size_t dot = code.find('.'); dot != std::string_view::npos) {
      chain = code.substr(dot + 1);
      code = code.substr(0, dot);
    }
    if (size_t colon = code.find(':'); colon != std::string_view::npos) {
      modifier = code.substr(colon + 1);
      code = code.substr(0, colon);
    }
    const SearchParam* p = reg_.Find(type, code);
    if (p == nullptr || !p->supported) {
      std::string msg = base::StrCat("search parameter '", code, "' is ",
                                     p == nullptr ? "unknown" : "not supported", " for ", type);
      if (strict_) return Bad(msg);
      issues_->push_back(base::StrCat(msg, ": ignored"));
      return absl::OkStatus();
    }
    if (p->full_text) {
      if (!chain.empty()) return Bad(base::StrCat(code, " cannot be chained"));
      return FullText(type, alias, *p, modifier, value, out, depth);
    }
    if (!chain.empty()) return Chain(*p, alias, modifier, chain, value, out, depth);
    if (modifier == "missing") {
      if (value != "true" && value != "false") return Bad(":missing takes true or false");
      Sql s;
      if (p->resource_column) {  // _id and _lastUpdated are never missing
        out->Add(value == "true" ? " AND 1=0" : "");
        return absl::OkStatus();
      }
      // A composite is present when one element has every component (a group of rows; or,
      // answered from other parameters' rows, the resource has rows of each).
      if (p->type == ParamType::kComposite) {
        std::vector<std::string> c;
        std::string from;
        CompositeJoin(type, *p, &c, &from, &s);
        Member(alias, value == "true", from, c[0] + ".res_id", s, depth, out);
        return absl::OkStatus();
      }
      const std::string i = NewAlias("i");
      s.Add(i + ".res_type = ").Text(std::string(type)).Add(" AND ");
      RowsOf(s, i, *p);
      Member(alias, value == "true", base::StrCat(IndexTable(p->type), " ", i), i + ".res_id", s,
             depth, out);
      return absl::OkStatus();
    }
    if (p->type == ParamType::kComposite) {
      return Composite(type, *p, alias, modifier, value, out, depth);
    }
    if (p->code == "_id") return Id(alias, modifier, value, out);
    if (p->code == "_lastUpdated") {
      if (!modifier.empty()) return Bad("_lastUpdated takes no modifier");
      Sql alts;
      ISTHMUS_RETURN_IF_ERROR(Alternatives(value, [&](std::string_view v, Sql* s) {
        return Date(alias + ".last_updated", alias + ".last_updated", v, s);
      }, &alts));
      out->Add(" AND ").Add(alts);
      return absl::OkStatus();
    }
    bool negate = false;
    const std::string i = NewAlias("i");
    auto alt = [&](std::string_view v, Sql* s) -> absl::Status {
      switch (p->type) {
        case ParamType::kString: return String(i, modifier, v, s);
        case ParamType::kToken: return Token(i, StoredAs(*p), modifier, v, s);
        case ParamType::kDate:
          if (!modifier.empty()) return Bad("date parameters take no modifier");
          return Date(i + ".low", i + ".high", v, s);
        case ParamType::kNumber:
          if (!modifier.empty()) return Bad("number parameters take no modifier");
          return Number(i + ".value", v, s);
        case ParamType::kQuantity:
          if (!modifier.empty()) return Bad("quantity parameters take no modifier");
          return Quantity(i, v, s);
        case ParamType::kReference: return Reference(*p, i, modifier, v, s);
        case ParamType::kUri: return Uri(i, modifier, v, s);
        default: return Bad("parameter type not supported");
      }
    };
    if (p->type == ParamType::kToken && modifier == "not") negate = true;
    Sql alts;
    ISTHMUS_RETURN_IF_ERROR(Alternatives(value, alt, &alts));
    Sql cond;
    cond.Add(i + ".res_type = ").Text(std::string(type)).Add(" AND ");
    RowsOf(cond, i, *p);
    cond.Add(" AND ").Add(alts);
    Member(alias, negate, base::StrCat(IndexTable(p->type), " ", i), i + ".res_id", cond, depth,
           out);
    return absl::OkStatus();
  }

  // How selective the parameter `name=value` of `type` is expected to be, to choose the one that
  // drives a search with several (lower drives first; kNeverDrives for negations, which match
  // most resources). Without statistics the planner (SQLite) counts equality columns and picks,
  // e.g., Observation?code=X&subject=Y by the code: every Observation with that code, then the
  // subject of each. A reference, _id or identifier names few resources; a status, category,
  // gender or code names a large share of them.
  static constexpr int kNeverDrives = 100;
  int DriveRank(std::string_view type, std::string_view name, std::string_view value) const {
    if (name.starts_with("_has:")) return 3;
    std::string_view code = name, modifier;
    bool chained = false;
    if (size_t dot = code.find('.'); dot != std::string_view::npos) {
      chained = true;
      code = code.substr(0, dot);
    }
    if (size_t colon = code.find(':'); colon != std::string_view::npos) {
      modifier = code.substr(colon + 1);
      code = code.substr(0, colon);
    }
    const SearchParam* p = reg_.Find(type, code);
    if (p == nullptr || !p->supported) return kNeverDrives;  // adds no condition (or fails)
    if (chained) return 3;
    if (modifier == "missing" || modifier == "not" || modifier == "not-in" ||
        modifier == "above" || modifier == "below" || modifier == "contains") {
      return kNeverDrives;
    }
    if (p->code == "_id") return 0;
    (void)value;
    switch (p->type) {
      case ParamType::kReference: return 1;
      case ParamType::kToken:
        return p->code == "identifier" || p->code.ends_with("-identifier") || modifier == "of-type"
                   ? 1
                   : 4;
      case ParamType::kUri: return 2;
      case ParamType::kString:
      case ParamType::kComposite:
        return 2;
      default: return 3;  // dates, numbers, quantities (ranges), _lastUpdated
    }
  }

  // Resources whose id is listed by other rows. A condition appended to a search on resources
  // `alias` that matches when some row of `from` (a table with its alias, and joins) satisfies
  // `cond` with `id_col` = the resource's id. The parameter that drives the search (see
  // DriveRank) is written `alias.id IN (SELECT id_col FROM ... WHERE cond)`, for the planner to
  // start from; every other one as a correlated `EXISTS (... WHERE id_col = alias.id AND cond)`,
  // which the planner checks per candidate through the table's per-resource index.
  void Member(const std::string& alias, bool negate, const std::string& from,
              const std::string& id_col, const Sql& cond, int depth, Sql* out) {
    if (depth == 0 && correlate_) {
      out->Add(negate ? " AND NOT EXISTS (SELECT 1 FROM " : " AND EXISTS (SELECT 1 FROM ")
          .Add(from + " WHERE " + id_col + " = " + alias + ".id AND ").Add(cond).Add(")");
      return;
    }
    out->Add(" AND " + alias + ".id " + (negate ? "NOT IN" : "IN") + " (SELECT " + id_col +
             " FROM " + from + " WHERE ").Add(cond).Add(")");
  }

  // _text (the narrative) and _content (every string, the narrative too): each alternative
  // (commas) is a list of words, all of which must be words of the resource (whole words, case
  // and accents ignored), as an FTS5 query of quoted words. The driver reads the matching rows
  // (of current versions only: indexer.h) and their resources' ids; a per-candidate condition
  // checks the candidate's current version's row.
  absl::Status FullText(std::string_view type, const std::string& alias, const SearchParam& p,
                        std::string_view modifier, std::string_view value, Sql* out, int depth) {
    if (!modifier.empty()) return Bad(base::StrCat(p.code, " takes no modifier"));
    std::string query;
    for (std::string_view alt : SplitEscaped(value, ',')) {
      std::string words;
      size_t i = 0;
      while (i < alt.size()) {
        auto word_char = [&](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 static_cast<unsigned char>(c) >= 0x80;
        };
        if (!word_char(alt[i])) {
          ++i;
          continue;
        }
        size_t j = i;
        while (j < alt.size() && word_char(alt[j])) ++j;
        base::StrAppend(&words, words.empty() ? "\"" : " \"", alt.substr(i, j - i), "\"");
        i = j;
      }
      if (words.empty()) continue;
      base::StrAppend(&query, query.empty() ? "(" : " OR (", words, ")");
    }
    if (query.empty()) return Bad(base::StrCat(p.code, " needs a word"));
    if (p.code == "_text") query = base::StrCat("narrative : (", query, ")");
    if (depth == 0 && correlate_) {
      out->Add(" AND EXISTS (SELECT 1 FROM fhir_text t WHERE t.rowid = " + alias +
               ".version_seq AND fhir_text MATCH ").Text(query).Add(")");
      return absl::OkStatus();
    }
    out->Add(" AND " + alias + ".id IN (SELECT tv.id FROM fhir_text t JOIN "
             "fhir_resource_versions tv ON tv.seq = t.rowid WHERE fhir_text MATCH ")
        .Text(query).Add(" AND tv.type = ").Text(std::string(type)).Add(")");
    return absl::OkStatus();
  }

  // Whether the next top-level AddParam is a condition checked per candidate (true) rather than
  // the one that drives the search (see Member).
  void set_correlate(bool correlate) { correlate_ = correlate; }

 private:
  std::string NewAlias(std::string_view base) { return base::StrCat(base, ++aliases_); }

  template <typename F>
  absl::Status Alternatives(std::string_view value, F&& f, Sql* out) {
    std::vector<std::string_view> parts = SplitEscaped(value, ',');
    out->Add("(");
    bool first = true;
    for (std::string_view part : parts) {
      if (part.empty()) continue;
      if (!first) out->Add(" OR ");
      first = false;
      Sql s;
      ISTHMUS_RETURN_IF_ERROR(f(part, &s));
      out->Add(s);
    }
    if (first) return Bad("a search parameter has no value");
    out->Add(")");
    return absl::OkStatus();
  }

  absl::Status Id(const std::string& alias, std::string_view modifier, std::string_view value,
                  Sql* out) {
    if (!modifier.empty() && modifier != "not") return Bad("_id takes no modifier but :not");
    Sql s;
    s.Add(" AND " + alias + ".id " + (modifier == "not" ? "NOT IN (" : "IN ("));
    bool first = true;
    for (std::string_view part : SplitEscaped(value, ',')) {
      if (!first) s.Add(", ");
      first = false;
      s.Text(Unescape(part));
    }
    out->Add(s).Add(")");
    return absl::OkStatus();
  }

  absl::Status String(const std::string& i, std::string_view modifier, std::string_view raw,
                      Sql* s) {
    std::string v = Unescape(raw);
    if (modifier.empty()) {
      s->Add(StartsWith(i + ".norm", NormalizeString(v)));
    } else if (modifier == "exact") {
      s->Add(i + ".exact = ").Text(v);
    } else if (modifier == "contains") {
      s->Add(i + ".norm LIKE ").Text(base::StrCat("%", LikeEscape(NormalizeString(v)), "%"))
          .Add(" ESCAPE '\\'");
    } else {
      return Bad(base::StrCat("string parameters do not support :", modifier));
    }
    return absl::OkStatus();
  }

  absl::Status Token(const std::string& i, const std::vector<std::string>& code_params,
                     std::string_view modifier, std::string_view raw, Sql* s) {
    if (modifier == "of-type") {
      // system|code|value: an Identifier whose type has that coding, with that value.
      std::vector<std::string_view> parts = SplitEscaped(raw, '|');
      if (parts.size() != 3 || parts[1].empty() || parts[2].empty()) {
        return Bad(":of-type takes system|code|value (type system and code, identifier value)");
      }
      const std::string t = NewAlias("t");
      s->Add("(" + i + ".code = ").Text(Unescape(parts[2]))
          .Add(" AND EXISTS (SELECT 1 FROM fhir_idx_token " + t + " WHERE " + t +
               ".res_type = " + i + ".res_type AND " + t + ".res_id = " + i + ".res_id AND " + t +
               ".param").In(OfTypeParams(code_params))
          .Add(" AND " + t + ".grp = " + i + ".grp AND " + t + ".code = ").Text(Unescape(parts[1]));
      if (!parts[0].empty()) s->Add(" AND " + t + ".system = ").Text(Unescape(parts[0]));
      s->Add("))");
      return absl::OkStatus();
    }
    if (modifier == "text") {
      std::string t = NormalizeString(Unescape(raw));
      s->Add("(").Add(StartsWith(i + ".text", t)).Add(" OR " + i + ".text LIKE ")
          .Text(base::StrCat("% ", LikeEscape(t), "%")).Add(" ESCAPE '\\')");
      return absl::OkStatus();
    }
    if (!modifier.empty() && modifier != "not") {
      return Bad(base::StrCat("token parameters do not support :", modifier));
    }
    std::vector<std::string_view> parts = SplitEscaped(raw, '|');
    if (parts.size() > 2) return Bad("a token is code, system|code, |code or system|");
    if (parts.size() == 1) {
      s->Add(i + ".code = ").Text(Unescape(parts[0]));
      return absl::OkStatus();
    }
    std::string system = Unescape(parts[0]), code = Unescape(parts[1]);
    s->Add("(" + i + ".system = ").Text(system);
    if (!code.empty()) s->Add(" AND " + i + ".code = ").Text(code);
    s->Add(")");
    return absl::OkStatus();
  }

  absl::Status Date(const std::string& lo, const std::string& hi, std::string_view raw, Sql* s) {
    std::string_view v = raw;
    Prefix p = SplitPrefix(&v);
    int64_t sl = 0, sh = 0;
    if (!DateRange(Unescape(v), &sl, &sh)) {
      return Bad("a date search value must be a FHIR date or dateTime (with an optional prefix "
                 "eq ne gt lt ge le sa eb ap)");
    }
    s->Add(DateCondition(lo, hi, p, sl, sh, now_));
    return absl::OkStatus();
  }

  absl::Status Number(const std::string& col, std::string_view raw, Sql* s) {
    std::string_view v = raw;
    Prefix p = SplitPrefix(&v);
    double value = 0, half = 0;
    ISTHMUS_RETURN_IF_ERROR(ParseNumber(v, &value, &half));
    s->Add(NumberCondition(col, p, value, half));
    return absl::OkStatus();
  }

  absl::Status Quantity(const std::string& i, std::string_view raw, Sql* s) {
    std::vector<std::string_view> parts = SplitEscaped(raw, '|');
    if (parts.size() != 1 && parts.size() != 3) {
      return Bad("a quantity is [prefix]number, or [prefix]number|system|code");
    }
    std::string_view num = parts[0];
    Prefix p = SplitPrefix(&num);
    double value = 0, half = 0;
    ISTHMUS_RETURN_IF_ERROR(ParseNumber(num, &value, &half));
    if (parts.size() == 1) {
      s->Add(NumberCondition(i + ".value", p, value, half));
      return absl::OkStatus();
    }
    std::string system = Unescape(parts[1]), code = Unescape(parts[2]);
    if (system.empty() || system == "http://unitsofmeasure.org") {
      std::optional<fhirpath::Decimal> d = fhirpath::Decimal::Parse(num);
      std::optional<fhirpath::Canonical> c;
      if (d && !code.empty()) c = fhirpath::CanonicalQuantity(*d, code);
      if (c && value != 0) {
        const double cv = c->value.ToDouble(), factor = cv / value;
        s->Add("(" + i + ".canonical_unit = ").Text(c->unit).Add(" AND ")
            .Add(NumberCondition(i + ".canonical_value", p, cv, std::abs(half * factor)))
            .Add(")");
        return absl::OkStatus();
      }
    }
    s->Add("(").Add(NumberCondition(i + ".value", p, value, half));
    if (!system.empty()) s->Add(" AND " + i + ".system = ").Text(system);
    if (!code.empty()) s->Add(" AND " + i + ".code = ").Text(code);
    s->Add(")");
    return absl::OkStatus();
  }

  absl::Status Reference(const SearchParam& p, const std::string& i, std::string_view modifier,
                         std::string_view raw, Sql* s) {
    std::string v = Unescape(raw);
    if (!modifier.empty() && !store::IsFhirResourceType(modifier)) {
      return Bad(base::StrCat("reference parameters do not support :", modifier));
    }
    // Type/id, an absolute URL ending in Type/id, or a bare id.
    std::string_view path = v;
    if (size_t h = path.find("/_history/"); h != std::string_view::npos) path = path.substr(0, h);
    std::string type(modifier), id;
    size_t slash = path.rfind('/');
    if (slash == std::string_view::npos) {
      id = std::string(path);
    } else {
      std::string_view rest = path.substr(0, slash);
      size_t prev = rest.rfind('/');
      std::string_view t = prev == std::string_view::npos ? rest : rest.substr(prev + 1);
      if (store::IsFhirResourceType(t) && (type.empty() || type == t)) {
        type = std::string(t);
        id = std::string(path.substr(slash + 1));
      }
    }
    if (id.empty() || !store::IsValidFhirId(id)) {  // a canonical or other URL: compared whole
      s->Add(i + ".url = ").Text(v);
      return absl::OkStatus();
    }
    s->Add("(" + i + ".target_id = ").Text(id);
    if (!type.empty()) s->Add(" AND " + i + ".target_type = ").Text(type);
    s->Add(")");
    (void)p;
    return absl::OkStatus();
  }

  absl::Status Uri(const std::string& i, std::string_view modifier, std::string_view raw,
                   Sql* s) {
    std::string v = Unescape(raw);
    if (modifier.empty()) {
      s->Add(i + ".uri = ").Text(v);
    } else if (modifier == "below") {
      s->Add(StartsWith(i + ".uri", v));
    } else if (modifier == "above") {
      s->Add("(" + i + ".uri <> '' AND substr(").Text(v).Add(", 1, length(" + i + ".uri)) = " +
                                                             i + ".uri)");
    } else {
      return Bad(base::StrCat("uri parameters do not support :", modifier));
    }
    return absl::OkStatus();
  }

  // code-value-quantity=http://loinc.org|8480-6$gt100: resources with one element (one group of
  // index rows) whose components match the parts of the value, each by its own type.
  absl::Status Composite(std::string_view type, const SearchParam& p, const std::string& alias,
                         std::string_view modifier, std::string_view value, Sql* out, int depth) {
    if (!modifier.empty()) {
      return Bad(base::StrCat("composite parameters do not support :", modifier));
    }
    const size_t n = p.components.size();
    std::vector<std::string> c;
    for (size_t k = 0; k < n; ++k) c.push_back(NewAlias("c"));
    Sql alts;
    ISTHMUS_RETURN_IF_ERROR(Alternatives(value, [&](std::string_view v, Sql* s) -> absl::Status {
      std::vector<std::string_view> parts = SplitEscaped(v, '$');
      if (parts.size() != n) {
        return Bad(base::StrCat("a value of ", p.code, " has ", n, " parts separated by $"));
      }
      s->Add("(");
      for (size_t k = 0; k < n; ++k) {
        if (parts[k].empty()) return Bad(base::StrCat("a part of a ", p.code, " value is empty"));
        if (k > 0) s->Add(" AND ");
        Sql part;
        const std::string& a = c[k];
        switch (p.components[k].type) {
          case ParamType::kString: ISTHMUS_RETURN_IF_ERROR(String(a, "", parts[k], &part)); break;
          case ParamType::kToken:
            ISTHMUS_RETURN_IF_ERROR(Token(a, {p.components[k].code}, "", parts[k], &part));
            break;
          case ParamType::kDate:
            ISTHMUS_RETURN_IF_ERROR(Date(a + ".low", a + ".high", parts[k], &part));
            break;
          case ParamType::kNumber: ISTHMUS_RETURN_IF_ERROR(Number(a + ".value", parts[k], &part)); break;
          case ParamType::kQuantity: ISTHMUS_RETURN_IF_ERROR(Quantity(a, parts[k], &part)); break;
          case ParamType::kReference:
            ISTHMUS_RETURN_IF_ERROR(Reference(p, a, "", parts[k], &part));
            break;
          case ParamType::kUri: ISTHMUS_RETURN_IF_ERROR(Uri(a, "", parts[k], &part)); break;
          default: return Bad("parameter type not supported");
        }
        s->Add(part);
      }
      s->Add(")");
      return absl::OkStatus();
    }, &alts));
    std::string from;
    Sql cond;
    CompositeJoin(type, p, &c, &from, &cond);
    cond.Add(" AND ").Add(alts);
    Member(alias, false, from, c[0] + ".res_id", cond, depth, out);
    return absl::OkStatus();
  }

  // The rows of one element of composite `p`: its components' tables joined on the resource and
  // the group (aliases `c`, new ones when empty), in `from`, and their parameters in `cond`.
  // Components answered from other parameters' rows (component_rows) have group 0 throughout,
  // so the join is on the resource; a combo composite mixes those with groups >= 1 of its other
  // parts, which never meet group 0.
  void CompositeJoin(std::string_view type, const SearchParam& p, std::vector<std::string>* c,
                     std::string* from, Sql* cond) {
    const size_t n = p.components.size();
    if (c->empty()) {
      for (size_t k = 0; k < n; ++k) c->push_back(NewAlias("c"));
    }
    const std::vector<std::string>& a = *c;
    // The joins' parameter names go into the condition (a Sql's arguments follow its text).
    *from = base::StrCat(IndexTable(p.components[0].type), " ", a[0]);
    for (size_t k = 1; k < n; ++k) {
      *from += base::StrCat(" JOIN ", IndexTable(p.components[k].type), " ", a[k], " ON ", a[k],
                            ".res_type = ", a[0], ".res_type AND ", a[k], ".res_id = ", a[0],
                            ".res_id AND ", a[k], ".grp = ", a[0], ".grp");
      cond->Add(a[k] + ".param").In(StoredAs(p, static_cast<int>(k))).Add(" AND ");
    }
    cond->Add(a[0] + ".res_type = ").Text(std::string(type))
        .Add(" AND " + a[0] + ".param").In(StoredAs(p, 0));
  }

  // subject:Patient.name=x: resources whose reference targets a resource matching `chain=x`.
  absl::Status Chain(const SearchParam& p, const std::string& alias, std::string_view modifier,
                     std::string_view chain, std::string_view value, Sql* out, int depth) {
    if (p.type != ParamType::kReference) return Bad("only reference parameters can be chained");
    if (depth >= 2) return Bad("chains are limited to two levels");
    std::vector<std::string> targets;
    if (!modifier.empty()) {
      if (!store::IsFhirResourceType(modifier)) return Bad("a chain's modifier must be a type");
      targets.emplace_back(modifier);
    } else {
      for (const std::string& t : p.targets) {
        std::string_view code = chain.substr(0, chain.find_first_of(".:"));
        if (const SearchParam* q = reg_.Find(t, code); q != nullptr && q->supported) {
          targets.push_back(t);
        }
      }
      if (targets.empty()) return Bad("no target type of the chained parameter has that parameter");
    }
    const std::string i = NewAlias("i");
    const bool correlated = correlate_;
    correlate_ = false;  // the inner searches are driven by their one parameter
    Sql s;
    s.Add(i + ".res_type = " + alias + ".type AND ");
    RowsOf(s, i, p);
    s.Add(" AND (");
    for (size_t k = 0; k < targets.size(); ++k) {
      const std::string r = NewAlias("r");
      Sql inner;
      ISTHMUS_RETURN_IF_ERROR(AddParam(targets[k], r, chain, value, &inner, depth + 1));
      if (k > 0) s.Add(" OR ");
      s.Add("(" + i + ".target_type = ").Text(targets[k]).Add(" AND " + i +
                                                             ".target_id IN (SELECT " + r +
                                                             ".id FROM fhir_resources " + r +
                                                             " WHERE " + r + ".type = ")
          .Text(targets[k]).Add(" AND " + r + ".deleted = 0").Add(inner).Add("))");
    }
    s.Add(")");
    correlate_ = correlated;
    Member(alias, false, "fhir_idx_reference " + i, i + ".res_id", s, depth, out);
    return absl::OkStatus();
  }

  // _has:Observation:patient:code=x: resources some Observation refers to (by `patient`) with
  // code=x.
  absl::Status Has(std::string_view type, const std::string& alias, std::string_view name,
                   std::string_view value, Sql* out, int depth) {
    if (depth >= 2) return Bad("_has is limited to two levels");
    std::vector<std::string_view> parts = base::Split(name, ':');
    if (parts.size() < 4 || !store::IsFhirResourceType(parts[1])) {
      return Bad("_has is _has:Type:reference:parameter=value");
    }
    const std::string source(parts[1]);
    const SearchParam* ref = reg_.Find(source, parts[2]);
    if (ref == nullptr || ref->type != ParamType::kReference) {
      return Bad("_has names a reference parameter of the referring type");
    }
    std::string_view rest = name.substr(parts[0].size() + parts[1].size() + parts[2].size() + 3);
    const std::string i = NewAlias("i"), r = NewAlias("r");
    const bool correlated = correlate_;
    correlate_ = false;
    Sql inner;
    absl::Status st = AddParam(source, r, rest, value, &inner, depth + 1);
    correlate_ = correlated;
    ISTHMUS_RETURN_IF_ERROR(st);
    Sql cond;
    cond.Add(i + ".target_type = ").Text(std::string(type))
        .Add(" AND " + i + ".res_type = ").Text(source).Add(" AND ");
    RowsOf(cond, i, *ref);
    cond.Add(" AND " + i + ".res_id IN (SELECT " + r + ".id FROM fhir_resources " +
                             r + " WHERE " + r + ".type = ").Text(source)
        .Add(" AND " + r + ".deleted = 0").Add(inner).Add(")");
    Member(alias, false, "fhir_idx_reference " + i, i + ".target_id", cond, depth, out);
    return absl::OkStatus();
  }

  const Registry& reg_;
  const int64_t now_;
  const bool strict_;
  std::vector<std::string>* issues_;
  int aliases_ = 0;
  bool correlate_ = false;
};

// A sort key: SQL over alias r, its direction and how its values are compared.
struct SortKey {
  enum Kind { kInt, kReal, kText };
  Sql expr;
  bool desc = false;
  Kind kind = kText;
};

absl::Status ParseSort(const Registry& reg, std::string_view type, std::string_view spec,
                       std::vector<SortKey>* keys) {
  for (std::string_view part : base::Split(spec, ',')) {
    if (part.empty()) continue;
    SortKey k;
    if (part[0] == '-') {
      k.desc = true;
      part.remove_prefix(1);
    }
    if (part == "_id") {
      k.expr.Add("r.id");
    } else if (part == "_lastUpdated") {
      k.expr.Add("r.last_updated");
      k.kind = SortKey::kInt;
    } else {
      const SearchParam* p = reg.Find(type, part);
      if (p == nullptr || !p->supported || p->resource_column || p->full_text) {
        return Bad(base::StrCat("cannot sort by '", part, "' for ", type));
      }
      const char* agg = k.desc ? "MAX" : "MIN";
      std::string col;
      switch (p->type) {
        case ParamType::kString: col = "norm"; break;
        case ParamType::kToken: col = "code"; break;
        case ParamType::kDate: col = k.desc ? "high" : "low"; k.kind = SortKey::kInt; break;
        case ParamType::kNumber:
        case ParamType::kQuantity: col = "value"; k.kind = SortKey::kReal; break;
        case ParamType::kReference: col = "target_id"; break;
        case ParamType::kUri: col = "uri"; break;
        default: return Bad(base::StrCat("cannot sort by '", part, "'"));
      }
      k.expr.Add(base::StrCat("(SELECT ", agg, "(s.", col, ") FROM ", IndexTable(p->type),
                              " s WHERE s.res_type = r.type AND s.res_id = r.id AND "));
      RowsOf(k.expr, "s", *p);
      k.expr.Add(")");
    }
    keys->push_back(std::move(k));
  }
  return absl::OkStatus();
}

// --- the paging cursor: base64url of ["<_sort>", "<id>", key...] (keys as text or null).

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64[(buf >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kB64[(buf << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string> UnBase64Url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = std::strchr(kB64, c);
    if (p == nullptr || c == '\0') return std::nullopt;
    buf = (buf << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

// A paging position. `dir`: 'n' the rows strictly after (id, keys), 'N' at or after, 'p' strictly
// before, 'l' the last page (no position).
struct Cursor {
  char dir = 'n';
  std::string sort, id;
  std::vector<std::optional<std::string>> keys;
};

// base64url of [2, "<dir>", "<_sort>", "<id>", key...] (keys as text or null). The first
// format, ["<_sort>", "<id>", key...], is read as 'n'.
std::string EncodeCursor(const Cursor& c) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartArray();
  w.Int(2);
  w.String(&c.dir, 1);
  w.String(c.sort.data(), static_cast<rapidjson::SizeType>(c.sort.size()));
  w.String(c.id.data(), static_cast<rapidjson::SizeType>(c.id.size()));
  for (const auto& k : c.keys) {
    if (k) w.String(k->data(), static_cast<rapidjson::SizeType>(k->size()));
    else w.Null();
  }
  w.EndArray();
  return Base64Url(std::string_view(buf.GetString(), buf.GetSize()));
}

absl::StatusOr<Cursor> DecodeCursor(std::string_view text) {
  absl::Status bad = Bad("_cursor is not a paging position of this search");
  std::optional<std::string> json = UnBase64Url(text);
  if (!json) return bad;
  rapidjson::Document d;
  d.Parse(json->data(), json->size());
  if (d.HasParseError() || !d.IsArray()) return bad;
  Cursor c;
  rapidjson::SizeType first = 0;
  if (d.Size() >= 1 && d[0].IsInt() && d[0].GetInt() == 2) {
    if (d.Size() < 4 || !d[1].IsString() || d[1].GetStringLength() != 1) return bad;
    c.dir = d[1].GetString()[0];
    if (c.dir != 'n' && c.dir != 'N' && c.dir != 'p' && c.dir != 'l') return bad;
    first = 2;
  }
  if (d.Size() < first + 2 || !d[first].IsString() || !d[first + 1].IsString()) return bad;
  c.sort = d[first].GetString();
  c.id = d[first + 1].GetString();
  for (rapidjson::SizeType i = first + 2; i < d.Size(); ++i) {
    if (d[i].IsNull()) c.keys.emplace_back(std::nullopt);
    else if (d[i].IsString()) c.keys.emplace_back(std::string(d[i].GetString(), d[i].GetStringLength()));
    else return bad;
  }
  return c;
}

// Appends the value of key `k` from the cursor (typed by the key).
absl::Status AddKeyValue(const SortKey& k, const std::string& v, Sql* s) {
  switch (k.kind) {
    case SortKey::kInt: {
      int64_t x = 0;
      if (!base::ParseInt(v, &x)) return Bad("_cursor is not a paging position of this search");
      s->Int(x);
      break;
    }
    case SortKey::kReal: {
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !std::isfinite(x)) {
        return Bad("_cursor is not a paging position of this search");
      }
      s->Real(x);
      break;
    }
    case SortKey::kText: s->Text(v); break;
  }
  return absl::OkStatus();
}


// `prefix`k0... and `prefix`id strictly after the cursor's position ('n'), at or after it ('N'),
// or strictly before it ('p'), in the result order (nulls last on every key, then id).
absl::Status Keyset(const std::vector<SortKey>& keys, const Cursor& c, const std::string& prefix,
                    Sql* q) {
  const bool reversed = c.dir == 'p';
  q->Add("(");
  Sql equal_prefix;
  bool first = true;
  for (size_t k = 0; k <= keys.size(); ++k) {
    const std::string col = k < keys.size() ? base::StrCat(prefix, "k", k) : prefix + "id";
    Sql after;
    if (k == keys.size()) {
      after.Add(col + (reversed ? " < " : c.dir == 'N' ? " >= " : " > ")).Text(c.id);
    } else if (c.keys[k]) {
      const bool greater = keys[k].desc == reversed;  // later values are greater
      after.Add(base::StrCat("(", col, reversed ? " IS NOT NULL AND " : " IS NULL OR ", col,
                             greater ? " > " : " < "));
      ISTHMUS_RETURN_IF_ERROR(AddKeyValue(keys[k], *c.keys[k], &after));
      after.Add(")");
    } else if (reversed) {  // before a null: any value
      after.Add(col + " IS NOT NULL");
    }
    if (!after.text.empty()) {
      if (!first) q->Add(" OR ");
      first = false;
      q->Add("(").Add(equal_prefix).Add(after).Add(")");
    }
    if (k < keys.size()) {
      if (c.keys[k]) {
        equal_prefix.Add(col + " = ");
        ISTHMUS_RETURN_IF_ERROR(AddKeyValue(keys[k], *c.keys[k], &equal_prefix));
      } else {
        equal_prefix.Add(col + " IS NULL");
      }
      equal_prefix.Add(" AND ");
    }
  }
  q->Add(")");
  return absl::OkStatus();
}

// The result order over `prefix`k0... and `prefix`id (nulls last), or its reverse.
Sql OrderBy(const std::vector<SortKey>& keys, const std::string& prefix, bool reversed) {
  Sql s;
  for (size_t k = 0; k < keys.size(); ++k) {
    const std::string col = base::StrCat(prefix, "k", k);
    s.Add(base::StrCat("CASE WHEN ", col, " IS NULL THEN 1 ELSE 0 END", reversed ? " DESC, " : ", ",
                       col, keys[k].desc != reversed ? " DESC, " : ", "));
  }
  s.Add(prefix + (reversed ? "id DESC" : "id"));
  return s;
}

// One _include or _revinclude value. `source`/`param` may be "*" (any); `target` may be empty.
struct IncludeSpec {
  bool rev = false;
  bool iterate = false;
  std::string source, param, target;
  const SearchParam* ref = nullptr;  // `param` of `source`; null for *
};

constexpr int kMaxIncludeDepth = 10;

// Parses `name=value` (_include[:iterate|:recurse]=Type:param[:Target], Type:*, or *).
absl::Status ParseInclude(const Registry& reg, std::string_view name, std::string_view value,
                          std::string_view type, bool strict, std::vector<IncludeSpec>* out,
                          std::vector<std::string>* issues) {
  IncludeSpec spec;
  spec.rev = name.starts_with("_revinclude");
  std::string_view modifier = name.substr(spec.rev ? 11 : 8);
  if (modifier == ":iterate" || modifier == ":recurse") {
    spec.iterate = true;
  } else if (!modifier.empty()) {
    std::string msg = base::StrCat(name, " is not supported (only :iterate and :recurse)");
    if (strict) return Bad(msg);
    issues->push_back(base::StrCat(msg, ": ignored"));
    return absl::OkStatus();
  }
  std::vector<std::string_view> parts = base::Split(value, ':');
  auto reject = [&](std::string_view why) -> absl::Status {
    std::string msg = base::StrCat(name, "=", value, ": ", why);
    if (strict) return Bad(msg);
    issues->push_back(base::StrCat(msg, ": ignored"));
    return absl::OkStatus();
  };
  if (value == "*") {
    spec.source = spec.param = "*";
    out->push_back(std::move(spec));
    return absl::OkStatus();
  }
  if (parts.size() < 2 || parts.size() > 3 || !store::IsFhirResourceType(parts[0]) ||
      (parts.size() == 3 && !store::IsFhirResourceType(parts[2]))) {
    return reject("expected Type:parameter[:targetType], Type:* or *");
  }
  spec.source = std::string(parts[0]);
  spec.param = std::string(parts[1]);
  if (parts.size() == 3) spec.target = std::string(parts[2]);
  if (spec.param != "*") {
    const SearchParam* p = reg.Find(spec.source, spec.param);
    if (p == nullptr || p->type != ParamType::kReference) {
      return reject(base::StrCat("'", spec.param, "' is not a reference parameter of ", spec.source));
    }
    spec.ref = p;
  }
  if (!spec.iterate && !spec.rev && spec.source != type) {
    return reject(base::StrCat("names another type than ", type, " (use :iterate)"));
  }
  if (!spec.iterate && spec.rev && !spec.target.empty() && spec.target != type) {
    return reject(base::StrCat("targets another type than ", type, " (use :iterate)"));
  }
  out->push_back(std::move(spec));
  return absl::OkStatus();
}

// The resources `spec` adds for resource (type, id): its references (_include) or the resources
// referring to it (_revinclude).
absl::Status IncludeStep(db::Connection& conn, const IncludeSpec& spec, const std::string& type,
                         const std::string& id,
                         std::vector<std::pair<std::string, std::string>>* out) {
  Sql q;
  if (!spec.rev) {
    if (spec.source != "*" && spec.source != type) return absl::OkStatus();
    q.Add("SELECT target_type, target_id FROM fhir_idx_reference WHERE res_type = ").Text(type)
        .Add(" AND res_id = ").Text(id);
    if (spec.ref != nullptr) {
      q.Add(" AND ");
      RowsOf(q, "fhir_idx_reference", *spec.ref);
    }
    if (!spec.target.empty()) q.Add(" AND target_type = ").Text(spec.target);
    q.Add(" AND target_id <> ''");
  } else {
    if (!spec.target.empty() && spec.target != type) return absl::OkStatus();
    q.Add("SELECT res_type, res_id FROM fhir_idx_reference WHERE target_type = ").Text(type)
        .Add(" AND target_id = ").Text(id);
    if (spec.source != "*") q.Add(" AND res_type = ").Text(spec.source);
    if (spec.ref != nullptr) {
      q.Add(" AND ");
      RowsOf(q, "fhir_idx_reference", *spec.ref);
    }
  }
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* s, conn.PrepareCached(q.text));
  Bind(*s, q.args);
  absl::Status status;
  while (true) {
    absl::StatusOr<bool> row = s->Step();
    if (!row.ok()) status = row.status();
    if (!row.ok() || !*row) break;
    out->emplace_back(std::string(s->ColumnText(0)), std::string(s->ColumnText(1)));
  }
  s->Reset();
  return status;
}

absl::StatusOr<std::optional<store::FhirVersion>> ReadCurrent(db::Connection& conn,
                                                              std::string_view type,
                                                              std::string_view id) {
  ISTHMUS_ASSIGN_OR_RETURN(db::Statement* q, conn.PrepareCached(
      "SELECT v.seq, v.version_id, v.last_updated, v.method, v.body FROM fhir_resources r "
      "JOIN fhir_resource_versions v ON v.seq = r.version_seq "
      "WHERE r.type = ? AND r.id = ? AND r.deleted = 0"));
  q->BindText(1, type);
  q->BindText(2, id);
  absl::StatusOr<bool> row = q->Step();
  std::optional<store::FhirVersion> out;
  if (row.ok() && *row) {
    store::FhirVersion v;
    v.seq = q->ColumnInt64(0);
    v.type = std::string(type);
    v.id = std::string(id);
    v.version_id = q->ColumnInt64(1);
    v.last_updated_micros = q->ColumnInt64(2);
    v.method = std::string(q->ColumnText(3));
    v.json = std::string(q->ColumnText(4));
    out = std::move(v);
  }
  q->Reset();
  if (!row.ok()) return row.status();
  return out;
}

// _include and _revinclude over the page's matches, then (:iterate) over what they added, level
// by level until nothing new, at most kMaxIncludeDepth levels and o.max_included resources (a
// warning names the limit that stopped it).
absl::Status Include(db::Connection& conn, const std::vector<IncludeSpec>& specs,
                     const SearchOptions& o, SearchResult* result) {
  if (specs.empty()) return absl::OkStatus();
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<std::pair<std::string, std::string>> frontier;
  for (const auto& v : result->matches) {
    seen.emplace(v.type, v.id);
    frontier.emplace_back(v.type, v.id);
  }
  for (int depth = 0; !frontier.empty(); ++depth) {
    if (depth > kMaxIncludeDepth) {
      result->issues.push_back(base::StrCat("_include/_revinclude :iterate stopped after ",
                                            kMaxIncludeDepth, " levels"));
      break;
    }
    std::vector<std::pair<std::string, std::string>> next;
    for (const IncludeSpec& spec : specs) {
      if (depth > 0 && !spec.iterate) continue;
      for (const auto& [t, id] : frontier) {
        std::vector<std::pair<std::string, std::string>> found;
        ISTHMUS_RETURN_IF_ERROR(IncludeStep(conn, spec, t, id, &found));
        for (auto& f : found) {
          if (seen.contains(f)) continue;
          if (static_cast<int>(result->included.size()) >= o.max_included) {
            result->issues.push_back(base::StrCat("_include/_revinclude stopped at ",
                                                  o.max_included, " included resources"));
            return absl::OkStatus();
          }
          seen.insert(f);
          ISTHMUS_ASSIGN_OR_RETURN(std::optional<store::FhirVersion> v,
                                   ReadCurrent(conn, f.first, f.second));
          if (!v) continue;  // a reference to nothing (or to a deleted resource)
          result->included.push_back(*std::move(v));
          next.push_back(std::move(f));
        }
      }
    }
    frontier = std::move(next);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<db::Connection>> Searcher::Acquire() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!readers_.empty()) {
      std::unique_ptr<db::Connection> c = std::move(readers_.back());
      readers_.pop_back();
      return c;
    }
  }
  return writer_.OpenReader();
}

void Searcher::Release(std::unique_ptr<db::Connection> c) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (readers_.size() < 8) readers_.push_back(std::move(c));
}

absl::StatusOr<SearchResult> Searcher::Search(std::string_view type, const Params& params,
                                              const SearchOptions& o) const {
  SearchResult result;
  Builder builder(*registry_, clock_->NowMicros(), o.strict, &result.issues);
  Sql where;
  int count = o.default_count;
  std::string sort_spec, total_mode, cursor_text;
  std::vector<IncludeSpec> includes;
  // The most selective parameter drives the search; the others are checked per candidate.
  const void* driver = nullptr;
  int driver_rank = 0;
  for (const auto& param : params) {
    if (IsResultParam(param.first) || param.second.empty()) continue;
    const int rank = builder.DriveRank(type, param.first, param.second);
    if (driver == nullptr || rank < driver_rank) {
      driver = &param;
      driver_rank = rank;
    }
  }
  for (const auto& param : params) {
    const auto& [name, value] = param;
    if (!IsResultParam(name)) {
      if (value.empty()) {
        result.issues.push_back(base::StrCat("search parameter '", name, "' has no value: ignored"));
        continue;
      }
      builder.set_correlate(&param != driver);
      ISTHMUS_RETURN_IF_ERROR(builder.AddParam(type, "r", name, value, &where));
      continue;
    }
    if (name == "_count") {
      int64_t n = 0;
      if (!base::ParseInt(value, &n) || n < 0) return Bad("_count must be a number >= 0");
      count = static_cast<int>(std::min<int64_t>(n, o.max_count));
    } else if (name == "_sort") {
      sort_spec = value;
    } else if (name == "_total") {
      if (value != "none" && value != "estimate" && value != "accurate") {
        return Bad("_total is none, estimate or accurate");
      }
      total_mode = value;
    } else if (name == "_summary") {
      if (value == "count") {
        result.count_only = true;
      } else if (value != "false") {
        std::string msg = base::StrCat("_summary=", value, " is not supported");
        if (o.strict) return Bad(msg);
        result.issues.push_back(base::StrCat(msg, ": full resources returned"));
      }
    } else if (name == "_elements") {
      if (o.strict) return Bad("_elements is not supported");
      result.issues.push_back("_elements is not supported: full resources returned");
    } else if (name == "_cursor") {
      cursor_text = value;
    } else if (name.starts_with("_include") || name.starts_with("_revinclude")) {
      ISTHMUS_RETURN_IF_ERROR(
          ParseInclude(*registry_, name, value, type, o.strict, &includes, &result.issues));
    }
  }
  std::vector<SortKey> keys;
  ISTHMUS_RETURN_IF_ERROR(ParseSort(*registry_, type, sort_spec, &keys));
  Cursor cursor;
  if (!cursor_text.empty()) {
    ISTHMUS_ASSIGN_OR_RETURN(cursor, DecodeCursor(cursor_text));
    if (cursor.sort != sort_spec || (cursor.dir != 'l' && cursor.keys.size() != keys.size())) {
      return Bad("_cursor is not a paging position of this search");
    }
  }

  std::unique_ptr<db::Connection> owned;
  if (o.conn == nullptr) {
    ISTHMUS_ASSIGN_OR_RETURN(owned, Acquire());
  }
  struct Returner {
    const Searcher* s;
    std::unique_ptr<db::Connection>* c;
    ~Returner() { if (*c) s->Release(std::move(*c)); }
  } returner{this, &owned};
  db::Connection* const conn = o.conn != nullptr ? o.conn : owned.get();

  auto run_count = [&]() -> absl::StatusOr<int64_t> {
    Sql q;
    q.Add("SELECT COUNT(*) FROM fhir_resources r WHERE r.type = ").Text(std::string(type))
        .Add(" AND r.deleted = 0").Add(where);
    ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<db::Statement> st, conn->Prepare(q.text));
    Bind(*st, q.args);
    ISTHMUS_ASSIGN_OR_RETURN(bool row, st->Step());
    return row ? st->ColumnInt64(0) : 0;
  };
  if (result.count_only || count == 0) {
    ISTHMUS_ASSIGN_OR_RETURN(int64_t n, run_count());
    result.total = n;
    result.count_only = true;
    return result;
  }

  // Backward pages ('p' before a position, 'l' the last page) read the reversed order and are
  // turned around afterwards.
  const bool backward = !cursor_text.empty() && (cursor.dir == 'p' || cursor.dir == 'l');
  // The page is chosen and ordered on the index tables alone (f: the filtered resources with
  // their sort keys; t: the page), then joined with the page's bodies only.
  Sql q;
  q.Add("SELECT t.id, v.seq, v.version_id, v.last_updated, v.method, v.body");
  for (size_t k = 0; k < keys.size(); ++k) q.Add(base::StrCat(", t.k", k));
  q.Add(" FROM (SELECT f.id, f.version_seq");
  for (size_t k = 0; k < keys.size(); ++k) q.Add(base::StrCat(", f.k", k));
  q.Add(" FROM (SELECT r.id AS id, r.version_seq AS version_seq");
  for (size_t k = 0; k < keys.size(); ++k) q.Add(", ").Add(keys[k].expr).Add(base::StrCat(" AS k", k));
  q.Add(" FROM fhir_resources r WHERE r.type = ").Text(std::string(type))
      .Add(" AND r.deleted = 0").Add(where).Add(") f");
  if (!cursor_text.empty() && cursor.dir != 'l') {
    q.Add(" WHERE ");
    ISTHMUS_RETURN_IF_ERROR(Keyset(keys, cursor, "f.", &q));
  }
  q.Add(" ORDER BY ").Add(OrderBy(keys, "f.", backward)).Add(" LIMIT ").Int(count + 1);
  q.Add(") t JOIN fhir_resource_versions v ON v.seq = t.version_seq ORDER BY ")
      .Add(OrderBy(keys, "t.", backward));

  ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<db::Statement> st, conn->Prepare(q.text));
  Bind(*st, q.args);
  std::vector<Cursor> positions;  // of each match
  bool more = false;
  while (true) {
    ISTHMUS_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    if (static_cast<int>(result.matches.size()) == count) {
      more = true;
      break;
    }
    store::FhirVersion v;
    v.type = std::string(type);
    v.id = std::string(st->ColumnText(0));
    v.seq = st->ColumnInt64(1);
    v.version_id = st->ColumnInt64(2);
    v.last_updated_micros = st->ColumnInt64(3);
    v.method = std::string(st->ColumnText(4));
    v.json = std::string(st->ColumnText(5));
    Cursor pos;
    pos.sort = sort_spec;
    pos.id = v.id;
    for (size_t k = 0; k < keys.size(); ++k) {
      const int col = static_cast<int>(6 + k);
      if (st->ColumnIsNull(col)) pos.keys.emplace_back(std::nullopt);
      else pos.keys.emplace_back(std::string(st->ColumnText(col)));
    }
    positions.push_back(std::move(pos));
    result.matches.push_back(std::move(v));
  }
  st.reset();
  if (backward) {
    std::reverse(result.matches.begin(), result.matches.end());
    std::reverse(positions.begin(), positions.end());
  }
  // Links: next after the last match, previous before the first, last from the end.
  auto at = [&](const Cursor& pos, char dir) {
    Cursor c = pos;
    c.dir = dir;
    return EncodeCursor(c);
  };
  const bool first_page = cursor_text.empty();
  const bool later_rows = backward ? cursor.dir == 'p' : more;
  const bool earlier_rows = backward ? more : !first_page;
  if (later_rows) {
    if (!positions.empty()) {
      result.next_cursor = at(positions.back(), 'n');
    } else {  // every row before the position went away: continue at the position itself
      result.next_cursor = at(cursor, 'N');
    }
  }
  if (earlier_rows) {
    result.previous_cursor = positions.empty() ? at(cursor, 'p') : at(positions.front(), 'p');
  }
  if (later_rows) {
    Cursor l;
    l.dir = 'l';
    l.sort = sort_spec;
    result.last_cursor = EncodeCursor(l);
  }
  if (total_mode == "accurate") {
    ISTHMUS_ASSIGN_OR_RETURN(int64_t n, run_count());
    result.total = n;
  } else if (total_mode.empty() && !more && first_page) {
    result.total = static_cast<int64_t>(result.matches.size());
  }
  ISTHMUS_RETURN_IF_ERROR(Include(*conn, includes, o, &result));
  return result;
}

}  // namespace isthmus::fhir_search
