#include "fhir/validator.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "base/str.h"
#include "fhir/validator_defs.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir {
namespace {

using internal::kVBindings;
using internal::kVChoice;
using internal::kVCodes;
using internal::kVElements;
using internal::kVKeys;
using internal::kVTypeCount;
using internal::kVTypes;
using internal::VCode;
using internal::VElement;
using internal::VKey;
using internal::VKind;
using internal::VPrim;
using internal::VType;
using Value = rapidjson::Value;
using Severity = ValidationIssue::Severity;

// The FHIR store keeps JSON numbers as their text after this byte (fhir_store.cc).
constexpr char kNumberMark = '\xFF';
// No R4 type has more elements than this (Patient has 24; the largest about 60).
constexpr int kMaxElements = 160;
constexpr size_t kMaxStringBytes = 1024 * 1024;

std::string_view Str(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

bool IsMarkedNumber(const Value& v) {
  return v.IsString() && v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark;
}

bool IsJsonString(const Value& v) { return v.IsString() && !IsMarkedNumber(v); }

// ---- Primitive formats (http://hl7.org/fhir/R4/datatypes.html, the regexes of the SDs) ----

bool Digit(char c) { return c >= '0' && c <= '9'; }

// Two digits at s[i]; false when absent.
bool Two(std::string_view s, size_t i, int* v) {
  if (i + 2 > s.size() || !Digit(s[i]) || !Digit(s[i + 1])) return false;
  *v = (s[i] - '0') * 10 + (s[i + 1] - '0');
  return true;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) return 29;
  return kDays[month - 1];
}

// YYYY(-MM(-DD)?)? at the start of s (year 0001-9999); the bytes consumed, 0 when malformed.
// *parts: 1 year, 2 year-month, 3 full date.
size_t ParseDate(std::string_view s, int* parts) {
  if (s.size() < 4 || !Digit(s[0]) || !Digit(s[1]) || !Digit(s[2]) || !Digit(s[3])) return 0;
  int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  if (year == 0) return 0;
  *parts = 1;
  if (s.size() == 4 || s[4] != '-') return 4;
  int month = 0;
  if (!Two(s, 5, &month) || month < 1 || month > 12) return 0;
  *parts = 2;
  if (s.size() == 7 || s[7] != '-') return 7;
  int day = 0;
  if (!Two(s, 8, &day) || day < 1 || day > DaysInMonth(year, month)) return 0;
  *parts = 3;
  return 10;
}

// hh:mm:ss(.f+)? at s[i]; the end position, 0 when malformed.
size_t ParseTime(std::string_view s, size_t i) {
  int h = 0, m = 0, sec = 0;
  if (!Two(s, i, &h) || h > 23 || i + 2 >= s.size() || s[i + 2] != ':' || !Two(s, i + 3, &m) ||
      m > 59 || i + 5 >= s.size() || s[i + 5] != ':' || !Two(s, i + 6, &sec) || sec > 60) {
    return 0;
  }
  i += 8;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && Digit(s[j])) ++j;
    if (j == i + 1) return 0;
    i = j;
  }
  return i;
}

// Z | (+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00), exactly the rest of s from i.
bool ZoneIsRest(std::string_view s, size_t i) {
  if (i >= s.size()) return false;
  if (s[i] == 'Z') return i + 1 == s.size();
  if (s[i] != '+' && s[i] != '-') return false;
  int h = 0, m = 0;
  if (i + 6 != s.size() || !Two(s, i + 1, &h) || s[i + 3] != ':' || !Two(s, i + 4, &m)) {
    return false;
  }
  return (h <= 13 && m <= 59) || (h == 14 && m == 0);
}

bool IsDate(std::string_view s) {
  int parts = 0;
  size_t n = ParseDate(s, &parts);
  return n > 0 && n == s.size();
}

// dateTime (full: the instant form, time and zone required).
bool IsDateTime(std::string_view s, bool full) {
  int parts = 0;
  size_t n = ParseDate(s, &parts);
  if (n == 0) return false;
  if (n == s.size()) return !full;
  if (parts != 3 || s[n] != 'T') return false;
  size_t t = ParseTime(s, n + 1);
  return t != 0 && ZoneIsRest(s, t);
}

