#include "fhir_search/extract.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <set>
#include <tuple>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/str.h"
#include "rapidjson/document.h"
#include "store/fhir_store.h"

namespace isthmus::fhir_search {
namespace {

using fhirpath::Kind;
using fhirpath::Temporal;
using fhirpath::Value;

// Latin-1 Supplement U+00C0..U+00FF, folded and lower-cased ("" keeps the character).
constexpr std::array<const char*, 64> kLatin1 = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "y"};

// Latin Extended-A U+0100..U+017F, by ranges of the same base letter.
const char* LatinExtA(unsigned cp) {
  struct Range { unsigned last; const char* base; };
  static constexpr Range kRanges[] = {
      {0x105, "a"}, {0x10D, "c"}, {0x111, "d"}, {0x11B, "e"}, {0x123, "g"}, {0x127, "h"},
      {0x131, "i"}, {0x133, "ij"}, {0x135, "j"}, {0x138, "k"}, {0x142, "l"}, {0x14B, "n"},
      {0x151, "o"}, {0x153, "oe"}, {0x159, "r"}, {0x161, "s"}, {0x167, "t"}, {0x173, "u"},
      {0x175, "w"}, {0x178, "y"}, {0x17E, "z"}, {0x17F, "s"}};
  for (const Range& r : kRanges) {
    if (cp <= r.last) return r.base;
  }
  return nullptr;
}

std::string_view Member(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string_view(it->value.GetString(), it->value.GetStringLength());
}

const rapidjson::Value* Child(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

// Calls f for every string of a member that may be a string or an array of strings.
template <typename F>
void EachString(const rapidjson::Value& obj, const char* name, F&& f) {
  const rapidjson::Value* c = Child(obj, name);
  if (c == nullptr) return;
  if (c->IsString()) {
    f(std::string_view(c->GetString(), c->GetStringLength()));
  } else if (c->IsArray()) {
    for (const auto& x : c->GetArray()) {
      if (x.IsString()) f(std::string_view(x.GetString(), x.GetStringLength()));
    }
  }
}

bool TemporalRange(const Temporal& t, int64_t* low, int64_t* high) {
  if (t.year < 1 || t.year > 9999) return false;
  absl::CivilSecond start(t.year, t.month, t.day, t.hour, t.minute, t.second);
  absl::CivilSecond next;
  int64_t millis_low = 0, millis_span = 0;
  switch (t.precision) {
    case Temporal::kYear: next = absl::CivilSecond(absl::CivilYear(t.year) + 1); break;
    case Temporal::kMonth:
      next = absl::CivilSecond(absl::CivilMonth(t.year, t.month) + 1);
      break;
    case Temporal::kDay: next = absl::CivilSecond(absl::CivilDay(t.year, t.month, t.day) + 1); break;
    case Temporal::kHour:
      next = absl::CivilSecond(absl::CivilHour(t.year, t.month, t.day, t.hour) + 1);
      break;
    case Temporal::kMinute:
      next = absl::CivilSecond(absl::CivilMinute(t.year, t.month, t.day, t.hour, t.minute) + 1);
      break;
    case Temporal::kSecond: next = start + 1; break;
    default:
      next = start;
      millis_low = t.millis;
      millis_span = 1;
      break;
  }
  const int64_t offset = t.has_tz ? int64_t{t.tz_minutes} * 60 * 1000000 : 0;
  *low = absl::ToUnixMicros(absl::FromCivil(start, absl::UTCTimeZone())) + millis_low * 1000 -
         offset;
  *high = absl::ToUnixMicros(absl::FromCivil(next, absl::UTCTimeZone())) +
          (millis_low + millis_span) * 1000 - offset - 1;
  return true;
}

// What a value is indexed as: a parameter (or a composite's component) and its type.
struct Param {
  const std::string& code;
  ParamType type;
};

class Extractor {
 public:
  explicit Extractor(IndexRows& rows) : rows_(rows) {}

  // Rows added from now on belong to group `grp` (0: none).
  void SetGroup(int grp) { grp_ = grp; }
  int NewGroup() { return ++groups_; }

  void Add(const Param& p, const Value& v) {
    switch (p.type) {
      case ParamType::kString: String(p, v); break;
      case ParamType::kToken: Token(p, v); break;
      case ParamType::kDate: Date(p, v); break;
      case ParamType::kNumber:
        if (v.kind == Kind::kInteger) {
          rows_.numbers.push_back({p.code, static_cast<double>(v.i), grp_});
        }
        if (v.kind == Kind::kDecimal) rows_.numbers.push_back({p.code, v.d.ToDouble(), grp_});
        break;
      case ParamType::kQuantity: Quantity(p, v); break;
      case ParamType::kReference: Reference(p, v); break;
      case ParamType::kUri:
        if (v.kind == Kind::kString) rows_.uris.push_back({p.code, std::string(v.str), grp_});
        break;
      default: break;
    }
  }

 private:
  void AddString(const Param& p, std::string_view s) {
    if (s.empty()) return;
    rows_.strings.push_back({p.code, NormalizeString(s), std::string(s), grp_});
  }

  void String(const Param& p, const Value& v) {
    if (v.kind == Kind::kString) {
      AddString(p, v.str);
      return;
    }
    if (v.kind != Kind::kObject || v.json == nullptr) return;
    const std::string type = fhirpath::TypeName(v);
    auto add = [&](std::string_view s) { AddString(p, s); };
    if (type == "HumanName") {
      for (const char* m : {"family", "given", "prefix", "suffix", "text"}) EachString(*v.json, m, add);
    } else if (type == "Address") {
      for (const char* m : {"line", "city", "district", "state", "postalCode", "country", "text"}) {
        EachString(*v.json, m, add);
      }
    }
  }

  void AddToken(const Param& p, std::string_view system, std::string_view code,
                std::string_view text) {
    if (system.empty() && code.empty() && text.empty()) return;
    rows_.tokens.push_back(
        {p.code, std::string(system), std::string(code), NormalizeString(text), grp_});
  }

  void Token(const Param& p, const Value& v) {
    switch (v.kind) {
      case Kind::kBoolean: AddToken(p, "", v.b ? "true" : "false", ""); return;
      case Kind::kString: AddToken(p, "", v.str, ""); return;
      case Kind::kInteger: AddToken(p, "", base::StrCat(v.i), ""); return;
      case Kind::kObject: break;
      default: return;
    }
    if (v.json == nullptr) return;
    const rapidjson::Value& j = *v.json;
    const std::string type = fhirpath::TypeName(v);
    if (type == "Coding") {
      AddToken(p, Member(j, "system"), Member(j, "code"), Member(j, "display"));
    } else if (type == "CodeableConcept") {
      std::string_view text = Member(j, "text");
      const rapidjson::Value* codings = Child(j, "coding");
      bool any = false;
      if (codings != nullptr && codings->IsArray()) {
        for (const auto& c : codings->GetArray()) {
          std::string_view display = Member(c, "display");
          AddToken(p, Member(c, "system"), Member(c, "code"), display.empty() ? text : display);
          any = true;
        }
      }
      // The concept's text is searchable with :text even when a coding's display differs.
      if (!text.empty() && (!any || text != Member((*codings)[0], "display"))) {
        AddToken(p, "", "", text);
      }
    } else if (type == "Identifier") {
      std::string_view type_text;
      const rapidjson::Value* t = Child(j, "type");
      if (t != nullptr) type_text = Member(*t, "text");
      const rapidjson::Value* codings = t == nullptr ? nullptr : Child(*t, "coding");
      if (grp_ != 0 || codings == nullptr || !codings->IsArray() || codings->Empty() ||
          Member(j, "value").empty()) {
        AddToken(p, Member(j, "system"), Member(j, "value"), type_text);
        return;
      }
      // :of-type: the identifier and its type codings share a group.
      grp_ = NewGroup();
      AddToken(p, Member(j, "system"), Member(j, "value"), type_text);
      const std::string of_type = OfTypeParam(p.code);
      const Param tp{of_type, ParamType::kToken};
      for (const auto& c : codings->GetArray()) {
        if (!Member(c, "code").empty()) AddToken(tp, Member(c, "system"), Member(c, "code"), "");
      }
      grp_ = 0;
    } else if (type == "ContactPoint") {
      AddToken(p, Member(j, "system"), Member(j, "value"), "");
    }
  }

  void AddDate(const Param& p, int64_t low, int64_t high) {
    if (low <= high) rows_.dates.push_back({p.code, low, high, grp_});
  }

  void Date(const Param& p, const Value& v) {
    int64_t low = 0, high = 0;
    if (v.kind == Kind::kDate || v.kind == Kind::kDateTime) {
      if (TemporalRange(v.t, &low, &high)) AddDate(p, low, high);
      return;
    }
    if (v.kind == Kind::kString) {
      if (DateRange(v.str, &low, &high)) AddDate(p, low, high);
      return;
    }
    if (v.kind != Kind::kObject || v.json == nullptr) return;
    const std::string type = fhirpath::TypeName(v);
    if (type == "Period") {
      int64_t l = kMinMicros, h = kMaxMicros, ignored = 0;
      std::string_view start = Member(*v.json, "start"), end = Member(*v.json, "end");
      if (start.empty() && end.empty()) return;
      if (!start.empty() && !DateRange(start, &l, &ignored)) return;
      if (!end.empty() && !DateRange(end, &ignored, &h)) return;
      AddDate(p, l, h);
    } else if (type == "Timing") {
      EachString(*v.json, "event", [&](std::string_view e) {
        if (DateRange(e, &low, &high)) AddDate(p, low, high);
      });
      if (const rapidjson::Value* r = Child(*v.json, "repeat")) {
        if (const rapidjson::Value* b = Child(*r, "boundsPeriod")) {
          int64_t l = kMinMicros, h = kMaxMicros, ignored = 0;
          std::string_view start = Member(*b, "start"), end = Member(*b, "end");
          if ((!start.empty() || !end.empty()) &&
              (start.empty() || DateRange(start, &l, &ignored)) &&
              (end.empty() || DateRange(end, &ignored, &h))) {
            AddDate(p, l, h);
          }
        }
      }
    }
  }

  void AddQuantity(const Param& p, const fhirpath::Decimal& d, std::string_view system,
                   std::string_view code) {
    IndexRows::Quantity q{p.code, d.ToDouble(), std::string(system), std::string(code), 0, "",
                          grp_};
    if (system.empty() || system == "http://unitsofmeasure.org") {
      if (std::optional<fhirpath::Canonical> c = fhirpath::CanonicalQuantity(d, code)) {
        q.canonical_value = c->value.ToDouble();
        q.canonical_unit = c->unit;
      }
    }
    rows_.quantities.push_back(std::move(q));
  }

  void Quantity(const Param& p, const Value& v) {
    if (v.kind == Kind::kQuantity) {
      AddQuantity(p, v.d, "http://unitsofmeasure.org", v.str);
      return;
    }
    if (v.kind != Kind::kObject || v.json == nullptr) return;
    const rapidjson::Value* value = Child(*v.json, "value");
    if (value == nullptr || !value->IsNumber()) return;
    fhirpath::Decimal d = value->IsInt64() ? fhirpath::Decimal::FromInt(value->GetInt64())
                                           : fhirpath::Decimal::FromDouble(value->GetDouble());
    std::string_view code = Member(*v.json, "code");
    if (code.empty()) code = Member(*v.json, "currency");  // Money
    if (code.empty()) code = Member(*v.json, "unit");
    AddQuantity(p, d, Member(*v.json, "system"), code);
  }

  void AddReference(const Param& p, std::string_view ref) {
    if (ref.empty() || ref[0] == '#') return;
    IndexRows::Reference r{p.code, "", "", std::string(ref), grp_};
    std::string_view path = ref;
    if (size_t h = path.find("/_history/"); h != std::string_view::npos) path = path.substr(0, h);
    size_t slash = path.rfind('/');
    if (slash != std::string_view::npos && slash > 0) {
      std::string_view id = path.substr(slash + 1);
      std::string_view rest = path.substr(0, slash);
      size_t prev = rest.rfind('/');
      std::string_view type = prev == std::string_view::npos ? rest : rest.substr(prev + 1);
      if (store::IsFhirResourceType(type) && store::IsValidFhirId(id)) {
        r.target_type = std::string(type);
        r.target_id = std::string(id);
      }
    }
    rows_.references.push_back(std::move(r));
  }

  void Reference(const Param& p, const Value& v) {
    if (v.kind == Kind::kString) {
      AddReference(p, v.str);
    } else if (v.kind == Kind::kObject && v.json != nullptr) {
      AddReference(p, Member(*v.json, "reference"));
    }
  }

  IndexRows& rows_;
  int grp_ = 0;
  int groups_ = 0;
};

}  // namespace

std::string NormalizeString(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(std::tolower(c)));
      continue;
    }
    if (i + 1 < s.size() && (c == 0xC3 || c == 0xC4 || c == 0xC5)) {
      unsigned c2 = static_cast<unsigned char>(s[i + 1]);
      unsigned cp = ((c & 0x1F) << 6) | (c2 & 0x3F);
      const char* folded = nullptr;
      if (cp >= 0xC0 && cp <= 0xFF) folded = kLatin1[cp - 0xC0];
      if (cp >= 0x100 && cp <= 0x17F) folded = LatinExtA(cp);
      if (folded != nullptr && folded[0] != '\0') {
        out += folded;
        ++i;
        continue;
      }
    }
    out.push_back(static_cast<char>(c));
  }
  return out;
}

