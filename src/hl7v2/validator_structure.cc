// Message-structure matching: compiles each MessageStructureDef into a flat node table with the
// set of segments that can start each node, then walks the message's segments with a stack of
// open groups (greedy, like the reference implementations: continue the innermost group, else
// move forward in it, else close it and try the enclosing one).
#include <array>
#include <memory>

#include "absl/base/call_once.h"
#include "base/str.h"
#include "hl7v2/validator_internal.h"

namespace isthmus::hl7v2::internal {
namespace {

int AddNode(const StructureNode& n, CompiledStructure& cs) {
  int index = static_cast<int>(cs.nodes.size());
  cs.nodes.emplace_back();
  {
    StructNode& sn = cs.nodes.back();
    sn.name = n.name;
    sn.group = n.group;
    sn.min = n.min;
    sn.max = n.max;
    if (!n.group) {
      sn.key = SegKey(n.name);
      sn.first.push_back(sn.key);
      sn.lead = n.name;
      cs.segments.insert(sn.key);
    }
  }
  if (!n.group) return index;
  std::vector<int> children;
  for (const StructureNode& c : n.children) children.push_back(AddNode(c, cs));
  StructNode& sn = cs.nodes[index];  // re-fetch: AddNode grows the vector
  sn.children = std::move(children);
  // A group starts with any of its leading optional children or its first required one.
  // It is named in reports by its first required segment (else its first one).
  for (int c : sn.children) {
    const StructNode& cn = cs.nodes[c];
    sn.first.insert(sn.first.end(), cn.first.begin(), cn.first.end());
    if (sn.lead.empty() || cn.min > 0) sn.lead = cn.lead;
    if (cn.min > 0) break;
  }
  return index;
}

CompiledStructure CompileStructure(const MessageStructureDef& def) {
  CompiledStructure cs;
  cs.def = &def;
  StructureNode root;
  root.name = def.id;
  root.group = true;
  root.min = root.max = 1;
  root.children = def.nodes;
  AddNode(root, cs);
  return cs;
}

struct Frame {
  int node;
  int ci;  // index into the node's children of the current position
};

class Matcher {
 public:
  Matcher(const CompiledStructure& s, const Message& m, std::vector<Issue>& out)
      : s_(s), m_(m), out_(out), counts_(s.nodes.size(), 0) {}

  // Position of a child of `f` at or after f.ci that can take `key`, or -1.
  int FindChild(const Frame& f, uint32_t key) const {
    const StructNode& n = s_.nodes[f.node];
    for (int j = f.ci; j < static_cast<int>(n.children.size()); ++j) {
      const StructNode& c = s_.nodes[n.children[j]];
      if (j == f.ci && c.max != 0 && counts_[n.children[j]] >= c.max) continue;
      for (uint32_t k : c.first) {
        if (k == key) return j;
      }
    }
    return -1;
  }

  // Reports required children of `f` from `from` (inclusive) to `to` (exclusive) never seen.
  void ReportMissing(const Frame& f, int from, int to, std::string_view before) {
    const StructNode& n = s_.nodes[f.node];
    for (int k = from; k < to; ++k) {
      int c = n.children[k];
      const StructNode& cn = s_.nodes[c];
      if (counts_[c] >= cn.min) continue;
      Issue issue;
      issue.severity = Severity::kError;
      issue.code = ErrorCode::kSegmentSequenceError;
      issue.location.segment = cn.lead;
      std::string where = before.empty() ? std::string(" at the end of the message")
                                         : base::StrCat(" before ", before);
      if (cn.group) {
        issue.message = base::StrCat("required group ", cn.name, " (starting with ", cn.lead,
                                     ") of ", s_.def->id, " is missing", where);
      } else {
        issue.message = base::StrCat("required segment ", cn.name, " of ", s_.def->id,
                                     " is missing", where);
      }
      out_.push_back(std::move(issue));
    }
  }

  // Moves `f` to child j and counts one more occurrence of it.
  void Enter(Frame& f, int j, std::string_view before) {
    const StructNode& n = s_.nodes[f.node];
    ReportMissing(f, f.ci, j, before);
    f.ci = j;
    ++counts_[n.children[j]];
  }

  void Close(const Frame& f, std::string_view before) {
    ReportMissing(f, f.ci, static_cast<int>(s_.nodes[f.node].children.size()), before);
  }

  void Push(int node) {
    for (int c : s_.nodes[node].children) counts_[c] = 0;
    stack_.push_back(Frame{node, 0});
  }