bool IsTime(std::string_view s) {
  size_t n = ParseTime(s, 0);
  return n != 0 && n == s.size();
}

// JavaScript regex \s (what the R4 regexes and fhir.schema.json mean) at s[i]: 0 when s[i] does
// not start one, else its byte length; *plain: space, tab, CR or LF.
size_t WhitespaceAt(std::string_view s, size_t i, bool* plain) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  *plain = false;
  if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
    *plain = true;
    return 1;
  }
  if (c == 0x0B || c == 0x0C) return 1;
  if (c < 0xC2) return 0;
  auto at = [&](size_t k) -> unsigned char {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
  };
  if (c == 0xC2 && at(1) == 0xA0) return 2;                   // U+00A0
  if (c == 0xE1 && at(1) == 0x9A && at(2) == 0x80) return 3;  // U+1680
  if (c == 0xE2 && at(1) == 0x80) {
    unsigned char d = at(2);
    if ((d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF) return 3;  // U+2000..
  }
  if (c == 0xE2 && at(1) == 0x81 && at(2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && at(1) == 0x80 && at(2) == 0x80) return 3;  // U+3000
  if (c == 0xEF && at(1) == 0xBB && at(2) == 0xBF) return 3;  // U+FEFF
  return 0;
}

struct Verdict {
  Severity severity = Severity::kError;
  const char* message = nullptr;  // null: fine
};

// string, markdown, xhtml: [ \r\n\t\S]+, at most 1 MB; whitespace only or control characters
// other than tab/CR/LF are warnings (the spec's SHOULDs).
Verdict CheckString(std::string_view s) {
  if (s.empty()) return {Severity::kError, "must not be empty"};
  if (s.size() > kMaxStringBytes) return {Severity::kError, "is longer than 1 MB"};
  bool only_space = true, control = false;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c > 0x20 && c < 0x7F) {
      only_space = false;
      ++i;
      continue;
    }
    bool plain = false;
    size_t w = WhitespaceAt(s, i, &plain);
    if (w > 0 && !plain) {
      return {Severity::kError,
              "contains whitespace other than space, tab, CR and LF (the string regex)"};
    }
    if (w == 0) {
      only_space = false;
      if (c < 0x20 || c == 0x7F) control = true;
      i += 1;
    } else {
      i += w;
    }
  }
  if (only_space) return {Severity::kWarning, "should contain non-whitespace content"};
  if (control) return {Severity::kWarning, "should not contain control characters"};
  return {};
}

// code: [^\s]+(\s[^\s]+)*
bool IsCode(std::string_view s) {
  if (s.empty()) return false;
  bool after_space = true;  // at the start: whitespace not allowed
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c > 0x20 && c < 0x7F) {
      after_space = false;
      ++i;
      continue;
    }
    bool plain = false;
    size_t w = WhitespaceAt(s, i, &plain);
    if (w == 0) {
      after_space = false;
      ++i;
      continue;
    }
    if (after_space) return false;
    after_space = true;
    i += w;
  }
  return !after_space;
}

// uri, url, canonical: \S*, and JSON values are never empty.
bool IsUri(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c > 0x20 && c < 0x7F) continue;
    bool plain = false;
    if (WhitespaceAt(s, i, &plain) > 0) return false;
  }
  return true;
}

bool IsId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || Digit(c) || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

// urn:oid:[0-2](\.(0|[1-9][0-9]*))+
bool IsOid(std::string_view s) {
  if (!s.starts_with("urn:oid:")) return false;
  s.remove_prefix(8);
  if (s.size() < 3 || s[0] < '0' || s[0] > '2') return false;
  size_t i = 1;
  int arcs = 0;
  while (i < s.size()) {
    if (s[i] != '.' || i + 1 >= s.size() || !Digit(s[i + 1])) return false;
    size_t j = i + 1;
    if (s[j] == '0') {
      ++j;
    } else {
      while (j < s.size() && Digit(s[j])) ++j;
    }
    ++arcs;
    i = j;
  }
  return arcs > 0;
}

// urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}
bool IsUuid(std::string_view s) {
  if (s.size() != 45 || !s.starts_with("urn:uuid:")) return false;
  for (size_t k = 0; k < 36; ++k) {
    char c = s[9 + k];
    bool ok =
        (k == 8 || k == 13 || k == 18 || k == 23) ? c == '-' : (Digit(c) || (c >= 'a' && c <= 'f'));
    if (!ok) return false;
  }
  return true;
}

// (\s*([0-9a-zA-Z\+/=]){4}\s*)+
bool IsBase64(std::string_view s) {
  auto b64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || Digit(c) || c == '+' || c == '/' ||
           c == '=';
  };
  size_t i = 0, groups = 0;
  bool plain = false;
  while (i < s.size()) {
    while (i < s.size()) {
      size_t w = WhitespaceAt(s, i, &plain);
      if (w == 0) break;
      i += w;
    }
    if (i == s.size()) break;
    if (i + 4 > s.size() || !b64(s[i]) || !b64(s[i + 1]) || !b64(s[i + 2]) || !b64(s[i + 3])) {
      return false;
    }
    i += 4;
    ++groups;
  }
  return groups > 0;
}

// Integer text of a JSON number: -?(0|[1-9][0-9]*), within 32 bits; *v its value.
bool ParseInteger(std::string_view s, int64_t* v) {
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && s[i] == '-') {
    neg = true;
    ++i;
  }
  if (i >= s.size() || !Digit(s[i]) || (s[i] == '0' && i + 1 != s.size())) return false;
  int64_t n = 0;
  for (; i < s.size(); ++i) {
    if (!Digit(s[i])) return false;
    n = n * 10 + (s[i] - '0');
    if (n > (int64_t{1} << 32)) return false;
  }
  *v = neg ? -n : n;
  return *v >= INT32_MIN && *v <= INT32_MAX;
}

const char* PrimName(VPrim p) {
  switch (p) {
    case VPrim::kBoolean:
      return "boolean";
    case VPrim::kInteger:
      return "integer";
    case VPrim::kPositiveInt:
      return "positiveInt";
    case VPrim::kUnsignedInt:
      return "unsignedInt";
    case VPrim::kDecimal:
      return "decimal";
    case VPrim::kString:
      return "string";
    case VPrim::kMarkdown:
      return "markdown";
    case VPrim::kCode:
      return "code";
    case VPrim::kId:
      return "id";
    case VPrim::kUri:
      return "uri";
    case VPrim::kUrl:
      return "url";
    case VPrim::kCanonical:
      return "canonical";
    case VPrim::kOid:
      return "oid";
    case VPrim::kUuid:
      return "uuid";
    case VPrim::kBase64Binary:
      return "base64Binary";
    case VPrim::kDate:
      return "date";
    case VPrim::kDateTime:
      return "dateTime";
    case VPrim::kInstant:
      return "instant";
    case VPrim::kTime:
      return "time";
    case VPrim::kXhtml:
      return "xhtml";
    case VPrim::kNone:
      break;
  }
  return "?";
}

// ---- Tables ----

const VKey* FindKey(const VType& t, std::string_view key) {
  const VKey* first = kVKeys + t.first_key;
  const VKey* last = first + t.key_count;
  const VKey* it = std::lower_bound(first, last, key, [](const VKey& k, std::string_view s) {
    return internal::KeyLess(k.key, s);
  });
  return it != last && it->key == key ? it : nullptr;
}

// The concrete resource type `name`, or -1.
int FindResourceType(std::string_view name) {
  const VType* first = kVTypes;
  const VType* last = kVTypes + kVTypeCount;
  const VType* it = std::lower_bound(first, last, name,
                                     [](const VType& t, std::string_view s) { return t.name < s; });
  if (it == last || it->name != name || it->kind != VKind::kResource) return -1;
  return static_cast<int>(it - first);
}

// The resource type of a relative literal reference `Type/id` or `Type/id/_history/vid` (an R4
// type and an id by the id regex), else empty.
std::string_view RelativeReferenceType(std::string_view ref) {
  size_t slash = ref.find('/');
  if (slash == std::string_view::npos) return {};
  std::string_view type = ref.substr(0, slash);
  std::string_view rest = ref.substr(slash + 1);
  size_t h = rest.find('/');
  if (h != std::string_view::npos) {
    std::string_view history = rest.substr(h + 1);
    if (!history.starts_with("_history/") || !IsId(history.substr(9))) return {};
    rest = rest.substr(0, h);
  }
  if (!IsId(rest) || FindResourceType(type) < 0) return {};
  return type;
}

