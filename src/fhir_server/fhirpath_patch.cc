#include "fhir_server/fhirpath_patch.h"

#include <optional>
#include <utility>
#include <vector>

#include "base/status_macros.h"
#include "base/str.h"
#include "fhir_server/json_util.h"
#include "fhirpath/fhirpath.h"
#include "fhirpath/model.h"

namespace isthmus::fhir_server {
namespace {

using rapidjson::Document;
using rapidjson::Value;
using internal::Str;
using fhirpath::TypeInfo;

// One step of a location in the document: an object member or an array element.
struct Step {
  std::string key;  // member name, when index < 0
  int index = -1;
};
using Location = std::vector<Step>;

// Finds `target` (by address) under `v`, appending the steps to it to `path`.
bool Locate(const Value& v, const Value* target, Location& path) {
  if (&v == target) return true;
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      path.push_back({std::string(Str(m.name)), -1});
      if (Locate(m.value, target, path)) return true;
      path.pop_back();
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      path.push_back({"", static_cast<int>(i)});
      if (Locate(v[i], target, path)) return true;
      path.pop_back();
    }
  }
  return false;
}

Value* Navigate(Value& root, const Location& path, size_t steps) {
  Value* v = &root;
  for (size_t i = 0; i < steps; ++i) {
    const Step& s = path[i];
    if (s.index >= 0) {
      if (!v->IsArray() || static_cast<rapidjson::SizeType>(s.index) >= v->Size()) return nullptr;
      v = &(*v)[static_cast<rapidjson::SizeType>(s.index)];
    } else {
      if (!v->IsObject()) return nullptr;
      auto it = v->FindMember(rapidjson::StringRef(s.key.data(), s.key.size()));
      if (it == v->MemberEnd()) return nullptr;
      v = &it->value;
    }
  }
  return v;
}

