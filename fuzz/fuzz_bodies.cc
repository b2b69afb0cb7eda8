#include "fuzz/fuzz_bodies.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "base/str.h"
#include "hl7v2/ack.h"
#include "hl7v2/batch.h"
#include "hl7v2/escape.h"
#include "hl7v2/issue.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"

namespace isthmus::fuzz {
namespace {

using hl7v2::Message;
using hl7v2::Path;

// Bounds that keep one execution cheap on large inputs.
constexpr size_t kMaxSegmentsWalked = 64;
constexpr size_t kMaxFieldsWalked = 40;
constexpr size_t kMaxMessages = 16;

constexpr std::string_view kPaths[] = {
    "MSH-1",          "MSH-2",          "MSH-3",       "MSH-4.2",         "MSH-7",
    "MSH-9",          "MSH-9.1",        "MSH-9.3",     "MSH-10",          "MSH-12.1",
    "MSH-18",         "MSH-21[2].1",    "EVN-2",       "PID-3",           "PID-3[2].4.1",
    "PID-5.1.1",      "PID-11[3].7",    "OBX-5",       "OBX[3]-5[2].1.2", "NTE[2]-3",
    "ZZZ-1",          "MSH-2.1",        "MSH-1[2]",    "PID[1000000]-1",  "PID-1000000",
    "OBX-999999.999999.999999", "pid-3", "MSH.9",      "BTS-1",           "",
    "MSH",            "PID[0]-1",       "PID-0",       "PID-3[",          "1",
};

std::string StatusText(const absl::Status& s) { return std::string(s.message()); }

hl7v2::AckOptions FixedAckOptions(hl7v2::AckCode code) {
  hl7v2::AckOptions o;
  o.code = code;
  o.control_id = "FUZZ1";
  o.timestamp = "20240101000000";
  return o;
}

// An ACK/NAK we built must itself be a well-formed message that echoes the code.
std::string CheckAck(std::string_view ack, std::string_view code, std::string_view what) {
  auto parsed = Message::Parse(ack);
  if (!parsed.ok()) {
    return base::StrCat(what, " does not parse: ", StatusText(parsed.status()));
  }
  if (parsed->Get("MSA-1") != code) return base::StrCat(what, ": MSA-1 is not ", code);
  if (parsed->Encode() != ack) return base::StrCat(what, ": does not re-encode identically");
  return {};
}

std::string CheckRejected(std::string_view bytes, const absl::Status& status) {
  if (status.message().empty()) return "a rejection has an empty error message";
  hl7v2::AckOptions o = FixedAckOptions(hl7v2::AckCode::kAR);
  if (auto issue = hl7v2::IssueFromStatus(status)) o.issues.push_back(*issue);
  return CheckAck(hl7v2::BuildNakForUnparsable(bytes, o), "AR", "NAK for unparsable input");
}

// Reads small numbers from the input to vary the paths we probe.
class Dice {
 public:
  explicit Dice(std::string_view data) : data_(data) {}
  int Next(int bound) {
    if (data_.empty()) return 0;
    unsigned char c = static_cast<unsigned char>(data_[pos_++ % data_.size()]);
    return c % bound;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

std::string CheckReads(const Message& m, Dice& dice) {
  for (std::string_view p : kPaths) {
    std::string_view raw = m.Get(p);
    std::string text = m.GetText(p);
    auto parsed = Path::Parse(p);
    if (parsed.ok()) {
      if (m.Get(*parsed) != raw) return base::StrCat("Get(", p, ") differs by string and Path");
      (void)m.RepetitionCount(*parsed);
      if (raw.empty() && !text.empty()) return base::StrCat("GetText(", p, ") of nothing is text");
    } else if (!raw.empty()) {
      return base::StrCat("Get of the unparsable path '", p, "' returned a value");
    }
  }
  const hl7v2::Delimiters& d = m.delimiters();
  size_t segments = std::min(m.segment_count(), kMaxSegmentsWalked);
  for (size_t i = 0; i < segments; ++i) {
    hl7v2::SegmentView seg = m.segment(i);
    if (seg.name().size() != 3) return "a segment name is not three characters";
    if (auto found = m.FindSegment(seg.name(), seg.occurrence());
        !found.has_value() || found->index() != i) {
      return base::StrCat("FindSegment does not find segment ", i + 1);
    }
    size_t fields = std::min(seg.field_count(), kMaxFieldsWalked);
    for (size_t f = 1; f < fields; ++f) {
      Path p;
      p.segment = std::string(seg.name());
      p.segment_index = seg.occurrence();
      p.field = static_cast<int>(f);
      std::string_view field = seg.field(f);
      bool delimiter_field = i == 0 && f <= 2;
      std::string_view expected = delimiter_field ? field : hl7v2::NthPart(field, d.repetition, 1);
      if (m.Get(p) != expected) {
        return base::StrCat("Get(", p.ToString(), ") is not the field's first repetition");
      }
      p.repetition = 1 + dice.Next(4);
      p.component = dice.Next(5);
      p.subcomponent = p.component == 0 ? 0 : dice.Next(4);
      std::string_view part = m.Get(p);
      if (!part.empty() && field.find(part) == std::string_view::npos) {
        return base::StrCat("Get(", p.ToString(), ") is not part of the field");
      }
      (void)m.GetText(p);
      (void)m.DecodeText(field);
    }
  }
  return {};
}

// Set() then Encode() then Parse(): the value must survive, and the rest of the message too.
std::string CheckWrites(std::string_view bytes) {
  auto parsed = Message::Parse(bytes);
  if (!parsed.ok()) return "a message that parsed once does not parse again";
  Message& m = *parsed;

  // Setting a field to its own value must not change a single byte.
  hl7v2::SegmentView last = m.segment(m.segment_count() - 1);
  if (m.segment_count() > 1 && last.field_count() > 1) {
    Path p;
    p.segment = std::string(last.name());
    p.segment_index = last.occurrence();
    p.field = 1;
    std::string same(last.field(1));
    if (auto s = m.Set(p, same); !s.ok()) {
      return base::StrCat("Set of a field to its own value failed: ", StatusText(s));
    }
    if (m.Encode() != bytes) return "Set of a field to its own value changed the encoding";
  }
  if (m.segment(0).field_count() > 3) {
    std::string same(m.segment(0).field(3));
    if (auto s = m.Set("MSH-3", same); !s.ok()) {
      return base::StrCat("Set of MSH-3 to its own value failed: ", StatusText(s));
    }
    if (m.Encode() != bytes) return "Set of MSH-3 to its own value changed the encoding";
  }

  // A real change, at every level the delimiters allow.
  const hl7v2::Delimiters& d = m.delimiters();
  std::string path = "MSH-4";
  if (d.repetition != '\0' && d.component != '\0') path = "MSH-4[2].3";
  if (d.repetition != '\0' && d.component != '\0' && d.subcomponent != '\0') path = "MSH-4[2].3.2";
  const std::string value = "FUZZ";
  if (auto s = m.Set(path, value); !s.ok()) {
    return base::StrCat("Set(", path, ") failed: ", StatusText(s));
  }
  if (m.Get(path) != value) return base::StrCat("Get(", path, ") after Set is not the value");
  int before = m.CountSegments("NTE");
  std::string nte = base::StrCat("NTE", std::string(1, d.field), "1");
  if (auto s = m.AddSegment(nte); !s.ok()) {
    return base::StrCat("AddSegment failed: ", StatusText(s));
  }
  std::string encoded = m.Encode();
  auto again = Message::Parse(encoded);
  if (!again.ok()) {
    return base::StrCat("the message does not parse after Set + AddSegment: ",
                        StatusText(again.status()));
  }
  if (again->Get(path) != value) return base::StrCat("Get(", path, ") after re-parse differs");
  if (again->CountSegments("NTE") != before + 1) return "the added segment is lost on re-parse";
  if (again->segment_count() != m.segment_count()) {
    return "the segment count changes on re-parse after Set";
  }
  if (again->Encode() != encoded) return "a re-parsed message does not re-encode identically";
  if (m.Set("MSH-2", "^~").ok()) return "Set of MSH-2 succeeded";
  return {};
}

std::string CheckMessage(std::string_view bytes, Dice& dice) {
  auto m = Message::Parse(bytes);
  if (!m.ok()) return CheckRejected(bytes, m.status());
  if (m->segment_count() == 0) return "a parsed message has no segment";
  if (m->segment(0).name() != "MSH") return "a parsed message does not start with MSH";
  if (m->Encode() != bytes) return "Encode() of an unmodified message is not the input";
  if (std::string e = CheckReads(*m, dice); !e.empty()) return e;
  hl7v2::AckOptions o = FixedAckOptions(hl7v2::AckCode::kAE);
  hl7v2::Issue issue;
  issue.location.segment = "PID";
  issue.location.field = 3;
  issue.message = "fuzz \\ | ^ ~ & issue";
  o.issues.push_back(issue);
  o.issues.push_back(hl7v2::Issue{});
  o.text = "text | with ^ delimiters";
  if (std::string e = CheckAck(hl7v2::BuildAck(*m, o), "AE", "ACK"); !e.empty()) return e;
  return CheckWrites(bytes);
}

}  // namespace

std::string CheckParse(std::string_view data) {
  Dice dice(data.substr(data.size() > 64 ? data.size() - 64 : 0));
  // Path parser on arbitrary text (the tail of the input).
  std::string_view tail = data.substr(data.size() > 24 ? data.size() - 24 : 0);
  if (auto p = Path::Parse(tail); p.ok()) {
    auto round = Path::Parse(p->ToString());
    if (!round.ok()) return "Path::ToString() does not parse back";
  }

  // The whole input as one message.
  if (std::string e = CheckMessage(data, dice); !e.empty()) return base::StrCat("whole input: ", e);

  auto batch = hl7v2::SplitBatch(data);
  if (!batch.ok()) {
    if (batch.status().message().empty()) return "SplitBatch failed with an empty message";
    return {};
  }
  if (batch->messages.empty()) return "SplitBatch succeeded with no message";
  size_t n = 0;
  for (const hl7v2::MessageSpan& span : batch->messages) {
    if (span.bytes.data() < data.data() ||
        span.bytes.data() + span.bytes.size() > data.data() + data.size() ||
        static_cast<size_t>(span.bytes.data() - data.data()) != span.offset) {
      return "a message span is not inside the input at its offset";
    }
    if (span.bytes.substr(0, 3) != "MSH") return "a message span does not start with MSH";
    if (++n > kMaxMessages) break;
    if (std::string e = CheckMessage(span.bytes, dice); !e.empty()) {
      return base::StrCat("message ", n, ": ", e);
    }
  }
  return {};
}

std::string CheckEscape(std::string_view data) {
  std::vector<hl7v2::Delimiters> sets(1);  // the defaults
  std::string_view text = data;
  if (data.size() >= 6) {
    // First byte: field separator; next up to five: MSH-2.
    size_t n = 1 + static_cast<unsigned char>(data[0]) % 4;  // 1..4 of the >= 4 bytes left
    auto d = hl7v2::Delimiters::FromMsh(data[1], data.substr(2, n));
    if (d.ok()) sets.push_back(*d);
    text = data.substr(2 + n);
  }
  std::string expected;
  bool comparable = text.find('\0') == std::string_view::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    expected.push_back(text[i]);
  }
  for (const hl7v2::Delimiters& d : sets) {
    std::string unescaped = hl7v2::Unescape(data, d);  // arbitrary bytes: must not crash
    if (!hl7v2::NeedsUnescape(data, d) && unescaped != data) {
      return "Unescape changed text without an escape character";
    }
    if (d.escape == '\0') continue;  // no escape character: text with delimiters cannot be written
    std::string escaped = hl7v2::Escape(text, d);
    for (char c : escaped) {
      bool special = c == '\r' || c == '\n' || c == '\0' ||
                     (c != d.escape && d.IsSpecial(c)) || (c == d.truncation && c != '\0');
      if (special) {
        return base::StrCat("Escape() output holds the delimiter or line break byte ",
                            static_cast<int>(static_cast<unsigned char>(c)));
      }
    }
    if (comparable && hl7v2::Unescape(escaped, d) != expected) {
      return "Unescape(Escape(x)) != x";
    }
  }
  return {};
}

}  // namespace isthmus::fuzz