bool InBinding(int binding, std::string_view code, const std::string_view* system) {
  const VCode* first = kVCodes + kVBindings[binding].first_code;
  const VCode* last = first + kVBindings[binding].code_count;
  const VCode* it = std::lower_bound(first, last, code,
                                     [](const VCode& c, std::string_view s) { return c.code < s; });
  for (; it != last && it->code == code; ++it) {
    if (system == nullptr || it->system == *system) return true;
  }
  return false;
}

// ---- The walk ----

struct Frame {
  std::string_view name;
  int index;  // -1: not repeating
};

class Walker {
 public:
  Walker(const ValidationOptions& o, std::vector<ValidationIssue>* out)
      : o_(o), out_(out), frames_(std::max(o.max_depth, 0) + 8) {}

  void Top(const Value& v) {
    if (!v.IsObject()) {
      Add(Severity::kError, "structure", "a resource must be a JSON object", "");
      return;
    }
    int type = ResourceTypeOf(v, /*top=*/true);
    if (type < 0) return;
    Push(kVTypes[type].name, -1);
    Object(v, type, 1);
    --depth_frames_;
  }

 private:
  void Push(std::string_view name, int index) {
    if (depth_frames_ < frames_.size()) frames_[depth_frames_] = {name, index};
    ++depth_frames_;
  }

  std::string Path(std::string_view last = {}) const {
    std::string s;
    for (size_t i = 0; i < std::min(depth_frames_, frames_.size()); ++i) {
      const Frame& f = frames_[i];
      if (!s.empty()) s += '.';
      s.append(f.name);
      if (f.index >= 0) base::StrAppend(&s, "[", f.index, "]");
    }
    if (!last.empty()) {
      if (!s.empty()) s += '.';
      s.append(last);
    }
    return s;
  }

  void Add(Severity sev, const char* code, std::string message, std::string_view last = {}) {
    if (stopped_) return;
    if (out_->size() >= o_.max_issues) {
      stopped_ = true;
      out_->push_back({Severity::kError, "too-costly",
                       base::StrCat("validation stopped after ", o_.max_issues, " issues"), ""});
      return;
    }
    out_->push_back({sev, code, std::move(message), Path(last)});
  }

  // The type named by v's resourceType (-1 with an issue when missing or unknown).
  int ResourceTypeOf(const Value& v, bool top) {
    auto it = v.FindMember("resourceType");
    if (it == v.MemberEnd() || !IsJsonString(it->value)) {
      Add(Severity::kError, "structure", "resourceType is missing or not a string",
          top ? "Resource.resourceType" : "resourceType");
      return -1;
    }
    int type = FindResourceType(Str(it->value));
    if (type < 0) {
      Add(Severity::kError, "structure", "resourceType is not an R4 resource type",
          top ? "Resource.resourceType" : "resourceType");
    }
    return type;
  }

