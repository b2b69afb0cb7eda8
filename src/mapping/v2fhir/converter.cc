#include "mapping/v2fhir/converter.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "base/str.h"
#include "fhir/datetime.h"
#include "fhir/element_tree.h"
#include "fhir/ids.h"
#include "fhir/strings.h"
#include "absl/container/flat_hash_set.h"
#include "hl7v2/dictionary.h"
#include "mapping/v2fhir/grouping.h"
#include "mapping/v2fhir/hooks.h"
#include "mapping/v2fhir/loader.h"

namespace isthmus::v2fhir {

using fhir::Tree;
using hl7v2::NthPart;
using hl7v2::PartCount;
using K = Tree::Kind;

namespace {

// A value at some depth of a field: level 0 = the field (repetitions), 1 = a repetition
// (components), 2 = a component (subcomponents), 3 = a subcomponent.
struct Val {
  std::string_view raw;
  int level = 0;
};

// A FHIR code has no leading, trailing or repeated whitespace (`[^\s]+(\s[^\s]+)*`): `s`
// trimmed, with each run of spaces and tabs inside collapsed to one space. A view of `s` when
// nothing changes, else of `*buf`.
std::string_view CodeForm(std::string_view s, std::string* buf) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  bool clean = true;
  for (size_t i = 0; i < s.size() && clean; ++i) {
    clean = !space(s[i]) || (s[i] == ' ' && !space(s[i + 1]));
  }
  if (clean) return s;
  buf->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (!space(s[i])) {
      buf->push_back(s[i]);
    } else if (!space(s[i + 1])) {
      buf->push_back(' ');
    }
  }
  return *buf;
}

// An ISO OID (`0`, `1` or `2`, then dot-separated numbers without leading zeros).
bool IsOid(std::string_view s) {
  if (s.size() < 3 || s[0] < '0' || s[0] > '2' || s[1] != '.') return false;
  size_t i = 2;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || (s[start] == '0' && i - start > 1)) return false;
    if (i == s.size()) return true;
    if (s[i] != '.') return false;
    ++i;
  }
  return false;
}

// 8-4-4-4-12 hexadecimal digits.
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

struct Instance {
  std::string_view type;
  std::string_view id;
  Tree::NodeId node;
  int group;
  size_t segment;
  std::string_view label;  // the making entry's `label` ("" = none)
  uint32_t touched = 0;    // when an entry last made or merged into it (`merge: last`)
  bool dropped = false;  // by a hook: no references to or from it, no more merges into it
};

struct Applied {
  const MessageEntry* entry;
  int instance;
  int group;
};

// A resource a datatype map made (Practitioner from an XCN): its key (type | map | HL7 value,
// in the tree's arena) and id.
struct Dependent {
  std::string_view key;
  std::string_view id;
  Tree::NodeId node;
};

// A resource an `as` rule named while its segment map ran for one segment, for message entries
// with `into: SEG.NAME` (IN2 writing into the employer Organization its IN1 made).
struct Exported {
  const SegmentMap* map;
  int slot;
  int group;  // the segment's group instance
  Tree::NodeId node;
  bool made_before;  // the resource existed before that segment: later segments only fill it
};

struct Recorded {
  Tree::NodeId node;
  std::string source;
  std::string rules;
};

// Where the value being mapped came from, for --explain and diagnostics.
struct Loc {
  std::string_view segment;
  int occurrence = 1;
  int field = 0, repetition = 0, component = 0, subcomponent = 0;
  std::string ToString() const {
    hl7v2::Path p;
    p.segment = std::string(segment);
    p.segment_index = occurrence > 1 ? occurrence : 0;
    p.field = field;
    p.repetition = repetition > 1 ? repetition : 0;
    p.component = component;
    p.subcomponent = subcomponent;
    return p.ToString();
  }
};

}  // namespace

struct Workspace::State {
  Tree tree;
  Grouping grouping;
  std::vector<Instance> instances;
  std::vector<Applied> applied;
  std::vector<Dependent> dependents;  // resources made by datatype maps (`resource:`)
  std::vector<Exported> exported;     // resources `as` rules named, per segment
  std::vector<bool> consumed;
  std::vector<const Rule*> rule_stack;
  std::vector<Recorded> recorded;
  std::string scratch, key, id;
  std::string bundle_id;  // the Bundle's id, for references `to: Bundle`
  // Lua hooks: their states, and what they removed (nodes not written) and dropped
  // ("Type/id" of dropped resources: references to them are not written either).
  std::unique_ptr<HookRunner> hooks;
  absl::flat_hash_set<Tree::NodeId> hidden;
  absl::flat_hash_set<std::string> dropped;
  // When hooks removed something: the tree written instead, without it, and old -> new nodes.
  Tree out;
  std::vector<Tree::NodeId> copied;
};

Workspace::Workspace() : state_(std::make_unique<State>()) {}
Workspace::~Workspace() = default;

namespace {

class Run final : public HookHost {
 public:
  Run(const MapSet& maps, const hl7v2::Message& m, const ConvertOptions& o, Workspace::State& s,
      ConvertResult* r)
      : maps_(maps), m_(m), o_(o), s_(s), t_(s.tree), r_(r) {
    const hl7v2::Delimiters& d = m.delimiters();
    seps_[0] = d.repetition;
    seps_[1] = d.component;
    seps_[2] = d.subcomponent;
  }

  absl::Status Go();

  // HookHost (hooks.h).
  bool HookGet(uint32_t res, std::string_view path, HookValue* out, std::string* error) override;
  bool HookCount(uint32_t res, std::string_view path, int* out, std::string* error) override;
  bool HookSet(uint32_t res, std::string_view path, const HookValue& v, std::string_view where,
               std::string* error) override;
  bool HookRemove(uint32_t res, std::string_view path, std::string* error) override;
  void HookDrop(uint32_t res) override;
  void HookResources(std::string_view type, std::vector<uint32_t>* out) override;
  std::string_view HookType(uint32_t res) override {
    return t_.value(t_.FindMember(res, "resourceType"));
  }
  std::string_view HookId(uint32_t res) override { return t_.value(t_.FindMember(res, "id")); }

 private:
  Val Child(Val v, int n) const {
    if (v.level >= 3) return n == 1 ? Val{v.raw, 3} : Val{{}, 3};
    return {Part(v.raw, seps_[v.level], n), v.level + 1};
  }
  // Child(v, n) for every n at once, for a value many rules read (a datatype map's input).
  struct Split {
    static constexpr int kMax = 32;
    struct Part {  // trivial, so that the array is not zeroed on every split
      const char* data;
      size_t size;
    };
    Val value;
    Part parts[kMax];
    int count = 0;        // parts found, up to kMax
    bool more = false;    // parts beyond kMax exist (Child() is used for them)
  };
  void SplitAll(Val v, Split* out) const {
    out->value = v;
    out->count = 0;
    out->more = false;
    if (v.level >= 3) {
      out->parts[0] = {v.raw.data(), v.raw.size()};
      out->count = 1;
      return;
    }
    char sep = seps_[v.level];
    if (v.raw.empty()) return;
    if (sep == '\0') {
      out->parts[0] = {v.raw.data(), v.raw.size()};
      out->count = 1;
      return;
    }
    const char* p = v.raw.data();
    const char* end = p + v.raw.size();
    const char* start = p;
    for (; p != end; ++p) {
      if (*p != sep) continue;
      if (out->count == Split::kMax) {
        out->more = true;
        return;
      }
      out->parts[out->count++] = {start, static_cast<size_t>(p - start)};
      start = p + 1;
    }
    if (out->count == Split::kMax) {
      out->more = true;
      return;
    }
    out->parts[out->count++] = {start, static_cast<size_t>(end - start)};
  }
  Val Child(const Split& s, int n) const {
    if (n < 1) return Child(s.value, n);
    if (n <= s.count) {
      return {std::string_view(s.parts[n - 1].data, s.parts[n - 1].size),
              s.value.level >= 3 ? 3 : s.value.level + 1};
    }
    if (s.more) return Child(s.value, n);
    return {{}, s.value.level >= 3 ? 3 : s.value.level + 1};
  }
  // The first `sep` in [p, end), or end: a loop for short values, memchr for long ones.
  static const char* Find(const char* p, const char* end, char sep) {
    if (end - p > 24) {
      const void* hit = std::memchr(p, sep, static_cast<size_t>(end - p));
      return hit == nullptr ? end : static_cast<const char*>(hit);
    }
    while (p != end && *p != sep) ++p;
    return p;
  }
  // hl7v2::NthPart inlined (most values are short: a loop beats a memchr call per part).
  static std::string_view Part(std::string_view s, char sep, int index) {
    if (index < 1) index = 1;
    if (sep == '\0') return index == 1 ? s : std::string_view();
    const char* p = s.data();
    const char* end = p + s.size();
    for (int i = 1; i < index; ++i) {
      p = Find(p, end, sep);
      if (p == end) return {};
      ++p;
    }
    const char* q = Find(p, end, sep);
    return std::string_view(p, static_cast<size_t>(q - p));
  }
  // Every non-empty leaf (component, subcomponent) of `v` in order, unescaped, joined by `sep`.
  void AppendLeaves(Val v, std::string_view sep, std::string* out) const {
    if (v.raw.empty()) return;
    if (v.level >= 3 || v.raw.find(seps_[v.level]) == std::string_view::npos) {
      if (v.level < 3 && v.level > 0) {
        // No separator at this level: still look deeper (a component with subcomponents).
        bool deeper = false;
        for (int l = v.level + 1; l < 3; ++l) deeper |= v.raw.find(seps_[l]) != std::string_view::npos;
        if (deeper) return AppendLeaves(Val{v.raw, v.level + 1}, sep, out);
      } else if (v.level == 0) {
        return AppendLeaves(Child(v, 1), sep, out);
      }
      std::string scratch;
      std::string_view text = Text(v.raw, &scratch);
      if (text.empty() || text == "\"\"") return;
      if (!out->empty()) out->append(sep);
      out->append(text);
      return;
    }
    int n = PartCount(v.raw, seps_[v.level]);
    for (int i = 1; i <= n; ++i) AppendLeaves(Child(v, i), sep, out);
  }
  // True when no byte of `raw` is the escape character or >= 0x80 (nothing to decode): words of
  // 8 bytes (4 for short values) tested at once, the last word overlapping the one before it.
  bool Plain(std::string_view raw) const {
    const unsigned char esc = static_cast<unsigned char>(m_.delimiters().escape);
    const char* p = raw.data();
    const size_t n = raw.size();
    // Any byte >= 0x80, or equal to the escape character (the "has a zero byte" bit trick on
    // x ^ esc, exact as to whether one exists)?
    auto hit8 = [esc](uint64_t x) {
      constexpr uint64_t k01 = 0x0101010101010101ULL, k80 = 0x8080808080808080ULL;
      const uint64_t e = x ^ (k01 * esc);
      return ((x | ((e - k01) & ~e)) & k80) != 0;
    };
    auto hit4 = [esc](uint32_t x) {
      constexpr uint32_t k01 = 0x01010101U, k80 = 0x80808080U;
      const uint32_t e = x ^ (k01 * esc);
      return ((x | ((e - k01) & ~e)) & k80) != 0;
    };
    if (n >= 8) {
      uint64_t x;
      size_t i = 0;
      for (; i + 8 <= n; i += 8) {
        std::memcpy(&x, p + i, 8);
        if (hit8(x)) return false;
      }
      if (i == n) return true;
      std::memcpy(&x, p + n - 8, 8);
      return !hit8(x);
    }
    if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      return !hit4(a) && !hit4(b);
    }
    for (size_t i = 0; i < n; ++i) {
      const unsigned char c = static_cast<unsigned char>(p[i]);
      if (c == esc || c >= 0x80) return false;
    }
    return true;
  }
  // Unescaped UTF-8 text of a raw value (a view of the message when nothing needs decoding).
  std::string_view Text(std::string_view raw, std::string* scratch) const {
    if (Plain(raw)) return raw;
    *scratch = m_.DecodeText(raw);
    // FHIR strings allow no whitespace but space, CR, LF and TAB (no-break spaces are common in
    // text pasted from word processors).
    fhir::ReplaceDisallowedWhitespace(scratch);
    return *scratch;
  }

