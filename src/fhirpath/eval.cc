// Expression evaluation: navigation over the JSON document with the FHIR model, operators,
// equality, comparison and the public API.
#include <cstring>

#include "base/str.h"
#include "fhirpath/eval_internal.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/writer.h"

namespace isthmus::fhirpath {
namespace {

const TypeInfo* ResourceTypeOf(const rapidjson::Value& json) {
  if (!json.IsObject()) return nullptr;
  auto it = json.FindMember("resourceType");
  if (it == json.MemberEnd() || !it->value.IsString()) return nullptr;
  return Model::Get().Find(std::string_view(it->value.GetString(), it->value.GetStringLength()));
}

const TypeInfo* PrimitiveRoot(const TypeInfo* t) {
  // string-derived types (code, id, markdown, uri...) behave as their root primitive.
  while (t->base != nullptr && t->base->kind == TypeInfo::kPrimitive) t = t->base;
  return t;
}

Value Inferred(const rapidjson::Value* j, const rapidjson::Value* ext) {
  Value v;
  v.json = j;
  v.ext = ext;
  if (j == nullptr || j->IsNull()) {
    v.kind = Kind::kNoValue;
  } else if (j->IsString()) {
    v.kind = Kind::kString;
    v.str = std::string_view(j->GetString(), j->GetStringLength());
  } else if (j->IsBool()) {
    v.kind = Kind::kBoolean;
    v.b = j->GetBool();
  } else if (j->IsInt64()) {
    v.kind = Kind::kInteger;
    v.i = j->GetInt64();
  } else if (j->IsNumber()) {
    v.kind = Kind::kDecimal;
    v.d = Decimal::FromDouble(j->GetDouble());
  } else {
    v.kind = Kind::kObject;
    v.type = ResourceTypeOf(*j);
  }
  return v;
}

}  // namespace

Value MakeElement(const rapidjson::Value* j, const rapidjson::Value* ext, const TypeInfo* type) {
  if (type == nullptr) return Inferred(j, ext);
  Value v;
  v.json = j;
  v.ext = ext;
  v.type = type;
  if (type->kind != TypeInfo::kPrimitive) {
    if (j == nullptr || !j->IsObject()) return Inferred(j, ext);
    v.kind = Kind::kObject;
    if (type->kind == TypeInfo::kResource) {
      if (const TypeInfo* actual = ResourceTypeOf(*j)) v.type = actual;
    }
    return v;
  }
  if (j == nullptr || j->IsNull()) {
    v.kind = Kind::kNoValue;
    return v;
  }
  const std::string& root = PrimitiveRoot(type)->name;
  if (j->IsString()) {
    std::string_view s(j->GetString(), j->GetStringLength());
    if (root == "date" || root == "dateTime" || root == "instant") {
      auto t = root == "date" ? ParseDate(s) : ParseDateTime(s);
      if (!t && root == "date") {
        t = ParseDateTime(s);
        if (t) v.kind = Kind::kDateTime;
      } else {
        v.kind = root == "date" ? Kind::kDate : Kind::kDateTime;
      }
      if (t) {
        v.t = *t;
        return v;
      }
    } else if (root == "time") {
      if (auto t = ParseTime(s)) {
        v.kind = Kind::kTime;
        v.t = *t;
        return v;
      }
    }
    v.kind = Kind::kString;
    v.str = s;
    return v;
  }
  if (j->IsBool()) {
    v.kind = Kind::kBoolean;
    v.b = j->GetBool();
    return v;
  }
  if (j->IsNumber()) {
    if (root == "decimal") {
      v.kind = Kind::kDecimal;
      v.d = j->IsInt64() ? Decimal::FromInt(j->GetInt64()) : Decimal::FromDouble(j->GetDouble());
      return v;
    }
    if (j->IsInt64()) {
      v.kind = Kind::kInteger;
      v.i = j->GetInt64();
      return v;
    }
  }
  Value inferred = Inferred(j, ext);
  inferred.type = type;
  return inferred;
}

bool IsPrimitive(const Value& v) {
  return v.kind != Kind::kObject && v.kind != Kind::kTypeInfo;
}

Value ToSystemValue(const Value& v) {
  if (v.kind != Kind::kObject || v.type == nullptr || v.json == nullptr) return v;
  static const TypeInfo* quantity = Model::Get().Find("Quantity");
  if (!v.type->IsA(quantity)) return v;
  auto value = v.json->FindMember("value");
  if (value == v.json->MemberEnd() || !value->value.IsNumber()) return v;
  Decimal d = value->value.IsInt64() ? Decimal::FromInt(value->value.GetInt64())
                                     : Decimal::FromDouble(value->value.GetDouble());
  std::string unit;
  auto system = v.json->FindMember("system");
  auto code = v.json->FindMember("code");
  auto u = v.json->FindMember("unit");
  if (system != v.json->MemberEnd() && system->value.IsString() &&
      std::string_view(system->value.GetString()) == "http://unitsofmeasure.org" &&
      code != v.json->MemberEnd() && code->value.IsString()) {
    unit = code->value.GetString();
  } else if (u != v.json->MemberEnd() && u->value.IsString()) {
    unit = u->value.GetString();
  } else if (code != v.json->MemberEnd() && code->value.IsString()) {
    unit = code->value.GetString();
  } else {
    unit = "1";
  }
  return Value::Quantity(d, unit);
}

// ---- equality and ordering ----

namespace {

bool JsonEqual(const rapidjson::Value& a, const rapidjson::Value& b) {
  if (a.GetType() != b.GetType()) {
    if (a.IsNumber() && b.IsNumber()) return a.GetDouble() == b.GetDouble();
    return false;
  }
  if (a.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (auto it = a.MemberBegin(); it != a.MemberEnd(); ++it) {
      auto other = b.FindMember(it->name);
      if (other == b.MemberEnd() || !JsonEqual(it->value, other->value)) return false;
    }
    return true;
  }
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
      if (!JsonEqual(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

bool IsTemporal(Kind k) { return k == Kind::kDate || k == Kind::kDateTime || k == Kind::kTime; }
bool IsNumber(Kind k) { return k == Kind::kInteger || k == Kind::kDecimal; }
Decimal AsDecimal(const Value& v) { return v.kind == Kind::kInteger ? Decimal::FromInt(v.i) : v.d; }

Kind TemporalCompareKind(Kind a, Kind b) {
  if (a == b) return a;
  return Kind::kDateTime;  // date vs dateTime
}

std::string NormalizeSpace(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return out;
}

std::optional<int> CompareQuantities(const Value& a, const Value& b) {
  if (a.str == b.str) return Decimal::Compare(a.d, b.d);
  auto ca = CanonicalQuantity(a.d, a.str);
  auto cb = CanonicalQuantity(b.d, b.str);
  if (!ca || !cb || ca->unit != cb->unit) return std::nullopt;
  return Decimal::Compare(ca->value, cb->value);
}

}  // namespace

std::optional<bool> Equal(const Value& x, const Value& y) {
  Value a = ToSystemValue(x), b = ToSystemValue(y);
  if (a.kind == Kind::kNoValue || b.kind == Kind::kNoValue) return std::nullopt;
  if (IsNumber(a.kind) && IsNumber(b.kind)) {
    if (a.kind == Kind::kInteger && b.kind == Kind::kInteger) return a.i == b.i;
    return Decimal::Compare(AsDecimal(a), AsDecimal(b)) == 0;
  }
  if (IsTemporal(a.kind) && IsTemporal(b.kind)) {
    if ((a.kind == Kind::kTime) != (b.kind == Kind::kTime)) return false;
    auto c = CompareTemporal(TemporalCompareKind(a.kind, b.kind), a.t, b.t);
    if (!c) return std::nullopt;
    return *c == 0;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kBoolean: return a.b == b.b;
    case Kind::kString: return a.str == b.str;
    case Kind::kQuantity: {
      auto c = CompareQuantities(a, b);
      if (!c) return std::nullopt;
      return *c == 0;
    }
    case Kind::kObject:
      if (a.json == nullptr || b.json == nullptr) return a.json == b.json && a.type == b.type;
      return a.json == b.json || JsonEqual(*a.json, *b.json);
    case Kind::kTypeInfo: return a.str == b.str && a.fhir_namespace == b.fhir_namespace;
    default: return false;
  }
}

bool Equivalent(const Value& x, const Value& y) {
  Value a = ToSystemValue(x), b = ToSystemValue(y);
  if (a.kind == Kind::kNoValue || b.kind == Kind::kNoValue) {
    return a.kind == b.kind;
  }
  if (IsNumber(a.kind) && IsNumber(b.kind)) {
    Decimal da = AsDecimal(a).Normalized(), db = AsDecimal(b).Normalized();
    int scale = std::min(std::max(da.scale, 0), std::max(db.scale, 0));
    return Decimal::Compare(da.RoundTo(scale), db.RoundTo(scale)) == 0;
  }
  if (a.kind == Kind::kString && b.kind == Kind::kString) {
    return NormalizeSpace(a.str) == NormalizeSpace(b.str);
  }
  if (IsTemporal(a.kind) && IsTemporal(b.kind)) {
    if ((a.kind == Kind::kTime) != (b.kind == Kind::kTime)) return false;
    auto c = CompareTemporal(TemporalCompareKind(a.kind, b.kind), a.t, b.t);
    return c && *c == 0;
  }
  if (a.kind == Kind::kQuantity && b.kind == Kind::kQuantity) {
    auto ca = CanonicalQuantity(a.d, a.str), cb = CanonicalQuantity(b.d, b.str);
    if (a.str == b.str || !ca || !cb) return a.str == b.str && Equivalent(Value::Dec(a.d), Value::Dec(b.d));
    return ca->unit == cb->unit && Equivalent(Value::Dec(ca->value), Value::Dec(cb->value));
  }
  if (a.kind == Kind::kObject && b.kind == Kind::kObject && a.json && b.json) {
    // Complex equivalence: every child equivalent; approximated by JSON equality.
    return JsonEqual(*a.json, *b.json);
  }
  auto e = Equal(a, b);
  return e.value_or(false);
}

std::optional<bool> EqualCollections(const Collection& a, const Collection& b) {
  if (a.empty() || b.empty()) return std::nullopt;
  if (a.size() != b.size()) return false;
  bool unknown = false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto e = Equal(a[i], b[i]);
    if (!e) {
      unknown = true;
    } else if (!*e) {
      return false;
    }
  }
  if (unknown) return std::nullopt;
  return true;
}

bool EquivalentCollections(const Collection& a, const Collection& b) {
  if (a.size() != b.size()) return false;
  std::vector<bool> used(b.size(), false);
  for (const Value& x : a) {
    bool found = false;
    for (size_t j = 0; j < b.size(); ++j) {
      if (!used[j] && Equivalent(x, b[j])) {
        used[j] = found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

std::optional<int> CompareValues(const Value& x, const Value& y, bool* error) {
  Value a = ToSystemValue(x), b = ToSystemValue(y);
  if (a.kind == Kind::kNoValue || b.kind == Kind::kNoValue) return std::nullopt;
  if (IsNumber(a.kind) && IsNumber(b.kind)) return Decimal::Compare(AsDecimal(a), AsDecimal(b));
  if (a.kind == Kind::kString && b.kind == Kind::kString) {
    int c = a.str.compare(b.str);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (IsTemporal(a.kind) && IsTemporal(b.kind) &&
      (a.kind == Kind::kTime) == (b.kind == Kind::kTime)) {
    return CompareTemporal(TemporalCompareKind(a.kind, b.kind), a.t, b.t);
  }
  if (a.kind == Kind::kQuantity && b.kind == Kind::kQuantity) {
    auto c = CompareQuantities(a, b);
    if (!c) *error = true;
    return c;
  }
  *error = true;
  return std::nullopt;
}

std::optional<bool> ToBool(const Collection& c, bool* error) {
  if (c.empty()) return std::nullopt;
  if (c.size() > 1) {
    *error = true;
    return std::nullopt;
  }
  if (c[0].kind == Kind::kBoolean) return c[0].b;
  if (c[0].kind == Kind::kNoValue) return std::nullopt;
  return true;
}

bool IsType(const Value& v, const TypeSpec& spec, bool exact_primitive) {
  if (spec.type == nullptr) return false;
  if (spec.system) {
    if (v.type != nullptr && v.kind != Kind::kString) {
      // FHIR primitives are not System values, except through getValue().
      return false;
    }
    if (v.type != nullptr) return false;
    const std::string& n = spec.type->name;
    switch (v.kind) {
      case Kind::kBoolean: return n == "Boolean";
      case Kind::kInteger: return n == "Integer";
      case Kind::kDecimal: return n == "Decimal";
      case Kind::kString: return n == "String";
      case Kind::kDate: return n == "Date";
      case Kind::kDateTime: return n == "DateTime";
      case Kind::kTime: return n == "Time";
      case Kind::kQuantity: return n == "Quantity";
      default: return false;
    }
  }
  if (v.type == nullptr) return false;
  if (exact_primitive && v.type->kind == TypeInfo::kPrimitive) return v.type == spec.type;
  return v.type->IsA(spec.type);
}

// ---- evaluator ----

Evaluator::Evaluator(const Environment& env, const Collection& context)
    : env_(env), context_(context) {
  if (env.resource != nullptr) {
    resource_ = FhirValue(*env.resource);
  } else if (!context.empty()) {
    resource_ = context[0];
  }
  if (env.root_resource != nullptr) {
    root_resource_ = FhirValue(*env.root_resource);
  } else {
    root_resource_ = resource_;
  }
}

bool Evaluator::FailMsg(std::string_view what) {
  if (error_.ok()) error_ = absl::InvalidArgumentError(std::string(what));
  return false;
}

bool Evaluator::Fail(const Node& n, std::string_view what) {
  return FailMsg(base::StrCat("evaluation error at column ", n.column + 1, ": ", what));
}

namespace {

// Appends the values of one JSON member (single or array) with their `_name` siblings.
void AppendMember(const rapidjson::Value* j, const rapidjson::Value* ext, const TypeInfo* type,
                  Collection& out) {
  if (j != nullptr && j->IsArray()) {
    const rapidjson::Value* ext_array = ext != nullptr && ext->IsArray() ? ext : nullptr;
    for (rapidjson::SizeType i = 0; i < j->Size(); ++i) {
      const rapidjson::Value* e =
          ext_array != nullptr && i < ext_array->Size() && !(*ext_array)[i].IsNull()
              ? &(*ext_array)[i]
              : nullptr;
      const rapidjson::Value& item = (*j)[i];
      if (item.IsNull() && e == nullptr) continue;
      out.push_back(MakeElement(&item, e, type));
    }
    return;
  }
  if (j == nullptr && ext != nullptr && ext->IsArray()) {
    for (rapidjson::SizeType i = 0; i < ext->Size(); ++i) {
      if (!(*ext)[i].IsNull()) out.push_back(MakeElement(nullptr, &(*ext)[i], type));
    }
    return;
  }
  if (j == nullptr && ext == nullptr) return;
  out.push_back(MakeElement(j, ext, type));
}

const rapidjson::Value* Find(const rapidjson::Value& obj, std::string_view name) {
  // A Value key: FindMember(const char*) would take the StringRef as a NUL-terminated string.
  const rapidjson::Value key(rapidjson::StringRef(name.data(), name.size()));
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

const rapidjson::Value* FindUnderscored(const rapidjson::Value& obj, std::string_view name) {
  char buf[128];
  if (name.size() + 1 >= sizeof buf) return nullptr;
  buf[0] = '_';
  std::memcpy(buf + 1, name.data(), name.size());
  return Find(obj, std::string_view(buf, name.size() + 1));
}

bool SuffixMatches(std::string_view suffix, const std::string& type_name) {
  if (suffix.size() != type_name.size() || suffix.empty()) return false;
  char c = type_name[0];
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return suffix[0] == c && suffix.substr(1) == std::string_view(type_name).substr(1);
}

}  // namespace

void Evaluator::Member(const Value& item, const Node& n, Collection& out, bool* known) {
  if (item.kind == Kind::kTypeInfo) {
    *known = true;
    if (n.name == "name") {
      // The name may live in the TypeInfo's own string (type() computes it): share it, or the
      // view dangles once the TypeInfo value is gone.
      Value v = Value::StringView(item.str);
      v.owned = item.owned;
      out.push_back(std::move(v));
    }
    if (n.name == "namespace") {
      out.push_back(Value::StringView(item.fhir_namespace ? "FHIR" : "System"));
    }
    return;
  }
  if (item.kind != Kind::kObject || item.json == nullptr || !item.json->IsObject()) {
    // System values have no children. A FHIR primitive's children are the elements of its
    // type (`id`, `extension`), held in its `_name` sibling (item.ext): an absent one gives
    // empty like any absent element; a name the type does not have is still unknown.
    if (item.type == nullptr || item.kind == Kind::kObject) {
      *known = true;
      return;
    }
    const ElementInfo* e = item.type->Element(n.name);
    if (e == nullptr) return;
    *known = true;
    if (item.ext != nullptr && item.ext->IsObject()) {
      AppendMember(Find(*item.ext, n.name), nullptr, e->types.empty() ? nullptr : e->types[0],
                   out);
    }
    return;
  }
  const rapidjson::Value& obj = *item.json;
  const std::string_view name = n.name;
  if (item.type != nullptr) {
    const ElementInfo* e = item.type->Element(name);
    if (e == nullptr) return;  // not an element of this type: valueQuantity, given1
    *known = true;
    if (!e->choice) {
      const TypeInfo* t = e->types.empty() ? nullptr : e->types[0];
      const rapidjson::Value* j = Find(obj, name);
      const rapidjson::Value* x =
          t != nullptr && t->kind == TypeInfo::kPrimitive ? FindUnderscored(obj, name) : nullptr;
      AppendMember(j, x, t, out);
      return;
    }
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (key.size() <= name.size() || key.substr(0, name.size()) != name) continue;
      std::string_view suffix = key.substr(name.size());
      for (const TypeInfo* t : e->types) {
        if (!SuffixMatches(suffix, t->name)) continue;
        const rapidjson::Value* x =
            t->kind == TypeInfo::kPrimitive ? FindUnderscored(obj, key) : nullptr;
        AppendMember(&it->value, x, t, out);
        break;
      }
    }
    // A primitive choice with only extensions: `_valueString`.
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (key.size() <= name.size() + 1 || key[0] != '_' || key.substr(1, name.size()) != name) {
        continue;
      }
      if (Find(obj, key.substr(1)) != nullptr) continue;
      std::string_view suffix = key.substr(1 + name.size());
      for (const TypeInfo* t : e->types) {
        if (SuffixMatches(suffix, t->name)) AppendMember(nullptr, &it->value, t, out);
      }
    }
    return;
  }
  // No model type: plain JSON.
  *known = true;
  AppendMember(Find(obj, name), FindUnderscored(obj, name), nullptr, out);
}

void Evaluator::Children(const Value& item, Collection& out) {
  if (item.kind != Kind::kObject || item.json == nullptr || !item.json->IsObject()) {
    // A FHIR primitive's children are its `id` and `extension` (its `_name` object).
    if (item.type == nullptr || item.kind == Kind::kObject || item.ext == nullptr ||
        !item.ext->IsObject()) {
      return;
    }
    for (auto it = item.ext->MemberBegin(); it != item.ext->MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      const ElementInfo* e = item.type->Element(key);
      if (e == nullptr) continue;
      AppendMember(&it->value, nullptr, e->types.empty() ? nullptr : e->types[0], out);
    }
    return;
  }
  for (auto it = item.json->MemberBegin(); it != item.json->MemberEnd(); ++it) {
    std::string_view key(it->name.GetString(), it->name.GetStringLength());
    if (key == "resourceType") continue;
    const rapidjson::Value* ext = nullptr;
    if (key[0] == '_') {
      if (Find(*item.json, key.substr(1)) != nullptr) continue;  // visited with its value
      ext = &it->value;
      key = key.substr(1);
    }
    const TypeInfo* type = nullptr;
    if (item.type != nullptr) {
      if (const ElementInfo* e = item.type->Element(key)) {
        if (!e->types.empty()) type = e->types[0];
      } else {
        // A choice element: valueQuantity -> value[x] of type Quantity.
        for (size_t cut = key.size() - 1; cut > 0; --cut) {
          if (key[cut] < 'A' || key[cut] > 'Z') continue;
          const ElementInfo* ce = item.type->Element(key.substr(0, cut));
          if (ce != nullptr && ce->choice) {
            for (const TypeInfo* t : ce->types) {
              if (SuffixMatches(key.substr(cut), t->name)) type = t;
            }
          }
          break;
        }
      }
    }
    if (ext != nullptr) {
      AppendMember(nullptr, ext, type, out);
      continue;
    }
    const rapidjson::Value* x = nullptr;
    if (type == nullptr || type->kind == TypeInfo::kPrimitive) {
      x = FindUnderscored(*item.json, key);
    }
    AppendMember(&it->value, x, type, out);
  }
}

namespace {

bool Singleton(Evaluator& ev, const Node& n, const Collection& c, const char* what) {
  if (c.size() > 1) {
    return ev.Fail(n, base::StrCat(what, " needs a single item, got ", c.size()));
  }
  return true;
}

std::optional<__int128> CheckedInt(__int128 v) {
  if (v > 2147483647LL || v < -2147483648LL) return std::nullopt;
  return v;
}

}  // namespace

bool Evaluator::Eval(const Node& n, const Collection& focus, Collection& out) {
  switch (n.op) {
    case Op::kEmpty:
      return true;
    case Op::kLiteral:
      out.push_back(n.literal);
      return true;
    case Op::kThis:
      if (frames_.empty()) {
        out.insert(out.end(), focus.begin(), focus.end());
      } else {
        out.push_back(*frames_.back().self);
      }
      return true;
    case Op::kIndex:
      if (frames_.empty()) return Fail(n, "$index outside a function");
      out.push_back(Value::Integer(frames_.back().index));
      return true;
    case Op::kTotal:
      if (frames_.empty() || frames_.back().total == nullptr) {
        return Fail(n, "$total outside aggregate()");
      }
      out.insert(out.end(), frames_.back().total->begin(), frames_.back().total->end());
      return true;
    case Op::kVariable: {
      const std::string& v = n.name;
      if (v == "context") {
        out.insert(out.end(), context_.begin(), context_.end());
      } else if (v == "resource") {
        if (resource_.json != nullptr) out.push_back(resource_);
      } else if (v == "rootResource") {
        if (root_resource_.json != nullptr) out.push_back(root_resource_);
      } else if (v == "ucum") {
        out.push_back(Value::StringView("http://unitsofmeasure.org"));
      } else if (v == "sct") {
        out.push_back(Value::StringView("http://snomed.info/sct"));
      } else if (v == "loinc") {
        out.push_back(Value::StringView("http://loinc.org"));
      } else if (v.substr(0, 3) == "vs-") {
        out.push_back(Value::String("http://hl7.org/fhir/ValueSet/" + v.substr(3)));
      } else if (v.substr(0, 4) == "ext-") {
        out.push_back(Value::String("http://hl7.org/fhir/StructureDefinition/" + v.substr(4)));
      } else {
        auto it = env_.variables.find(v);
        if (it == env_.variables.end()) return Fail(n, base::StrCat("unknown variable %", v));
        out.insert(out.end(), it->second.begin(), it->second.end());
      }
      return true;
    }
    case Op::kMember: {
      Collection local;
      const Collection* input = &focus;
      if (n.source != nullptr) {
        if (!Eval(*n.source, focus, local)) return false;
        input = &local;
      } else if (!frames_.empty()) {
        local.push_back(*frames_.back().self);
        input = &local;
      }
      if (n.source == nullptr && n.root_type != nullptr) {
        // `Patient.name`: a type name at the root selects the context if it is one.
        bool any = false;
        for (const Value& item : *input) {
          if (item.type != nullptr && item.type->IsA(n.root_type)) {
            out.push_back(item);
            any = true;
          }
        }
        if (!any && env_.strict && !input->empty()) {
          return Fail(n, base::StrCat("the context is not a ", n.name));
        }
        if (any || n.root_type->kind == TypeInfo::kResource) return true;
      }
      bool known = input->empty();
      for (const Value& item : *input) Member(item, n, out, &known);
      if (!known) {
        return Fail(n, base::StrCat("unknown element '", n.name, "' on type ",
                                    TypeName((*input)[0])));
      }
      return true;
    }
    case Op::kFunction: {
      Collection local;
      const Collection* input = &focus;
      if (n.source != nullptr) {
        if (!Eval(*n.source, focus, local)) return false;
        input = &local;
      } else if (!frames_.empty()) {
        local.push_back(*frames_.back().self);
        input = &local;
      }
      return Call(n, *input, focus, out);
    }
    case Op::kIndexer: {
      Collection base, index;
      if (!Eval(*n.args[0], focus, base) || !Eval(*n.args[1], focus, index)) return false;
      if (index.empty()) return true;
      if (index.size() != 1 || index[0].kind != Kind::kInteger) {
        return Fail(n, "an index must be a single integer");
      }
      if (index[0].i >= 0 && index[0].i < static_cast<int64_t>(base.size())) {
        out.push_back(base[index[0].i]);
      }
      return true;
    }
    case Op::kNegate: {
      Collection c;
      if (!Eval(*n.args[0], focus, c)) return false;
      if (c.empty()) return true;
      if (!Singleton(*this, n, c, "unary minus")) return false;
      Value v = ToSystemValue(c[0]);
      if (v.kind == Kind::kInteger) {
        out.push_back(Value::Integer(-v.i));
      } else if (v.kind == Kind::kDecimal) {
        out.push_back(Value::Dec(Decimal{-v.d.mantissa, v.d.scale}));
      } else if (v.kind == Kind::kQuantity) {
        out.push_back(Value::Quantity(Decimal{-v.d.mantissa, v.d.scale}, std::string(v.str)));
      } else {
        return Fail(n, "unary minus needs a number or a quantity");
      }
      return true;
    }
    case Op::kIs:
    case Op::kAs: {
      Collection c;
      if (!Eval(*n.args[0], focus, c)) return false;
      if (c.empty()) return true;
      if (!Singleton(*this, n, c, n.op == Op::kIs ? "'is'" : "'as'")) return false;
      bool match = IsType(c[0], n.type, n.op == Op::kAs);
      if (n.op == Op::kIs) {
        out.push_back(Value::Boolean(match));
      } else if (match) {
        out.push_back(c[0]);
      } else if (env_.strict) {
        return Fail(n, base::StrCat("value is not a ", n.type.name));
      }
      return true;
    }
    case Op::kBinary:
      break;
  }

  // Binary operators.
  const BinOp op = n.bin;
  Collection a, b;
  if (!Eval(*n.args[0], focus, a)) return false;
  // Short circuits of three-valued logic.
  if (op == BinOp::kAnd || op == BinOp::kOr || op == BinOp::kImplies || op == BinOp::kXor) {
    bool err = false;
    std::optional<bool> l = ToBool(a, &err);
    if (err) return Fail(n, "a logical operand has more than one item");
    if (op == BinOp::kAnd && l == false) {
      out.push_back(Value::Boolean(false));
      return true;
    }
    if (op == BinOp::kOr && l == true) {
      out.push_back(Value::Boolean(true));
      return true;
    }
    if (op == BinOp::kImplies && l == false) {
      out.push_back(Value::Boolean(true));
      return true;
    }
    if (!Eval(*n.args[1], focus, b)) return false;
    std::optional<bool> r = ToBool(b, &err);
    if (err) return Fail(n, "a logical operand has more than one item");
    std::optional<bool> res;
    switch (op) {
      case BinOp::kAnd:
        if (r == false) res = false;
        else if (l && r) res = true;
        break;
      case BinOp::kOr:
        if (r == true) res = true;
        else if (l && r) res = false;
        break;
      case BinOp::kXor:
        if (l && r) res = *l != *r;
        break;
      default:  // implies
        if (r == true) res = true;
        else if (l && r) res = !*l || *r;
        break;
    }
    if (res) out.push_back(Value::Boolean(*res));
    return true;
  }
  if (!Eval(*n.args[1], focus, b)) return false;
  switch (op) {
    case BinOp::kUnion: {
      size_t start = out.size();
      for (const Collection* c : {&a, &b}) {
        for (const Value& v : *c) {
          bool dup = false;
          for (size_t k = start; k < out.size() && !dup; ++k) dup = Equal(out[k], v) == true;
          if (!dup) out.push_back(v);
        }
      }
      return true;
    }
    case BinOp::kEq:
    case BinOp::kNe: {
      auto e = EqualCollections(a, b);
      if (e) out.push_back(Value::Boolean(op == BinOp::kEq ? *e : !*e));
      return true;
    }
    case BinOp::kEquiv:
    case BinOp::kNotEquiv: {
      bool e = EquivalentCollections(a, b);
      out.push_back(Value::Boolean(op == BinOp::kEquiv ? e : !e));
      return true;
    }
    case BinOp::kIn:
    case BinOp::kContains: {
      const Collection& item = op == BinOp::kIn ? a : b;
      const Collection& set = op == BinOp::kIn ? b : a;
      if (item.empty()) return true;
      if (!Singleton(*this, n, item, "'in'/'contains'")) return false;
      bool found = false;
      for (const Value& v : set) found = found || Equal(item[0], v) == true;
      out.push_back(Value::Boolean(found));
      return true;
    }
    case BinOp::kConcat: {
      if (a.size() > 1 || b.size() > 1) return Fail(n, "'&' needs single items");
      std::string s;
      if (!a.empty()) s += ValueToString(a[0]);
      if (!b.empty()) s += ValueToString(b[0]);
      out.push_back(Value::String(std::move(s)));
      return true;
    }
    default:
      break;
  }
  if (a.empty() || b.empty()) return true;
  if (a.size() > 1 || b.size() > 1) return Fail(n, "an operand has more than one item");
  Value x = ToSystemValue(a[0]), y = ToSystemValue(b[0]);
  if (x.kind == Kind::kNoValue || y.kind == Kind::kNoValue) return true;
  switch (op) {
    case BinOp::kLt:
    case BinOp::kGt:
    case BinOp::kLe:
    case BinOp::kGe: {
      bool err = false;
      auto c = CompareValues(x, y, &err);
      if (err) return Fail(n, "operands cannot be compared");
      if (!c) return true;
      bool r = op == BinOp::kLt ? *c < 0 : op == BinOp::kGt ? *c > 0 : op == BinOp::kLe ? *c <= 0
                                                                                          : *c >= 0;
      out.push_back(Value::Boolean(r));
      return true;
    }
    default:
      break;
  }
  // Arithmetic.
  if (op == BinOp::kAdd && x.kind == Kind::kString && y.kind == Kind::kString) {
    out.push_back(Value::String(base::StrCat(x.str, y.str)));
    return true;
  }
  if ((op == BinOp::kAdd || op == BinOp::kSub) && IsTemporal(x.kind) &&
      y.kind == Kind::kQuantity) {
    bool err = false;
    Value r = AddToTemporal(x, y, op == BinOp::kSub, &err);
    if (err) return Fail(n, "cannot add this quantity to a date/time");
    out.push_back(r);
    return true;
  }
  if (x.kind == Kind::kQuantity || y.kind == Kind::kQuantity) {
    if (x.kind == Kind::kQuantity && y.kind == Kind::kQuantity &&
        (op == BinOp::kAdd || op == BinOp::kSub)) {
      Decimal yv = y.d;
      if (x.str != y.str) {
        auto cx = CanonicalQuantity(x.d, x.str), cy = CanonicalQuantity(y.d, y.str);
        if (!cx || !cy || cx->unit != cy->unit) return true;
        auto unit = CanonicalQuantity(Decimal::FromInt(1), x.str);
        yv = Div(cy->value, unit->value);
      }
      out.push_back(Value::Quantity(op == BinOp::kAdd ? Add(x.d, yv) : Sub(x.d, yv),
                                    std::string(x.str)));
      return true;
    }
    if (op == BinOp::kMul || op == BinOp::kDiv) {
      Value q = x.kind == Kind::kQuantity ? x : y;
      Value other = x.kind == Kind::kQuantity ? y : x;
      if (IsNumber(other.kind)) {
        if (op == BinOp::kDiv && x.kind != Kind::kQuantity) return Fail(n, "number / quantity");
        if (op == BinOp::kDiv && AsDecimal(other).IsZero()) return true;
        Decimal r = op == BinOp::kMul ? Mul(q.d, AsDecimal(other)) : Div(q.d, AsDecimal(other));
        out.push_back(Value::Quantity(r, std::string(q.str)));
        return true;
      }
      if (other.kind == Kind::kQuantity) {
        // Unit algebra for same-dimension units: 'cm' * 'cm' -> 'cm2', 'cm' / 'cm' -> '1'.
        auto cx = CanonicalQuantity(x.d, x.str), cy = CanonicalQuantity(y.d, y.str);
        if (op == BinOp::kDiv) {
          if (cx && cy && cx->unit == cy->unit) {
            if (cy->value.IsZero()) return true;
            out.push_back(Value::Quantity(Div(cx->value, cy->value), "1"));
            return true;
          }
          if (y.d.IsZero()) return true;
          out.push_back(Value::Quantity(Div(x.d, y.d), base::StrCat(x.str, "/", y.str)));
          return true;
        }
        if (x.str == y.str) {
          out.push_back(Value::Quantity(Mul(x.d, y.d), base::StrCat(x.str, "2")));
        } else if (cx && cy && cx->unit == cy->unit) {
          out.push_back(Value::Quantity(Mul(cx->value, cy->value), base::StrCat(cx->unit, "2")));
        } else {
          out.push_back(Value::Quantity(Mul(x.d, y.d), base::StrCat(x.str, ".", y.str)));
        }
        return true;
      }
    }
    return Fail(n, "unsupported quantity arithmetic");
  }
  if (!IsNumber(x.kind) || !IsNumber(y.kind)) return Fail(n, "arithmetic needs numbers");
  if (x.kind == Kind::kInteger && y.kind == Kind::kInteger && op != BinOp::kDiv) {
    __int128 r;
    switch (op) {
      case BinOp::kAdd: r = static_cast<__int128>(x.i) + y.i; break;
      case BinOp::kSub: r = static_cast<__int128>(x.i) - y.i; break;
      case BinOp::kMul: r = static_cast<__int128>(x.i) * y.i; break;
      case BinOp::kIntDiv:
        if (y.i == 0) return true;
        r = x.i / y.i;
        break;
      case BinOp::kMod:
        if (y.i == 0) return true;
        r = x.i % y.i;
        break;
      default: return Fail(n, "unsupported operator");
    }
    auto checked = CheckedInt(r);
    if (checked) out.push_back(Value::Integer(static_cast<int64_t>(*checked)));
    return true;
  }
  Decimal dx = AsDecimal(x), dy = AsDecimal(y);
  switch (op) {
    case BinOp::kAdd: out.push_back(Value::Dec(Add(dx, dy))); return true;
    case BinOp::kSub: out.push_back(Value::Dec(Sub(dx, dy))); return true;
    case BinOp::kMul: out.push_back(Value::Dec(Mul(dx, dy))); return true;
    case BinOp::kDiv:
      if (dy.IsZero()) return true;
      out.push_back(Value::Dec(Div(dx, dy)));
      return true;
    case BinOp::kIntDiv:
      if (dy.IsZero()) return true;
      out.push_back(Value::Integer(static_cast<int64_t>(Div(dx, dy).Truncated().mantissa)));
      return true;
    case BinOp::kMod: {
      if (dy.IsZero()) return true;
      Decimal q = Div(dx, dy).Truncated();
      out.push_back(Value::Dec(Sub(dx, Mul(q, dy))));
      return true;
    }
    default: return Fail(n, "unsupported operator");
  }
}

// ---- public API ----

absl::StatusOr<Expression> Expression::Compile(std::string_view text) {
  auto root = Parse(text);
  if (!root.ok()) return root.status();
  Expression e;
  e.root_ = std::shared_ptr<const Node>(std::move(*root));
  e.text_ = std::string(text);
  return e;
}

Value FhirValue(const rapidjson::Value& json, std::string_view type_name) {
  const TypeInfo* t = type_name.empty() ? ResourceTypeOf(json) : Model::Get().Find(type_name);
  return MakeElement(&json, nullptr, t);
}

absl::StatusOr<Collection> EvaluateOn(const Expression& expr, const Collection& context,
                                      const Environment& env) {
  Evaluator ev(env, context);
  Collection out;
  if (!ev.Eval(expr.root(), context, out)) return ev.error();
  return out;
}

absl::StatusOr<Collection> Evaluate(const Expression& expr, const rapidjson::Value& resource,
                                    const Environment& env) {
  Collection context{FhirValue(resource)};
  return EvaluateOn(expr, context, env);
}

std::string TypeName(const Value& v) {
  if (v.type != nullptr) {
    if (v.type->kind == TypeInfo::kBackbone) return "BackboneElement";
    return v.type->name;
  }
  switch (v.kind) {
    case Kind::kBoolean: return "boolean";
    case Kind::kInteger: return "integer";
    case Kind::kDecimal: return "decimal";
    case Kind::kString: return "string";
    case Kind::kDate: return "date";
    case Kind::kDateTime: return "dateTime";
    case Kind::kTime: return "time";
    case Kind::kQuantity: return "Quantity";
    case Kind::kTypeInfo: return "TypeInfo";
    default: return "object";
  }
}

namespace {

std::string QuantityLiteral(const Value& q) {
  std::string unit(q.str);
  if (!CalendarToUcum(unit).empty()) return base::StrCat(q.d.ToString(), " ", unit);
  return base::StrCat(q.d.ToString(), " '", unit, "'");
}

}  // namespace

std::string ToLiteralString(const Value& x) {
  Value v = ToSystemValue(x);
  switch (v.kind) {
    case Kind::kBoolean: return v.b ? "true" : "false";
    case Kind::kInteger: return std::to_string(v.i);
    case Kind::kDecimal: return v.d.ToString();
    case Kind::kString: return std::string(v.str);
    case Kind::kDate:
    case Kind::kDateTime: return FormatTemporal(v.kind, v.t);
    case Kind::kTime: return "T" + FormatTemporal(v.kind, v.t);
    case Kind::kQuantity: return QuantityLiteral(v);
    case Kind::kTypeInfo: return base::StrCat(v.fhir_namespace ? "FHIR." : "System.", v.str);
    case Kind::kNoValue: return "";
    case Kind::kObject: {
      if (v.json == nullptr) return "";
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      v.json->Accept(w);
      return std::string(sb.GetString(), sb.GetSize());
    }
  }
  return "";
}

std::string ToJson(const Collection& items, bool pretty) {
  rapidjson::StringBuffer sb;
  auto write = [&](auto& w) {
    w.StartArray();
    for (const Value& x : items) {
      w.StartObject();
      w.Key("type");
      std::string type = TypeName(x);
      w.String(type.data(), static_cast<rapidjson::SizeType>(type.size()));
      w.Key("value");
      switch (x.kind) {
        case Kind::kBoolean: w.Bool(x.b); break;
        case Kind::kInteger: w.Int64(x.i); break;
        case Kind::kDecimal: {
          std::string s = x.d.ToString();
          w.RawValue(s.data(), s.size(), rapidjson::kNumberType);
          break;
        }
        case Kind::kObject:
          if (x.json != nullptr) {
            x.json->Accept(w);
          } else {
            w.Null();
          }
          break;
        case Kind::kNoValue: w.Null(); break;
        default: {
          std::string s = ToLiteralString(x);
          w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
          break;
        }
      }
      w.EndObject();
    }
    w.EndArray();
  };
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    w.SetIndent(' ', 2);
    write(w);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    write(w);
  }
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace isthmus::fhirpath
