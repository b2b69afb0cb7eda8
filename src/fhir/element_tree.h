// A small JSON element tree for building FHIR resources out of order (map rules for one element
// come from many fields), then writing them once: compact JSON by a hand-written writer that
// gives RapidJSON's bytes in half the instructions, pretty JSON by RapidJSON's PrettyWriter.
//
// Nodes live in one vector and strings in an arena owned by the tree; Clear() keeps both
// allocations, so a converter that reuses its tree allocates nothing in steady state. A node that
// never received a value (an object or array with no valued descendant) is not written: FHIR
// forbids empty objects and arrays, and map rules may create containers that stay empty.
//
// Keys are NOT copied: a key must outlive the tree's use (compiled map strings or literals).
// Values are copied into the arena, except with SetStringRef.
//
// Thread-safety: not thread-safe; one tree per converting thread.
//
// Example:
//   Tree t;
//   Tree::NodeId r = t.NewObject();
//   t.SetString(t.Member(r, "resourceType", Tree::Kind::kString), "Patient");
//   Tree::NodeId name = t.Append(t.Member(r, "name", Tree::Kind::kArray), Tree::Kind::kObject);
//   t.SetString(t.Member(name, "family", Tree::Kind::kString), "DOE");
//   std::string json; t.WriteJson(r, &json, /*pretty=*/false);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace isthmus::fhir {

class Tree {
 public:
  using NodeId = uint32_t;
  static constexpr NodeId kNone = UINT32_MAX;
  enum class Kind : uint8_t { kObject, kArray, kString, kNumber, kBool };

  Tree() = default;
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  // Forgets every node and string; keeps the memory.
  void Clear();

  // A new detached object (a resource root).
  NodeId NewObject();
  // The member `key` of object `obj`, created with `kind` when absent. An existing member of
  // another kind is returned as is (the caller decides; the converter reports it).
  NodeId Member(NodeId obj, std::string_view key, Kind kind);
  // The member `key`, or kNone.
  NodeId FindMember(NodeId obj, std::string_view key) const;
  // Appends a new element of `kind` to array `arr`.
  NodeId Append(NodeId arr, Kind kind);
  // Element `index` (0-based) of `arr`, appending elements of `kind` up to it.
  NodeId Element(NodeId arr, size_t index, Kind kind);
  // The first element of `arr` whose member `key` is the string `value`, appending a new object
  // with that member when none is.
  NodeId ElementWhere(NodeId arr, std::string_view key, std::string_view value);

  void SetString(NodeId n, std::string_view value);
  // SetString without the copy: `value` must stay valid as long as the node is read, i.e. until
  // Clear() (a view of the message being converted, a compiled map's string).
  void SetStringRef(NodeId n, std::string_view value);
  // `number` must be valid JSON number text (the caller normalizes HL7 NM).
  void SetNumber(NodeId n, std::string_view number);
  void SetBool(NodeId n, bool value);

  Kind kind(NodeId n) const { return nodes_[n].kind; }
  std::string_view key(NodeId n) const { return nodes_[n].key; }
  std::string_view value(NodeId n) const { return nodes_[n].value; }
  NodeId parent(NodeId n) const { return nodes_[n].parent; }
  NodeId first_child(NodeId n) const { return nodes_[n].first; }
  NodeId next_sibling(NodeId n) const { return nodes_[n].next; }
  size_t child_count(NodeId n) const { return nodes_[n].count; }
  // True once the node or a descendant holds a value.
  bool valued(NodeId n) const { return nodes_[n].valued; }
  size_t size() const { return nodes_.size(); }

  // Copies `s` into the arena; the view lives until Clear().
  std::string_view Intern(std::string_view s);

  // A FHIRPath-like location of `n` below `root` (default: its top ancestor), as written:
  // array indices count only valued elements. `name[0].given[1]`.
  std::string PathOf(NodeId n, NodeId root = kNone) const;

  // Appends the JSON of `n` (compact, or pretty with 2-space indent): exactly what RapidJSON's
  // Writer / PrettyWriter give (strings escaped the same way, UTF-8 passed through).
  void WriteJson(NodeId n, std::string* out, bool pretty) const;

 private:
  struct Node {
    Kind kind;
    bool valued = false;
    NodeId parent = kNone, first = kNone, last = kNone, next = kNone;
    uint32_t count = 0;
    std::string_view key;
    std::string_view value;
  };
  NodeId Add(NodeId parent, std::string_view key, Kind kind);
  void MarkValued(NodeId n);

  std::vector<Node> nodes_;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_ = 0;       // current block index
  size_t block_used_ = 0;  // bytes used in the current block
  std::vector<std::unique_ptr<char[]>> big_;  // strings larger than a block
};

// Appends `s` as a JSON string literal (RapidJSON escaping) to `out`.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace isthmus::fhir
