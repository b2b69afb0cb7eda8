#include "hl7v2/message.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdint>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "base/str.h"
#include "base/status_macros.h"
#include "hl7v2/escape.h"
#include "hl7v2/issue.h"

namespace isthmus::hl7v2 {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool IsTerminator(char c) { return c == '\r' || c == '\n'; }

// Position of the next CR or LF at or after `from`, or s.size().
size_t FindTerminator(std::string_view s, size_t from) {
  const char* p = s.data() + from;
  const char* end = s.data() + s.size();
  while (p < end) {
    if (*p == '\r' || *p == '\n') return static_cast<size_t>(p - s.data());
    ++p;
  }
  return s.size();
}

// FindTerminator for a left-to-right walk over one input: finds CR and LF with memchr and
// remembers the next of each, so every byte is scanned at most once per character whether the
// input ends its segments with CR, LF or both. (A byte loop testing both characters was the
// parser's hottest spot: about 40% of Parse on 2.5 KB ORU^R01 messages.)
class TerminatorScanner {
 public:
  explicit TerminatorScanner(std::string_view s) : s_(s) {}
  // Position of the next CR or LF at or after `from`, or s.size(). REQUIRES: `from` does not
  // decrease from one call to the next.
  size_t Next(size_t from) {
    if (cr_ == kUnknown || cr_ < from) cr_ = Scan('\r', from);
    if (lf_ == kUnknown || lf_ < from) lf_ = Scan('\n', from);
    return std::min(cr_, lf_);
  }

 private:
  static constexpr size_t kUnknown = static_cast<size_t>(-1);
  size_t Scan(char c, size_t from) const {
    if (from >= s_.size()) return s_.size();
    const void* hit = std::memchr(s_.data() + from, c, s_.size() - from);
    return hit == nullptr ? s_.size()
                          : static_cast<size_t>(static_cast<const char*>(hit) - s_.data());
  }
  std::string_view s_;
  size_t cr_ = kUnknown;  // position of the next CR (s_.size() if none) as of the last scan
  size_t lf_ = kUnknown;
};

bool IsBlank(std::string_view s) {
  for (char c : s) {
    // Also MLLP framing bytes (VT, FS) that files saved from a feed often keep.
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\x1a' && c != '\0' &&
        c != '\x0b' && c != '\x1c') {
      return false;
    }
  }
  return true;
}

bool ValidSegmentName(std::string_view name) {
  if (name.size() != 3) return false;
  // ASCII only (not the locale's std::isupper, which was also a libc call per character).
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return upper(name[0]) && (upper(name[1]) || digit(name[1])) && (upper(name[2]) || digit(name[2]));
}

absl::Status ParseError(std::string_view segment, int occurrence, int field, ErrorCode code,
                        std::string message) {
  Issue issue;
  issue.code = code;
  issue.location.segment = std::string(segment);
  issue.location.segment_index = occurrence;
  issue.location.field = field;
  issue.message = std::move(message);
  return MakeHl7Error(absl::StatusCode::kInvalidArgument, std::move(issue));
}

// Replaces part `index` (1-based) of `s` split on `sep` with `value`, adding empty parts as needed.
std::string ReplacePart(std::string_view s, char sep, int index, std::string_view value) {
  std::string out;
  out.reserve(s.size() + value.size() + static_cast<size_t>(index));
  int part = 1;
  size_t pos = 0;
  bool replaced = false;
  while (true) {
    size_t next = s.find(sep, pos);
    std::string_view cur = s.substr(pos, next == std::string_view::npos ? s.npos : next - pos);
    if (part == index) {
      out.append(value);
      replaced = true;
    } else {
      out.append(cur);
    }
    if (next == std::string_view::npos) break;
    out.push_back(sep);
    pos = next + 1;
    ++part;
  }
  if (!replaced) {
    for (; part < index; ++part) out.push_back(sep);
    out.append(value);
  }
  return out;
}

// Counts segment names while parsing: a short list for the usual dozen names, a hash map once
// hostile input brings many distinct ones (keeps parsing linear).
class OccurrenceCounter {
 public:
  int Next(std::string_view name) {
    if (map_.empty()) {
      for (auto& [n, c] : list_) {
        if (n == name) return ++c;
      }
      if (list_.size() < 32) {
        list_.emplace_back(name, 1);
        return 1;
      }
      for (auto& [n, c] : list_) map_[n] = c;
    }
    return ++map_[name];
  }

