#include "fhirpath/value.h"

#include <cmath>
#include <cstdio>

namespace isthmus::fhirpath {
namespace {

__int128 Pow10(int n) {
  __int128 r = 1;
  for (int i = 0; i < n; ++i) r *= 10;
  return r;
}

// Brings both to the larger scale.
void Align(Decimal& a, Decimal& b) {
  if (a.scale < b.scale) {
    a.mantissa *= Pow10(b.scale - a.scale);
    a.scale = b.scale;
  } else if (b.scale < a.scale) {
    b.mantissa *= Pow10(a.scale - b.scale);
    b.scale = a.scale;
  }
}

// Divides by 10^n rounding half away from zero.
__int128 DivRound(__int128 m, int n) {
  if (n <= 0) return m * Pow10(-n);
  __int128 p = Pow10(n);
  __int128 q = m / p, r = m % p;
  if (r < 0) r = -r;
  if (r * 2 >= p) q += m < 0 ? -1 : 1;
  return q;
}

constexpr int kMaxScale = 24;

Decimal Limit(Decimal d) {
  if (d.scale > kMaxScale) {
    d.mantissa = DivRound(d.mantissa, d.scale - kMaxScale);
    d.scale = kMaxScale;
  }
  return d;
}

}  // namespace

std::optional<Decimal> Decimal::Parse(std::string_view text) {
  Decimal d;
  size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) neg = text[i++] == '-';
  bool digits = false, dot = false;
  int count = 0;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      digits = true;
      if (d.mantissa != 0 || c != '0') ++count;
      if (count > 36) return std::nullopt;
      d.mantissa = d.mantissa * 10 + (c - '0');
      if (dot) ++d.scale;
    } else if (c == '.' && !dot) {
      dot = true;
    } else if ((c == 'e' || c == 'E') && digits) {
      int exp = 0;
      bool eneg = false;
      ++i;
      if (i < text.size() && (text[i] == '-' || text[i] == '+')) eneg = text[i++] == '-';
      if (i >= text.size()) return std::nullopt;
      for (; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9' || exp > 100) return std::nullopt;
        exp = exp * 10 + (text[i] - '0');
      }
      if (eneg) {
        d.scale += exp;
      } else if (exp <= d.scale) {
        d.scale -= exp;
      } else {
        d.mantissa *= Pow10(exp - d.scale);
        d.scale = 0;
      }
      break;
    } else {
      return std::nullopt;
    }
  }
  if (!digits || (dot && text.back() == '.')) return std::nullopt;
  if (neg) d.mantissa = -d.mantissa;
  return Limit(d);
}

Decimal Decimal::FromDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  auto d = Parse(buf);
  return d ? d->Normalized() : Decimal{};
}

double Decimal::ToDouble() const {
  return static_cast<double>(mantissa) / std::pow(10.0, scale);
}

std::string Decimal::ToString() const {
  // Built back to front in a buffer (std::string::insert trips GCC 12's -Wrestrict in -O2).
  char buf[96];
  char* p = buf + sizeof buf;
  __int128 m = mantissa < 0 ? -mantissa : mantissa;
  int written = 0;
  for (int i = 0; i < -scale; ++i) *--p = '0';
  do {
    if (scale > 0 && written == scale) *--p = '.';
    *--p = static_cast<char>('0' + static_cast<int>(m % 10));
    m /= 10;
    ++written;
  } while (m != 0 || (scale > 0 && written <= scale));
  if (mantissa < 0) *--p = '-';
  return std::string(p, buf + sizeof buf - p);
}

int Decimal::Compare(const Decimal& x, const Decimal& y) {
  Decimal a = x, b = y;
  Align(a, b);
  return a.mantissa < b.mantissa ? -1 : (a.mantissa > b.mantissa ? 1 : 0);
}

Decimal Decimal::Normalized() const {
  Decimal d = *this;
  while (d.scale > 0 && d.mantissa % 10 == 0) {
    d.mantissa /= 10;
    --d.scale;
  }
  return d;
}

Decimal Decimal::RoundTo(int digits) const {
  if (digits >= scale) return *this;
  return Decimal{DivRound(mantissa, scale - digits), digits};
}

Decimal Decimal::Truncated() const {
  if (scale <= 0) return Decimal{mantissa * Pow10(-scale), 0};
  return Decimal{mantissa / Pow10(scale), 0};
}

Decimal Decimal::Floor() const {
  Decimal t = Truncated();
  if (mantissa < 0 && Compare(t, *this) != 0) t.mantissa -= 1;
  return t;
}