  // A JSON object of type `type` (complex, backbone, resource, or a primitive's `_name` object).
  void Object(const Value& obj, int type, int depth) {
    const VType& t = kVTypes[type];
    if (depth > o_.max_depth) {
      Add(Severity::kError, "too-costly",
          base::StrCat("nested deeper than ", o_.max_depth, " levels; not validated"));
      return;
    }
    // ele-1: a value or children other than id (a primitive's `_name` object goes with a value).
    if (obj.MemberCount() == 0 ||
        (obj.MemberCount() == 1 && t.kind != VKind::kResource && t.kind != VKind::kPrimitive &&
         Str(obj.MemberBegin()->name) == "id")) {
      Add(Severity::kError, "structure", "an element must have a value or children (ele-1)");
      return;
    }
    uint16_t counts[kMaxElements];
    bool extended[kMaxElements];
    int n = std::min<int>(t.element_count, kMaxElements);
    std::memset(counts, 0, sizeof(counts[0]) * n);
    std::memset(extended, 0, sizeof(extended[0]) * n);
    const bool resource = t.kind == VKind::kResource;
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd() && !stopped_; ++m) {
      std::string_view key = Str(m->name);
      if (const VKey* k = FindKey(t, key)) {
        const VElement& e = kVElements[t.first_element + k->element];
        if (e.choice && counts[k->element] > 0) {
          Add(Severity::kError, "structure",
              base::StrCat("only one type of the choice element ", e.name, "[x] may be present"),
              key);
        }
        counts[k->element] += Member(obj, m->value, e, k->type, key, depth);
        continue;
      }
      if (key.size() > 1 && key[0] == '_') {
        std::string_view base_key = key.substr(1);
        const VKey* k = FindKey(t, base_key);
        if (k != nullptr && kVTypes[k->type].kind == VKind::kPrimitive &&
            kVElements[t.first_element + k->element].underscore) {
          const VElement& e = kVElements[t.first_element + k->element];
          extended[k->element] = true;
          PrimitiveExtras(obj, m->value, e, k->type, base_key, depth);
          continue;
        }
      }
      if (resource && key == "resourceType") continue;  // checked by the caller
      Add(Severity::kError, "structure",
          base::StrCat("unknown element '", key, "' in type ", t.name), key);
    }
    for (int i = 0; i < n && !stopped_; ++i) {
      const VElement& e = kVElements[t.first_element + i];
      if (e.min > 0 && counts[i] < e.min && !extended[i]) {
        Add(Severity::kError, "required",
            base::StrCat("the required element ", e.name, e.choice ? "[x]" : "",
                         " is missing (min ", static_cast<int>(e.min), ")"),
            e.choice ? base::StrCat(e.name, "[x]") : std::string(e.name));
      }
    }
  }

  // One member; returns how many values it holds.
  uint16_t Member(const Value& parent, const Value& v, const VElement& e, int type,
                  std::string_view key, int depth) {
    if (e.many) {
      if (!v.IsArray()) {
        Add(Severity::kError, "structure",
            base::StrCat(e.name, " repeats (max *): its value must be a JSON array"), key);
        return 1;
      }
      if (v.Empty()) {
        Add(Severity::kError, "structure", "arrays must not be empty", key);
        return 0;
      }
      for (rapidjson::SizeType i = 0; i < v.Size() && !stopped_; ++i) {
        Push(key, static_cast<int>(i));
        if (v[i].IsNull()) {
          NullItem(parent, type, key, i);
        } else {
          Item(v[i], e, type, depth);
        }
        --depth_frames_;
      }
      return static_cast<uint16_t>(std::min<rapidjson::SizeType>(v.Size(), 0xFFFF));
    }
    Push(key, -1);
    if (v.IsArray()) {
      Add(Severity::kError, "structure",
          base::StrCat(e.name, " does not repeat (max 1): its value must not be an array"));
    } else if (v.IsNull()) {
      Add(Severity::kError, "structure", "null is not a value");
    } else {
      Item(v, e, type, depth);
    }
    --depth_frames_;
    return 1;
  }

  // A null in an array: only a primitive whose `_key` array has an object at that index.
  void NullItem(const Value& parent, int type, std::string_view key, rapidjson::SizeType i) {
    if (kVTypes[type].kind == VKind::kPrimitive) {
      std::string ext = base::StrCat("_", key);
      auto it = parent.FindMember(rapidjson::StringRef(ext.data(), ext.size()));
      if (it != parent.MemberEnd() && it->value.IsArray() && i < it->value.Size() &&
          it->value[i].IsObject()) {
        return;
      }
    }
    Add(Severity::kError, "structure",
        "null is only allowed in an array of primitives, beside an extension in the _ array");
  }

  void Item(const Value& v, const VElement& e, int type, int depth) {
    const VType& t = kVTypes[type];
    switch (t.kind) {
      case VKind::kPrimitive:
        Primitive(v, t.prim);
        if (e.binding >= 0 && t.prim == VPrim::kCode && IsJsonString(v) &&
            !InBinding(e.binding, Str(v), nullptr)) {
          Add(Severity::kError, "code-invalid",
              base::StrCat("the code is not in the required ValueSet ", kVBindings[e.binding].url));
        }
        return;
      case VKind::kAnyResource: {
        if (!v.IsObject()) {
          Add(Severity::kError, "structure", "a resource must be a JSON object");
          return;
        }
        int rt = ResourceTypeOf(v, /*top=*/false);
        if (rt >= 0) Object(v, rt, depth + 1);
        if (e.name == "contained") ContainedInvariants(v);
        return;
      }
      default:
        if (!v.IsObject()) {
          Add(Severity::kError, "structure",
              base::StrCat("a ", t.kind == VKind::kBackbone ? "backbone element" : t.name,
                           " must be a JSON object"));
          return;
        }
        Object(v, type, depth + 1);
        if (e.binding >= 0) CodingBinding(v, e, t);
        if (e.target_count > 0 && type == internal::kVReferenceType) ReferenceTarget(v, e);
        return;
    }
  }

  // The cheap invariants of DomainResource.contained: dom-2 (no nested contained) and dom-4 (no
  // meta.versionId or meta.lastUpdated).
  void ContainedInvariants(const Value& v) {
    if (v.HasMember("contained")) {
      Add(Severity::kError, "invariant", "dom-2: a contained resource must not contain resources",
          "contained");
    }
    auto meta = v.FindMember("meta");
    if (meta != v.MemberEnd() && meta->value.IsObject() &&
        (meta->value.HasMember("versionId") || meta->value.HasMember("lastUpdated"))) {
      Add(Severity::kError, "invariant",
          "dom-4: a contained resource must not have meta.versionId or meta.lastUpdated", "meta");
    }
  }

  // Reference(Patient | Group): the type a relative literal reference names (`Patient/1`,
  // `Patient/1/_history/2`) and Reference.type must be among the element's targets. Absolute,
  // urn: and contained (`#x`) references are not checked here.
  void ReferenceTarget(const Value& v, const VElement& e) {
    auto check = [&](std::string_view type_name, std::string_view member) {
      std::string allowed;
      for (int k = 0; k < e.target_count; ++k) {
        std::string_view target = kVTypes[internal::kVTargets[e.first_target + k]].name;
        if (target == type_name) return;
        base::StrAppend(&allowed, k > 0 ? " | " : "", target);
      }
      Add(Severity::kError, "structure",
          base::StrCat("a reference to a ", type_name, " is not allowed here: ", e.name,
                       " is Reference(", allowed, ")"),
          member);
    };
    auto ref = v.FindMember("reference");
    if (ref != v.MemberEnd() && IsJsonString(ref->value)) {
      std::string_view type_name = RelativeReferenceType(Str(ref->value));
      if (!type_name.empty()) check(type_name, "reference");
    }
    auto type = v.FindMember("type");
    if (type != v.MemberEnd() && IsJsonString(type->value) &&
        FindResourceType(Str(type->value)) >= 0) {
      check(Str(type->value), "type");
    }
  }

  // REQUIRED binding on a Coding or CodeableConcept (terminologies.html: a CodeableConcept
  // needs at least one coding from the ValueSet).
  void CodingBinding(const Value& v, const VElement& e, const VType& t) {
    auto matches = [&](const Value& coding) {
      if (!coding.IsObject()) return false;
      auto c = coding.FindMember("code");
      auto s = coding.FindMember("system");
      if (c == coding.MemberEnd() || s == coding.MemberEnd() || !IsJsonString(c->value) ||
          !IsJsonString(s->value)) {
        return false;
      }
      std::string_view system = Str(s->value);
      return InBinding(e.binding, Str(c->value), &system);
    };
    bool ok = false;
    if (t.name == "Coding") {
      ok = matches(v);
    } else {
      auto codings = v.FindMember("coding");
      if (codings != v.MemberEnd() && codings->value.IsArray()) {
        for (const Value& c : codings->value.GetArray()) ok = ok || matches(c);
      }
    }
    if (!ok) {
      Add(Severity::kError, "code-invalid",
          base::StrCat(t.name == "Coding" ? "the coding is" : "no coding is",
                       " from the required ValueSet ", kVBindings[e.binding].url,
                       " (system and code)"));
    }
  }

  void Primitive(const Value& v, VPrim p) {
    const char* expected = nullptr;
    switch (p) {
      case VPrim::kBoolean:
        if (!v.IsBool()) expected = "a JSON boolean";
        break;
      case VPrim::kInteger:
      case VPrim::kPositiveInt:
      case VPrim::kUnsignedInt:
      case VPrim::kDecimal:
        if (!v.IsNumber() && !IsMarkedNumber(v)) expected = "a JSON number";
        break;
      default:
        if (!IsJsonString(v)) expected = "a JSON string";
    }
    if (expected != nullptr) {
      Add(Severity::kError, "structure", base::StrCat("a ", PrimName(p), " must be ", expected));
      return;
    }
    bool ok = true;
    switch (p) {
      case VPrim::kBoolean:
      case VPrim::kDecimal:  // any JSON number matches the decimal regex
        return;
      case VPrim::kInteger:
      case VPrim::kPositiveInt:
      case VPrim::kUnsignedInt: {
        int64_t n = 0;
        if (IsMarkedNumber(v)) {
          ok = ParseInteger(Str(v).substr(1), &n);
        } else if (v.IsInt64()) {
          n = v.GetInt64();
          ok = n >= INT32_MIN && n <= INT32_MAX;
        } else {
          ok = false;  // a fraction, or beyond 64 bits
        }
        if (ok && p == VPrim::kPositiveInt) ok = n >= 1;
        if (ok && p == VPrim::kUnsignedInt) ok = n >= 0;
        break;
      }
      case VPrim::kString:
      case VPrim::kMarkdown:
      case VPrim::kXhtml: {
        Verdict verdict = CheckString(Str(v));
        if (verdict.message != nullptr) {
          Add(verdict.severity, "value", base::StrCat("a ", PrimName(p), " ", verdict.message));
        }
        return;
      }
      case VPrim::kCode:
        ok = IsCode(Str(v));
        break;
      case VPrim::kId:
        ok = IsId(Str(v));
        break;
      case VPrim::kUri:
      case VPrim::kUrl:
      case VPrim::kCanonical:
        ok = IsUri(Str(v));
        break;
      case VPrim::kOid:
        ok = IsOid(Str(v));
        break;
      case VPrim::kUuid:
        ok = IsUuid(Str(v));
        break;
      case VPrim::kBase64Binary:
        ok = IsBase64(Str(v));
        break;
      case VPrim::kDate:
        ok = IsDate(Str(v));
        break;
      case VPrim::kDateTime:
        ok = IsDateTime(Str(v), false);
        break;
      case VPrim::kInstant:
        ok = IsDateTime(Str(v), true);
        break;
      case VPrim::kTime:
        ok = IsTime(Str(v));
        break;
      case VPrim::kNone:
        return;
    }
    if (!ok) Add(Severity::kError, "value", base::StrCat("not a valid ", PrimName(p)));
  }

  // `_key`: the id and extensions of primitive `key` (an object, or an array beside key's array).
  void PrimitiveExtras(const Value& parent, const Value& v, const VElement& e, int type,
                       std::string_view key, int depth) {
    if (!e.many) {
      Push(key, -1);
      if (!v.IsObject()) {
        Add(Severity::kError, "structure",
            base::StrCat("_", key, " must be a JSON object (id and extension of ", key, ")"));
      } else {
        Object(v, type, depth + 1);
      }
      --depth_frames_;
      return;
    }
    if (!v.IsArray() || v.Empty()) {
      Add(Severity::kError, "structure",
          base::StrCat("_", key, " must be a non-empty JSON array, as ", key, " repeats"),
          base::StrCat("_", key));
      return;
    }
    auto values = parent.FindMember(rapidjson::StringRef(key.data(), key.size()));
    const Value* vals =
        values != parent.MemberEnd() && values->value.IsArray() ? &values->value : nullptr;
    if (vals != nullptr && vals->Size() != v.Size()) {
      Add(Severity::kError, "structure",
          base::StrCat("_", key, " must have as many items as ", key), base::StrCat("_", key));
    }
    for (rapidjson::SizeType i = 0; i < v.Size() && !stopped_; ++i) {
      Push(key, static_cast<int>(i));
      const Value& item = v[i];
      if (item.IsObject()) {
        Object(item, type, depth + 1);
      } else if (!item.IsNull()) {
        Add(Severity::kError, "structure",
            base::StrCat("items of _", key, " must be JSON objects or null"));
      } else if (vals == nullptr || i >= vals->Size()) {
        Add(Severity::kError, "structure",
            base::StrCat("a null in _", key, " needs a value at the same index of ", key));
      }
      --depth_frames_;
    }
  }

  const ValidationOptions& o_;
  std::vector<ValidationIssue>* out_;
  // The path to the value being checked: frames_[0, depth_frames_). Objects deeper than
  // max_depth are not entered, so there are at most max_depth + 2 frames (checked anyway).
  std::vector<Frame> frames_;
  size_t depth_frames_ = 0;
  bool stopped_ = false;
};

