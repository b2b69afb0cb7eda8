#include "hl7v2/ack.h"

#include <atomic>
#include <cstdint>
#include <cstdio>

#include "base/str.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "hl7v2/escape.h"
#include "hl7v2/message.h"

namespace isthmus::hl7v2 {
namespace {

// What an ACK needs from the original header.
struct Header {
  Delimiters delims;
  std::string_view sending_app, sending_facility, receiving_app, receiving_facility;
  std::string_view trigger, control_id, processing_id, version;
};

// Version as major*100 + minor*10 + patch (2.5.1 -> 251), for comparisons. 0 when unknown.
int VersionNumber(std::string_view v) {
  std::vector<std::string_view> parts = base::Split(v, '.');
  int n[3] = {0, 0, 0};
  for (size_t i = 0; i < parts.size() && i < 3; ++i) {
    if (!base::ParseInt(parts[i], &n[i]) || n[i] < 0 || n[i] > 9) return 0;
  }
  return n[0] * 100 + n[1] * 10 + n[2];
}

// YYYYMMDDHHMMSS in UTC. Formatted once per second per thread: absl::FormatTime was a sixth of
// a listener thread's instructions per ACK (it formats twice per ACK).
const std::string& UtcStamp(absl::Time now) {
  thread_local int64_t second = INT64_MIN;
  thread_local std::string text;
  const int64_t s = absl::ToUnixSeconds(now);
  if (s != second) {
    text = absl::FormatTime("%Y%m%d%H%M%S", now, absl::UTCTimeZone());
    second = s;
  }
  return text;
}

std::string NextControlId(absl::Time now) {
  static std::atomic<uint32_t> counter{0};
  return base::StrCat("ACK", UtcStamp(now), counter.fetch_add(1, std::memory_order_relaxed) % 100000);
}

std::string Build(const Header& h, const AckOptions& o) {
  const Delimiters& d = h.delims;
  const char f = d.field;
  const int version = VersionNumber(h.version);
  absl::Time now = absl::Now();
  std::string ts = o.timestamp.empty() ? UtcStamp(now) : o.timestamp;
  std::string control_id = o.control_id.empty() ? NextControlId(now) : o.control_id;
  auto esc = [&](std::string_view s) { return Escape(s, d); };

  std::string out;
  out.reserve(256);
  // MSH: the ACK comes from the original receiver and goes back to the original sender.
  base::StrAppend(&out, "MSH", std::string(1, f), d.EncodingCharacters(), std::string(1, f));
  base::StrAppend(&out, h.receiving_app.empty() ? esc(o.sending_application) : h.receiving_app, std::string(1, f));
  base::StrAppend(&out, h.receiving_facility.empty() ? esc(o.sending_facility) : h.receiving_facility, std::string(1, f));
  base::StrAppend(&out, h.sending_app, std::string(1, f), h.sending_facility, std::string(1, f));
  base::StrAppend(&out, ts, std::string(1, f), std::string(1, f));
  // MSH-9: the trigger from v2.3, the structure id from v2.3.1.
  std::string type = "ACK";
  if (!h.trigger.empty() && (version == 0 || version >= 230) && d.component != '\0') {
    base::StrAppend(&type, std::string(1, d.component), h.trigger);
    if (version == 0 || version >= 231) base::StrAppend(&type, std::string(1, d.component), "ACK");
  }
  base::StrAppend(&out, type, std::string(1, f), esc(control_id), std::string(1, f));
  base::StrAppend(&out, h.processing_id.empty() ? "P" : h.processing_id, std::string(1, f));
  base::StrAppend(&out, h.version.empty() ? "2.5.1" : h.version);
  out.push_back(o.terminator);

  // MSA-1 code, MSA-2 the original control id, MSA-3 text (withdrawn in v2.7).
  base::StrAppend(&out, "MSA", std::string(1, f), AckCodeText(o.code), std::string(1, f), h.control_id);
  bool old_style = version != 0 && version < 250;
  if (!o.text.empty() && (version == 0 || version < 270)) {
    base::StrAppend(&out, std::string(1, f), esc(o.text));
  }
  out.push_back(o.terminator);

  if (o.issues.empty()) return out;
  const char c = d.component != '\0' ? d.component : '^';
  const char s = d.subcomponent != '\0' ? d.subcomponent : '&';
  const char r = d.repetition != '\0' ? d.repetition : '~';
  auto num = [](int n) { return n > 0 ? base::StrCat(n) : std::string(); };
  if (old_style) {
    // v2.1-2.4: one ERR segment, ERR-1 (ELD) repeated: segment^sequence^field^code&text&HL70357.
    base::StrAppend(&out, "ERR", std::string(1, f));
    for (size_t i = 0; i < o.issues.size(); ++i) {
      const Issue& is = o.issues[i];
      int code = static_cast<int>(is.code == ErrorCode::kValueTooLong ? ErrorCode::kDataTypeError : is.code);
      if (i > 0) out.push_back(r);
      int seq = is.location.segment.empty() ? 0 : std::max(1, is.location.segment_index);
      base::StrAppend(&out, is.location.segment, std::string(1, c), num(seq), std::string(1, c),
                      num(is.location.field), std::string(1, c), code, std::string(1, s),
                      esc(ErrorCodeText(static_cast<ErrorCode>(code))), std::string(1, s), "HL70357");
    }
    out.push_back(o.terminator);
    return out;
  }
  // v2.5+: one ERR per issue. ERR-2 location (ERL), ERR-3 code (CWE), ERR-4 severity,
  // ERR-8 user message.
  for (const Issue& is : o.issues) {
    int code = static_cast<int>(is.code);
    if (is.code == ErrorCode::kValueTooLong && version != 0 && version < 270) {
      code = static_cast<int>(ErrorCode::kDataTypeError);
    }
    const Path& p = is.location;
    std::string erl;
    if (!p.segment.empty()) {
      erl = base::StrCat(p.segment, std::string(1, c), std::max(1, p.segment_index));
      if (p.field > 0) {
        base::StrAppend(&erl, std::string(1, c), p.field, std::string(1, c), std::max(1, p.repetition));
        if (p.component > 0) base::StrAppend(&erl, std::string(1, c), p.component);
        if (p.component > 0 && p.subcomponent > 0) base::StrAppend(&erl, std::string(1, c), p.subcomponent);
      }
    }
    base::StrAppend(&out, "ERR", std::string(1, f), std::string(1, f), erl, std::string(1, f), code,
                    std::string(1, c), esc(ErrorCodeText(static_cast<ErrorCode>(code))),
                    std::string(1, c), "HL70357", std::string(1, f), std::string(1, SeverityCode(is.severity)),
                    std::string(4, f), esc(is.message));
    out.push_back(o.terminator);
  }
  return out;
}

}  // namespace

std::string_view AckCodeText(AckCode c) {
  switch (c) {
    case AckCode::kAA: return "AA";
    case AckCode::kAE: return "AE";
    case AckCode::kAR: return "AR";
    case AckCode::kCA: return "CA";
    case AckCode::kCE: return "CE";
    case AckCode::kCR: return "CR";
  }
  return "AR";
}

std::string BuildAck(const Message& m, const AckOptions& opts) {
  Header h;
  h.delims = m.delimiters();
  h.sending_app = m.Header(3, 0);
  h.sending_facility = m.Header(4, 0);
  h.receiving_app = m.Header(5, 0);
  h.receiving_facility = m.Header(6, 0);
  h.trigger = m.trigger_event();
  h.control_id = m.control_id();
  h.processing_id = m.Header(11, 0);
  h.version = m.Header(12, 0);
  return Build(h, opts);
}

std::string BuildNakForUnparsable(std::string_view bytes, const AckOptions& opts) {
  Header h;
  // Read what we can from the first line, but only when its delimiters are sound; otherwise
  // echo nothing from the input.
  if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  size_t line_end = bytes.find_first_of("\r\n");
  std::string_view line = bytes.substr(0, line_end);
  if (line.size() > 8 && line.substr(0, 3) == "MSH") {
    char f = line[3];
    std::vector<std::string_view> fields = base::Split(line, f);
    if (fields.size() >= 2) {
      auto d = Delimiters::FromMsh(f, fields[1].substr(0, std::min<size_t>(fields[1].size(), 5)));
      if (d.ok()) {
        h.delims = *d;
        // fields[k] is MSH-(k+1).
        auto field = [&](size_t n) -> std::string_view {
          if (n - 1 >= fields.size()) return {};
          std::string_view v = NthPart(fields[n - 1], d->repetition, 1);
          return v.size() > 200 ? std::string_view() : v;
        };
        h.sending_app = field(3);
        h.sending_facility = field(4);
        h.receiving_app = field(5);
        h.receiving_facility = field(6);
        h.trigger = NthPart(field(9), d->component, 2);
        h.control_id = field(10);
        h.processing_id = field(11);
        h.version = NthPart(field(12), d->component, 1);
        if (VersionNumber(h.version) == 0) h.version = {};
      }
    }
  }
  return Build(h, opts);
}

}  // namespace isthmus::hl7v2
