#include "fhir/element_tree.h"

#include <cstring>

#include "base/str.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir {
namespace {
constexpr size_t kBlockSize = 16 * 1024;
}  // namespace

void Tree::Clear() {
  nodes_.clear();
  block_ = 0;
  block_used_ = 0;
  big_.clear();
}

std::string_view Tree::Intern(std::string_view s) {
  if (s.empty()) return {};
  if (s.size() > kBlockSize / 4) {
    big_.push_back(std::make_unique<char[]>(s.size()));
    std::memcpy(big_.back().get(), s.data(), s.size());
    return {big_.back().get(), s.size()};
  }
  if (blocks_.empty()) blocks_.push_back(std::make_unique<char[]>(kBlockSize));
  if (block_used_ + s.size() > kBlockSize) {
    ++block_;
    block_used_ = 0;
    if (block_ == blocks_.size()) blocks_.push_back(std::make_unique<char[]>(kBlockSize));
  }
  char* p = blocks_[block_].get() + block_used_;
  std::memcpy(p, s.data(), s.size());
  block_used_ += s.size();
  return {p, s.size()};
}

Tree::NodeId Tree::Add(NodeId parent, std::string_view key, Kind kind) {
  NodeId id = static_cast<NodeId>(nodes_.size());
  Node n;
  n.kind = kind;
  n.parent = parent;
  n.key = key;
  nodes_.push_back(n);
  if (parent != kNone) {
    Node& p = nodes_[parent];
    if (p.last == kNone) {
      p.first = id;
    } else {
      nodes_[p.last].next = id;
    }
    p.last = id;
    ++p.count;
  }
  return id;
}

Tree::NodeId Tree::NewObject() { return Add(kNone, {}, Kind::kObject); }

Tree::NodeId Tree::FindMember(NodeId obj, std::string_view key) const {
  for (NodeId c = nodes_[obj].first; c != kNone; c = nodes_[c].next) {
    if (nodes_[c].key == key) return c;
  }
  return kNone;
}

Tree::NodeId Tree::Member(NodeId obj, std::string_view key, Kind kind) {
  NodeId found = FindMember(obj, key);
  return found != kNone ? found : Add(obj, key, kind);
}

Tree::NodeId Tree::Append(NodeId arr, Kind kind) { return Add(arr, {}, kind); }

Tree::NodeId Tree::Element(NodeId arr, size_t index, Kind kind) {
  size_t i = 0;
  for (NodeId c = nodes_[arr].first; c != kNone; c = nodes_[c].next, ++i) {
    if (i == index) return c;
  }
  NodeId last = kNone;
  for (; i <= index; ++i) last = Add(arr, {}, kind);
  return last;
}

Tree::NodeId Tree::ElementWhere(NodeId arr, std::string_view key, std::string_view value) {
  for (NodeId c = nodes_[arr].first; c != kNone; c = nodes_[c].next) {
    if (nodes_[c].kind != Kind::kObject) continue;
    NodeId m = FindMember(c, key);
    if (m != kNone && nodes_[m].kind == Kind::kString && nodes_[m].value == value) return c;
  }
  NodeId e = Add(arr, {}, Kind::kObject);
  SetString(Add(e, key, Kind::kString), value);
  return e;
}

void Tree::MarkValued(NodeId n) {
  while (n != kNone && !nodes_[n].valued) {
    nodes_[n].valued = true;
    n = nodes_[n].parent;
  }
}

void Tree::SetString(NodeId n, std::string_view value) {
  nodes_[n].kind = Kind::kString;
  nodes_[n].value = Intern(value);
  if (!value.empty()) MarkValued(n);
}

void Tree::SetNumber(NodeId n, std::string_view number) {
  nodes_[n].kind = Kind::kNumber;
  nodes_[n].value = Intern(number);
  if (!number.empty()) MarkValued(n);
}

void Tree::SetBool(NodeId n, bool value) {
  nodes_[n].kind = Kind::kBool;
  nodes_[n].value = value ? "true" : "false";
  MarkValued(n);
}

std::string Tree::PathOf(NodeId n, NodeId root) const {
  std::vector<NodeId> chain;
  for (NodeId c = n; c != kNone && c != root && nodes_[c].parent != kNone; c = nodes_[c].parent) {
    chain.push_back(c);
  }
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const Node& node = nodes_[*it];
    const Node& parent = nodes_[node.parent];
    if (parent.kind == Kind::kArray) {
      size_t i = 0;
      for (NodeId c = parent.first; c != *it; c = nodes_[c].next) i += nodes_[c].valued ? 1 : 0;
      base::StrAppend(&out, "[", i, "]");
    } else {
      if (!out.empty()) out.push_back('.');
      out.append(node.key);
    }
  }
  return out;
}

namespace {

// RapidJSON output stream appending to a std::string.
struct StringOut {
  using Ch = char;
  std::string* s;
  void Put(char c) { s->push_back(c); }
  void Flush() {}
};

template <typename W>
void Emit(const Tree& t, Tree::NodeId id, W& w) {
  auto size = [](std::string_view v) { return static_cast<rapidjson::SizeType>(v.size()); };
  switch (t.kind(id)) {
    case Tree::Kind::kString: w.String(t.value(id).data(), size(t.value(id))); return;
    case Tree::Kind::kNumber: w.RawValue(t.value(id).data(), t.value(id).size(), rapidjson::kNumberType); return;
    case Tree::Kind::kBool: w.Bool(t.value(id) == "true"); return;
    case Tree::Kind::kObject:
      w.StartObject();
      for (Tree::NodeId c = t.first_child(id); c != Tree::kNone; c = t.next_sibling(c)) {
        if (!t.valued(c)) continue;
        w.Key(t.key(c).data(), size(t.key(c)));
        Emit(t, c, w);
      }
      w.EndObject();
      return;
    case Tree::Kind::kArray:
      w.StartArray();
      for (Tree::NodeId c = t.first_child(id); c != Tree::kNone; c = t.next_sibling(c)) {
        if (t.valued(c)) Emit(t, c, w);
      }
      w.EndArray();
      return;
  }
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  StringOut os{out};
  rapidjson::Writer<StringOut> w(os);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void Tree::WriteJson(NodeId id, std::string* out, bool pretty) const {
  // RapidJSON's StringBuffer reserves once per string and copies without per-character checks
  // (a std::string stream costs ~4x more); one buffer per thread, reused.
  thread_local rapidjson::StringBuffer buffer;
  buffer.Clear();
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
    w.SetIndent(' ', 2);
    Emit(*this, id, w);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    Emit(*this, id, w);
  }
  out->append(buffer.GetString(), buffer.GetSize());
}

}  // namespace isthmus::fhir