// JSON numbers kept as their text, marked (as the FHIR store parses).
struct MarkNumbers {
  rapidjson::Document& d;
  std::string tmp;
  bool Null() { return d.Null(); }
  bool Bool(bool b) { return d.Bool(b); }
  bool Int(int i) { return d.Int(i); }
  bool Uint(unsigned u) { return d.Uint(u); }
  bool Int64(int64_t i) { return d.Int64(i); }
  bool Uint64(uint64_t u) { return d.Uint64(u); }
  bool Double(double x) { return d.Double(x); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    tmp.assign(1, kNumberMark);
    tmp.append(s, n);
    return d.String(tmp.data(), static_cast<rapidjson::SizeType>(tmp.size()), true);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return d.String(s, n, copy); }
  bool StartObject() { return d.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return d.Key(s, n, copy); }
  bool EndObject(rapidjson::SizeType n) { return d.EndObject(n); }
  bool StartArray() { return d.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return d.EndArray(n); }
};

}  // namespace

std::vector<ValidationIssue> ValidateResource(const rapidjson::Value& resource,
                                              const ValidationOptions& options) {
  std::vector<ValidationIssue> issues;
  Walker(options, &issues).Top(resource);
  return issues;
}

bool ParseFhirJsonKeepingNumbers(std::string_view json, rapidjson::Document& doc,
                                 std::string* error) {
  rapidjson::MemoryStream ms(json.data(), json.size());
  rapidjson::Reader reader;
  constexpr unsigned kFlags = rapidjson::kParseNumbersAsStringsFlag |
                              rapidjson::kParseValidateEncodingFlag |
                              rapidjson::kParseIterativeFlag;
  auto generate = [&](rapidjson::Document& d) {
    MarkNumbers h{d, {}};
    return !reader.Parse<kFlags>(ms, h).IsError();
  };
  doc.Populate(generate);
  if (!reader.HasParseError()) return true;
  *error = base::StrCat("not valid JSON (offset ", reader.GetErrorOffset(), ": ",
                        rapidjson::GetParseError_En(reader.GetParseErrorCode()), ")");
  return false;
}