Value* FindMember(Value& obj, std::string_view name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(rapidjson::StringRef(name.data(), name.size()));
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

void RemoveMember(Value& obj, std::string_view name) {
  obj.RemoveMember(rapidjson::StringRef(name.data(), name.size()));
}

void SetMember(Document& doc, Value& obj, std::string_view name, Value&& v) {
  if (Value* old = FindMember(obj, name); old != nullptr) {
    *old = std::move(v);
    return;
  }
  obj.AddMember(Value(name.data(), static_cast<rapidjson::SizeType>(name.size()), doc.GetAllocator()),
                v, doc.GetAllocator());
}

// An element selected by a path, in the patched document: its parent object and member name
// (the primitive's name, never its `_name`), and its index when the member is a list.
struct Place {
  Value* parent = nullptr;  // the object holding the member
  std::string name;
  int index = -1;  // >= 0: an item of the list `name`
};

// The parent object, member and index of `loc` (the location of an element, not the root).
std::optional<Place> PlaceOf(Value& root, const Location& loc) {
  if (loc.empty()) return std::nullopt;
  Place p;
  size_t member_step = loc.size() - 1;
  if (loc.back().index >= 0) {
    if (loc.size() < 2) return std::nullopt;
    p.index = loc.back().index;
    member_step = loc.size() - 2;
  }
  if (loc[member_step].index >= 0) return std::nullopt;  // an array of arrays: not FHIR
  p.name = loc[member_step].key;
  if (p.name.size() > 1 && p.name[0] == '_') p.name.erase(0, 1);  // an extension-only primitive
  p.parent = Navigate(root, loc, member_step);
  if (p.parent == nullptr || !p.parent->IsObject()) return std::nullopt;
  return p;
}

// The `_name` list beside the list `name` when it is aligned with it.
Value* Shadow(Value& parent, std::string_view name, rapidjson::SizeType size) {
  Value* s = FindMember(parent, base::StrCat("_", name));
  return s != nullptr && s->IsArray() && s->Size() == size ? s : nullptr;
}

void EraseAt(Value& arr, rapidjson::SizeType i) { arr.Erase(arr.Begin() + i); }

void InsertAt(Document& doc, Value& arr, rapidjson::SizeType i, Value&& v) {
  arr.PushBack(v, doc.GetAllocator());
  for (rapidjson::SizeType j = arr.Size() - 1; j > i; --j) arr[j].Swap(arr[j - 1]);
}

// Removes the element at `p` (and its `_name` companion).
void Remove(Place& p) {
  Value& parent = *p.parent;
  const std::string shadow = base::StrCat("_", p.name);
  if (p.index < 0) {
    RemoveMember(parent, p.name);
    RemoveMember(parent, shadow);
    return;
  }
  Value* list = FindMember(parent, p.name);
  Value* ext = FindMember(parent, shadow);
  const auto i = static_cast<rapidjson::SizeType>(p.index);
  const rapidjson::SizeType size =
      list != nullptr && list->IsArray() ? list->Size() : ext != nullptr && ext->IsArray() ? ext->Size() : 0;
  if (list != nullptr && list->IsArray() && i < list->Size()) EraseAt(*list, i);
  if (ext != nullptr && ext->IsArray() && ext->Size() == size && i < ext->Size()) EraseAt(*ext, i);
  auto empty = [](const Value* v) {
    if (v == nullptr || !v->IsArray()) return false;
    for (const Value& e : v->GetArray()) {
      if (!e.IsNull()) return false;
    }
    return true;
  };
  if (empty(FindMember(parent, p.name))) RemoveMember(parent, p.name);
  if (empty(FindMember(parent, shadow))) RemoveMember(parent, shadow);
}

// ---- the Parameters ----

struct PatchValue {
  const Value* json = nullptr;      // value[x] or resource, in the Parameters document
  const Value* parts = nullptr;     // nested parts: an anonymous element
  const TypeInfo* type = nullptr;   // null for parts
};

struct Operation {
  std::string type, path, name;
  std::optional<PatchValue> value;
  std::optional<int64_t> index, source, destination;
};

const TypeInfo* TypeFromSuffix(std::string_view suffix) {
  const fhirpath::Model& model = fhirpath::Model::Get();
  if (suffix.empty()) return nullptr;
  // Primitive types are written in lower camel case (valueDateTime: dateTime).
  std::string lower(suffix);
  lower[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(lower[0])));
  if (const TypeInfo* t = model.Find(lower); t != nullptr && t->kind == TypeInfo::kPrimitive) {
    return t;
  }
  const TypeInfo* t = model.Find(suffix);
  return t != nullptr && t->kind == TypeInfo::kComplex ? t : nullptr;
}

absl::StatusOr<PatchValue> ParseValue(const Value& part, const std::string& at) {
  PatchValue out;
  for (const auto& m : part.GetObject()) {
    std::string_view k = Str(m.name);
    if (k == "part") {
      if (!m.value.IsArray() || m.value.Empty()) {
        return absl::InvalidArgumentError(base::StrCat(at, ".part must be a non-empty array"));
      }
      out.parts = &m.value;
    } else if (k == "resource") {
      if (!m.value.IsObject() || !m.value.HasMember("resourceType") ||
          !m.value["resourceType"].IsString()) {
        return absl::InvalidArgumentError(base::StrCat(at, ".resource must be a resource"));
      }
      out.json = &m.value;
      out.type = fhirpath::Model::Get().Find(Str(m.value["resourceType"]));
      if (out.type == nullptr) {
        return absl::InvalidArgumentError(base::StrCat(at, ".resource has an unknown type"));
      }
    } else if (k.starts_with("value") && k.size() > 5) {
      out.json = &m.value;
      out.type = TypeFromSuffix(k.substr(5));
      if (out.type == nullptr) {
        return absl::InvalidArgumentError(
            base::StrCat(at, ".", k, " is not a FHIR R4 datatype"));
      }
    }
  }
  if ((out.json == nullptr) == (out.parts == nullptr)) {
    return absl::InvalidArgumentError(
        base::StrCat(at, " needs one value: a value[x], a resource or parts"));
  }
  return out;
}