Decimal Decimal::Ceiling() const {
  Decimal t = Truncated();
  if (mantissa > 0 && Compare(t, *this) != 0) t.mantissa += 1;
  return t;
}

Decimal Add(const Decimal& x, const Decimal& y) {
  Decimal a = x, b = y;
  Align(a, b);
  return Decimal{a.mantissa + b.mantissa, a.scale};
}

Decimal Sub(const Decimal& x, const Decimal& y) {
  Decimal a = x, b = y;
  Align(a, b);
  return Decimal{a.mantissa - b.mantissa, a.scale};
}

Decimal Mul(const Decimal& a, const Decimal& b) {
  Decimal an = a.Normalized(), bn = b.Normalized();
  return Limit(Decimal{an.mantissa * bn.mantissa, an.scale + bn.scale});
}

Decimal Div(const Decimal& a, const Decimal& b) {
  Decimal an = a.Normalized(), bn = b.Normalized();
  // Scale the dividend so the quotient carries 8 digits more than the inputs.
  int target = std::max(an.scale, bn.scale) + 8;
  if (target > kMaxScale) target = kMaxScale;
  int shift = target + bn.scale - an.scale + 1;  // one guard digit
  __int128 num = an.mantissa;
  if (shift >= 0) {
    num *= Pow10(shift);
  } else {
    num /= Pow10(-shift);
  }
  __int128 q = num / bn.mantissa;
  return Decimal{DivRound(q, 1), target}.Normalized();
}

Value Value::String(std::string s) {
  Value x;
  x.kind = Kind::kString;
  x.owned = std::make_shared<const std::string>(std::move(s));
  x.str = *x.owned;
  return x;
}

Value Value::Quantity(Decimal v, std::string unit) {
  Value x;
  x.kind = Kind::kQuantity;
  x.d = v;
  x.owned = std::make_shared<const std::string>(std::move(unit));
  x.str = *x.owned;
  return x;
}

// ---- Temporal ----

namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int DaysInMonth(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return kDays[m - 1];
}

// Parses the time part at pos: hh[:mm[:ss[.fff]]]. Sets precision.
bool ParseClock(std::string_view s, size_t& pos, Temporal& t) {
  int v;
  if (!Digits(s, pos, 2, &v) || v > 23) return false;
  t.hour = v;
  t.precision = Temporal::kHour;
  pos += 2;
  if (pos < s.size() && s[pos] == ':') {
    if (!Digits(s, pos + 1, 2, &v) || v > 59) return false;
    t.minute = v;
    t.precision = Temporal::kMinute;
    pos += 3;
    if (pos < s.size() && s[pos] == ':') {
      if (!Digits(s, pos + 1, 2, &v) || v > 59) return false;
      t.second = v;
      t.precision = Temporal::kSecond;
      pos += 3;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t start = pos;
        int ms = 0, n = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (n < 3) ms = ms * 10 + (s[pos] - '0');
          ++n;
          ++pos;
        }
        if (pos == start) return false;
        for (; n < 3; ++n) ms *= 10;
        t.millis = ms;
        t.precision = Temporal::kMillisecond;
      }
    }
  }
  return true;
}

bool ParseZone(std::string_view s, size_t& pos, Temporal& t) {
  if (pos >= s.size()) return true;
  if (s[pos] == 'Z') {
    t.has_tz = true;
    t.tz_minutes = 0;
    ++pos;
    return true;
  }
  if (s[pos] != '+' && s[pos] != '-') return false;
  int h, m;
  if (!Digits(s, pos + 1, 2, &h) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
      !Digits(s, pos + 4, 2, &m) || h > 14 || m > 59) {
    return false;
  }
  t.has_tz = true;
  t.tz_minutes = static_cast<int16_t>((h * 60 + m) * (s[pos] == '-' ? -1 : 1));
  pos += 6;
  return true;
}

bool ParseDatePart(std::string_view s, size_t& pos, Temporal& t) {
  int v;
  if (!Digits(s, 0, 4, &v)) return false;
  t.year = v;
  t.precision = Temporal::kYear;
  pos = 4;
  if (pos < s.size() && s[pos] == '-') {
    if (!Digits(s, pos + 1, 2, &v) || v < 1 || v > 12) return false;
    t.month = v;
    t.precision = Temporal::kMonth;
    pos += 3;
    if (pos < s.size() && s[pos] == '-') {
      if (!Digits(s, pos + 1, 2, &v) || v < 1 || v > DaysInMonth(t.year, t.month)) return false;
      t.day = v;
      t.precision = Temporal::kDay;
      pos += 3;
    }
  }
  return true;
}

