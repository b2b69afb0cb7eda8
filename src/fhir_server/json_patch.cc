#include "fhir_server/json_patch.h"

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/str.h"
#include "fhir_server/json_util.h"
#include "rapidjson/document.h"

namespace isthmus::fhir_server {
namespace {

using internal::IsNumber;
using internal::Str;
using Doc = rapidjson::Document;
using Value = rapidjson::Value;
using Alloc = rapidjson::Document::AllocatorType;

bool Equal(const Value& a, const Value& b) {
  if (IsNumber(a) || IsNumber(b)) {
    if (!IsNumber(a) || !IsNumber(b)) return false;
    std::string x(Str(a).substr(1)), y(Str(b).substr(1));
    return std::strtod(x.c_str(), nullptr) == std::strtod(y.c_str(), nullptr);
  }
  if (a.GetType() != b.GetType()) return false;
  switch (a.GetType()) {
    case rapidjson::kStringType: return Str(a) == Str(b);
    case rapidjson::kArrayType:
      if (a.Size() != b.Size()) return false;
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        if (!Equal(a[i], b[i])) return false;
      }
      return true;
    case rapidjson::kObjectType: {
      if (a.MemberCount() != b.MemberCount()) return false;
      for (const auto& m : a.GetObject()) {
        auto it = b.FindMember(m.name);
        if (it == b.MemberEnd() || !Equal(m.value, it->value)) return false;
      }
      return true;
    }
    default: return true;  // null, true, false: the type is the value
  }
}

// A JSON Pointer split into unescaped reference tokens. false when malformed.
bool ParsePointer(std::string_view p, std::vector<std::string>* tokens) {
  tokens->clear();
  if (p.empty()) return true;
  if (p[0] != '/') return false;
  std::string cur;
  for (size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      tokens->push_back(std::move(cur));
      cur.clear();
    } else if (p[i] == '~') {
      if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return false;
      cur.push_back(p[i + 1] == '0' ? '~' : '/');
      ++i;
    } else {
      cur.push_back(p[i]);
    }
  }
  return true;
}

