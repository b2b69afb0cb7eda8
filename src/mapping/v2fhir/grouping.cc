#include "mapping/v2fhir/grouping.h"

#include <string>

#include "base/str.h"

namespace isthmus::v2fhir {
namespace {

using hl7v2::StructureNode;

bool CanStart(const StructureNode& n, std::string_view name) {
  if (!n.group) return n.name == name;
  for (const StructureNode& c : n.children) {
    if (CanStart(c, name)) return true;
    if (c.min >= 1) return false;
  }
  return false;
}

struct Frame {
  const std::vector<StructureNode>* children;
  int group;
  int index = -1;  // current child
  int count = 0;   // times the current child matched
  std::vector<bool> seen = {};  // children matched in this group instance
};

class Placer {
 public:
  Placer(Grouping* out, const std::vector<StructureNode>& top) : out_(out) {
    stack_.push_back({&top, 0});
  }

  void Place(std::string_view name) {
    for (int f = static_cast<int>(stack_.size()) - 1; f >= 0; --f) {
      if (TryFrame(f, name)) return;
    }
    out_->segments.push_back({stack_.back().group, nullptr});
  }

 private:
  bool TryFrame(int f, std::string_view name) {
    Frame& frame = stack_[f];
    const auto& children = *frame.children;
    if (frame.seen.size() != children.size()) frame.seen.assign(children.size(), false);
    // A required segment that was skipped in this group instance and comes late (OBR after the
    // ORC's PRT and an OBX) belongs here, not to a new instance of the group.
    for (int j = 0; j < frame.index; ++j) {
      const StructureNode& child = children[j];
      if (child.group || child.min < 1 || frame.seen[j] || child.name != name) continue;
      frame.seen[j] = true;
      frame.index = j;  // what follows it (NTE, TQ1, OBX) continues from its place
      frame.count = 1;
      stack_.resize(f + 1);
      out_->segments.push_back({stack_[f].group, &child});
      return true;
    }
    for (int j = frame.index < 0 ? 0 : frame.index; j < static_cast<int>(children.size()); ++j) {
      const StructureNode& child = children[j];
      bool current = j == frame.index;
      if (current && child.max == 1) continue;
      if (!CanStart(child, name)) continue;
      stack_.resize(f + 1);
      Frame& fr = stack_[f];
      fr.count = current ? fr.count + 1 : 1;
      fr.index = j;
      if (fr.seen.size() != children.size()) fr.seen.assign(children.size(), false);
      fr.seen[j] = true;
      if (!child.group) {
        out_->segments.push_back({fr.group, &child});
        return true;
      }
      int g = static_cast<int>(out_->groups.size());
      out_->groups.push_back({&child, fr.group, out_->groups[fr.group].depth + 1});
      stack_.push_back({&child.children, g});
      return TryFrame(f + 1, name);  // CanStart guarantees a place inside
    }
    return false;
  }

  Grouping* out_;
  std::vector<Frame> stack_;
};

}  // namespace

void GroupSegments(const hl7v2::Message& message, const hl7v2::MessageStructureDef* structure,
                   Grouping* out) {
  out->groups.clear();
  out->segments.clear();
  out->groups.push_back({});
  if (structure == nullptr) {
    for (size_t i = 0; i < message.segment_count(); ++i) out->segments.push_back({0, nullptr});
    return;
  }
  Placer placer(out, structure->nodes);
  for (size_t i = 0; i < message.segment_count(); ++i) placer.Place(message.segment(i).name());
}

std::string Grouping::PathOf(const hl7v2::Message& m, size_t i) const {
  std::vector<std::string_view> names;
  for (int g = segments[i].group; g > 0; g = groups[g].parent) names.push_back(groups[g].node->name);
  std::string out;
  for (auto it = names.rbegin(); it != names.rend(); ++it) base::StrAppend(&out, *it, ".");
  out.append(m.segment(i).name());
  return out;
}

}  // namespace isthmus::v2fhir