 private:
  std::vector<std::pair<std::string_view, int>> list_;
  absl::flat_hash_map<std::string_view, int> map_;
};

}  // namespace

std::string_view NthPart(std::string_view s, char sep, int index) {
  if (index < 1) index = 1;
  if (sep == '\0') return index == 1 ? s : std::string_view();
  // An empty view may have a null data(), which memchr must not see even with length 0 (UB):
  // Set() creates such fields when it extends a segment.
  if (s.empty()) return {};
  size_t pos = 0;
  for (int i = 1; i < index; ++i) {
    const void* hit = std::memchr(s.data() + pos, sep, s.size() - pos);
    if (hit == nullptr) return {};
    pos = static_cast<size_t>(static_cast<const char*>(hit) - s.data()) + 1;
  }
  const void* hit = std::memchr(s.data() + pos, sep, s.size() - pos);
  size_t end = hit == nullptr ? s.size() : static_cast<size_t>(static_cast<const char*>(hit) - s.data());
  return s.substr(pos, end - pos);
}

int PartCount(std::string_view s, char sep) {
  if (s.empty()) return 0;
  if (sep == '\0') return 1;
  int n = 1;
  for (char c : s) n += (c == sep);
  return n;
}

std::string_view SegmentView::name() const { return msg_->fields_[first_]; }

std::string_view SegmentView::field(size_t n) const {
  return n < count_ ? msg_->fields_[first_ + n] : std::string_view();
}

Message::Message(Message&&) noexcept = default;
Message& Message::operator=(Message&&) noexcept = default;
Message::~Message() = default;

absl::StatusOr<Message> Message::Parse(std::string_view bytes, const ParseOptions& opts) {
  Message m;
  ISTHMUS_RETURN_IF_ERROR(m.ParseInto(bytes, opts));
  return m;
}

absl::StatusOr<Message> Message::ParseOwned(std::string bytes, const ParseOptions& opts) {
  Message m;
  m.owned_input_ = std::make_unique<std::string>(std::move(bytes));
  ISTHMUS_RETURN_IF_ERROR(m.ParseInto(*m.owned_input_, opts));
  return m;
}

int Message::NextOccurrence(std::string_view name) const {
  int n = 1;
  for (const Segment& s : segments_) n += (fields_[s.first] == name);
  return n;
}

absl::Status Message::SplitFields(std::string_view raw, bool is_msh, size_t max_fields) {
  const char sep = delims_.field;
  size_t start_count = fields_.size();
  size_t pos;
  if (is_msh) {
    fields_.push_back(raw.substr(0, 3));
    fields_.push_back(raw.substr(3, 1));
    size_t enc_end = raw.find(sep, 4);
    if (enc_end == std::string_view::npos) enc_end = raw.size();
    fields_.push_back(raw.substr(4, enc_end - 4));
    if (enc_end == raw.size()) return absl::OkStatus();
    pos = enc_end + 1;
  } else {
    size_t first = raw.find(sep);
    if (first == std::string_view::npos) {
      fields_.push_back(raw);
      return absl::OkStatus();
    }
    fields_.push_back(raw.substr(0, first));
    pos = first + 1;
  }
  // Fields are short (a dozen bytes on average), so a memchr call per field cost more than the
  // scan itself; instead test eight bytes at a time for the separator (SWAR) and walk the hits.
  auto too_many = [&] { return fields_.size() - start_count > max_fields; };
  auto too_many_error = [&] {
    return absl::ResourceExhaustedError(
        base::StrCat("segment ", segments_.size() + 1, " has more than ", max_fields, " fields"));
  };
  const char* data = raw.data();
  const size_t size = raw.size();
  size_t i = pos;
  if constexpr (std::endian::native == std::endian::little) {
    constexpr uint64_t kOnes = 0x0101010101010101ull;
    constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
    const uint64_t pattern = kOnes * static_cast<unsigned char>(sep);
    for (; i + 8 <= size; i += 8) {
      uint64_t v;
      std::memcpy(&v, data + i, 8);
      v ^= pattern;                                    // bytes equal to sep are now zero
      uint64_t hits = ~(((v & kLow7) + kLow7) | v | kLow7);  // exactly their high bits
      while (hits != 0) {
        size_t at = i + static_cast<size_t>(std::countr_zero(hits)) / 8;
        fields_.emplace_back(data + pos, at - pos);  // pos <= at < size: no substr check
        if (too_many()) return too_many_error();
        pos = at + 1;
        hits &= hits - 1;
      }
    }
  }
  for (; i < size; ++i) {
    if (data[i] == sep) {
      fields_.push_back(raw.substr(pos, i - pos));
      if (too_many()) return too_many_error();
      pos = i + 1;
    }
  }
  fields_.push_back(raw.substr(pos));
  if (too_many()) return too_many_error();
  return absl::OkStatus();
}