  // Sets a string from Text(): copied into the tree only when it was decoded into `scratch`; a
  // view of the message or of the maps (both outlive the tree's use) is not copied.
  void SetText(Tree::NodeId n, std::string_view text, const std::string& scratch) {
    if (!scratch.empty() && text.data() == scratch.data()) {
      t_.SetString(n, text);
    } else {
      t_.SetStringRef(n, text);
    }
  }

  void Warn(std::string location, std::string message) {
    r_->diagnostics.push_back({Diagnostic::Severity::kWarning, std::move(location), std::move(message)});
  }

  const MessageMap* ChooseMap(std::string* why) const;
  bool Matches(const MessageEntry& e, size_t seg) const;
  std::optional<hl7v2::SegmentView> SegmentInScope(std::string_view name, int group,
                                                    size_t self) const;
  // The first instance of `type` in `group`, else in the enclosing groups; with `label`, only
  // one that carries it.
  int Nearest(std::string_view type, int group, const std::string* label = nullptr) const;
  // `merge: last`: of the instances in scope (the segment's group, else the nearest enclosing
  // group with any) whose type some `merge: last` entry for this segment name makes, the one an
  // entry made or merged into most recently; -1 when none.
  int LastTouched(std::string_view segment, int group) const;
  void ApplyEntry(const MessageEntry& e, size_t seg);
  std::string_view SegmentOperand(const Operand& op, hl7v2::SegmentView seg, int group,
                                  int field, int rep, std::string* scratch) const {
    return SegmentValue(op.segment, op.parts, op.repetition, op.self, seg, group, field, rep,
                        scratch);
  }
  // The value SEG-F.C.S (`parts`) names, read in `seg` when `self` (the loader bound the operand
  // to the scope's segment) or `segment` is seg's name, else in the nearest such segment in scope.
  std::string_view SegmentValue(std::string_view segment, const std::vector<int>& parts,
                                int repetition, bool self, hl7v2::SegmentView seg, int group,
                                int field, int rep, std::string* scratch) const;
  void RunSegmentMap(const SegmentMap& map, hl7v2::SegmentView seg, int group, Tree::NodeId node);
  // The rules of a segment map, or the `rules` of a rule for one repetition of its field
  // (`outer`: that repetition, its field and repetition number; nullptr at the top).
  struct Outer {
    Val value;
    Loc loc;
  };
  void RunRules(const std::vector<Rule>& rules, hl7v2::SegmentView seg, int group,
                Tree::NodeId node, const Outer* outer);
  void Apply(const Rule& rule, Val v, Tree::NodeId base, const Vocabulary* inherited, Loc loc);
  void RunDatatype(const DatatypeMap& dt, Val v, Tree::NodeId node, const Vocabulary* vocab,
                   const Loc& loc);
  void WriteLeaf(const Rule& rule, Val v, Tree::NodeId base, const Vocabulary* vocab,
                 const Loc& loc);
  Tree::NodeId Resolve(Tree::NodeId base, const ElementPath& p, K leaf);
  bool Has(Tree::NodeId base, const ElementPath& p) const;
  void Record(Tree::NodeId node, const Loc& loc) {
    if (o_.explain) RecordExplain(node, loc);
  }
  void RecordExplain(Tree::NodeId node, const Loc& loc);
  // The rules being applied, outermost first: read only by --explain, so kept only then.
  void PushRule(const Rule* rule) {
    if (o_.explain) s_.rule_stack.push_back(rule);
  }
  void PopRule() {
    if (o_.explain) s_.rule_stack.pop_back();
  }
  // `unknown_prefix`: the base for a name CodingSystem does not know (empty: the vocabulary's).
  std::string SystemUri(std::string_view name, std::string_view unknown_prefix = {}) const;
  void WriteReferences();
  void WriteOutcome(const MessageMap& map);
  // Hooks.
  absl::Status RunHook(const Hook& hook, Tree::NodeId res, std::string_view segment,
                       int occurrence);
  bool Live(Tree::NodeId n) const { return t_.valued(n) && !s_.hidden.contains(n); }
  // An element of a hook's path: found (create false: kNone when absent) or made.
  Tree::NodeId HookResolve(Tree::NodeId res, const ElementPath& p, bool create, K leaf,
                           std::string* error);
  void Unhide(Tree::NodeId n);
  bool Fixed(const ElementPath& p, std::string* error) const;
  // The tree without what hooks removed or dropped (s_.out), for writing.
  Tree::NodeId CopyLive(Tree::NodeId n, Tree::NodeId parent);
  // Site ConceptMaps: adds the target codings of the codings of the CodeableConcept `node`.
  void Translate(Tree::NodeId node, const ConceptMap* named, const Loc& loc);

  const MapSet& maps_;
  const hl7v2::Message& m_;
  const ConvertOptions& o_;
  Workspace::State& s_;
  Tree& t_;
  ConvertResult* r_;
  char seps_[3];
  fhir::BundleBuilder* bundle_ = nullptr;
  int owner_ = -1;  // the instance whose segment map is running (type: segment-resource)
  size_t cur_segment_ = 0;  // the segment whose entry is being applied
  uint32_t touches_ = 0;    // counts entries applied to instances (Instance::touched)
  // `if_absent` rules whose conditions held: applied once every segment was converted, each
  // only when its element is still absent then (a default, whichever segment came first).
  struct Deferred {
    const Rule* rule;
    Val v;
    Tree::NodeId node;
    const Vocabulary* vocab;
    Loc loc;
    int owner;
    size_t segment;
  };
  std::vector<Deferred> deferred_;
  // Resources the `as:` rules of the segment map being run made (Rule::as_slot), for `into:`.
  Tree::NodeId slots_[Rule::kMaxSlots];
  // Per slot: the resource was made before this segment (found by its key), so `into` rules
  // fill its absent elements only.
  bool slot_made_before_[Rule::kMaxSlots] = {};
  // Filling a resource made before this segment (`into` entries): see RunRules.
  bool fill_only_ = false;
  Tree::NodeId fill_mark_ = 0;  // the first node made by the segment being converted
  // The `as` slot of the rule whose datatype map is running, until a `resource` rule of the
  // map (at any depth) takes it; -1 when none.
  int pending_as_ = -1;
  std::string_view control_id_;
  const MessageMap* map_ = nullptr;
  const Hook* hook_ = nullptr;  // the hook running (for --explain)
  absl::Status hook_error_;     // the first hook failure: the conversion fails
};