bool DateRange(std::string_view text, int64_t* low, int64_t* high) {
  std::optional<Temporal> t = fhirpath::ParseDateTime(text);
  if (!t) return false;
  return TemporalRange(*t, low, high);
}

std::string ComponentParam(std::string_view code, size_t n) {
  return base::StrCat(code, "$", n);
}

const char* IndexTable(ParamType t) {
  switch (t) {
    case ParamType::kString: return "fhir_idx_string";
    case ParamType::kToken: return "fhir_idx_token";
    case ParamType::kDate: return "fhir_idx_date";
    case ParamType::kNumber: return "fhir_idx_number";
    case ParamType::kQuantity: return "fhir_idx_quantity";
    case ParamType::kReference: return "fhir_idx_reference";
    case ParamType::kUri: return "fhir_idx_uri";
    default: return nullptr;
  }
}

std::string OfTypeParam(std::string_view code) { return base::StrCat(code, ":of-type"); }

namespace {

// A parameter answered from its parts' rows too (stored_as after its own code: Patient name
// from family and given): its rows repeating a part's row are dropped, one row per value.
void DropValuesOfParts(const SearchParam& p, IndexRows& rows) {
  auto is_part = [&](const std::string& param) {
    return param != p.code && std::find(p.stored_as.begin(), p.stored_as.end(), param) !=
                                  p.stored_as.end();
  };
  if (p.type == ParamType::kString) {
    std::set<std::tuple<std::string, std::string, int>> parts;
    for (const auto& r : rows.strings) {
      if (is_part(r.param)) parts.emplace(r.norm, r.exact, r.grp);
    }
    std::erase_if(rows.strings, [&](const IndexRows::String& r) {
      return r.param == p.code && parts.count({r.norm, r.exact, r.grp}) > 0;
    });
  } else if (p.type == ParamType::kToken) {
    std::set<std::tuple<std::string, std::string, std::string, int>> parts;
    for (const auto& r : rows.tokens) {
      if (is_part(r.param)) parts.emplace(r.system, r.code, r.text, r.grp);
    }
    std::erase_if(rows.tokens, [&](const IndexRows::Token& r) {
      return r.param == p.code && parts.count({r.system, r.code, r.text, r.grp}) > 0;
    });
  }
}

// rapidjson's UTF-8 encoder writes to a stream with Put.
struct StringSink {
  std::string* out;
  void Put(char c) { out->push_back(c); }
};

void AppendUtf8(unsigned cp, std::string* out) {
  StringSink sink{out};
  rapidjson::UTF8<char>::Encode(sink, cp);
}

// Every string value under `v` (object keys are names, not content), space-separated, but
// base64 `data` (Attachment, Binary), the machine names nobody searches as words (`system`,
// `url`, `reference`, `profile` URLs and ids: half of a vital-sign Observation's characters)
// and, at the top, the narrative and resourceType.
void ContentStrings(const rapidjson::Value& v, bool top, std::string* out) {
  if (v.IsString()) {
    if (!out->empty()) out->push_back(' ');
    out->append(v.GetString(), v.GetStringLength());
  } else if (v.IsArray()) {
    for (const auto& x : v.GetArray()) ContentStrings(x, false, out);
  } else if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      std::string_view k(m.name.GetString(), m.name.GetStringLength());
      if (k == "data" || k == "system" || k == "url" || k == "reference" || k == "profile" ||
          k == "id" || (top && (k == "text" || k == "resourceType"))) {
        continue;
      }
      ContentStrings(m.value, false, out);
    }
  }
}