absl::Status Message::ParseInto(std::string_view bytes, const ParseOptions& opts) {
  if (bytes.size() > opts.max_bytes) {
    return absl::ResourceExhaustedError(base::StrCat(
        "message of ", bytes.size(), " bytes exceeds the limit of ", opts.max_bytes, " bytes"));
  }
  input_ = bytes;
  header_only_ = opts.header_only;
  size_t pos = 0;
  if (bytes.substr(0, kBom.size()) == kBom) pos = kBom.size();
  while (pos < bytes.size() && (IsTerminator(bytes[pos]) || bytes[pos] == ' ' ||
                                bytes[pos] == '\t' || bytes[pos] == '\x0b')) {
    ++pos;
  }
  prefix_ = bytes.substr(0, pos);
  std::string_view body = bytes.substr(pos);
  if (body.size() < 4 || body.substr(0, 3) != "MSH") {
    return ParseError("MSH", 0, 0, ErrorCode::kSegmentSequenceError,
                      "the message does not start with an MSH segment");
  }
  {
    size_t enc_end = body.find(body[3], 4);
    size_t line_end = FindTerminator(body, 4);
    if (enc_end == std::string_view::npos || enc_end > line_end) enc_end = line_end;
    auto d = Delimiters::FromMsh(body[3], body.substr(4, enc_end - 4));
    if (!d.ok()) {
      return ParseError("MSH", 0, 2, ErrorCode::kDataTypeError, std::string(d.status().message()));
    }
    delims_ = *d;
  }

  // A file saved from an MLLP feed may end with the FS byte (and CR): framing, not content.
  const std::string_view full_body = body;
  {
    size_t end = body.size();
    while (end > 0 && (IsTerminator(body[end - 1]) || body[end - 1] == ' ' || body[end - 1] == '\t')) {
      --end;
    }
    if (end > 0 && body[end - 1] == '\x1c') body = body.substr(0, end - 1);
  }

  OccurrenceCounter occurrences;
  TerminatorScanner terminators(body);
  fields_.reserve(opts.header_only ? body.size() / 48 + 32 : body.size() / 6 + 16);
  segments_.reserve(body.size() / 48 + 4);
  pos = 0;
  while (pos < body.size()) {
    size_t end = terminators.Next(pos);
    std::string_view raw = body.substr(pos, end - pos);
    size_t term_end = end;
    while (term_end < body.size() && IsTerminator(body[term_end])) ++term_end;
    if (IsBlank(body.substr(pos))) {  // trailing whitespace after the last segment
      trailer_ = body.substr(pos);
      break;
    }
    if (segments_.size() >= opts.max_segments) {
      return absl::ResourceExhaustedError(
          base::StrCat("message has more than ", opts.max_segments, " segments"));
    }
    std::string_view name = raw.substr(0, std::min(raw.find(delims_.field), raw.size()));
    bool is_msh = segments_.empty();
    if (!is_msh && name == "MSH") {
      return ParseError("MSH", 2, 0, ErrorCode::kSegmentSequenceError,
                        base::StrCat("segment ", segments_.size() + 1,
                                     " starts a second message; split the input with SplitBatch"));
    }
    if (!ValidSegmentName(name)) {
      return ParseError("", 0, 0, ErrorCode::kSegmentSequenceError,
                        base::StrCat("segment ", segments_.size() + 1,
                                     " has no valid segment name (three upper-case letters or "
                                     "digits followed by the field separator)"));
    }
    Segment seg;
    seg.first = fields_.size();
    if (!is_msh && opts.header_only) {
      fields_.push_back(name);
    } else {
      ISTHMUS_RETURN_IF_ERROR(SplitFields(raw, is_msh, opts.max_fields_per_segment));
    }
    seg.count = fields_.size() - seg.first;
    seg.raw = raw;
    seg.terminator = body.substr(end, term_end - end);
    seg.occurrence = occurrences.Next(name);
    seg.modified = false;
    segments_.push_back(seg);
    pos = term_end;
  }

  if (body.size() != full_body.size()) {
    size_t from = trailer_.empty() ? body.size() : static_cast<size_t>(trailer_.data() - full_body.data());
    trailer_ = full_body.substr(from);
  }

  std::string_view msh18 = Header(18, 0);
  if (!msh18.empty()) {
    auto cs = CharsetFromMsh18(msh18);
    // An unknown MSH-18 does not make the message unreadable: values are then read as
    // unspecified (UTF-8 if valid, else 8859/1). The validator reports the table value.
    if (cs.ok()) charset_ = *cs;
  }
  return absl::OkStatus();
}