const MessageMap* Run::ChooseMap(std::string* why) const {
  std::string_view type = m_.message_type(), trigger = m_.trigger_event();
  if (!o_.type.empty()) {
    size_t caret = o_.type.find('^');
    const MessageMap* mm = caret == std::string::npos
                               ? maps_.FindMessage(o_.type)
                               : maps_.FindEvent(std::string_view(o_.type).substr(0, caret),
                                                 std::string_view(o_.type).substr(caret + 1));
    if (mm == nullptr && caret == std::string::npos) {
      // ADT_A04: no map of that name, so the map converting event ADT^A04.
      size_t underscore = o_.type.find('_');
      if (underscore != std::string::npos) {
        mm = maps_.FindEvent(std::string_view(o_.type).substr(0, underscore),
                             std::string_view(o_.type).substr(underscore + 1));
      }
    }
    if (mm == nullptr) *why = base::StrCat("no message map named '", o_.type, "'");
    return mm;
  }
  if (const MessageMap* mm = maps_.FindEvent(type, trigger)) return mm;
  if (!m_.structure().empty()) {
    if (const MessageMap* mm = maps_.FindMessage(m_.structure())) return mm;
  }
  if (const hl7v2::Dictionary* d = hl7v2::Dictionary::Find(m_.version())) {
    if (const hl7v2::MessageStructureDef* s = d->StructureFor(type, trigger)) {
      if (const MessageMap* mm = maps_.FindMessage(s->id)) return mm;
    }
  }
  *why = base::StrCat("no message map for ", type, "^", trigger,
                      m_.structure().empty() ? "" : base::StrCat(" (structure ", m_.structure(), ")"),
                      "; use --type to choose one");
  return nullptr;
}

bool Run::Matches(const MessageEntry& e, size_t seg) const {
  if (m_.segment(seg).name() != e.segment_path.back()) return false;
  int g = s_.grouping.segments[seg].group;
  for (size_t i = e.segment_path.size() - 1; i-- > 0;) {
    if (e.segment_path[i].empty()) return g == 0;  // ".NTE": a segment of the message itself
    if (g <= 0 || s_.grouping.groups[g].node->name != e.segment_path[i]) return false;
    g = s_.grouping.groups[g].parent;
  }
  return true;
}

// The first segment `name` in group `group` or its ancestors' subtrees (nearest first).
std::optional<hl7v2::SegmentView> Run::SegmentInScope(std::string_view name, int group,
                                                       size_t self) const {
  if (m_.segment(self).name() == name) return m_.segment(self);
  for (int g = group; g >= 0; g = s_.grouping.groups[g].parent) {
    for (size_t i = 0; i < m_.segment_count(); ++i) {
      if (m_.segment(i).name() == name && s_.grouping.Within(s_.grouping.segments[i].group, g)) {
        return m_.segment(i);
      }
    }
  }
  return std::nullopt;
}

int Run::Nearest(std::string_view type, int group, const std::string* label) const {
  for (int g = group; g >= 0; g = s_.grouping.groups[g].parent) {
    for (size_t i = 0; i < s_.instances.size(); ++i) {
      if (s_.instances[i].type == type && !s_.instances[i].dropped &&
          (label == nullptr || s_.instances[i].label == *label) &&
          s_.grouping.Within(s_.instances[i].group, g)) {
        return static_cast<int>(i);
      }
    }
  }
  return -1;
}

int Run::LastTouched(std::string_view segment, int group) const {
  auto candidate = [&](std::string_view type) {
    for (const MessageEntry& o : map_->entries) {
      if (o.merge_last && o.resource == type && o.segment_path.back() == segment) return true;
    }
    return false;
  };
  for (int g = group; g >= 0; g = s_.grouping.groups[g].parent) {
    int best = -1;
    for (size_t i = 0; i < s_.instances.size(); ++i) {
      const Instance& in = s_.instances[i];
      if (in.dropped || !s_.grouping.Within(in.group, g)) continue;
      if (best >= 0 && in.touched <= s_.instances[best].touched) continue;
      if (candidate(in.type)) best = static_cast<int>(i);
    }
    if (best >= 0) return best;
  }
  return -1;
}

std::string_view Run::SegmentValue(std::string_view segment, const std::vector<int>& parts,
                                   int repetition, bool self, hl7v2::SegmentView seg, int group,
                                   int field, int rep, std::string* scratch) const {
  if (parts.empty()) return {};
  self = self || segment == seg.name();
  std::optional<hl7v2::SegmentView> sv = seg;
  if (!self) sv = SegmentInScope(segment, group, seg.index());
  if (!sv) return {};
  Val v{sv->field(static_cast<size_t>(parts[0])), 0};
  v = Child(v, repetition > 0                           ? repetition
               : self && parts[0] == field && rep > 0 ? rep
                                                      : 1);
  for (size_t i = 1; i < parts.size(); ++i) v = Child(v, parts[i]);
  return Text(v.raw, scratch);
}

Tree::NodeId Run::Resolve(Tree::NodeId base, const ElementPath& p, K leaf) {
  Tree::NodeId n = base;
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PathStep& st = p.steps[i];
    K k = i + 1 == p.steps.size() ? leaf : K::kObject;
    switch (st.mode) {
      case PathStep::Mode::kMember: n = t_.Member(n, st.name, k); break;
      case PathStep::Mode::kAppend: n = t_.Append(t_.Member(n, st.name, K::kArray), k); break;
      case PathStep::Mode::kIndex:
        n = t_.Element(t_.Member(n, st.name, K::kArray), static_cast<size_t>(st.index), k);
        break;
      case PathStep::Mode::kLast: {
        Tree::NodeId arr = t_.Member(n, st.name, K::kArray);
        size_t count = t_.child_count(arr);
        n = t_.Element(arr, count == 0 ? 0 : count - 1, k);
        break;
      }
      case PathStep::Mode::kWhere:
        n = t_.ElementWhere(t_.Member(n, st.name, K::kArray), st.where_key, st.where_value);
        break;
      case PathStep::Mode::kAppendWhere:
        n = t_.Append(t_.Member(n, st.name, K::kArray), K::kObject);
        t_.SetString(t_.Member(n, st.where_key, K::kString), st.where_value);
        break;
    }
  }
  return n;
}

// Whether the element (plain member steps: the loader checks) exists under base.
bool Run::Has(Tree::NodeId base, const ElementPath& p) const {
  Tree::NodeId n = base;
  for (const PathStep& st : p.steps) {
    n = t_.FindMember(n, st.name);
    if (n == Tree::kNone) return false;
  }
  return t_.valued(n);  // a node a failed conversion created holds nothing
}

void Run::RecordExplain(Tree::NodeId node, const Loc& loc) {
  std::string rules;
  for (const Rule* r : s_.rule_stack) {
    if (!rules.empty()) rules += " > ";
    rules += r->src.ToString();
  }
  s_.recorded.push_back({node, loc.segment.empty() ? std::string("(constant)") : loc.ToString(),
                         std::move(rules)});
}

std::string Run::SystemUri(std::string_view name, std::string_view unknown_prefix) const {
  if (name.empty()) return {};
  if (maps_.coding_systems != nullptr) {
    if (const Concept* c = maps_.coding_systems->Find(name)) return c->code;
  }
  if (name.size() == 7 && name.starts_with("HL7")) {
    return base::StrCat("http://terminology.hl7.org/CodeSystem/v2-", name.substr(3));
  }
  if (name.find(':') != std::string_view::npos) return std::string(name);
  if (unknown_prefix.empty() && maps_.coding_systems != nullptr) {
    unknown_prefix = maps_.coding_systems->unknown_prefix;
  }
  if (unknown_prefix.empty()) return {};
  std::string uri = base::StrCat(unknown_prefix, name);
  for (size_t i = unknown_prefix.size(); i < uri.size(); ++i) {
    if (static_cast<unsigned char>(uri[i]) <= ' ') uri[i] = '-';  // a uri has no blanks
  }
  return uri;
}

bool NormalizeNumber(std::string_view s, bool integer, std::string* out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  out->clear();
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    if (s.front() == '-') out->push_back('-');
    s.remove_prefix(1);
  }
  size_t i = 0, int_digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++int_digits;
  std::string_view ip = s.substr(0, i);
  while (ip.size() > 1 && ip.front() == '0') ip.remove_prefix(1);
  std::string_view frac;
  if (i < s.size() && s[i] == '.') {
    if (integer) return false;
    size_t f = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    frac = s.substr(f, i - f);
  }
  if (i != s.size() || (int_digits == 0 && frac.empty())) return false;
  out->append(ip.empty() ? std::string_view("0") : ip);
  if (!frac.empty()) {
    out->push_back('.');
    out->append(frac);
  }
  return true;
}

