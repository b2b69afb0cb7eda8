#include "fhir/datetime.h"

#include "absl/time/civil_time.h"
#include "base/str.h"

namespace isthmus::fhir {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int Num(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; ++i) v = v * 10 + (s[pos + i] - '0');
  return v;
}

void Append2(std::string* out, int v) {
  out->push_back(static_cast<char>('0' + v / 10));
  out->push_back(static_cast<char>('0' + v % 10));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

absl::Status Bad(std::string_view v2, std::string_view why) {
  return absl::InvalidArgumentError(base::StrCat("'", v2, "' is not an HL7 date/time: ", why));
}

struct Parsed {
  int digits = 0;  // 4, 6, 8, 10, 12 or 14
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  std::string_view fraction;  // digits after '.', without the dot
  bool has_offset = false;
  int offset_minutes = 0;     // signed
};

absl::Status Parse(std::string_view v2, bool time_only, Parsed* p) {
  std::string_view s = Trim(v2);
  size_t n = 0;
  while (n < s.size() && IsDigit(s[n])) ++n;
  std::string_view digits = s.substr(0, n);
  std::string_view rest = s.substr(n);
  if (time_only) {
    if (n != 2 && n != 4 && n != 6) return Bad(v2, "a time has 2, 4 or 6 digits before any fraction");
    p->digits = static_cast<int>(n) + 8;
    p->hour = Num(digits, 0, 2);
    if (n >= 4) p->minute = Num(digits, 2, 2);
    if (n >= 6) p->second = Num(digits, 4, 2);
  } else {
    if (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14) {
      return Bad(v2, "expected 4, 6, 8, 10, 12 or 14 digits");
    }
    p->digits = static_cast<int>(n);
    p->year = Num(digits, 0, 4);
    if (n >= 6) p->month = Num(digits, 4, 2);
    if (n >= 8) p->day = Num(digits, 6, 2);
    if (n >= 10) p->hour = Num(digits, 8, 2);
    if (n >= 12) p->minute = Num(digits, 10, 2);
    if (n >= 14) p->second = Num(digits, 12, 2);
    // FHIR dates start at year 1 (its patterns exclude 0000, a common "no date" filler).
    if (p->year == 0) return Bad(v2, "year 0000");
  }
  if (!rest.empty() && rest.front() == '.') {
    if (p->digits != 14) return Bad(v2, "a fraction needs seconds");
    size_t f = 1;
    while (f < rest.size() && IsDigit(rest[f])) ++f;
    if (f == 1 || f > 5) return Bad(v2, "a fraction has 1 to 4 digits");
    p->fraction = rest.substr(1, f - 1);
    rest.remove_prefix(f);
  }
  if (!rest.empty()) {
    if ((rest.front() != '+' && rest.front() != '-') || rest.size() != 5 ||
        !IsDigit(rest[1]) || !IsDigit(rest[2]) || !IsDigit(rest[3]) || !IsDigit(rest[4])) {
      return Bad(v2, "an offset is +HHMM or -HHMM");
    }
    int hh = Num(rest, 1, 2), mm = Num(rest, 3, 2);
    if (hh > 14 || mm > 59) return Bad(v2, "offset out of range");
    p->has_offset = true;
    p->offset_minutes = (rest.front() == '-' ? -1 : 1) * (hh * 60 + mm);
  }
  if (p->month < 1 || p->month > 12) return Bad(v2, "month out of range");
  if (p->day < 1 || p->day > 31) return Bad(v2, "day out of range");
  if (p->digits >= 8 && !time_only) {
    absl::CivilDay d(p->year, p->month, p->day);
    if (d.month() != p->month || d.day() != p->day) return Bad(v2, "no such day");
  }
  if (p->hour > 23 || p->minute > 59 || p->second > 59) return Bad(v2, "time out of range");
  return absl::OkStatus();
}

void AppendOffset(std::string* out, int minutes) {
  out->push_back(minutes < 0 ? '-' : '+');
  if (minutes < 0) minutes = -minutes;
  Append2(out, minutes / 60);
  out->push_back(':');
  Append2(out, minutes % 60);
}

void AppendClock(std::string* out, const Parsed& p) {
  Append2(out, p.hour);
  out->push_back(':');
  Append2(out, p.minute);
  out->push_back(':');
  Append2(out, p.second);
  if (!p.fraction.empty()) {
    out->push_back('.');
    out->append(p.fraction);
  }
}

}  // namespace

absl::Status AppendFhirTime(std::string_view v2, TimeType type, const absl::TimeZone& tz,
                            std::string* out) {
  Parsed p;
  if (absl::Status s = Parse(v2, type == TimeType::kTime, &p); !s.ok()) return s;
  if (type == TimeType::kTime) {
    AppendClock(out, p);
    return absl::OkStatus();
  }
  // p.year has 4 digits (0..9999): "%04d" without snprintf's cost.
  Append2(out, p.year / 100);
  Append2(out, p.year % 100);
  bool full = type == TimeType::kInstant;
  if (p.digits >= 6 || full) {
    out->push_back('-');
    Append2(out, p.month);
  }
  if (p.digits >= 8 || full) {
    out->push_back('-');
    Append2(out, p.day);
  }
  if (type == TimeType::kDate || (p.digits <= 8 && !full)) return absl::OkStatus();
  out->push_back('T');
  AppendClock(out, p);
  int offset = p.offset_minutes;
  if (!p.has_offset) {
    absl::CivilSecond cs(p.year, p.month, p.day, p.hour, p.minute, p.second);
    absl::Time t = tz.At(cs).pre;
    offset = tz.At(t).offset / 60;
  }
  AppendOffset(out, offset);
  return absl::OkStatus();
}

absl::StatusOr<std::string> FhirTime(std::string_view v2, TimeType type,
                                     const absl::TimeZone& tz) {
  std::string out;
  if (absl::Status s = AppendFhirTime(v2, type, tz, &out); !s.ok()) return s;
  return out;
}

}  // namespace isthmus::fhir