SegmentView Message::segment(size_t i) const {
  const Segment& s = segments_[i];
  return SegmentView(this, i, s.first, s.count, s.occurrence);
}

std::optional<SegmentView> Message::FindSegment(std::string_view name, int occurrence) const {
  if (occurrence < 1) occurrence = 1;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    if (s.occurrence == occurrence && fields_[s.first] == name) return segment(i);
  }
  return std::nullopt;
}

int Message::CountSegments(std::string_view name) const { return NextOccurrence(name) - 1; }

std::string_view Message::Header(int field, int component) const {
  if (segments_.empty()) return {};
  const Segment& msh = segments_[0];
  if (static_cast<size_t>(field) >= msh.count) return {};
  std::string_view v = fields_[msh.first + field];
  if (field <= 2) return v;
  v = NthPart(v, delims_.repetition, 1);
  return component == 0 ? v : NthPart(v, delims_.component, component);
}

std::string_view Message::Locate(const Path& p, size_t* field_index) const {
  *field_index = 0;
  std::optional<SegmentView> seg = FindSegment(p.segment, p.segment_index);
  if (!seg.has_value() || p.field < 1 || static_cast<size_t>(p.field) >= seg->count_) return {};
  *field_index = seg->first_ + p.field;
  return fields_[*field_index];
}

std::string_view Message::Get(const Path& p) const {
  size_t idx;
  std::string_view v = Locate(p, &idx);
  if (v.empty()) return v;
  if (p.segment == "MSH" && p.field <= 2) {
    return (p.repetition <= 1 && p.component <= 1 && p.subcomponent <= 1) ? v : std::string_view();
  }
  v = NthPart(v, delims_.repetition, p.repetition);
  if (p.component == 0) return v;
  v = NthPart(v, delims_.component, p.component);
  if (p.subcomponent == 0) return v;
  return NthPart(v, delims_.subcomponent, p.subcomponent);
}

std::string_view Message::Get(std::string_view path) const {
  auto p = Path::Parse(path);
  return p.ok() ? Get(*p) : std::string_view();
}

std::string Message::DecodeText(std::string_view raw) const {
  if (NeedsUnescape(raw, delims_)) return ToUtf8(Unescape(raw, delims_), charset_);
  return ToUtf8(raw, charset_);
}

std::string Message::GetText(const Path& p) const {
  if (p.segment == "MSH" && (p.field == 1 || p.field == 2)) return std::string(Get(p));
  return DecodeText(Get(p));
}

std::string Message::GetText(std::string_view path) const {
  auto p = Path::Parse(path);
  return p.ok() ? GetText(*p) : std::string();
}

int Message::RepetitionCount(const Path& p) const {
  size_t idx;
  std::string_view v = Locate(p, &idx);
  if (p.segment == "MSH" && p.field <= 2) return v.empty() ? 0 : 1;
  return PartCount(v, delims_.repetition);
}

std::string_view Message::Own(std::string s) {
  owned_values_.push_back(std::move(s));
  return owned_values_.back();
}

void Message::EnsureFields(size_t seg_index, size_t count) {
  Segment& seg = segments_[seg_index];
  if (seg.count >= count) return;
  size_t add = count - seg.count;
  fields_.insert(fields_.begin() + static_cast<ptrdiff_t>(seg.first + seg.count), add,
                 std::string_view());
  seg.count = count;
  for (size_t i = seg_index + 1; i < segments_.size(); ++i) segments_[i].first += add;
}

