#include "fhir/element_tree.h"

#include <algorithm>
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

// Inline: every caller is in this file, and a call per node (its register saves) cost a third of
// adding one.
inline Tree::NodeId Tree::Add(NodeId parent, std::string_view key, Kind kind) {
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
    std::string_view k = nodes_[c].key;
    // Keys mostly come from the same compiled map strings: the pointer test usually decides,
    // else the first byte does ("code" against "text", "type", "unit").
    if (k.size() == key.size() &&
        (k.empty() || k.data() == key.data() ||
         (k[0] == key[0] && std::memcmp(k.data(), key.data(), k.size()) == 0))) {
      return c;
    }
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

void Tree::SetStringRef(NodeId n, std::string_view value) {
  nodes_[n].kind = Kind::kString;
  nodes_[n].value = value;
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

namespace {

// Compact JSON writer: the same bytes as rapidjson::Writer<UTF8> without encoding validation
// (escapes '"', '\\' and control characters, \b \t \n \f \r or \u00XX with upper-case hex;
// every other byte, UTF-8 included, as is), written straight into one growing buffer. Half the
// instructions of RapidJSON's writer, whose per-character stream calls and nesting stack were
// ~30% of a conversion. element_tree_test checks it against RapidJSON byte by byte.
constexpr char kEscape[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',  // 00
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  // 10
    0,   0,   '"', 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    // 20
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    // 30
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    // 40
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   '\\', 0, 0,   0,    // 50
};  // 60..FF: 0

class CompactWriter {
 public:
  // Writes into `buffer` (kept across calls, so it stops growing after the first messages;
  // resizing the caller's string instead would zero-fill it every time), then appends to `out`.
  CompactWriter(std::string* buffer, std::string* out) : out_(buffer), dest_(out) {
    if (out_->size() < 64 * 1024) out_->resize(64 * 1024);
    p_ = out_->data();
    end_ = out_->data() + out_->size();
  }
  void Finish() { dest_->append(out_->data(), static_cast<size_t>(p_ - out_->data())); }

  void Emit(const Tree& t, Tree::NodeId id) {
    switch (t.kind(id)) {
      case Tree::Kind::kString: return String(t.value(id));
      case Tree::Kind::kNumber: return Raw(t.value(id));
      case Tree::Kind::kBool: return Raw(t.value(id) == "true" ? "true" : "false");
      case Tree::Kind::kObject: {
        Put('{');
        bool first = true;
        for (Tree::NodeId c = t.first_child(id); c != Tree::kNone; c = t.next_sibling(c)) {
          if (!t.valued(c)) continue;
          Key(t.key(c), !first);
          first = false;
          Emit(t, c);
        }
        Put('}');
        return;
      }
      case Tree::Kind::kArray: {
        Put('[');
        bool first = true;
        for (Tree::NodeId c = t.first_child(id); c != Tree::kNone; c = t.next_sibling(c)) {
          if (!t.valued(c)) continue;
          if (!first) Put(',');
          first = false;
          Emit(t, c);
        }
        Put(']');
        return;
      }
    }
  }

 private:
  void Reserve(size_t n) {
    if (static_cast<size_t>(end_ - p_) >= n) return;
    size_t used = static_cast<size_t>(p_ - out_->data());
    out_->resize(std::max(out_->size() * 2, used + n + 4096));
    p_ = out_->data() + used;
    end_ = out_->data() + out_->size();
  }
  void Put(char c) {
    Reserve(1);
    *p_++ = c;
  }
  void Raw(std::string_view s) {
    Reserve(s.size());
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  // True when one of the 8 bytes of `x` needs escaping: < 0x20, '"' or '\\' (exact, from the
  // classic "has a zero byte" / "has a byte less than n" bit tricks).
  static bool NeedsEscape8(uint64_t x) {
    constexpr uint64_t k01 = 0x0101010101010101ULL, k80 = 0x8080808080808080ULL;
    uint64_t low = (x - k01 * 0x20) & ~x & k80;
    uint64_t q = x ^ (k01 * '"');
    uint64_t b = x ^ (k01 * '\\');
    return (low | ((q - k01) & ~q & k80) | ((b - k01) & ~b & k80)) != 0;
  }
  static bool NeedsEscape4(uint32_t x) {
    constexpr uint32_t k01 = 0x01010101U, k80 = 0x80808080U;
    uint32_t low = (x - k01 * 0x20) & ~x & k80;
    uint32_t q = x ^ (k01 * '"');
    uint32_t b = x ^ (k01 * '\\');
    return (low | ((q - k01) & ~q & k80) | ((b - k01) & ~b & k80)) != 0;
  }
  // Copies `s` (4 bytes or more) to `p` when no byte needs escaping, a word at a time (the last
  // word overlaps the one before it). False when some byte needs escaping; `p` then holds a
  // partial copy that the caller overwrites.
  static bool CopyPlain(const char* s, size_t n, char* p) {
    if (n >= 8) {  // words are stored as they are checked; on false the caller rewrites them
      uint64_t x;
      size_t i = 0;
      for (; i + 8 <= n; i += 8) {
        std::memcpy(&x, s + i, 8);
        if (NeedsEscape8(x)) return false;
        std::memcpy(p + i, &x, 8);
      }
      if (i < n) {
        std::memcpy(&x, s + n - 8, 8);
        if (NeedsEscape8(x)) return false;
        std::memcpy(p + n - 8, &x, 8);
      }
      return true;
    }
    uint32_t a, b;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + n - 4, 4);
    if (NeedsEscape4(a) || NeedsEscape4(b)) return false;
    std::memcpy(p, &a, 4);
    std::memcpy(p + n - 4, &b, 4);
    return true;
  }

  void String(std::string_view s) {
    Reserve(2 + s.size() * 6);
    p_ = WriteString(p_, s);
  }
  // `,"key":` (the comma when `comma`) with one Reserve.
  void Key(std::string_view k, bool comma) {
    Reserve(4 + k.size() * 6);
    char* p = p_;
    if (comma) *p++ = ',';
    p = WriteString(p, k);
    *p++ = ':';
    p_ = p;
  }
  // Writes `s` as a JSON string at `p` (room for 2 + 6 * s.size() bytes reserved); returns the
  // end.
  static char* WriteString(char* p, std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    *p++ = '"';
    const char* src = s.data();
    const char* end = src + s.size();
    if (s.size() >= 4 && CopyPlain(src, s.size(), p)) {  // the common case: nothing to escape
      p += s.size();
      src = end;
    }
    while (src != end) {
      if (end - src >= 8) {  // 8 bytes at a time when none of them needs escaping
        uint64_t x;
        std::memcpy(&x, src, 8);
        if (!NeedsEscape8(x)) {
          std::memcpy(p, &x, 8);
          p += 8;
          src += 8;
          continue;
        }
      }
      char ch = *src++;
      unsigned char c = static_cast<unsigned char>(ch);
      char e = kEscape[c];
      if (e == 0) {
        *p++ = ch;
        continue;
      }
      *p++ = '\\';
      *p++ = e;
      if (e == 'u') {
        *p++ = '0';
        *p++ = '0';
        *p++ = kHex[c >> 4];
        *p++ = kHex[c & 0xF];
      }
    }
    *p++ = '"';
    return p;
  }

  std::string* out_;
  std::string* dest_;
  char* p_;
  char* end_;
};

}  // namespace

void Tree::WriteJson(NodeId id, std::string* out, bool pretty) const {
  if (!pretty) {
    thread_local std::string buffer;
    CompactWriter w(&buffer, out);
    w.Emit(*this, id);
    w.Finish();
    return;
  }
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  Emit(*this, id, w);
  out->append(buffer.GetString(), buffer.GetSize());
}

}  // namespace isthmus::fhir