void FullText(const rapidjson::Value& doc, std::string* narrative, std::string* content) {
  if (const rapidjson::Value* text = Child(doc, "text")) {
    *narrative = StripTags(Member(*text, "div"));
  }
  ContentStrings(doc, true, content);
}

}  // namespace

std::string StripTags(std::string_view x) {
  std::string out;
  out.reserve(x.size());
  size_t i = 0;
  while (i < x.size()) {
    const char c = x[i];
    if (c == '<') {  // a tag (or comment): a word boundary
      size_t end = x.find('>', i);
      if (end == std::string_view::npos) break;
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
      i = end + 1;
      continue;
    }
    if (c == '&') {
      size_t semi = x.find(';', i);
      if (semi != std::string_view::npos && semi - i <= 10) {
        std::string_view e = x.substr(i + 1, semi - i - 1);
        unsigned cp = 0;
        if (e == "amp") cp = '&';
        else if (e == "lt") cp = '<';
        else if (e == "gt") cp = '>';
        else if (e == "quot") cp = '"';
        else if (e == "apos") cp = '\'';
        else if (e == "nbsp") cp = ' ';
        else if (e.size() > 1 && e[0] == '#') {
          const bool hex = e[1] == 'x' || e[1] == 'X';
          std::string digits(e.substr(hex ? 2 : 1));
          char* endp = nullptr;
          const unsigned long v = std::strtoul(digits.c_str(), &endp, hex ? 16 : 10);
          if (!digits.empty() && endp != nullptr && *endp == '\0') cp = static_cast<unsigned>(v);
        }
        if (cp != 0 && cp <= 0x10FFFF) {
          AppendUtf8(cp, &out);
          i = semi + 1;
          continue;
        }
      }
    }
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {  // runs of white space: one
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(c);
    }
    ++i;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

absl::Status ExtractFullText(std::string_view json, std::string* narrative, std::string* content) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InvalidArgumentError("full-text indexing: the resource is not a JSON object");
  }
  narrative->clear();
  content->clear();
  FullText(doc, narrative, content);
  return absl::OkStatus();
}

