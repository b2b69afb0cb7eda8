#include "hl7v2/dictionary.h"

#include <array>
#include <memory>

#include "absl/base/call_once.h"
#include "base/str.h"
#include "hl7v2/dictionary_data.h"

namespace isthmus::hl7v2 {
namespace {

using internal::kDictionaryBlobCount;
using internal::kDictionaryBlobs;

// "2.5.1" -> 20501; -1 when not a version.
int VersionKey(std::string_view v) {
  int parts[3] = {0, 0, 0};
  int n = 0;
  for (std::string_view p : base::Split(v, '.')) {
    if (n == 3 || p.empty()) return -1;
    int x;
    if (!base::ParseInt(p, &x) || x < 0 || x > 99) return -1;
    parts[n++] = x;
  }
  if (n < 2) return -1;
  return parts[0] * 10000 + parts[1] * 100 + parts[2];
}

// Debian's Abseil has its own string_view; hash-map lookups take that type.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int ToInt(std::string_view s) {
  int x = 0;
  return base::ParseInt(s, &x) ? x : 0;
}

Optionality ToOptionality(std::string_view s) {
  switch (s.empty() ? 'O' : s[0]) {
    case 'R': return Optionality::kRequired;
    case 'C': return Optionality::kConditional;
    case 'B': return Optionality::kBackward;
    case 'W': return Optionality::kWithdrawn;
    case 'X': return Optionality::kNotUsed;
    default: return Optionality::kOptional;
  }
}

// Splits `line` on '|' into at most `N` parts (the last keeps the rest).
template <size_t N>
std::array<std::string_view, N> Fields(std::string_view line) {
  std::array<std::string_view, N> out{};
  for (size_t i = 0; i < N; ++i) {
    size_t bar = i + 1 < N ? line.find('|') : std::string_view::npos;
    out[i] = line.substr(0, bar);
    if (bar == std::string_view::npos) break;
    line.remove_prefix(bar + 1);
  }
  return out;
}

struct Slot {
  absl::once_flag once;
  std::unique_ptr<Dictionary> dict;
};

Slot* Slots() {
  // Never destroyed, so dictionaries stay valid during static destruction.
  static Slot* const slots = std::make_unique<Slot[]>(kDictionaryBlobCount).release();
  return slots;
}

}  // namespace

const FieldDef* SegmentDef::Field(int position) const {
  if (position < 1 || static_cast<size_t>(position) > fields.size()) return nullptr;
  return &fields[position - 1];
}

std::unique_ptr<Dictionary> Dictionary::FromBlob(const char* const* chunks) {
  std::unique_ptr<Dictionary> d(new Dictionary());
  SegmentDef* seg = nullptr;
  DatatypeDef* type = nullptr;
  MessageStructureDef* msg = nullptr;
  TableDef* table = nullptr;
  for (; *chunks != nullptr; ++chunks) {
    for (std::string_view line : base::Split(*chunks, '\n')) {
      if (line.size() < 2 || line[1] != '|') continue;
      std::string_view rest = line.substr(2);
      switch (line[0]) {
        case 'V': {
          auto f = Fields<2>(rest);
          d->version_ = std::string(f[0]);
          d->data_version_ = std::string(f[1]);
          break;
        }
        case 'S': {
          auto f = Fields<2>(rest);
          seg = &d->segments_[std::string(f[0])];
          seg->name = std::string(f[0]);
          seg->description = std::string(f[1]);
          break;
        }
        case 'F': {
          if (seg == nullptr) break;
          auto f = Fields<6>(rest);
          FieldDef& fd = seg->fields.emplace_back();
          fd.position = static_cast<int>(seg->fields.size());
          fd.datatype = std::string(f[0]);
          fd.optionality = ToOptionality(f[1]);
          fd.max_repetitions = ToInt(f[2]);
          fd.max_length = ToInt(f[3]);
          fd.table = ToInt(f[4]);
          fd.name = std::string(f[5]);
          break;
        }
        case 'D': {
          auto f = Fields<2>(rest);
          type = &d->datatypes_[std::string(f[0])];
          type->name = std::string(f[0]);
          type->description = std::string(f[1]);
          break;
        }
        case 'C': {
          if (type == nullptr) break;
          auto f = Fields<5>(rest);
          FieldDef& cd = type->components.emplace_back();
          cd.position = static_cast<int>(type->components.size());
          cd.datatype = std::string(f[0]);
          cd.optionality = ToOptionality(f[1]);
          cd.max_length = ToInt(f[2]);
          cd.table = ToInt(f[3]);
          cd.name = std::string(f[4]);
          break;
        }
        case 'M': {
          auto f = Fields<2>(rest);
          msg = &d->structures_[std::string(f[0])];
          msg->id = std::string(f[0]);
          msg->description = std::string(f[1]);
          break;
        }
        case 'N': {
          if (msg == nullptr) break;
          auto f = Fields<5>(rest);
          int depth = ToInt(f[0]);
          std::vector<StructureNode>* level = &msg->nodes;
          for (int i = 0; i < depth && !level->empty(); ++i) level = &level->back().children;
          StructureNode& n = level->emplace_back();
          n.group = f[1] == "g";
          n.name = std::string(f[2]);
          n.min = ToInt(f[3]);
          n.max = ToInt(f[4]);
          break;
        }
        case 'E': {
          auto f = Fields<3>(rest);
          d->events_.try_emplace(base::StrCat(f[0], "^", f[1]), std::string(f[2]));
          break;
        }
        case 'T': {
          auto f = Fields<2>(rest);
          int number = ToInt(f[0]);
          table = &d->tables_[number];
          table->number = number;
          table->name = std::string(f[1]);
          break;
        }
        case 't': {
          if (table == nullptr) break;
          auto f = Fields<2>(rest);
          table->values.try_emplace(std::string(f[0]), std::string(f[1]));
          break;
        }
        default:
          break;
      }
    }
  }
  return d;
}

