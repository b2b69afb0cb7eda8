#include "fhirpath/model.h"

#include <memory>

#include "base/str.h"

namespace isthmus::fhirpath {
namespace internal {
std::string_view ModelChunk(int i);  // generated
}  // namespace internal

const ElementInfo* TypeInfo::Element(std::string_view name) const {
  for (const TypeInfo* t = this; t != nullptr; t = t->base) {
    auto it = t->elements.find(absl::string_view(name.data(), name.size()));
    if (it != t->elements.end()) return &it->second;
  }
  return nullptr;
}

bool TypeInfo::IsA(const TypeInfo* other) const {
  for (const TypeInfo* t = this; t != nullptr; t = t->base) {
    if (t == other) return true;
  }
  return false;
}

std::string TypeInfo::ChoiceSuffix() const {
  std::string s = name;
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

const Model& Model::Get() {
  static const Model* model = new Model();
  return *model;
}

const TypeInfo* Model::Find(std::string_view name) const {
  auto it = types_.find(absl::string_view(name.data(), name.size()));
  return it == types_.end() ? nullptr : it->second;
}

const TypeInfo* Model::FindSystem(std::string_view name) const {
  auto it = system_.find(absl::string_view(name.data(), name.size()));
  return it == system_.end() ? nullptr : it->second;
}

Model::Model() {
  std::string blob;
  for (int i = 0;; ++i) {
    std::string_view chunk = internal::ModelChunk(i);
    if (chunk.empty()) break;
    blob.append(chunk);
  }
  auto type_of = [this](std::string_view name) {
    auto it = types_.find(absl::string_view(name.data(), name.size()));
    if (it != types_.end()) return it->second;
    owned_.push_back(std::make_unique<TypeInfo>());
    TypeInfo* t = owned_.back().get();
    t->name = std::string(name);
    types_.emplace(t->name, t);
    return t;
  };
  TypeInfo* current = nullptr;
  size_t pos = 0;
  while (pos < blob.size()) {
    size_t end = blob.find('\n', pos);
    if (end == std::string::npos) end = blob.size();
    std::string_view line(blob.data() + pos, end - pos);
    pos = end + 1;
    std::vector<std::string_view> f = base::Split(line, ' ');
    if (f.size() == 4 && f[0] == "T") {
      current = type_of(f[1]);
      if (f[2] != "-") current->base = type_of(f[2]);
      switch (f[3][0]) {
        case 'p': current->kind = TypeInfo::kPrimitive; break;
        case 'r': current->kind = TypeInfo::kResource; break;
        case 'b': current->kind = TypeInfo::kBackbone; break;
        default: current->kind = TypeInfo::kComplex; break;
      }
    } else if (f.size() == 4 && f[0] == "E" && current != nullptr) {
      ElementInfo e;
      std::string_view name = f[1];
      if (name.size() > 3 && name.substr(name.size() - 3) == "[x]") {
        e.choice = true;
        name.remove_suffix(3);
      }
      e.name = std::string(name);
      e.many = f[2] == "*";
      for (std::string_view t : base::Split(f[3], ',')) {
        if (t.substr(0, 7) == "System.") {
          // Element.id, Extension.url: FHIRPath System types; navigated as FHIR string.
          e.types.push_back(type_of("string"));
        } else {
          e.types.push_back(type_of(t));
        }
      }
      current->elements.emplace(e.name, std::move(e));
    }
  }
  for (const char* name :
       {"Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity", "Any"}) {
    owned_.push_back(std::make_unique<TypeInfo>());
    TypeInfo* t = owned_.back().get();
    t->name = name;
    t->kind = TypeInfo::kSystem;
    system_.emplace(t->name, t);
  }
}

}  // namespace isthmus::fhirpath