absl::StatusOr<IndexRows> Extract(const Registry& registry, std::string_view type,
                                  std::string_view json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InvalidArgumentError("search indexing: the resource is not a JSON object");
  }
  IndexRows rows;
  Extractor x(rows);
  fhirpath::Environment env;
  env.resource = &doc;
  for (const SearchParam* p : registry.Extracted(type)) {
    absl::StatusOr<fhirpath::Collection> out = fhirpath::Evaluate(*p->compiled, doc);
    if (!out.ok()) {
      ++rows.errors;
      continue;
    }
    if (p->type != ParamType::kComposite) {
      for (const Value& v : *out) x.Add(Param{p->code, p->type}, v);
      continue;
    }
    // A composite: each element is a group; its components are evaluated on that element.
    std::vector<std::string> names;
    for (size_t n = 0; n < p->components.size(); ++n) names.push_back(ComponentParam(p->code, n));
    for (const Value& element : *out) {
      // An element missing a part can match no value of the composite (every part is
      // required): its group is dropped, so `:missing` sees only complete elements.
      const size_t before[] = {rows.strings.size(), rows.tokens.size(), rows.dates.size(),
                               rows.numbers.size(), rows.quantities.size(),
                               rows.references.size(), rows.uris.size()};
      auto total = [&] {
        return rows.strings.size() + rows.tokens.size() + rows.dates.size() +
               rows.numbers.size() + rows.quantities.size() + rows.references.size() +
               rows.uris.size();
      };
      x.SetGroup(x.NewGroup());
      bool complete = true;
      for (size_t n = 0; n < p->components.size() && complete; ++n) {
        const SearchParam::Component& c = p->components[n];
        absl::StatusOr<fhirpath::Collection> parts =
            fhirpath::EvaluateOn(*c.compiled, fhirpath::Collection{element}, env);
        if (!parts.ok()) {
          ++rows.errors;
          complete = false;
          break;
        }
        const size_t had = total();
        for (const Value& v : *parts) x.Add(Param{names[n], c.type}, v);
        complete = total() > had;
      }
      x.SetGroup(0);
      if (!complete) {
        rows.strings.resize(before[0]);
        rows.tokens.resize(before[1]);
        rows.dates.resize(before[2]);
        rows.numbers.resize(before[3]);
        rows.quantities.resize(before[4]);
        rows.references.resize(before[5]);
        rows.uris.resize(before[6]);
      }
    }
  }
  for (const SearchParam* p : registry.Extracted(type)) {
    if (p->stored_as.size() > 1) DropValuesOfParts(*p, rows);
  }
  FullText(doc, &rows.narrative, &rows.content);
  return rows;
}

}  // namespace isthmus::fhir_search