// An array index token: digits without a leading zero (RFC 6901 §4). -1 when not one.
int64_t ArrayIndex(const std::string& t) {
  if (t.empty() || t.size() > 9 || (t.size() > 1 && t[0] == '0')) return -1;
  int64_t n = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

class Patcher {
 public:
  explicit Patcher(Doc& doc) : doc_(doc), alloc_(doc.GetAllocator()) {}

  absl::Status Apply(const Value& op, int index) {
    where_ = base::StrCat("patch operation ", index);
    if (!op.IsObject()) return Malformed("must be an object");
    for (auto a = op.MemberBegin(); a != op.MemberEnd(); ++a) {  // RFC 6902 A.13
      for (auto b = op.MemberBegin(); b != a; ++b) {
        if (a->name == b->name) return Malformed("has a member twice");
      }
    }
    auto member = [&](const char* name) -> const Value* {
      auto it = op.FindMember(name);
      return it == op.MemberEnd() ? nullptr : &it->value;
    };
    const Value* opv = member("op");
    const Value* pathv = member("path");
    if (opv == nullptr || !opv->IsString()) return Malformed("needs a string \"op\"");
    if (pathv == nullptr || !pathv->IsString() || IsNumber(*pathv)) {
      return Malformed("needs a string \"path\"");
    }
    const std::string name(Str(*opv));
    base::StrAppend(&where_, " (", name, " ", Str(*pathv), ")");
    std::vector<std::string> path;
    if (!ParsePointer(Str(*pathv), &path)) return Malformed("path is not a JSON Pointer");
    const Value* value = member("value");
    std::vector<std::string> from;
    if (name == "move" || name == "copy") {
      const Value* fromv = member("from");
      if (fromv == nullptr || !fromv->IsString() || IsNumber(*fromv)) {
        return Malformed("needs a string \"from\"");
      }
      if (!ParsePointer(Str(*fromv), &from)) return Malformed("from is not a JSON Pointer");
    }
    if ((name == "add" || name == "replace" || name == "test") && value == nullptr) {
      return Malformed("needs a \"value\"");
    }
    if (name == "add") return Add(path, Value(*value, alloc_));
    if (name == "remove") return Remove(path, nullptr);
    if (name == "replace") {  // in place: an object keeps its member order
      Value* target = Find(path);
      if (target == nullptr) return Unapplicable("path does not exist");
      *target = Value(*value, alloc_);
      return absl::OkStatus();
    }
    if (name == "move") {
      if (from.size() < path.size() && std::equal(from.begin(), from.end(), path.begin())) {
        return Unapplicable("cannot move a value into one of its children");
      }
      Value moved;
      ISTHMUS_RETURN_IF_ERROR(Remove(from, &moved));
      return Add(path, std::move(moved));
    }
    if (name == "copy") {
      Value* src = Find(from);
      if (src == nullptr) return Unapplicable("from does not exist");
      return Add(path, Value(*src, alloc_));
    }
    if (name == "test") {
      Value* target = Find(path);
      if (target == nullptr) return Unapplicable("path does not exist");
      if (!Equal(*target, *value)) return Unapplicable("test failed: the value differs");
      return absl::OkStatus();
    }
    return Malformed("unknown op (add, remove, replace, move, copy, test)");
  }

 private:
  absl::Status Malformed(std::string_view what) {
    return absl::InvalidArgumentError(base::StrCat(where_, ": ", what));
  }
  absl::Status Unapplicable(std::string_view what) {
    return absl::FailedPreconditionError(base::StrCat(where_, ": ", what));
  }

  Value* Find(const std::vector<std::string>& path) {
    Value* cur = &doc_;
    for (const std::string& t : path) {
      if (cur->IsObject()) {
        auto it = cur->FindMember(Value(rapidjson::StringRef(t.data(), t.size())));
        if (it == cur->MemberEnd()) return nullptr;
        cur = &it->value;
      } else if (cur->IsArray()) {
        int64_t i = ArrayIndex(t);
        if (i < 0 || i >= cur->Size()) return nullptr;
        cur = &(*cur)[static_cast<rapidjson::SizeType>(i)];
      } else {
        return nullptr;
      }
    }
    return cur;
  }

  absl::Status Add(const std::vector<std::string>& path, Value value) {
    if (path.empty()) {
      static_cast<Value&>(doc_) = std::move(value);
      return absl::OkStatus();
    }
    Value* parent = Find({path.begin(), path.end() - 1});
    if (parent == nullptr) return Unapplicable("the parent of path does not exist");
    const std::string& last = path.back();
    if (parent->IsObject()) {
      Value key(last.data(), static_cast<rapidjson::SizeType>(last.size()), alloc_);
      auto it = parent->FindMember(key);
      if (it != parent->MemberEnd()) {
        it->value = std::move(value);
      } else {
        parent->AddMember(key, value, alloc_);
      }
      return absl::OkStatus();
    }
    if (parent->IsArray()) {
      const int64_t size = parent->Size();
      const int64_t i = last == "-" ? size : ArrayIndex(last);
      if (i < 0 || i > size) return Unapplicable("array index out of range");
      parent->PushBack(value, alloc_);
      for (int64_t k = size; k > i; --k) {
        (*parent)[static_cast<rapidjson::SizeType>(k)].Swap(
            (*parent)[static_cast<rapidjson::SizeType>(k - 1)]);
      }
      return absl::OkStatus();
    }
    return Unapplicable("the parent of path is not an object or array");
  }

  // Removes the value at `path` (moving it into `out` when given).
  absl::Status Remove(const std::vector<std::string>& path, Value* out) {
    if (path.empty()) {  // the whole document (replace "" / move from "")
      if (out != nullptr) out->Swap(doc_);
      doc_.SetNull();
      return absl::OkStatus();
    }
    Value* parent = Find({path.begin(), path.end() - 1});
    Value* target = Find(path);
    if (parent == nullptr || target == nullptr) return Unapplicable("path does not exist");
    if (out != nullptr) out->Swap(*target);
    if (parent->IsObject()) {
      parent->EraseMember(parent->FindMember(
          Value(rapidjson::StringRef(path.back().data(), path.back().size()))));
    } else {
      parent->Erase(parent->Begin() + ArrayIndex(path.back()));
    }
    return absl::OkStatus();
  }

  Doc& doc_;
  Alloc& alloc_;
  std::string where_;
};

}  // namespace

absl::StatusOr<std::string> ApplyJsonPatch(std::string_view doc_text, std::string_view patch_text) {
  Doc patch;
  if (absl::Status s = internal::ParseJson(patch_text, patch, "the patch"); !s.ok()) return s;
  if (!patch.IsArray()) {
    return absl::InvalidArgumentError("the patch must be a JSON array of operations");
  }
  Doc doc;
  if (absl::Status s = internal::ParseJson(doc_text, doc, "the document"); !s.ok()) return s;
  Patcher p(doc);
  for (rapidjson::SizeType i = 0; i < patch.Size(); ++i) {
    if (absl::Status s = p.Apply(patch[i], static_cast<int>(i)); !s.ok()) return s;
  }
  return internal::WriteJson(doc);
}

}  // namespace isthmus::fhir_server