// Days since 1970-01-01 (proleptic Gregorian).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(int64_t z, int32_t& y, int8_t& m, int8_t& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int8_t>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int8_t>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int32_t>(yoe + era * 400 + (m <= 2));
}

}  // namespace

std::optional<Temporal> ParseDate(std::string_view s) {
  Temporal t;
  size_t pos = 0;
  if (!ParseDatePart(s, pos, t) || pos != s.size()) return std::nullopt;
  return t;
}

std::optional<Temporal> ParseDateTime(std::string_view s) {
  Temporal t;
  size_t pos = 0;
  if (!ParseDatePart(s, pos, t)) return std::nullopt;
  if (pos < s.size() && s[pos] == 'T') {
    ++pos;
    if (pos < s.size() && t.precision == Temporal::kDay) {
      if (!ParseClock(s, pos, t)) return std::nullopt;
    }
  }
  if (!ParseZone(s, pos, t) || pos != s.size()) return std::nullopt;
  return t;
}

std::optional<Temporal> ParseTime(std::string_view s) {
  Temporal t;
  size_t pos = 0;
  if (!ParseClock(s, pos, t) || pos != s.size()) return std::nullopt;
  return t;
}

std::string FormatTemporal(Kind kind, const Temporal& t) {
  char buf[64];
  std::string out;
  if (kind != Kind::kTime) {
    std::snprintf(buf, sizeof buf, "%04d", t.year);
    out = buf;
    if (t.precision >= Temporal::kMonth) {
      std::snprintf(buf, sizeof buf, "-%02d", t.month);
      out += buf;
    }
    if (t.precision >= Temporal::kDay) {
      std::snprintf(buf, sizeof buf, "-%02d", t.day);
      out += buf;
    }
    if (kind == Kind::kDate) return out;
    if (t.precision < Temporal::kHour) {
      if (t.precision < Temporal::kDay) out += "T";
      return out;
    }
    out += "T";
  }
  std::snprintf(buf, sizeof buf, "%02d", t.hour);
  out += buf;
  if (t.precision >= Temporal::kMinute) {
    std::snprintf(buf, sizeof buf, ":%02d", t.minute);
    out += buf;
  }
  if (t.precision >= Temporal::kSecond) {
    std::snprintf(buf, sizeof buf, ":%02d", t.second);
    out += buf;
  }
  if (t.precision >= Temporal::kMillisecond) {
    std::snprintf(buf, sizeof buf, ".%03d", t.millis);
    out += buf;
  }
  if (kind == Kind::kDateTime && t.has_tz) {
    if (t.tz_minutes == 0) {
      out += "Z";
    } else {
      int m = t.tz_minutes < 0 ? -t.tz_minutes : t.tz_minutes;
      std::snprintf(buf, sizeof buf, "%c%02d:%02d", t.tz_minutes < 0 ? '-' : '+', m / 60, m % 60);
      out += buf;
    }
  }
  return out;
}

Temporal ShiftMinutes(const Temporal& t, int64_t minutes);

namespace {

// Normalizes a dateTime with a zone (and at least hour precision) to UTC.
Temporal ToUtc(const Temporal& t) {
  if (!t.has_tz || t.tz_minutes == 0 || t.precision < Temporal::kHour) return t;
  Temporal r = ShiftMinutes(t, -t.tz_minutes);
  r.tz_minutes = 0;
  return r;
}

}  // namespace

Temporal ShiftMinutes(const Temporal& t, int64_t minutes) {
  int64_t days = DaysFromCivil(t.year, t.month, t.day);
  int64_t total = days * 1440 + t.hour * 60 + t.minute + minutes;
  int64_t d = total >= 0 ? total / 1440 : (total - 1439) / 1440;
  int64_t rem = total - d * 1440;
  Temporal r = t;
  CivilFromDays(d, r.year, r.month, r.day);
  r.hour = static_cast<int8_t>(rem / 60);
  r.minute = static_cast<int8_t>(rem % 60);
  return r;
}