std::vector<std::string_view> Dictionary::KnownVersions() {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < kDictionaryBlobCount; ++i) out.push_back(kDictionaryBlobs[i].version);
  return out;
}

namespace {
// Index of the blob Find() uses for `version`, or -1.
int ResolveIndex(std::string_view version) {
  for (size_t i = 0; i < kDictionaryBlobCount; ++i) {  // fast path: an exact known version
    if (version == kDictionaryBlobs[i].version) return static_cast<int>(i);
  }
  int key = VersionKey(version);
  if (key < 0 || key / 10000 != 2) return -1;
  int best = -1, best_key = -1;
  for (size_t i = 0; i < kDictionaryBlobCount; ++i) {
    int k = VersionKey(kDictionaryBlobs[i].version);
    if (k <= key && k > best_key) {
      best = static_cast<int>(i);
      best_key = k;
    }
  }
  return best;
}
}  // namespace

std::string_view Dictionary::Resolve(std::string_view version) {
  int i = ResolveIndex(version);
  return i < 0 ? std::string_view() : kDictionaryBlobs[i].version;
}

const Dictionary* Dictionary::Find(std::string_view version) {
  int i = ResolveIndex(version);
  if (i < 0) return nullptr;
  Slot& slot = Slots()[i];
  absl::call_once(slot.once, [&] { slot.dict = FromBlob(kDictionaryBlobs[i].chunks); });
  return slot.dict.get();
}

const SegmentDef* Dictionary::Segment(std::string_view name) const {
  auto it = segments_.find(Av(name));
  return it == segments_.end() ? nullptr : &it->second;
}

const FieldDef* Dictionary::Field(std::string_view segment, int position) const {
  const SegmentDef* s = Segment(segment);
  return s == nullptr ? nullptr : s->Field(position);
}

const DatatypeDef* Dictionary::Datatype(std::string_view name) const {
  auto it = datatypes_.find(Av(name));
  return it == datatypes_.end() ? nullptr : &it->second;
}

const MessageStructureDef* Dictionary::Structure(std::string_view id) const {
  auto it = structures_.find(Av(id));
  return it == structures_.end() ? nullptr : &it->second;
}

const MessageStructureDef* Dictionary::StructureFor(std::string_view type,
                                                    std::string_view event) const {
  if (type.empty()) return nullptr;
  if (!event.empty()) {
    if (const auto* s = Structure(base::StrCat(type, "_", event))) return s;
    auto it = events_.find(base::StrCat(type, "^", event));
    if (it != events_.end()) {
      if (const auto* s = Structure(it->second)) return s;
    }
  }
  return Structure(type);
}

bool Dictionary::HasMessageType(std::string_view type) const {
  if (type.empty()) return false;
  if (structures_.contains(Av(type))) return true;
  for (const auto& [id, s] : structures_) {
    if (id.size() > type.size() && id.compare(0, type.size(), type) == 0 &&
        id[type.size()] == '_') {
      return true;
    }
  }
  return false;
}

const TableDef* Dictionary::Table(int number) const {
  auto it = tables_.find(number);
  return it == tables_.end() ? nullptr : &it->second;
}

}  // namespace isthmus::hl7v2