std::vector<ValidationIssue> ValidateResourceJson(std::string_view json,
                                                  const ValidationOptions& options) {
  rapidjson::Document doc;
  std::string error;
  if (!ParseFhirJsonKeepingNumbers(json, doc, &error)) {
    return {{Severity::kError, "structure", std::move(error), ""}};
  }
  return ValidateResource(doc, options);
}

bool HasErrors(const std::vector<ValidationIssue>& issues) {
  return std::any_of(issues.begin(), issues.end(),
                     [](const ValidationIssue& i) { return i.severity == Severity::kError; });
}

std::string ValidationOutcomeJson(const std::vector<ValidationIssue>& issues) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  auto str = [&](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  str("resourceType");
  str("OperationOutcome");
  str("issue");
  w.StartArray();
  if (issues.empty()) {
    w.StartObject();
    str("severity");
    str("information");
    str("code");
    str("informational");
    str("diagnostics");
    str("the resource is valid");
    w.EndObject();
  }
  for (const ValidationIssue& i : issues) {
    w.StartObject();
    str("severity");
    str(i.severity == Severity::kError ? "error" : "warning");
    str("code");
    str(i.code);
    str("diagnostics");
    str(i.message);
    if (!i.expression.empty()) {
      str("expression");
      w.StartArray();
      str(i.expression);
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(b.GetString(), b.GetSize());
}

bool IsValidatorResourceType(std::string_view name) { return FindResourceType(name) >= 0; }

}  // namespace isthmus::fhir