void Run::WriteLeaf(const Rule& rule, Val v, Tree::NodeId base, const Vocabulary* vocab,
                    const Loc& loc) {
  std::string scratch;
  auto bad = [&](std::string_view what, std::string_view text) {
    Warn(loc.ToString(), base::StrCat(what, " '", text, "' left out (", rule.src.ToString(), ")"));
  };
  switch (rule.conversion) {
    case Conversion::kString:
    case Conversion::kUri: {
      if (rule.join) {
        std::string joined;
        AppendLeaves(v, *rule.join, &joined);
        if (joined.empty()) return;
        Tree::NodeId n = Resolve(base, rule.element, K::kString);
        t_.SetString(n, joined);
        Record(n, loc);
        return;
      }
      std::string_view text = Text(v.raw, &scratch);
      if (text.empty()) return;
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      if (!rule.prefix.empty()) {
        // A URI has no whitespace: "IA PHIMS Stage" -> <prefix>IA-PHIMS-Stage.
        std::string uri = base::StrCat(rule.prefix, text);
        for (size_t i = rule.prefix.size(); i < uri.size(); ++i) {
          if (static_cast<unsigned char>(uri[i]) <= ' ') uri[i] = '-';  // a uri has no blanks
        }
        t_.SetString(n, uri);
        Record(n, loc);
        return;
      }
      SetText(n, text, scratch);
      Record(n, loc);
      return;
    }
    case Conversion::kBase64: {
      // The whole value as text (components joined as sent), then RFC 4648 base64.
      std::string_view text = Text(v.raw, &scratch);
      if (text.empty()) return;
      static constexpr char kAlphabet[] =
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      std::string out;
      out.reserve((text.size() + 2) / 3 * 4);
      for (size_t i = 0; i < text.size(); i += 3) {
        uint32_t b = static_cast<uint8_t>(text[i]) << 16;
        if (i + 1 < text.size()) b |= static_cast<uint8_t>(text[i + 1]) << 8;
        if (i + 2 < text.size()) b |= static_cast<uint8_t>(text[i + 2]);
        out.push_back(kAlphabet[(b >> 18) & 63]);
        out.push_back(kAlphabet[(b >> 12) & 63]);
        out.push_back(i + 1 < text.size() ? kAlphabet[(b >> 6) & 63] : '=');
        out.push_back(i + 2 < text.size() ? kAlphabet[b & 63] : '=');
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      t_.SetString(n, out);
      Record(n, loc);
      return;
    }
    case Conversion::kBase64Binary: {
      // FHIR base64Binary: groups of four base64 characters (the last may end in '=' or '=='),
      // whitespace allowed between groups. Anything else ("<Base64 encoded>") is not data.
      std::string_view text = Text(v.raw, &scratch);
      if (text.empty()) return;
      size_t in_group = 0, padding = 0;
      bool ok = true, ended = false;
      for (char ch : text) {
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
          ok = ok && in_group == 0;
          continue;
        }
        bool b64 = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                   ch == '+' || ch == '/';
        if (ch == '=') {
          ok = ok && in_group >= 2 && !ended;
          ++padding;
        } else {
          ok = ok && b64 && padding == 0 && !ended;
        }
        if (++in_group == 4) {
          in_group = 0;
          if (padding > 0) ended = true;
          padding = 0;
        }
      }
      if (!ok || in_group != 0) {
        bad("base64Binary", text.size() > 40 ? text.substr(0, 40) : text);
        return;
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      SetText(n, text, scratch);
      Record(n, loc);
      return;
    }
    case Conversion::kCode: {
      std::string form;
      std::string_view code = CodeForm(Text(Child(v, 1).raw, &scratch), &form);
      if (code.empty()) return;
      if (vocab != nullptr) {
        // A code element has a closed value set: an unknown code never passes through.
        if (const Concept* c = vocab->Find(code)) {
          code = c->code;
        } else if (!vocab->fallback.empty()) {
          code = vocab->fallback;
        } else {
          return bad(base::StrCat("code not in vocabulary ", vocab->name, ":"), code);
        }
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      if (!form.empty() && code.data() == form.data()) {
        t_.SetString(n, code);
      } else {
        SetText(n, code, scratch);
      }
      Record(n, loc);
      return;
    }
    case Conversion::kDecimal:
    case Conversion::kInteger: {
      std::string_view text = Text(Child(v, 1).raw, &scratch);
      std::string num;
      if (!NormalizeNumber(text, rule.conversion == Conversion::kInteger, &num)) {
        return bad(rule.conversion == Conversion::kInteger ? "not an integer:" : "not a number:", text);
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kNumber);
      t_.SetNumber(n, num);
      Record(n, loc);
      return;
    }
    case Conversion::kBoolean: {
      std::string_view text = Text(Child(v, 1).raw, &scratch);
      bool b;
      if (text == "Y" || text == "T" || text == "true") {
        b = true;
      } else if (text == "N" || text == "F" || text == "false") {
        b = false;
      } else {
        return bad("not a Y/N indicator:", text);
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kBool);
      t_.SetBool(n, b);
      Record(n, loc);
      return;
    }
    case Conversion::kDateTime:
    case Conversion::kDate:
    case Conversion::kInstant:
    case Conversion::kTime: {
      std::string_view text = Child(v, 1).raw;
      if (text.empty()) return;
      fhir::TimeType tt = rule.conversion == Conversion::kDate      ? fhir::TimeType::kDate
                          : rule.conversion == Conversion::kInstant ? fhir::TimeType::kInstant
                          : rule.conversion == Conversion::kTime    ? fhir::TimeType::kTime
                                                                    : fhir::TimeType::kDateTime;
      std::string out;
      if (absl::Status st = fhir::AppendFhirTime(text, tt, o_.tz, &out); !st.ok()) {
        return bad("not an HL7 date/time:", text);
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      t_.SetString(n, out);
      Record(n, loc);
      return;
    }
    case Conversion::kCoding: {
      const std::vector<int>& c = rule.coding_components;
      std::string s1, s2, s3, form;
      std::string_view code = CodeForm(Text(Child(v, c[0]).raw, &s1), &form);
      if (code.empty()) return;
      std::string_view display = c.size() > 1 ? Text(Child(v, c[1]).raw, &s2) : std::string_view();
      std::string system = c.size() > 2 ? SystemUri(Text(Child(v, c[2]).raw, &s3)) : std::string();
      if (vocab != nullptr) {
        if (const Concept* known = vocab->Find(code)) {
          code = known->code;
          system = known->system.empty() ? vocab->system : known->system;
          if (!known->display.empty()) display = known->display;
        } else if (system.empty() && !vocab->table.empty()) {
          system = base::StrCat("http://terminology.hl7.org/CodeSystem/v2-", vocab->table);
        }
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kObject);
      if (!system.empty()) t_.SetString(t_.Member(n, "system", K::kString), system);
      Tree::NodeId cn = t_.Member(n, "code", K::kString);
      if (!form.empty() && code.data() == form.data()) {
        t_.SetString(cn, code);
      } else {
        SetText(cn, code, s1);
      }
      if (!display.empty()) SetText(t_.Member(n, "display", K::kString), display, s2);
      Record(cn, loc);
      return;
    }
    case Conversion::kCodingSystem: {
      std::string uri = SystemUri(Text(Child(v, 1).raw, &scratch), rule.prefix);
      if (uri.empty()) return;
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      t_.SetString(n, uri);
      Record(n, loc);
      return;
    }
    case Conversion::kHdUri: {
      // components: [namespace, universal id, universal id type] (HD: 1,2,3; EI: 2,3,4).
      const std::vector<int>& c = rule.coding_components;
      std::string s2, s3;
      std::string_view uid = c.size() > 1 ? Text(Child(v, c[1]).raw, &s2) : std::string_view();
      std::string_view kind = c.size() > 2 ? Text(Child(v, c[2]).raw, &s3) : std::string_view();
      std::string uri;
      if (uid.empty()) return;
      // A uri has no whitespace: an id that is not what its type says (an "ISO" id that is a
      // name) gives no uri rather than an invalid one.
      if (kind == "ISO" && IsOid(uid)) {
        uri = base::StrCat("urn:oid:", uid);
      } else if ((kind == "UUID" || kind == "GUID") && IsUuid(uid)) {
        uri = base::StrCat("urn:uuid:", uid);
      } else if (uid.find(':') != std::string_view::npos &&
                 uid.find_first_of(" \t\r\n") == std::string_view::npos) {
        uri = std::string(uid);
      } else {
        return;
      }
      Tree::NodeId n = Resolve(base, rule.element, K::kString);
      t_.SetString(n, uri);
      Record(n, loc);
      return;
    }
    case Conversion::kSegmentResource:
    case Conversion::kScopeResource:
    case Conversion::kNone: return;
  }
}

void Run::RunDatatype(const DatatypeMap& dt, Val v, Tree::NodeId node, const Vocabulary* vocab,
                      const Loc& loc) {
  Split split;  // the rules mostly select components of `v`: split it once
  SplitAll(v, &split);
  for (const Rule& rule : dt.rules) {
    Val c = v;
    for (size_t i = 0; i < rule.select.size(); ++i) {
      c = i == 0 ? Child(split, rule.select[i]) : Child(c, rule.select[i]);
    }
    if (!rule.constant && c.raw.empty()) continue;
    // Where the value came from: built only for the rules that run (most components are empty).
    Loc l = loc;
    for (int n : rule.select) (l.component == 0 ? l.component : l.subcomponent) = n;
    if (rule.when) {
      bool ok = rule.when->Evaluate([&](const Operand& op, std::string* scratch) {
        if (op.parts.empty()) return Text(c.raw, scratch);
        Val x = Child(split, op.parts[0]);
        for (size_t i = 1; i < op.parts.size(); ++i) x = Child(x, op.parts[i]);
        return Text(x.raw, scratch);
      });
      if (!ok) continue;
    }
    if (!rule.if_absent.empty()) {
      deferred_.push_back({&rule, c, node, vocab, l, owner_, cur_segment_});
      continue;
    }
    Apply(rule, c, node, vocab, l);
  }
}

void Run::Apply(const Rule& rule, Val v, Tree::NodeId base, const Vocabulary* inherited, Loc loc) {
  const Vocabulary* vocab = rule.inherit_vocabulary ? inherited : rule.vocabulary;
  PushRule(&rule);
  if (rule.conversion == Conversion::kSegmentResource ||
      rule.conversion == Conversion::kScopeResource) {
    // The resource of the segment map being run, or (with `resource`) the last resource of that
    // type an earlier entry made from this same segment (the Condition of this DG1), or for
    // scope-resource the nearest one in the segment's scope (the Patient of DG1-22's parent).
    int target = owner_;
    if (rule.conversion == Conversion::kScopeResource) {
      target = Nearest(rule.resource, s_.grouping.segments[cur_segment_].group, nullptr);
    } else if (!rule.resource.empty()) {
      target = -1;
      for (size_t i = s_.instances.size(); i-- > 0;) {
        if (s_.instances[i].segment == cur_segment_ &&
            s_.instances[i].type == rule.resource) {
          target = static_cast<int>(i);
          break;
        }
      }
    }
    if (target >= 0) {
      const Instance& owner = s_.instances[target];
      Tree::NodeId rn = t_.Member(Resolve(base, rule.element, K::kObject), "reference", K::kString);
      std::string& text = s_.scratch;
      text.assign(owner.type);
      text.push_back('/');
      text.append(owner.id);
      t_.SetString(rn, text);
      Loc none;
      Record(rn, none);
    }
  } else if (rule.constant) {
    Tree::NodeId n;
    if (rule.conversion == Conversion::kBoolean) {
      n = Resolve(base, rule.element, K::kBool);
      t_.SetBool(n, *rule.constant == "true");
    } else if (rule.conversion == Conversion::kInteger || rule.conversion == Conversion::kDecimal) {
      n = Resolve(base, rule.element, K::kNumber);
      t_.SetNumber(n, *rule.constant);
    } else {
      n = Resolve(base, rule.element, K::kString);
      t_.SetStringRef(n, *rule.constant);
    }
    Loc none;
    Record(n, none);
  } else if (rule.datatype != nullptr && !rule.resource.empty()) {
    // A resource of its own (Practitioner from XCN, Location from PL): id from its HL7 value.
    s_.key.assign(rule.resource);
    // The datatype map's name is part of the key: one PL gives a Location per level.
    s_.key.append("|");
    s_.key.append(rule.datatype->name);
    s_.key.append("|");
    s_.key.append(v.raw);
    // The id is a function of the key, so a key met before (the same XCN in OBX-16 of every
    // OBX) is found without hashing again.
    const Dependent* found = nullptr;
    for (const Dependent& d : s_.dependents) {
      if (d.key == s_.key) {
        found = &d;
        break;
      }
    }
    std::string_view id;
    // `as`: this rule's own name, else the name of the calling rule waiting for the first
    // resource its datatype map makes (RXA-27 -> the Location its PL refers to).
    int slot = rule.as_slot >= 0 ? rule.as_slot : pending_as_;
    pending_as_ = -1;  // the partOf parents the datatype map makes next are not it
    if (found != nullptr) {
      id = found->id;
      if (slot >= 0 && slots_[slot] == Tree::kNone) {
        slots_[slot] = found->node;
        slot_made_before_[slot] = true;
      }
    } else {
      s_.id.clear();
      fhir::AppendDeterministicId(rule.resource, s_.key, &s_.id);
      Tree::NodeId target = bundle_->AddResource(rule.resource, s_.id);
      id = t_.value(t_.FindMember(target, "id"));
      s_.dependents.push_back({t_.Intern(s_.key), id, target});
      if (slot >= 0 && slots_[slot] == Tree::kNone) {
        slots_[slot] = target;
        slot_made_before_[slot] = false;
      }
      RunDatatype(*rule.datatype, v, target, vocab, loc);
    }
    if (rule.no_reference) {
      PopRule();
      return;
    }
    Tree::NodeId ref = Resolve(base, rule.element, K::kObject);
    Tree::NodeId rn = t_.Member(ref, "reference", K::kString);
    std::string& text = s_.scratch;
    text.assign(rule.resource);
    text.push_back('/');
    text.append(id);
    t_.SetString(rn, text);
    Record(rn, loc);
  } else if (rule.datatype != nullptr) {
    Tree::NodeId n = Resolve(base, rule.element, K::kObject);
    // `as` on a rule whose datatype map makes the resource (PL[Reference-Location]): the first
    // `resource` rule the map runs names it.
    if (rule.as_slot >= 0) pending_as_ = rule.as_slot;
    RunDatatype(*rule.datatype, v, n, vocab, loc);
    pending_as_ = -1;
    if (rule.conceptmap != nullptr || !maps_.conceptmaps_by_source.empty()) {
      Translate(n, rule.conceptmap, loc);
    }
  } else {
    WriteLeaf(rule, v, base, vocab, loc);
  }
  PopRule();
}

void Run::RunSegmentMap(const SegmentMap& map, hl7v2::SegmentView seg, int group,
                        Tree::NodeId node) {
  std::fill(std::begin(slots_), std::end(slots_), Tree::kNone);
  pending_as_ = -1;
  fill_mark_ = static_cast<Tree::NodeId>(t_.size());
  RunRules(map.rules, seg, group, node, nullptr);
}

void Run::RunRules(const std::vector<Rule>& rules, hl7v2::SegmentView seg, int group,
                   Tree::NodeId segment_node, const Outer* outer) {
  // Inside a rule's `rules`: `$` and rules without a field read the outer repetition, and the
  // outer field's other components are read in that repetition.
  const int outer_field = outer != nullptr ? outer->loc.field : 0;
  const int outer_rep = outer != nullptr ? std::max(outer->loc.repetition, 1) : 0;
  const std::string_view seg_name = seg.name();
  const int seg_occurrence = seg.occurrence();
  const bool msh = seg_name == "MSH";
  for (const Rule& rule : rules) {
    Tree::NodeId node = segment_node;
    if (rule.into_slot >= 0) {
      node = slots_[rule.into_slot];
      if (node == Tree::kNone) continue;  // the `as` rule named no resource here
    }
    // A resource an earlier segment made (the same insurer, the same place): filled, not added
    // to, so a rule writes only when the first member of its element was absent before this
    // segment (members this segment's rules made, ids from fill_mark_ on, do not count).
    if (outer == nullptr && !rule.element.steps.empty() &&
        (rule.into_slot >= 0 ? slot_made_before_[rule.into_slot] : fill_only_)) {
      Tree::NodeId had = t_.FindMember(node, rule.element.steps[0].name);
      if (had != Tree::kNone && had < fill_mark_) continue;
    }
    Loc loc;
    loc.segment = seg_name;
    loc.occurrence = seg_occurrence;
    if (rule.select.empty()) {
      Val v = outer != nullptr ? outer->value : Val{};
      if (outer != nullptr) loc = outer->loc;
      if (outer != nullptr && !rule.constant && v.raw.empty()) continue;
      if (rule.when && !rule.when->Evaluate([&](const Operand& op, std::string* scratch) {
            if (op.parts.empty()) return Text(v.raw, scratch);
            return SegmentOperand(op, seg, group, outer_field, outer_rep, scratch);
          })) {
        continue;
      }
      if (!rule.if_absent.empty()) {
        deferred_.push_back({&rule, v, node, nullptr, loc, owner_, cur_segment_});
        continue;
      }
      Apply(rule, v, node, nullptr, loc);
      continue;
    }
    int field = rule.select[0];
    std::string_view raw = seg.field(static_cast<size_t>(field));
    if (raw.empty()) continue;
    loc.field = field;
    // MSH-1 and MSH-2 are not split.
    bool whole = msh && field <= 2;
    int reps = (rule.each_repetition || rule.join_repetitions) && !whole ? PartCount(raw, seps_[0]) : 1;
    if (rule.last_repetition > 0 && rule.last_repetition < reps) reps = rule.last_repetition;
    std::string joined;  // repeat: join
    for (int rep = rule.first_repetition; rep <= reps; ++rep) {
      // Inside a rule's `rules`, the outer field is read in the outer repetition.
      int r = reps == 1 && field == outer_field ? outer_rep : rep;
      Val v = whole ? Val{raw, 3} : Child(Val{raw, 0}, r);
      Loc l = loc;
      l.repetition = reps > 1 || r > 1 ? r : 0;
      if (rule.select.size() > 1) {
        v = Child(v, rule.select[1]);
        l.component = rule.select[1];
      }
      if (rule.select.size() > 2) {
        v = Child(v, rule.select[2]);
        l.subcomponent = rule.select[2];
      }
      if (v.raw.empty() || v.raw == "\"\"") continue;
      if (rule.when && !rule.when->Evaluate([&](const Operand& op, std::string* scratch) {
            if (op.parts.empty()) return Text(v.raw, scratch);
            return SegmentOperand(op, seg, group, field, r, scratch);
          })) {
        continue;
      }
      if (rule.join_repetitions) {
        std::string scratch;
        std::string_view text = Text(v.raw, &scratch);
        if (!text.empty()) {
          if (!joined.empty()) joined.append(*rule.join);
          joined.append(text);
        }
        continue;
      }
      if (!rule.children.empty()) {
        // One element per repetition, filled by the nested rules.
        PushRule(&rule);
        Outer o{v, l};
        if (o.loc.repetition == 0) o.loc.repetition = r;
        RunRules(rule.children, seg, group, Resolve(node, rule.element, K::kObject), &o);
        PopRule();
        continue;
      }
      if (!rule.if_absent.empty()) {
        deferred_.push_back({&rule, v, node, nullptr, l, owner_, cur_segment_});
        continue;
      }
      Apply(rule, v, node, nullptr, l);
    }
    if (!joined.empty()) {
      PushRule(&rule);
      Tree::NodeId n = Resolve(node, rule.element, K::kString);
      t_.SetString(n, joined);
      Record(n, loc);
      PopRule();
    }
  }
}

void Run::ApplyEntry(const MessageEntry& e, size_t seg) {
  hl7v2::SegmentView sv = m_.segment(seg);
  int group = s_.grouping.segments[seg].group;
  if (e.when && !e.when->Evaluate([&](const Operand& op, std::string* scratch) {
        return SegmentOperand(op, sv, group, 0, 0, scratch);
      })) {
    return;
  }
  if (e.into_map != nullptr) {
    // `into: IN1.holder`: the resource that rule named for the nearest such segment in scope.
    const Exported* x = nullptr;
    for (size_t i = s_.exported.size(); i-- > 0;) {
      const Exported& c = s_.exported[i];
      if (c.map == e.into_map && c.slot == e.into_slot && s_.grouping.Within(group, c.group)) {
        x = &c;
        break;
      }
    }
    if (x == nullptr) return;
    const Tree::NodeId node = x->node;
    s_.consumed[seg] = true;
    owner_ = -1;
    cur_segment_ = seg;
    fill_only_ = x->made_before;
    RunSegmentMap(*e.map, sv, group, node);
    fill_only_ = false;
    for (const Hook& h : e.map->hooks) {
      if (!hook_error_.ok()) break;
      hook_error_ = RunHook(h, node, sv.name(), sv.occurrence());
    }
    return;
  }
  // `from: ORC`: the map reads the nearest ORC in scope, not this segment.
  hl7v2::SegmentView reads = sv;
  int reads_group = group;
  if (!e.from.empty()) {
    std::optional<hl7v2::SegmentView> f = SegmentInScope(e.from, group, seg);
    if (!f) return;
    reads = *f;
    reads_group = s_.grouping.segments[f->index()].group;
  }
  int inst = -1;
  if (e.merge_last) {
    // `merge: last`: the resource the previous order segment filled (TQ1/RXR after RXO: the
    // order's MedicationRequest; after RXE: the encoded one; RXR after RXD: the dispense),
    // whatever groups the message's segment order allowed. Skipped when that is another type.
    inst = LastTouched(sv.name(), group);
    if (inst < 0 || s_.instances[inst].type != e.resource) return;
  }
  s_.consumed[seg] = true;
  // A merge adds to the first instance of the type (with the entry's label) in this segment's
  // group instance (PD1 into the Patient of its PID, NTE into its OBSERVATION's Observation),
  // else creates it.
  if (e.merge && inst < 0) {
    for (size_t i = 0; i < s_.instances.size() && inst < 0; ++i) {
      if (s_.instances[i].type == e.resource && !s_.instances[i].dropped &&
          s_.instances[i].label == e.label && s_.grouping.Within(s_.instances[i].group, group)) {
        inst = static_cast<int>(i);
      }
    }
    if (inst < 0 && e.merge_scope) inst = Nearest(e.resource, group, &e.label);
  }
  if (inst < 0) {
    // Business key: the `id` fields, else control id + segment position.
    std::string& key = s_.key;
    key.clear();
    bool any = false;
    for (const KeyPart& k : e.id) {
      std::string scratch;
      std::string_view v = SegmentValue(k.segment, k.select, 0, false, sv, group, 0, 0, &scratch);
      any |= !v.empty();
      base::StrAppend(&key, v, "|");
    }
    if (!any) {
      key.clear();
      base::StrAppend(&key, m_.sending_application(), "|", m_.sending_facility(), "|", control_id_,
                      "|", seg, "|", e.resource);
      if (e.merge || (!e.id.empty())) base::StrAppend(&key, "|", e.src.line);
    }
    std::string& id = s_.id;
    id.clear();
    fhir::AppendDeterministicId(e.resource, key, &id);
    // The same business key seen again (the same PID-18 account in two PATIENT groups of an
    // A40): one resource, not two entries for one id, which no transaction accepts. The first
    // conversion of it stands.
    for (const Instance& i : s_.instances) {
      if (i.type == e.resource && i.id == id) {
        if (i.dropped) return;  // a hook dropped it: what would add to it is dropped too
        Warn(std::string(sv.name()),
             base::StrCat(e.resource, " from segment ", seg + 1, " has the same business "
                          "identifier as one converted before: converted once"));
        return;
      }
    }
    Tree::NodeId node = bundle_->AddResource(e.resource, id);
    s_.instances.push_back(
        {e.resource, t_.value(t_.FindMember(node, "id")), node, group, seg, e.label});
    inst = static_cast<int>(s_.instances.size()) - 1;
  }
  s_.applied.push_back({&e, inst, group});
  s_.instances[inst].touched = ++touches_;
  owner_ = inst;
  cur_segment_ = seg;
  if (e.map != nullptr) {
    RunSegmentMap(*e.map, reads, reads_group, s_.instances[inst].node);
    for (size_t k = 0; k < e.map->as_names.size(); ++k) {
      if (slots_[k] != Tree::kNone) {
        s_.exported.push_back(
            {e.map, static_cast<int>(k), reads_group, slots_[k], slot_made_before_[k]});
      }
    }
    for (const Hook& h : e.map->hooks) {
      if (!hook_error_.ok() || s_.instances[inst].dropped) break;
      hook_error_ = RunHook(h, s_.instances[inst].node, reads.name(), reads.occurrence());
    }
  }
  owner_ = -1;
}

void Run::WriteReferences() {
  for (const Applied& a : s_.applied) {
    if (s_.instances[a.instance].dropped) continue;
    for (const Reference& ref : a.entry->references) {
      auto write = [&](std::string_view type, std::string_view id) {
        Tree::NodeId n = Resolve(s_.instances[a.instance].node, ref.element, K::kObject);
        Tree::NodeId rn = t_.Member(n, "reference", K::kString);
        std::string& text = s_.scratch;
        text.assign(type);
        text.push_back('/');
        text.append(id);
        t_.SetString(rn, text);
        if (o_.explain) {
          s_.recorded.push_back({rn, "(reference)", ref.src.ToString()});
        }
      };
      if (ref.bundle) {
        write("Bundle", s_.bundle_id);
      } else if (ref.all) {
        for (const Instance& i : s_.instances) {
          if (i.type == ref.type && !i.dropped && s_.grouping.Within(i.group, a.group) &&
              (!ref.label || i.label == *ref.label)) {
            write(i.type, i.id);
          }
        }
      } else {
        int t = Nearest(ref.type, a.group, ref.label ? &*ref.label : nullptr);
        if (t >= 0 && t != a.instance) write(s_.instances[t].type, s_.instances[t].id);
      }
    }
  }
}

void Run::WriteOutcome(const MessageMap& map) {
  Tree::NodeId outcome = Tree::kNone;
  for (size_t i = 0; i < m_.segment_count(); ++i) {
    if (s_.consumed[i]) continue;
    std::string_view name = m_.segment(i).name();
    bool ignored = false;
    for (const std::string& ig : map.ignore) ignored |= ig == name;
    if (ignored) continue;
    std::string where = s_.grouping.PathOf(m_, i);
    hl7v2::Path p;
    p.segment = std::string(name);
    p.segment_index = m_.segment(i).occurrence() > 1 ? m_.segment(i).occurrence() : 0;
    std::string text = base::StrCat("segment ", p.ToString(), " (", where, ", segment ", i + 1,
                                    ") is not mapped by message map ", map.name);
    if (outcome == Tree::kNone) {
      outcome = bundle_->AddResource(
          "OperationOutcome",
          fhir::DeterministicId("OperationOutcome",
                                base::StrCat(m_.sending_application(), "|", m_.sending_facility(),
                                             "|", control_id_, "|", map.name)));
    }
    Tree::NodeId issue = t_.Append(t_.Member(outcome, "issue", K::kArray), K::kObject);
    t_.SetString(t_.Member(issue, "severity", K::kString), "warning");
    t_.SetString(t_.Member(issue, "code", K::kString), "not-supported");
    t_.SetString(t_.Member(issue, "diagnostics", K::kString), text);
    Warn(p.ToString(), std::move(text));
  }
}

// ---- Lua hooks (hooks.h) ----------------------------------------------------------------------

absl::Status Run::RunHook(const Hook& hook, Tree::NodeId res, std::string_view segment,
                          int occurrence) {
  if (s_.hooks == nullptr) s_.hooks = std::make_unique<HookRunner>();
  hook_ = &hook;
  absl::Status st = s_.hooks->Run(maps_, hook, m_, *this, res, segment, occurrence);
  hook_ = nullptr;
  return st;
}

// Hook paths count only the elements that will be written ([2] is the second one in the
// output, [last] the last one), unlike map rules, which build elements in order.
Tree::NodeId Run::HookResolve(Tree::NodeId res, const ElementPath& p, bool create, K leaf,
                              std::string* error) {
  if (p.steps.empty()) {
    *error = "a hook path names an element of the resource ('$' is not one)";
    return Tree::kNone;
  }
  Tree::NodeId n = res;
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PathStep& st = p.steps[i];
    const bool last = i + 1 == p.steps.size();
    const K k = last ? leaf : K::kObject;
    if (t_.kind(n) != K::kObject) {
      *error = base::StrCat("element '", p.text, "': '", st.name, "' is not under an object (",
                            t_.kind(n) == K::kArray ? "a list needs [n], [last] or [+]" : "a value",
                            ")");
      return Tree::kNone;
    }
    if (!create && (st.mode == PathStep::Mode::kAppend || st.mode == PathStep::Mode::kAppendWhere)) {
      *error = base::StrCat("element '", p.text, "': [+] makes a new element: use it with set");
      return Tree::kNone;
    }
    Tree::NodeId m = t_.FindMember(n, st.name);
    if (st.mode == PathStep::Mode::kMember) {
      if (m != Tree::kNone && (create || Live(m))) {
        n = m;
        continue;
      }
      if (!create) return Tree::kNone;
      n = t_.Member(n, t_.Intern(st.name), k);
      continue;
    }
    // An array step.
    if (m != Tree::kNone && t_.kind(m) != K::kArray) {
      *error = base::StrCat("element '", p.text, "': '", st.name, "' is not a list");
      return Tree::kNone;
    }
    if (m == Tree::kNone || (!create && !Live(m))) {
      if (!create) return Tree::kNone;
      m = t_.Member(n, t_.Intern(st.name), K::kArray);
    }
    Tree::NodeId found = Tree::kNone;
    size_t live = 0;
    for (Tree::NodeId c = t_.first_child(m); c != Tree::kNone; c = t_.next_sibling(c)) {
      if (!Live(c)) continue;
      if (st.mode == PathStep::Mode::kIndex && live == static_cast<size_t>(st.index)) found = c;
      if (st.mode == PathStep::Mode::kLast) found = c;
      if (st.mode == PathStep::Mode::kWhere && t_.kind(c) == K::kObject) {
        Tree::NodeId key = t_.FindMember(c, st.where_key);
        if (found == Tree::kNone && key != Tree::kNone && Live(key) &&
            t_.value(key) == st.where_value) {
          found = c;
        }
      }
      ++live;
    }
    if (found == Tree::kNone) {
      if (!create) return Tree::kNone;
      if (st.mode == PathStep::Mode::kIndex && static_cast<size_t>(st.index) > live) {
        *error = base::StrCat("element '", p.text, "': ", st.name, " has ", live,
                              " elements; [", st.index + 1, "] would leave a gap");
        return Tree::kNone;
      }
      const bool keyed =
          st.mode == PathStep::Mode::kWhere || st.mode == PathStep::Mode::kAppendWhere;
      found = t_.Append(m, keyed ? K::kObject : k);
      if (keyed) {
        t_.SetString(t_.Member(found, t_.Intern(st.where_key), K::kString), st.where_value);
      }
    }
    n = found;
  }
  return n;
}

// resourceType and id: the Bundle entry's fullUrl and request were made from them.
bool Run::Fixed(const ElementPath& p, std::string* error) const {
  if (p.steps.size() != 1 || (p.steps[0].name != "resourceType" && p.steps[0].name != "id")) {
    return false;
  }
  *error = "a hook keeps a resource's resourceType and id (drop() removes the resource)";
  return true;
}

void Run::Unhide(Tree::NodeId n) {
  if (s_.hidden.empty()) return;
  for (; n != Tree::kNone; n = t_.parent(n)) s_.hidden.erase(n);
}

bool Run::HookGet(uint32_t res, std::string_view path, HookValue* out, std::string* error) {
  auto p = ParseElementPath(path);
  if (!p.ok()) {
    *error = std::string(p.status().message());
    return false;
  }
  Tree::NodeId n = HookResolve(res, *p, false, K::kString, error);
  out->kind = HookValue::kNil;
  out->text.clear();
  if (n == Tree::kNone) return error->empty();
  if (!Live(n)) return true;
  switch (t_.kind(n)) {
    case K::kString: out->kind = HookValue::kString; break;
    case K::kNumber: out->kind = HookValue::kNumber; break;
    case K::kBool: out->kind = HookValue::kBool; break;
    case K::kObject:
    case K::kArray:
      *error = base::StrCat("element '", path, "' is ",
                            t_.kind(n) == K::kObject ? "an object" : "a list",
                            ": get one of its values (name[1].family), or count a list");
      return false;
  }
  out->text.assign(t_.value(n));
  return true;
}

bool Run::HookCount(uint32_t res, std::string_view path, int* out, std::string* error) {
  auto p = ParseElementPath(path);
  if (!p.ok()) {
    *error = std::string(p.status().message());
    return false;
  }
  *out = 0;
  Tree::NodeId n = HookResolve(res, *p, false, K::kArray, error);
  if (n == Tree::kNone) return error->empty();
  if (!Live(n)) return true;
  if (t_.kind(n) != K::kArray) {
    *out = 1;
    return true;
  }
  for (Tree::NodeId c = t_.first_child(n); c != Tree::kNone; c = t_.next_sibling(c)) {
    *out += Live(c) ? 1 : 0;
  }
  return true;
}

bool Run::HookSet(uint32_t res, std::string_view path, const HookValue& v, std::string_view where,
                  std::string* error) {
  auto p = ParseElementPath(path);
  if (!p.ok()) {
    *error = std::string(p.status().message());
    return false;
  }
  if (Fixed(*p, error)) return false;
  const K kind = v.kind == HookValue::kNumber ? K::kNumber
                 : v.kind == HookValue::kBool ? K::kBool
                                              : K::kString;
  Tree::NodeId n = HookResolve(res, *p, true, kind, error);
  if (n == Tree::kNone) return false;
  if ((t_.kind(n) == K::kObject || t_.kind(n) == K::kArray) && t_.first_child(n) != Tree::kNone) {
    *error = base::StrCat("element '", path, "' is ",
                          t_.kind(n) == K::kObject ? "an object" : "a list",
                          ": set one of its values, or remove it first");
    return false;
  }
  if (v.kind == HookValue::kString && v.text.empty()) {
    *error = base::StrCat("element '", path, "': FHIR has no empty strings; use nil to remove");
    return false;
  }
  switch (v.kind) {
    case HookValue::kNumber: t_.SetNumber(n, v.text); break;
    case HookValue::kBool: t_.SetBool(n, v.text == "true"); break;
    default: t_.SetString(n, v.text); break;
  }
  Unhide(n);
  if (o_.explain) {
    // The hook's value replaces what a map rule wrote there: one explanation per element.
    std::erase_if(s_.recorded, [&](const Recorded& r) { return r.node == n; });
    std::string by(where);
    while (!by.empty() && (by.back() == ':' || by.back() == ' ')) by.pop_back();
    s_.recorded.push_back(
        {n, "(hook)",
         base::StrCat(by, " (hook ", hook_ != nullptr ? hook_->function : std::string(), " of ",
                      hook_ != nullptr ? hook_->src.ToString() : std::string(), ")")});
  }
  return true;
}

bool Run::HookRemove(uint32_t res, std::string_view path, std::string* error) {
  auto p = ParseElementPath(path);
  if (!p.ok()) {
    *error = std::string(p.status().message());
    return false;
  }
  Tree::NodeId n = HookResolve(res, *p, false, K::kString, error);
  if (n == Tree::kNone) return error->empty();  // absent: nothing to remove
  if (Fixed(*p, error)) return false;
  s_.hidden.insert(n);
  return true;
}

void Run::HookDrop(uint32_t res) {
  Tree::NodeId entry = t_.parent(res);
  if (entry == Tree::kNone || s_.hidden.contains(entry)) return;
  s_.hidden.insert(entry);
  s_.dropped.insert(base::StrCat(HookType(res), "/", HookId(res)));
  for (Instance& i : s_.instances) {
    if (i.node == res) i.dropped = true;
  }
}

void Run::HookResources(std::string_view type, std::vector<uint32_t>* out) {
  Tree::NodeId entries = t_.FindMember(bundle_->root(), "entry");
  if (entries == Tree::kNone) return;
  for (Tree::NodeId e = t_.first_child(entries); e != Tree::kNone; e = t_.next_sibling(e)) {
    if (s_.hidden.contains(e)) continue;
    Tree::NodeId r = t_.FindMember(e, "resource");
    if (r == Tree::kNone || (!type.empty() && HookType(r) != type)) continue;
    out->push_back(r);
  }
}

Tree::NodeId Run::CopyLive(Tree::NodeId n, Tree::NodeId parent) {
  Tree& o = s_.out;
  const K kind = t_.kind(n);
  Tree::NodeId c;
  if (parent == Tree::kNone) {
    c = o.NewObject();
  } else if (o.kind(parent) == K::kArray) {
    c = o.Append(parent, kind);
  } else {
    c = o.Member(parent, t_.key(n), kind);
  }
  s_.copied[n] = c;
  switch (kind) {
    case K::kString: o.SetStringRef(c, t_.value(n)); break;  // t_ lives until the next message
    case K::kNumber: o.SetNumber(c, t_.value(n)); break;
    case K::kBool: o.SetBool(c, t_.value(n) == "true"); break;
    case K::kObject:
    case K::kArray:
      for (Tree::NodeId x = t_.first_child(n); x != Tree::kNone; x = t_.next_sibling(x)) {
        if (!Live(x)) continue;
        if (!s_.dropped.empty() && t_.kind(x) == K::kObject) {
          // A Reference to a dropped resource goes with it.
          Tree::NodeId ref = t_.FindMember(x, "reference");
          if (ref != Tree::kNone &&
              s_.dropped.contains(absl::string_view(t_.value(ref).data(), t_.value(ref).size()))) {
            continue;
          }
        }
        CopyLive(x, c);
      }
      break;
  }
  return c;
}

// ---- site ConceptMaps ---------------------------------------------------------------------------

void Run::Translate(Tree::NodeId node, const ConceptMap* named, const Loc& loc) {
  Tree::NodeId codings = t_.FindMember(node, "coding");
  if (codings == Tree::kNone || t_.kind(codings) != K::kArray) return;
  const size_t original = t_.child_count(codings);
  size_t i = 0;
  for (Tree::NodeId c = t_.first_child(codings); c != Tree::kNone && i < original;
       c = t_.next_sibling(c), ++i) {
    if (!t_.valued(c) || t_.kind(c) != K::kObject) continue;
    Tree::NodeId sn = t_.FindMember(c, "system"), cn = t_.FindMember(c, "code");
    if (cn == Tree::kNone || !t_.valued(cn)) continue;
    std::string_view system = sn != Tree::kNone ? t_.value(sn) : std::string_view();
    std::string_view code = t_.value(cn);
    auto apply = [&](const ConceptMap& cm, bool any_source) {
      const std::vector<ConceptMap::Target>* targets = cm.Find(system, code, any_source);
      if (targets == nullptr) return;
      for (const ConceptMap::Target& t : *targets) {
        bool present = false;  // the same coding already there (a second translation)
        for (Tree::NodeId x = t_.first_child(codings); x != Tree::kNone && !present;
             x = t_.next_sibling(x)) {
          Tree::NodeId xs = t_.FindMember(x, "system"), xc = t_.FindMember(x, "code");
          present = xs != Tree::kNone && xc != Tree::kNone && t_.value(xs) == t.system &&
                    t_.value(xc) == t.code;
        }
        if (present) continue;
        Tree::NodeId added = t_.Append(codings, K::kObject);
        t_.SetStringRef(t_.Member(added, "system", K::kString), t.system);
        Tree::NodeId ac = t_.Member(added, "code", K::kString);
        t_.SetStringRef(ac, t.code);
        if (!t.display.empty()) t_.SetStringRef(t_.Member(added, "display", K::kString), t.display);
        if (o_.explain) {
          std::string rules;
          for (const Rule* r : s_.rule_stack) base::StrAppend(&rules, r->src.ToString(), " > ");
          base::StrAppend(&rules, cm.src.file, " (ConceptMap ", cm.name, ")");
          s_.recorded.push_back({ac, loc.ToString(), std::move(rules)});
        }
      }
    };
    if (named != nullptr) {
      apply(*named, true);
    } else if (auto it = maps_.conceptmaps_by_source.find(
                   absl::string_view(system.data(), system.size()));
               it != maps_.conceptmaps_by_source.end()) {
      for (const ConceptMap* cm : it->second) apply(*cm, false);
    }
  }
}

absl::Status Run::Go() {
  if (m_.segment_count() == 0 || m_.segment(0).name() != "MSH") {
    return absl::InvalidArgumentError("the message does not start with MSH");
  }
  std::string why;
  map_ = ChooseMap(&why);
  if (map_ == nullptr) return absl::NotFoundError(why);
  r_->map = map_->name;
  control_id_ = m_.control_id();

  const hl7v2::MessageStructureDef* structure = nullptr;
  std::string_view version = m_.version().empty() ? std::string_view("2.5.1") : m_.version();
  if (const hl7v2::Dictionary* d = hl7v2::Dictionary::Find(version)) {
    structure = d->Structure(map_->structure);
    if (structure == nullptr) structure = d->StructureFor(m_.message_type(), m_.trigger_event());
  }
  GroupSegments(m_, structure, &s_.grouping);

  t_.Clear();
  s_.instances.clear();
  s_.applied.clear();
  s_.dependents.clear();
  s_.exported.clear();
  s_.recorded.clear();
  s_.rule_stack.clear();
  s_.consumed.assign(m_.segment_count(), false);
  s_.hidden.clear();
  s_.dropped.clear();
  fhir::BundleBuilder bundle(&t_, o_.bundle);
  bundle_ = &bundle;
  s_.bundle_id.clear();
  fhir::AppendDeterministicId(
      "Bundle", base::StrCat(m_.sending_application(), "|", m_.sending_facility(), "|", control_id_),
      &s_.bundle_id);
  bundle.SetId(s_.bundle_id);
  std::string ts;
  if (fhir::AppendFhirTime(NthPart(m_.Header(7, 0), m_.delimiters().component, 1),
                           fhir::TimeType::kInstant, o_.tz, &ts)
          .ok()) {
    bundle.SetTimestamp(ts);
  }

  deferred_.clear();
  for (size_t i = 0; i < m_.segment_count() && hook_error_.ok(); ++i) {
    for (const MessageEntry& e : map_->entries) {
      if (Matches(e, i)) ApplyEntry(e, i);
    }
  }
  if (!hook_error_.ok()) return hook_error_;
  // By index, over a growing list: applying a deferred rule may defer another (an `if_absent`
  // rule of the datatype map it runs), which is applied in this pass too; a reference into the
  // vector would dangle when push_back reallocates.
  for (size_t k = 0; k < deferred_.size(); ++k) {
    const Deferred d = deferred_[k];
    bool present = false;
    for (const ElementPath& p : d.rule->if_absent) present = present || Has(d.node, p);
    if (present) continue;
    owner_ = d.owner;
    cur_segment_ = d.segment;
    Apply(*d.rule, d.v, d.node, d.vocab, d.loc);
  }
  // Message hooks: every resource exists; references are not written yet.
  for (const Hook& h : map_->hooks) {
    if (absl::Status st = RunHook(h, HookRunner::kNoResource, {}, 0); !st.ok()) return st;
  }
  WriteReferences();
  WriteOutcome(*map_);

  r_->json.clear();
  // What hooks removed or dropped is left out by writing a copy without it.
  const bool copy = !s_.hidden.empty();
  if (copy) {
    s_.out.Clear();
    s_.copied.assign(t_.size(), Tree::kNone);
    CopyLive(bundle.root(), Tree::kNone);
  }
  const Tree& w = copy ? s_.out : t_;
  w.WriteJson(copy ? s_.copied[bundle.root()] : bundle.root(), &r_->json, o_.pretty);
  if (o_.explain) {
    for (const Recorded& rec : s_.recorded) {
      Tree::NodeId node = copy ? s_.copied[rec.node] : rec.node;
      if (node == Tree::kNone || !w.valued(node)) continue;
      // Find the resource the node belongs to: the entry's "resource", which has a
      // resourceType (Linkage.item.resource is an element named "resource" too).
      Tree::NodeId res = node;
      while (res != Tree::kNone &&
             (w.key(res) != "resource" || w.FindMember(res, "resourceType") == Tree::kNone)) {
        res = w.parent(res);
      }
      std::string element;
      if (res != Tree::kNone) {
        element = base::StrCat(w.value(w.FindMember(res, "resourceType")), "/",
                               w.value(w.FindMember(res, "id")), " ", w.PathOf(node, res));
      }
      r_->explain.push_back({std::move(element), std::string(w.value(node)), rec.source,
                             rec.rules});
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Converter::Convert(const hl7v2::Message& message, const ConvertOptions& options,
                                Workspace& workspace, ConvertResult* result) const {
  result->diagnostics.clear();
  result->explain.clear();
  Run run(*maps_, message, options, workspace.state(), result);
  return run.Go();
}

absl::StatusOr<ConvertResult> Converter::Convert(const hl7v2::Message& message,
                                                 const ConvertOptions& options) const {
  thread_local Workspace workspace;
  ConvertResult result;
  if (absl::Status s = Convert(message, options, workspace, &result); !s.ok()) return s;
  return result;
}

}  // namespace isthmus::v2fhir