std::optional<int64_t> IntegerOf(const Value& part) {
  auto it = part.FindMember("valueInteger");
  if (it == part.MemberEnd() || !internal::IsNumber(it->value)) return std::nullopt;
  int64_t n = 0;
  std::string_view s = Str(it->value);
  s.remove_prefix(1);
  if (!base::ParseInt(s, &n)) return std::nullopt;
  return n;
}

absl::StatusOr<std::vector<Operation>> ParseOperations(const Document& params) {
  if (!params.IsObject() || !params.HasMember("resourceType") ||
      !params["resourceType"].IsString() || Str(params["resourceType"]) != "Parameters") {
    return absl::InvalidArgumentError("a FHIRPath Patch is a Parameters resource");
  }
  std::vector<Operation> ops;
  auto list = params.FindMember("parameter");
  if (list == params.MemberEnd()) return ops;  // nothing to do
  if (!list->value.IsArray()) return absl::InvalidArgumentError("Parameters.parameter must be an array");
  for (rapidjson::SizeType i = 0; i < list->value.Size(); ++i) {
    const std::string at = base::StrCat("Parameters.parameter[", i, "]");
    const Value& p = list->value[i];
    if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString() ||
        Str(p["name"]) != "operation") {
      return absl::InvalidArgumentError(
          base::StrCat(at, ": every parameter of a FHIRPath Patch is an `operation`"));
    }
    auto parts = p.FindMember("part");
    if (parts == p.MemberEnd() || !parts->value.IsArray()) {
      return absl::InvalidArgumentError(base::StrCat(at, " has no parts"));
    }
    Operation op;
    for (rapidjson::SizeType j = 0; j < parts->value.Size(); ++j) {
      const Value& part = parts->value[j];
      const std::string part_at = base::StrCat(at, ".part[", j, "]");
      if (!part.IsObject() || !part.HasMember("name") || !part["name"].IsString()) {
        return absl::InvalidArgumentError(base::StrCat(part_at, " has no name"));
      }
      std::string_view name = Str(part["name"]);
      auto string_of = [&](const char* member) -> absl::StatusOr<std::string> {
        auto it = part.FindMember(member);
        if (it == part.MemberEnd() || !it->value.IsString() || internal::IsNumber(it->value)) {
          return absl::InvalidArgumentError(
              base::StrCat(part_at, " (", name, ") needs ", member));
        }
        return std::string(Str(it->value));
      };
      if (name == "type") {
        ISTHMUS_ASSIGN_OR_RETURN(op.type, string_of("valueCode"));
      } else if (name == "path") {
        ISTHMUS_ASSIGN_OR_RETURN(op.path, string_of("valueString"));
      } else if (name == "name") {
        ISTHMUS_ASSIGN_OR_RETURN(op.name, string_of("valueString"));
      } else if (name == "value") {
        ISTHMUS_ASSIGN_OR_RETURN(op.value, ParseValue(part, part_at));
      } else if (name == "index" || name == "source" || name == "destination") {
        std::optional<int64_t> n = IntegerOf(part);
        if (!n) {
          return absl::InvalidArgumentError(
              base::StrCat(part_at, " (", name, ") needs valueInteger"));
        }
        (name == "index" ? op.index : name == "source" ? op.source : op.destination) = n;
      } else {
        return absl::InvalidArgumentError(
            base::StrCat(part_at, ": unknown part ", name.substr(0, 32)));
      }
    }
    auto need = [&](bool has, const char* what) -> absl::Status {
      if (has) return absl::OkStatus();
      return absl::InvalidArgumentError(
          base::StrCat(at, ": ", op.type, " needs the part `", what, "`"));
    };
    if (op.type.empty()) return absl::InvalidArgumentError(base::StrCat(at, " has no type"));
    ISTHMUS_RETURN_IF_ERROR(need(!op.path.empty(), "path"));
    if (op.type == "add") {
      ISTHMUS_RETURN_IF_ERROR(need(!op.name.empty(), "name"));
      ISTHMUS_RETURN_IF_ERROR(need(op.value.has_value(), "value"));
    } else if (op.type == "insert") {
      ISTHMUS_RETURN_IF_ERROR(need(op.value.has_value(), "value"));
      ISTHMUS_RETURN_IF_ERROR(need(op.index.has_value(), "index"));
    } else if (op.type == "replace") {
      ISTHMUS_RETURN_IF_ERROR(need(op.value.has_value(), "value"));
    } else if (op.type == "move") {
      ISTHMUS_RETURN_IF_ERROR(need(op.source.has_value(), "source"));
      ISTHMUS_RETURN_IF_ERROR(need(op.destination.has_value(), "destination"));
    } else if (op.type != "delete") {
      return absl::InvalidArgumentError(base::StrCat(
          at, ": unknown type ", op.type.substr(0, 32),
          " (add, insert, delete, replace, move)"));
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

// ---- applying ----

// `got` fits an element of type `want`: the same type, a specialization (Age for Quantity,
// code for string) or the other way round for primitives (a string for a code element).
bool Fits(const TypeInfo* want, const TypeInfo* got) {
  if (want == nullptr || got == nullptr) return false;
  if (got->IsA(want)) return true;
  return want->kind == TypeInfo::kPrimitive && got->kind == TypeInfo::kPrimitive && want->IsA(got);
}

// Where a value of element `e` goes: its JSON member name (a choice element's name + the
// value's type: valueQuantity) and the type it takes there. kFailedPrecondition when the value
// does not fit.
absl::StatusOr<std::pair<std::string, const TypeInfo*>> ElementKey(
    const fhirpath::ElementInfo& e, const PatchValue& v, const std::string& at) {
  if (v.type == nullptr) {  // parts: an anonymous (backbone) or complex element
    if (e.choice || e.types.size() != 1 || e.types[0]->kind == TypeInfo::kPrimitive) {
      return absl::FailedPreconditionError(
          base::StrCat(at, ": the element ", e.name, " does not take parts"));
    }
    return std::make_pair(e.name, e.types[0]);
  }
  // The value's own type first (a choice of string and code takes a valueString as string),
  // then a type it specializes, then a primitive it generalizes.
  for (int pass = 0; pass < 3; ++pass) {
    for (const TypeInfo* t : e.types) {
      const bool ok = pass == 0 ? t == v.type : pass == 1 ? v.type->IsA(t) : Fits(t, v.type);
      if (ok) {
        return std::make_pair(e.choice ? base::StrCat(e.name, t->ChoiceSuffix()) : e.name, t);
      }
    }
  }
  return absl::FailedPreconditionError(
      base::StrCat(at, ": a ", v.type->name, " does not fit the element ", e.name));
}

// A copy of the value into `doc`. Parts become an object of `type` (the element's type, when
// known): one member per part name, typed as that element (a choice element's key follows its
// value, a repeating element is a list even with one part); with no known type, a name that
// repeats becomes a list.
absl::StatusOr<Value> Materialize(Document& doc, const PatchValue& v, const std::string& at,
                                  const TypeInfo* type) {
  if (v.json != nullptr) return Value(*v.json, doc.GetAllocator());
  Value obj(rapidjson::kObjectType);
  for (rapidjson::SizeType i = 0; i < v.parts->Size(); ++i) {
    const Value& part = (*v.parts)[i];
    const std::string part_at = base::StrCat(at, ".part[", i, "]");
    if (!part.IsObject() || !part.HasMember("name") || !part["name"].IsString()) {
      return absl::InvalidArgumentError(base::StrCat(part_at, " has no name"));
    }
    ISTHMUS_ASSIGN_OR_RETURN(PatchValue sub, ParseValue(part, part_at));
    const std::string_view name = Str(part["name"]);
    std::string key(name);
    const TypeInfo* sub_type = nullptr;
    bool many = false;
    if (type != nullptr && type->kind != TypeInfo::kPrimitive) {
      const fhirpath::ElementInfo* e = type->Element(name);
      if (e == nullptr) {
        return absl::FailedPreconditionError(base::StrCat(
            part_at, ": ", type->name, " has no element ", name.substr(0, 64)));
      }
      ISTHMUS_ASSIGN_OR_RETURN(auto where, ElementKey(*e, sub, part_at));
      key = std::move(where.first);
      sub_type = where.second;
      many = e->many;
    }
    ISTHMUS_ASSIGN_OR_RETURN(Value item, Materialize(doc, sub, part_at, sub_type));
    Value* have = FindMember(obj, key);
    if (have == nullptr && !many) {
      SetMember(doc, obj, key, std::move(item));
      continue;
    }
    if (have == nullptr) {
      SetMember(doc, obj, key, Value(rapidjson::kArrayType));
      have = FindMember(obj, key);
    } else if (type != nullptr && !many) {
      return absl::FailedPreconditionError(
          base::StrCat(part_at, ": ", name.substr(0, 64), " takes one value"));
    } else if (!have->IsArray()) {
      Value list(rapidjson::kArrayType);
      list.PushBack(*have, doc.GetAllocator());
      *have = std::move(list);
    }
    have->PushBack(item, doc.GetAllocator());
  }
  return obj;
}

class Patcher {
 public:
  explicit Patcher(Document& doc) : doc_(doc) {}

  absl::Status Apply(const Operation& op, int i) {
    at_ = base::StrCat("operation[", i, "] (", op.type, " ", op.path.substr(0, 200), ")");
    absl::StatusOr<fhirpath::Expression> expr = fhirpath::Expression::Compile(op.path);
    if (!expr.ok()) {
      return absl::InvalidArgumentError(
          base::StrCat(at_, ": the path is not FHIRPath: ", std::string(expr.status().message())));
    }
    // The engine reads real numbers: it evaluates a plain parse of the current document.
    Document view;
    const std::string text = internal::WriteJson(doc_);
    view.Parse(text.data(), text.size());
    if (view.HasParseError()) return absl::InternalError("the patched document does not parse");
    absl::StatusOr<fhirpath::Collection> items = fhirpath::Evaluate(*expr, view);
    if (!items.ok()) {
      return absl::InvalidArgumentError(base::StrCat(
          at_, ": the path cannot be evaluated: ", std::string(items.status().message())));
    }
    std::vector<Location> locs;
    for (const fhirpath::Value& item : *items) {
      const Value* target = item.json != nullptr ? item.json : item.ext;
      Location loc;
      if (target == nullptr || !Locate(view, target, loc)) {
        return Unprocessable("the path selects something that is not an element of the resource");
      }
      locs.push_back(std::move(loc));
    }
    if (op.type == "delete") return Delete(*items, locs);
    if (op.type == "add") return Add(op, *items, locs);
    if (op.type == "replace") return Replace(op, *items, locs);
    return List(op, view, *items, locs);
  }

 private:
  absl::Status Unprocessable(std::string_view why) const {
    return absl::FailedPreconditionError(base::StrCat(at_, ": ", why));
  }

  absl::Status One(const fhirpath::Collection& items) const {
    if (items.empty()) return Unprocessable("the path selects nothing");
    if (items.size() > 1) return Unprocessable("the path selects more than one element");
    return absl::OkStatus();
  }

  absl::Status Delete(const fhirpath::Collection& items, const std::vector<Location>& locs) {
    if (items.empty()) return absl::OkStatus();  // "if found"
    if (items.size() > 1) return Unprocessable("the path selects more than one element");
    std::optional<Place> p = PlaceOf(doc_, locs[0]);
    if (!p) return Unprocessable("the resource itself cannot be deleted");
    Remove(*p);
    return absl::OkStatus();
  }

  absl::Status Add(const Operation& op, const fhirpath::Collection& items,
                   const std::vector<Location>& locs) {
    ISTHMUS_RETURN_IF_ERROR(One(items));
    const fhirpath::Value& target = items[0];
    if (target.kind != fhirpath::Kind::kObject || target.type == nullptr) {
      return Unprocessable("add needs a path to an element with children");
    }
    Value* obj = Navigate(doc_, locs[0], locs[0].size());
    if (obj == nullptr || !obj->IsObject()) return Unprocessable("the path is not an element");
    const fhirpath::ElementInfo* e = target.type->Element(op.name);
    if (e == nullptr) {
      return Unprocessable(base::StrCat(target.type->name, " has no element ",
                                        op.name.substr(0, 64)));
    }
    ISTHMUS_ASSIGN_OR_RETURN(auto where, ElementKey(*e, *op.value, at_));
    const std::string key = std::move(where.first);
    ISTHMUS_ASSIGN_OR_RETURN(Value v, Materialize(doc_, *op.value, at_, where.second));
    if (e->many) {
      Value* list = FindMember(*obj, key);
      if (list == nullptr) {
        SetMember(doc_, *obj, key, Value(rapidjson::kArrayType));
        list = FindMember(*obj, key);
      }
      if (!list->IsArray()) return Unprocessable("the element is not a list in the resource");
      if (Value* ext = Shadow(*obj, key, list->Size()); ext != nullptr) {
        ext->PushBack(Value(), doc_.GetAllocator());
      }
      list->PushBack(v, doc_.GetAllocator());
      return absl::OkStatus();
    }
    // A single element: only when it is not there yet (in any of its choice types).
    for (const auto& m : obj->GetObject()) {
      std::string_view k = Str(m.name);
      if (!k.empty() && k[0] == '_') k.remove_prefix(1);
      if (k == e->name || (e->choice && k.starts_with(e->name) && k.size() > e->name.size() &&
                           std::isupper(static_cast<unsigned char>(k[e->name.size()])))) {
        return Unprocessable(base::StrCat("the element ", e->name,
                                          " is already there (add does not replace it)"));
      }
    }
    SetMember(doc_, *obj, key, std::move(v));
    return absl::OkStatus();
  }

  absl::Status Replace(const Operation& op, const fhirpath::Collection& items,
                       const std::vector<Location>& locs) {
    ISTHMUS_RETURN_IF_ERROR(One(items));
    std::optional<Place> p = PlaceOf(doc_, locs[0]);
    if (!p) return Unprocessable("the resource itself cannot be replaced (use update)");
    const TypeInfo* have = items[0].type;
    const PatchValue& v = *op.value;
    std::string key = p->name;
    if (v.type != nullptr && have != nullptr && !Fits(have, v.type)) {
      // A choice element (Observation.valueQuantity) takes another of its types.
      const std::string suffix = have->ChoiceSuffix();
      const TypeInfo* parent_type = nullptr;
      if (p->parent != nullptr && key.ends_with(suffix) && key.size() > suffix.size()) {
        Location parent_loc = locs[0];
        parent_loc.pop_back();
        if (p->index >= 0) parent_loc.pop_back();
        parent_type = ParentType(parent_loc);
      }
      const fhirpath::ElementInfo* e =
          parent_type == nullptr ? nullptr
                                 : parent_type->Element(key.substr(0, key.size() - suffix.size()));
      if (e == nullptr || !e->choice) {
        return Unprocessable(
            base::StrCat("a ", v.type->name, " does not fit the element (a ", have->name, ")"));
      }
      ISTHMUS_ASSIGN_OR_RETURN(auto where, ElementKey(*e, v, at_));
      key = std::move(where.first);
    } else if (v.type == nullptr && (have == nullptr || have->kind == TypeInfo::kPrimitive)) {
      return Unprocessable("a primitive element is replaced by a value[x], not parts");
    }
    ISTHMUS_ASSIGN_OR_RETURN(Value value, Materialize(doc_, v, at_, have));
    Value& parent = *p->parent;
    if (p->index < 0) {
      RemoveMember(parent, base::StrCat("_", p->name));
      auto it = parent.FindMember(rapidjson::StringRef(p->name.data(), p->name.size()));
      if (it == parent.MemberEnd()) return Unprocessable("the element has no value to replace");
      // In place: a choice element renamed (valueQuantity -> valueString) keeps its position.
      if (key != p->name) {
        it->name.SetString(key.data(), static_cast<rapidjson::SizeType>(key.size()),
                           doc_.GetAllocator());
      }
      it->value = std::move(value);
      return absl::OkStatus();
    }
    Value* list = FindMember(parent, p->name);
    const auto i = static_cast<rapidjson::SizeType>(p->index);
    if (list == nullptr || !list->IsArray() || i >= list->Size()) {
      // An extension-only item of a primitive list: the value goes in beside it.
      return Unprocessable("the element has no value to replace");
    }
    if (Value* ext = Shadow(parent, p->name, list->Size()); ext != nullptr) (*ext)[i].SetNull();
    (*list)[i] = std::move(value);
    return absl::OkStatus();
  }

  // The FHIR type at `loc` in the document (the resource's type at the root), found by walking
  // the model along the member names.
  const TypeInfo* ParentType(const Location& loc) const {
    const fhirpath::Model& model = fhirpath::Model::Get();
    const Value* v = &doc_;
    const TypeInfo* t = nullptr;
    auto resource_type = [&](const Value& obj) -> const TypeInfo* {
      auto it = obj.FindMember("resourceType");
      return it != obj.MemberEnd() && it->value.IsString() ? model.Find(Str(it->value)) : nullptr;
    };
    t = resource_type(*v);
    for (const Step& s : loc) {
      if (t == nullptr || v == nullptr) return nullptr;
      if (s.index >= 0) {
        v = v->IsArray() && static_cast<rapidjson::SizeType>(s.index) < v->Size()
                ? &(*v)[static_cast<rapidjson::SizeType>(s.index)]
                : nullptr;
        if (v != nullptr && t->kind == TypeInfo::kResource && v->IsObject()) t = resource_type(*v);
        continue;
      }
      auto it = v->FindMember(rapidjson::StringRef(s.key.data(), s.key.size()));
      if (it == v->MemberEnd()) return nullptr;
      v = &it->value;
      const fhirpath::ElementInfo* e = t->Element(s.key);
      if (e == nullptr) {  // a choice member (valueQuantity) or a contained resource
        const TypeInfo* found = nullptr;
        for (const auto& [name, info] : t->elements) {
          if (!info.choice || !s.key.starts_with(name)) continue;
          for (const TypeInfo* ct : info.types) {
            if (base::StrCat(name, ct->ChoiceSuffix()) == s.key) found = ct;
          }
        }
        t = found;  // null: not an element we know (the caller gives up)
        continue;
      }
      t = e->types.size() == 1 ? e->types[0] : nullptr;
      if (t != nullptr && t->kind == TypeInfo::kResource && v->IsObject()) t = resource_type(*v);
    }
    return t;
  }

  // insert and move: the path selects a list.
  absl::Status List(const Operation& op, const Document& view, const fhirpath::Collection& items,
                    const std::vector<Location>& locs) {
    Value* parent = nullptr;
    std::string name;
    const TypeInfo* item_type = nullptr;
    if (!items.empty()) {
      std::optional<Place> first = PlaceOf(doc_, locs[0]);
      if (!first || first->index < 0) {
        return Unprocessable("the path does not select a list (a repeating element)");
      }
      for (size_t i = 0; i < locs.size(); ++i) {
        std::optional<Place> p = PlaceOf(doc_, locs[i]);
        if (!p || p->parent != first->parent || p->name != first->name ||
            p->index != static_cast<int>(i) + first->index) {
          return Unprocessable("the path selects items of more than one list, or part of one");
        }
      }
      if (first->index != 0) {
        return Unprocessable("the path selects part of a list, not the list");
      }
      parent = first->parent;
      name = first->name;
      item_type = items[0].type;
    } else if (op.type == "move") {
      return Unprocessable("the path selects nothing");
    } else {
      // An empty list: its parent is the path without its last step (Patient.identifier).
      const size_t dot = op.path.rfind('.');
      std::string last = dot == std::string::npos ? "" : op.path.substr(dot + 1);
      bool simple = !last.empty();
      for (char c : last) simple &= std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      if (!simple) return Unprocessable("the path selects nothing");
      absl::StatusOr<fhirpath::Expression> up =
          fhirpath::Expression::Compile(op.path.substr(0, dot));
      if (!up.ok()) return Unprocessable("the path selects nothing");
      absl::StatusOr<fhirpath::Collection> owners = fhirpath::Evaluate(*up, view);
      if (!owners.ok() || owners->size() != 1 || (*owners)[0].kind != fhirpath::Kind::kObject ||
          (*owners)[0].type == nullptr) {
        return Unprocessable("the path selects nothing");
      }
      const fhirpath::ElementInfo* e = (*owners)[0].type->Element(last);
      if (e == nullptr || !e->many || e->choice || e->types.size() != 1) {
        return Unprocessable("the path does not select a list (a repeating element)");
      }
      Location loc;
      if (!Locate(view, (*owners)[0].json, loc)) return Unprocessable("the path selects nothing");
      parent = Navigate(doc_, loc, loc.size());
      if (parent == nullptr || !parent->IsObject()) return Unprocessable("the path selects nothing");
      name = last;
      item_type = e->types[0];
    }
    Value* list = FindMember(*parent, name);
    const int64_t size = list != nullptr && list->IsArray() ? list->Size() : 0;
    if (op.type == "insert") {
      const PatchValue& v = *op.value;
      if (v.type != nullptr && item_type != nullptr && !Fits(item_type, v.type)) {
        return Unprocessable(
            base::StrCat("a ", v.type->name, " does not fit the list (of ", item_type->name, ")"));
      }
      if (v.type == nullptr && item_type != nullptr && item_type->kind == TypeInfo::kPrimitive) {
        return Unprocessable("a primitive list takes a value[x], not parts");
      }
      if (*op.index < 0 || *op.index > size) {
        return Unprocessable(base::StrCat("index ", *op.index, " is outside 0..", size));
      }
      ISTHMUS_ASSIGN_OR_RETURN(Value value, Materialize(doc_, v, at_, item_type));
      if (list == nullptr) {
        SetMember(doc_, *parent, name, Value(rapidjson::kArrayType));
        list = FindMember(*parent, name);
      }
      const auto i = static_cast<rapidjson::SizeType>(*op.index);
      if (Value* ext = Shadow(*parent, name, list->Size()); ext != nullptr) {
        InsertAt(doc_, *ext, i, Value());
      }
      InsertAt(doc_, *list, i, std::move(value));
      return absl::OkStatus();
    }
    // move
    for (int64_t n : {*op.source, *op.destination}) {
      if (n < 0 || n >= size) {
        return Unprocessable(base::StrCat("index ", n, " is outside 0..", size - 1));
      }
    }
    const auto from = static_cast<rapidjson::SizeType>(*op.source);
    const auto to = static_cast<rapidjson::SizeType>(*op.destination);
    auto move = [&](Value& arr) {
      Value item(std::move(arr[from]));
      EraseAt(arr, from);
      InsertAt(doc_, arr, to, std::move(item));
    };
    if (Value* ext = Shadow(*parent, name, list->Size()); ext != nullptr) move(*ext);
    move(*list);
    return absl::OkStatus();
  }

  Document& doc_;
  std::string at_;
};

}  // namespace

bool IsParametersBody(std::string_view body) {
  rapidjson::Document doc;
  if (!internal::ParseJson(body, doc, "the body").ok()) return false;
  return doc.IsObject() && doc.HasMember("resourceType") && doc["resourceType"].IsString() &&
         Str(doc["resourceType"]) == "Parameters";
}

absl::StatusOr<std::string> ApplyFhirPathPatch(std::string_view resource,
                                               std::string_view parameters) {
  Document params;
  ISTHMUS_RETURN_IF_ERROR(internal::ParseJson(parameters, params, "the FHIRPath Patch"));
  ISTHMUS_ASSIGN_OR_RETURN(std::vector<Operation> ops, ParseOperations(params));
  Document doc;
  ISTHMUS_RETURN_IF_ERROR(internal::ParseJson(resource, doc, "the resource"));
  if (!doc.IsObject()) return absl::InvalidArgumentError("the resource is not a JSON object");
  Patcher patcher(doc);
  for (size_t i = 0; i < ops.size(); ++i) {
    ISTHMUS_RETURN_IF_ERROR(patcher.Apply(ops[i], static_cast<int>(i)));
  }
  return internal::WriteJson(doc);
}

}  // namespace isthmus::fhir_server