  void Run(const StructureOptions& opts) {
    Push(0);
    counts_[0] = 1;
    for (size_t i = 0; i < m_.segment_count(); ++i) {
      SegmentView seg = m_.segment(i);
      std::string_view name = seg.name();
      uint32_t key = SegKey(name);
      bool z = !name.empty() && name[0] == 'Z';
      if (opts.forbidden != nullptr && opts.forbidden->contains(key)) continue;  // reported
      if (z && !s_.segments.contains(key)) {
        if (opts.forbid_z_segments) {
          Issue issue;
          issue.severity = Severity::kError;
          issue.code = ErrorCode::kSegmentSequenceError;
          issue.location.segment = std::string(name);
          issue.location.segment_index = seg.occurrence();
          issue.message = base::StrCat("Z-segment ", name, " is not allowed by profile ",
                                       opts.profile_name);
          out_.push_back(std::move(issue));
        }
        continue;
      }
      bool placed = false;
      for (int d = static_cast<int>(stack_.size()) - 1; d >= 0 && !placed; --d) {
        int j = FindChild(stack_[d], key);
        if (j < 0) continue;
        while (static_cast<int>(stack_.size()) > d + 1) {
          Close(stack_.back(), name);
          stack_.pop_back();
        }
        Enter(stack_.back(), j, name);
        int node = s_.nodes[stack_.back().node].children[j];
        while (s_.nodes[node].group) {
          Push(node);
          int k = FindChild(stack_.back(), key);
          if (k < 0) break;  // cannot happen: `first` says the group starts with `key`
          Enter(stack_.back(), k, name);
          node = s_.nodes[node].children[k];
        }
        placed = true;
      }
      if (!placed) Unexpected(seg, name, key);
    }
    while (!stack_.empty()) {
      Close(stack_.back(), "");
      stack_.pop_back();
    }
  }

  void Unexpected(const SegmentView& seg, std::string_view name, uint32_t key) {
    Issue issue;
    issue.severity = Severity::kError;
    issue.code = ErrorCode::kSegmentSequenceError;
    issue.location.segment = std::string(name);
    issue.location.segment_index = seg.occurrence();
    const Frame& top = stack_.back();
    const StructNode& n = s_.nodes[top.node];
    bool repeated = top.ci < static_cast<int>(n.children.size()) &&
                    s_.nodes[n.children[top.ci]].key == key;
    if (!s_.segments.contains(key)) {
      issue.message = base::StrCat("segment ", name, " is not part of message structure ",
                                   s_.def->id);
    } else if (repeated) {
      issue.message = base::StrCat("segment ", name, " repeats more often than ", s_.def->id,
                                   " allows here");
    } else {
      issue.message = base::StrCat("segment ", name, " is out of order for message structure ",
                                   s_.def->id);
    }
    out_.push_back(std::move(issue));
  }

 private:
  const CompiledStructure& s_;
  const Message& m_;
  std::vector<Issue>& out_;
  std::vector<int> counts_;  // occurrences of each node in its parent's current occurrence
  std::vector<Frame> stack_;
};

std::unique_ptr<CompiledVersion> Compile(const Dictionary& dict) {
  auto v = std::make_unique<CompiledVersion>();
  v->dict = &dict;
  std::string_view ver = dict.version();
  v->v27_or_later = !(ver.size() >= 3 && ver[0] == '2' && ver[1] == '.' && ver[2] < '7' &&
                      (ver.size() == 3 || ver[3] == '.'));
  dict.ForEachSegment([&](const SegmentDef& def) {
    v->segments.try_emplace(SegKey(def.name), CompileSegment(dict, def));
  });
  dict.ForEachStructure([&](const MessageStructureDef& def) {
    v->structures.try_emplace(&def, CompileStructure(def));
  });
  return v;
}

}  // namespace

const CompiledVersion& CompiledFor(const Dictionary& dict) {
  struct Slot {
    absl::once_flag once;
    std::unique_ptr<CompiledVersion> compiled;
  };
  // Never destroyed, so compiled rules outlive every Validator.
  static std::array<Slot, 32>* const slots = std::make_unique<std::array<Slot, 32>>().release();
  static const std::vector<std::string_view>* const known =
      std::make_unique<std::vector<std::string_view>>(Dictionary::KnownVersions()).release();
  size_t i = 0;
  while (i < known->size() && (*known)[i] != dict.version()) ++i;
  Slot& slot = (*slots)[i];
  absl::call_once(slot.once, [&] { slot.compiled = Compile(dict); });
  return *slot.compiled;
}

void MatchStructure(const CompiledStructure& s, const Message& m, const StructureOptions& opts,
                    std::vector<Issue>& out) {
  Matcher(s, m, out).Run(opts);
}

}  // namespace isthmus::hl7v2::internal