std::optional<int> CompareTemporal(Kind kind, const Temporal& x, const Temporal& y) {
  Temporal a = x, b = y;
  if (kind == Kind::kDateTime && a.has_tz != b.has_tz && a.precision >= Temporal::kHour &&
      b.precision >= Temporal::kHour) {
    return std::nullopt;  // one with a zone, one without: incomparable
  }
  if (kind == Kind::kDateTime) {
    a = ToUtc(a);
    b = ToUtc(b);
  }
  auto level = [](int p) { return p == Temporal::kMillisecond ? Temporal::kSecond : p; };
  int pa = level(a.precision), pb = level(b.precision);
  int common = std::min(pa, pb);
  auto cmp = [](int u, int v) { return u < v ? -1 : (u > v ? 1 : 0); };
  int first = kind == Kind::kTime ? Temporal::kHour : Temporal::kYear;
  for (int p = first; p <= common; ++p) {
    int c = 0;
    switch (p) {
      case Temporal::kYear: c = cmp(a.year, b.year); break;
      case Temporal::kMonth: c = cmp(a.month, b.month); break;
      case Temporal::kDay: c = cmp(a.day, b.day); break;
      case Temporal::kHour: c = cmp(a.hour, b.hour); break;
      case Temporal::kMinute: c = cmp(a.minute, b.minute); break;
      case Temporal::kSecond:
        c = cmp(a.second * 1000 + (a.precision == Temporal::kMillisecond ? a.millis : 0),
                b.second * 1000 + (b.precision == Temporal::kMillisecond ? b.millis : 0));
        break;
    }
    if (c != 0) return c;
  }
  if (pa != pb) return std::nullopt;
  return 0;
}

// ---- Quantities ----

std::string_view CalendarToUcum(std::string_view u) {
  if (u == "year" || u == "years") return "a";
  if (u == "month" || u == "months") return "mo";
  if (u == "week" || u == "weeks") return "wk";
  if (u == "day" || u == "days") return "d";
  if (u == "hour" || u == "hours") return "h";
  if (u == "minute" || u == "minutes") return "min";
  if (u == "second" || u == "seconds") return "s";
  if (u == "millisecond" || u == "milliseconds") return "ms";
  return {};
}

namespace {

struct UnitDef {
  const char* unit;
  const char* base;
  const char* factor;  // decimal text
};

// A UCUM subset: the units clinical data and the test suite use. Each maps to a base unit and a
// factor. Prefixed forms of g, m, L, s are listed explicitly.
const UnitDef kUnits[] = {
    {"1", "1", "1"},         {"%", "1", "0.01"},
    {"g", "g", "1"},         {"kg", "g", "1000"},        {"mg", "g", "0.001"},
    {"ug", "g", "0.000001"}, {"ng", "g", "0.000000001"}, {"[lb_av]", "g", "453.59237"},
    {"[oz_av]", "g", "28.349523125"},
    {"m", "m", "1"},         {"km", "m", "1000"},        {"cm", "m", "0.01"},
    {"mm", "m", "0.001"},    {"um", "m", "0.000001"},    {"nm", "m", "0.000000001"},
    {"[in_i]", "m", "0.0254"}, {"[ft_i]", "m", "0.3048"},
    {"L", "m3", "0.001"},    {"l", "m3", "0.001"},       {"dL", "m3", "0.0001"},
    {"mL", "m3", "0.000001"}, {"ml", "m3", "0.000001"},  {"uL", "m3", "0.000000001"},
    {"s", "s", "1"},         {"ms", "s", "0.001"},       {"us", "s", "0.000001"},
    {"min", "s", "60"},      {"h", "s", "3600"},         {"d", "s", "86400"},
    {"wk", "s", "604800"},   {"mo", "s", "2629800"},     {"a", "s", "31557600"},
    {"Cel", "Cel", "1"},     {"K", "K", "1"},
    {"mm[Hg]", "Pa", "133.322"}, {"Pa", "Pa", "1"},      {"kPa", "Pa", "1000"},
    {"mol", "mol", "1"},     {"mmol", "mol", "0.001"},   {"umol", "mol", "0.000001"},
    {"g/L", "g/m3", "1000"}, {"mg/dL", "g/m3", "10"},    {"g/dL", "g/m3", "10000"},
    {"mg/L", "g/m3", "1"},   {"mmol/L", "mol/m3", "1"},  {"umol/L", "mol/m3", "0.001"},
    {"/min", "/s", "0.0166666666666666666667"},          {"{beats}/min", "/s", "0.0166666666666666666667"},
    {"kg/m2", "g/m2", "1000"}, {"[degF]", "[degF]", "1"},
};

}  // namespace

std::optional<Canonical> CanonicalQuantity(const Decimal& value, std::string_view unit) {
  std::string_view u = unit;
  std::string_view cal = CalendarToUcum(u);
  if (!cal.empty()) {
    // Calendar durations above a week are not definite: they compare only with themselves.
    if (cal == "a" || cal == "mo") return Canonical{value, std::string(cal) + "(calendar)"};
    u = cal;
  }
  for (const UnitDef& def : kUnits) {
    if (u == def.unit) {
      return Canonical{Mul(value, *Decimal::Parse(def.factor)), def.base};
    }
  }
  return std::nullopt;
}

}  // namespace isthmus::fhirpath