absl::Status Message::Set(const Path& p, std::string_view value) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(base::StrCat("cannot set ", p.ToString(), ": ", why));
  };
  if (p.field < 1) return bad("a field number is required");
  if (p.segment == "MSH" && p.field <= 2) return bad("MSH-1 and MSH-2 are the delimiters");
  // The value must not contain separators of its own level or above.
  std::string forbidden = {delims_.field, '\r', '\n'};
  if (p.repetition > 0 || p.component > 0) forbidden.push_back(delims_.repetition);
  if (p.component > 0) forbidden.push_back(delims_.component);
  if (p.subcomponent > 0) forbidden.push_back(delims_.subcomponent);
  for (char c : forbidden) {
    if (c != '\0' && value.find(c) != std::string_view::npos) {
      return bad("the value contains a delimiter of this level; escape it (SetText does)");
    }
  }
  if ((p.component > 0 && delims_.component == '\0') ||
      (p.subcomponent > 0 && delims_.subcomponent == '\0') ||
      (p.repetition > 1 && delims_.repetition == '\0')) {
    return bad("the message's MSH-2 defines no delimiter for that level");
  }
  std::optional<SegmentView> seg = FindSegment(p.segment, p.segment_index);
  if (!seg.has_value()) {
    return absl::NotFoundError(base::StrCat("cannot set ", p.ToString(), ": no such segment"));
  }
  if (static_cast<size_t>(p.field) >= 100'000) return bad("field number too large");
  size_t seg_index = seg->index();
  EnsureFields(seg_index, static_cast<size_t>(p.field) + 1);
  size_t idx = segments_[seg_index].first + static_cast<size_t>(p.field);
  std::string_view old_field = fields_[idx];

  std::string updated;
  if (p.repetition == 0 && p.component == 0) {
    updated = std::string(value);
  } else {
    int rep = p.repetition < 1 ? 1 : p.repetition;
    std::string_view old_rep = NthPart(old_field, delims_.repetition, rep);
    std::string new_rep;
    if (p.component == 0) {
      new_rep = std::string(value);
    } else {
      std::string_view old_comp = NthPart(old_rep, delims_.component, p.component);
      std::string new_comp = p.subcomponent == 0
                                 ? std::string(value)
                                 : ReplacePart(old_comp, delims_.subcomponent, p.subcomponent, value);
      new_rep = ReplacePart(old_rep, delims_.component, p.component, new_comp);
    }
    updated = ReplacePart(old_field, delims_.repetition, rep, new_rep);
  }
  fields_[idx] = Own(std::move(updated));
  segments_[seg_index].modified = true;
  modified_ = true;
  return absl::OkStatus();
}

absl::Status Message::Set(std::string_view path, std::string_view value) {
  ISTHMUS_ASSIGN_OR_RETURN(Path p, Path::Parse(path));
  return Set(p, value);
}

absl::Status Message::SetText(std::string_view path, std::string_view text) {
  ISTHMUS_ASSIGN_OR_RETURN(Path p, Path::Parse(path));
  return Set(p, Escape(text, delims_));
}

absl::Status Message::AddSegment(std::string_view raw_segment) {
  if (FindTerminator(raw_segment, 0) != raw_segment.size()) {
    return absl::InvalidArgumentError("a segment cannot contain CR or LF");
  }
  std::string_view owned = Own(std::string(raw_segment));
  std::string_view name = owned.substr(0, std::min(owned.find(delims_.field), owned.size()));
  if (!ValidSegmentName(name) || name == "MSH") {
    return absl::InvalidArgumentError(
        "an added segment needs a valid name other than MSH, followed by the field separator");
  }
  Segment seg;
  seg.first = fields_.size();
  ISTHMUS_RETURN_IF_ERROR(SplitFields(owned, false, ParseOptions().max_fields_per_segment));
  seg.count = fields_.size() - seg.first;
  seg.occurrence = NextOccurrence(name);
  seg.modified = true;
  segments_.push_back(seg);
  modified_ = true;
  return absl::OkStatus();
}

std::string Message::Encode() const {
  if (!modified_) return std::string(input_);
  std::string_view default_term = "\r";
  for (const Segment& s : segments_) {
    if (!s.terminator.empty()) {
      default_term = s.terminator.substr(0, s.terminator.size() > 1 && s.terminator[0] == '\r' &&
                                                    s.terminator[1] == '\n' ? 2 : 1);
      break;
    }
  }
  std::string out(prefix_);
  out.reserve(input_.size() + 64);
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    bool is_msh = i == 0;
    if (!s.modified) {
      out.append(s.raw);
    } else {
      out.append(fields_[s.first]);
      for (size_t f = 1; f < s.count; ++f) {
        if (is_msh && f == 1) continue;  // MSH-1 is the separator written before MSH-2
        out.push_back(delims_.field);
        out.append(fields_[s.first + f]);
      }
    }
    bool last = i + 1 == segments_.size();
    if (!s.terminator.empty()) {
      out.append(s.terminator);
    } else if (!last || s.raw.empty()) {
      out.append(default_term);
    }
  }
  out.append(trailer_);
  return out;
}

}  // namespace isthmus::hl7v2
