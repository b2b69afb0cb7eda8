// FHIRPath functions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include "base/str.h"
#include "fhirpath/eval_internal.h"
#include "re2/re2.h"

namespace isthmus::fhirpath {
namespace {

bool IsTemporalKind(Kind k) { return k == Kind::kDate || k == Kind::kDateTime || k == Kind::kTime; }
bool IsNumberKind(Kind k) { return k == Kind::kInteger || k == Kind::kDecimal; }
Decimal AsDec(const Value& v) { return v.kind == Kind::kInteger ? Decimal::FromInt(v.i) : v.d; }

bool Contains(const Collection& c, const Value& v) {
  for (const Value& x : c) {
    if (Equal(x, v) == true) return true;
  }
  return false;
}

void AppendDistinct(Collection& out, const Value& v) {
  if (!Contains(out, v)) out.push_back(v);
}

// Trims ASCII whitespace.
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' ||
                        s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Code points of a UTF-8 string (byte offsets of each).
std::vector<size_t> CodePoints(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  return offsets;
}

std::optional<Value> ConvertToQuantity(const Value& x) {
  Value v = ToSystemValue(x);
  if (v.kind == Kind::kQuantity) return v;
  if (IsNumberKind(v.kind)) return Value::Quantity(AsDec(v), "1");
  if (v.kind == Kind::kBoolean) return Value::Quantity(Decimal::FromInt(v.b ? 1 : 0), "1");
  if (v.kind != Kind::kString) return std::nullopt;
  std::string_view s = Trim(v.str);
  size_t sp = s.find(' ');
  std::string_view num = sp == std::string_view::npos ? s : s.substr(0, sp);
  auto d = Decimal::Parse(num);
  if (!d || num.find('e') != std::string_view::npos || num.find('E') != std::string_view::npos ||
      num.empty() || num.back() == '.') {
    return std::nullopt;
  }
  if (sp == std::string_view::npos) return Value::Quantity(*d, "1");
  std::string_view unit = Trim(s.substr(sp + 1));
  if (unit.size() >= 2 && unit.front() == '\'' && unit.back() == '\'') {
    return Value::Quantity(*d, std::string(unit.substr(1, unit.size() - 2)));
  }
  if (!CalendarToUcum(unit).empty()) return Value::Quantity(*d, std::string(unit));
  return std::nullopt;
}

std::optional<Value> ConvertToBoolean(const Value& x) {
  Value v = ToSystemValue(x);
  switch (v.kind) {
    case Kind::kBoolean: return v;
    case Kind::kInteger:
      if (v.i == 0 || v.i == 1) return Value::Boolean(v.i == 1);
      return std::nullopt;
    case Kind::kDecimal: {
      int c1 = Decimal::Compare(v.d, Decimal::FromInt(1));
      if (c1 == 0 || v.d.IsZero()) return Value::Boolean(c1 == 0);
      return std::nullopt;
    }
    case Kind::kString: {
      std::string l;
      for (char c : v.str) l += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      if (l == "true" || l == "t" || l == "yes" || l == "y" || l == "1" || l == "1.0") {
        return Value::Boolean(true);
      }
      if (l == "false" || l == "f" || l == "no" || l == "n" || l == "0" || l == "0.0") {
        return Value::Boolean(false);
      }
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

std::optional<Value> ConvertToInteger(const Value& x) {
  Value v = ToSystemValue(x);
  switch (v.kind) {
    case Kind::kInteger: return Value::Integer(v.i);
    case Kind::kBoolean: return Value::Integer(v.b ? 1 : 0);
    case Kind::kString: {
      std::string_view s = v.str;
      size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
      if (i == s.size() || s.size() > 12) return std::nullopt;
      for (size_t k = i; k < s.size(); ++k) {
        if (s[k] < '0' || s[k] > '9') return std::nullopt;
      }
      int64_t r = std::stoll(std::string(s));
      if (r > 2147483647LL || r < -2147483648LL) return std::nullopt;
      return Value::Integer(r);
    }
    default: return std::nullopt;
  }
}

std::optional<Value> ConvertToDecimal(const Value& x) {
  Value v = ToSystemValue(x);
  switch (v.kind) {
    case Kind::kInteger: return Value::Dec(Decimal::FromInt(v.i));
    case Kind::kDecimal: return Value::Dec(v.d);
    case Kind::kBoolean: return Value::Dec(Decimal::FromInt(v.b ? 1 : 0));
    case Kind::kString: {
      std::string_view s = v.str;
      if (s.find_first_of("eE") != std::string_view::npos || s.empty() || s.back() == '.' ||
          s.front() == '.') {
        return std::nullopt;
      }
      auto d = Decimal::Parse(s);
      if (!d) return std::nullopt;
      return Value::Dec(*d);
    }
    default: return std::nullopt;
  }
}

std::optional<Value> ConvertToTemporal(const Value& x, Kind target) {
  Value v = ToSystemValue(x);
  if (v.kind == target) return Value::Time(target, v.t);
  if (target == Kind::kDate && v.kind == Kind::kDateTime) {
    Temporal t = v.t;
    t.precision = std::min<uint8_t>(t.precision, Temporal::kDay);
    t.has_tz = false;
    return Value::Time(Kind::kDate, t);
  }
  if (target == Kind::kDateTime && v.kind == Kind::kDate) return Value::Time(target, v.t);
  if (v.kind != Kind::kString) return std::nullopt;
  std::optional<Temporal> t;
  if (target == Kind::kTime) {
    std::string_view s = v.str;
    if (!s.empty() && s[0] == 'T') s.remove_prefix(1);
    t = ParseTime(s);
  } else if (target == Kind::kDate) {
    t = ParseDate(v.str);
    if (!t) {
      t = ParseDateTime(v.str);
      if (t) {
        t->precision = std::min<uint8_t>(t->precision, Temporal::kDay);
        t->has_tz = false;
      }
    }
  } else {
    t = ParseDateTime(v.str);
  }
  if (!t) return std::nullopt;
  return Value::Time(target, *t);
}

Temporal Now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm local;
  localtime_r(&secs, &local);
  Temporal t;
  t.year = local.tm_year + 1900;
  t.month = static_cast<int8_t>(local.tm_mon + 1);
  t.day = static_cast<int8_t>(local.tm_mday);
  t.hour = static_cast<int8_t>(local.tm_hour);
  t.minute = static_cast<int8_t>(local.tm_min);
  t.second = static_cast<int8_t>(local.tm_sec);
  t.millis = static_cast<int16_t>(ms % 1000);
  t.precision = Temporal::kMillisecond;
  t.has_tz = true;
  t.tz_minutes = static_cast<int16_t>(local.tm_gmtoff / 60);
  return t;
}

std::string Base64(std::string_view in, bool url) {
  const char* tbl = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) | static_cast<unsigned char>(in[i + 2]);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Unbase64(std::string_view in) {
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') break;
    else return std::nullopt;
    buf = (buf << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

std::string ValueToString(const Value& x) {
  Value v = ToSystemValue(x);
  switch (v.kind) {
    case Kind::kBoolean: return v.b ? "true" : "false";
    case Kind::kInteger: return std::to_string(v.i);
    case Kind::kDecimal: return v.d.ToString();
    case Kind::kString: return std::string(v.str);
    case Kind::kDate:
    case Kind::kTime: return FormatTemporal(v.kind, v.t);
    case Kind::kDateTime:
      // N1 toString(): "the result will only be specified to the level of precision in the
      // value": a dateTime to the year, month or day is written as that date, without the
      // literal's trailing `T` (@2016-03T gives '2016-03').
      return FormatTemporal(v.t.precision < Temporal::kHour ? Kind::kDate : v.kind, v.t);
    case Kind::kQuantity:
      if (!CalendarToUcum(v.str).empty()) return base::StrCat(v.d.ToString(), " ", v.str);
      return base::StrCat(v.d.ToString(), " '", v.str, "'");
    default: return "";
  }
}

bool ConvertsToString(const Value& x) {
  Value v = ToSystemValue(x);
  return v.kind != Kind::kObject && v.kind != Kind::kNoValue && v.kind != Kind::kTypeInfo;
}

Value AddToTemporal(const Value& tv, const Value& q, bool subtract, bool* error) {
  std::string_view unit = q.str;
  std::string_view cal = CalendarToUcum(unit);
  bool calendar = !cal.empty();
  if (!calendar) {
    // UCUM definite durations; 'a' and 'mo' are not calendar units.
    if (unit != "wk" && unit != "d" && unit != "h" && unit != "min" && unit != "s" &&
        unit != "ms") {
      *error = true;
      return tv;
    }
    cal = unit;
  }
  Decimal amount = subtract ? Decimal{-q.d.mantissa, q.d.scale} : q.d;
  int64_t whole = static_cast<int64_t>(amount.Truncated().mantissa);
  Temporal t = tv.t;
  auto add_months = [&](int64_t months) {
    int64_t m = t.year * 12LL + (t.month - 1) + months;
    t.year = static_cast<int32_t>(m >= 0 ? m / 12 : (m - 11) / 12);
    t.month = static_cast<int8_t>(m - t.year * 12LL + 1);
    static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim = kDays[t.month - 1];
    if (t.month == 2 && ((t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0)) dim = 29;
    if (t.day > dim) t.day = static_cast<int8_t>(dim);
  };
  extern Temporal ShiftMinutes(const Temporal& t, int64_t minutes);
  auto add_ms = [&](int64_t ms) {
    if (tv.kind == Kind::kTime) {
      int64_t day_ms = 86400000LL;
      int64_t cur = ((t.hour * 60LL + t.minute) * 60 + t.second) * 1000 + t.millis;
      cur = ((cur + ms) % day_ms + day_ms) % day_ms;
      t.millis = static_cast<int16_t>(cur % 1000);
      t.second = static_cast<int8_t>(cur / 1000 % 60);
      t.minute = static_cast<int8_t>(cur / 60000 % 60);
      t.hour = static_cast<int8_t>(cur / 3600000);
      return;
    }
    int64_t cur = t.second * 1000LL + t.millis + ms;
    int64_t minutes = cur >= 0 ? cur / 60000 : (cur - 59999) / 60000;
    cur -= minutes * 60000;
    t.second = static_cast<int8_t>(cur / 1000);
    t.millis = static_cast<int16_t>(cur % 1000);
    Temporal shifted = ShiftMinutes(t, minutes);
    t.year = shifted.year;
    t.month = shifted.month;
    t.day = shifted.day;
    t.hour = shifted.hour;
    t.minute = shifted.minute;
  };
  if (cal == "a") {
    add_months(whole * 12);
  } else if (cal == "mo") {
    add_months(whole);
  } else if (cal == "wk" || cal == "d") {
    int64_t days = whole * (cal == "wk" ? 7 : 1);
    if (tv.kind == Kind::kTime) {
      *error = true;
      return tv;
    }
    add_ms(days * 86400000LL);
  } else if (cal == "h" || cal == "min") {
    int64_t per = cal == "h" ? 3600000LL : 60000LL;
    if (tv.kind == Kind::kDate || t.precision < Temporal::kHour) {
      add_ms(whole * per / 86400000LL * 86400000LL);
    } else {
      add_ms(whole * per);
    }
  } else {  // s, ms
    // Whole seconds / milliseconds only: 0.1 's' adds nothing.
    int64_t v = cal == "s" ? whole * 1000 : whole;
    if (t.precision < Temporal::kMillisecond) v = v / 1000 * 1000;
    if (tv.kind == Kind::kDate) v = v / 86400000LL * 86400000LL;
    add_ms(v);
  }
  return Value::Time(tv.kind, t);
}

bool Evaluator::Call(const Node& n, const Collection& input, const Collection& focus,
                     Collection& out) {
  // Evaluates argument k with the outer focus.
  auto arg = [&](size_t k, Collection& c) { return Eval(*n.args[k], focus, c); };
  // Evaluates a lambda argument for one item.
  auto lambda = [&](size_t k, const Value& item, int64_t index, Collection& c,
                    const Collection* total = nullptr) {
    Collection single{item};
    frames_.push_back(Frame{&item, index, total});
    bool ok = Eval(*n.args[k], single, c);
    frames_.pop_back();
    return ok;
  };
  auto single_input = [&](const char* what) -> bool {
    if (input.size() > 1) {
      return Fail(n, base::StrCat(n.name, "() ", what, " needs a single item, got ",
                                  input.size()));
    }
    return true;
  };
  // A single string input (string functions); *s unset when input is empty.
  auto string_input = [&](std::optional<std::string_view>* s) -> bool {
    if (!single_input("input")) return false;
    if (input.empty()) return true;
    Value v = input[0];
    if (v.kind == Kind::kNoValue) return true;
    if (v.kind != Kind::kString) return Fail(n, base::StrCat(n.name, "() needs a string input"));
    *s = input[0].str;
    return true;
  };
  auto string_arg = [&](size_t k, std::optional<std::string>* s) -> bool {
    Collection c;
    if (!arg(k, c)) return false;
    if (c.empty()) return true;
    if (c.size() > 1 || c[0].kind != Kind::kString) {
      return Fail(n, base::StrCat(n.name, "() needs a string argument"));
    }
    *s = std::string(c[0].str);
    return true;
  };
  auto int_arg = [&](size_t k, std::optional<int64_t>* v) -> bool {
    Collection c;
    if (!arg(k, c)) return false;
    if (c.empty()) return true;
    Value x = ToSystemValue(c[0]);
    if (c.size() > 1 || x.kind != Kind::kInteger) {
      return Fail(n, base::StrCat(n.name, "() needs an integer argument"));
    }
    *v = x.i;
    return true;
  };
  auto boolean = [&](bool b) {
    out.push_back(Value::Boolean(b));
    return true;
  };
  auto number_input = [&](Value* v) -> int {  // 0 empty, 1 ok, -1 error
    if (!single_input("input")) return -1;
    if (input.empty()) return 0;
    *v = ToSystemValue(input[0]);
    if (!IsNumberKind(v->kind) && v->kind != Kind::kQuantity) {
      Fail(n, base::StrCat(n.name, "() needs a number"));
      return -1;
    }
    return 1;
  };
  auto math = [&](auto f) -> bool {
    Value v;
    int r = number_input(&v);
    if (r <= 0) return r == 0;
    double d = f(AsDec(v).ToDouble());
    if (std::isnan(d) || std::isinf(d)) return true;
    out.push_back(Value::Dec(Decimal::FromDouble(d)));
    return true;
  };

  if (env_.strict && n.source != nullptr && n.source->op == Op::kFunction &&
      (n.source->fn == Fn::kChildren || n.source->fn == Fn::kDescendants) &&
      (n.fn == Fn::kSkip || n.fn == Fn::kTake || n.fn == Fn::kFirst || n.fn == Fn::kLast ||
       n.fn == Fn::kTail)) {
    return Fail(n, base::StrCat(n.name, "() needs an ordered collection; ", n.source->name,
                                "() is unordered"));
  }
  switch (n.fn) {
    case Fn::kEmpty: return boolean(input.empty());
    case Fn::kExists:
      if (n.args.empty()) return boolean(!input.empty());
      [[fallthrough]];
    case Fn::kWhere:
    case Fn::kAll: {
      bool all = true, any = false;
      for (size_t i = 0; i < input.size(); ++i) {
        Collection c;
        if (!lambda(0, input[i], static_cast<int64_t>(i), c)) return false;
        bool err = false;
        auto b = ToBool(c, &err);
        if (err) return Fail(n, base::StrCat(n.name, "() criteria returned more than one item"));
        if (b == true) {
          any = true;
          if (n.fn == Fn::kWhere) out.push_back(input[i]);
          if (n.fn == Fn::kExists) break;
        } else {
          all = false;
          if (n.fn == Fn::kAll) break;
        }
      }
      if (n.fn == Fn::kExists) return boolean(any);
      if (n.fn == Fn::kAll) return boolean(all);
      return true;
    }
    case Fn::kAllTrue:
    case Fn::kAnyTrue:
    case Fn::kAllFalse:
    case Fn::kAnyFalse: {
      bool want = n.fn == Fn::kAllTrue || n.fn == Fn::kAnyTrue;
      bool all = n.fn == Fn::kAllTrue || n.fn == Fn::kAllFalse;
      bool result = all;
      for (const Value& v : input) {
        if (v.kind != Kind::kBoolean) return Fail(n, base::StrCat(n.name, "() needs booleans"));
        if (all && v.b != want) result = false;
        if (!all && v.b == want) result = true;
      }
      return boolean(result);
    }
    case Fn::kSubsetOf:
    case Fn::kSupersetOf: {
      Collection other;
      if (!arg(0, other)) return false;
      const Collection& small = n.fn == Fn::kSubsetOf ? input : other;
      const Collection& big = n.fn == Fn::kSubsetOf ? other : input;
      for (const Value& v : small) {
        if (!Contains(big, v)) return boolean(false);
      }
      return boolean(true);
    }
    case Fn::kCount:
      out.push_back(Value::Integer(static_cast<int64_t>(input.size())));
      return true;
    case Fn::kDistinct: {
      size_t start = out.size();
      for (const Value& v : input) {
        bool dup = false;
        for (size_t k = start; k < out.size() && !dup; ++k) dup = Equal(out[k], v) == true;
        if (!dup) out.push_back(v);
      }
      return true;
    }
    case Fn::kIsDistinct: {
      Collection d;
      for (const Value& v : input) AppendDistinct(d, v);
      return boolean(d.size() == input.size());
    }
    case Fn::kSelect:
      for (size_t i = 0; i < input.size(); ++i) {
        if (!lambda(0, input[i], static_cast<int64_t>(i), out)) return false;
      }
      return true;
    case Fn::kRepeat: {
      Collection seen;
      Collection queue = input;
      while (!queue.empty()) {
        Collection next;
        for (size_t i = 0; i < queue.size(); ++i) {
          Collection c;
          if (!lambda(0, queue[i], static_cast<int64_t>(i), c)) return false;
          for (Value& v : c) {
            if (Contains(seen, v)) continue;
            seen.push_back(v);
            next.push_back(std::move(v));
          }
        }
        queue = std::move(next);
      }
      out.insert(out.end(), seen.begin(), seen.end());
      return true;
    }
    case Fn::kOfType:
      for (const Value& v : input) {
        if (IsType(v, n.type, true)) out.push_back(v);
      }
      return true;
    case Fn::kIs:
      if (input.empty()) return true;
      if (!single_input("input")) return false;
      return boolean(IsType(input[0], n.type));
    case Fn::kAs:
      if (input.empty()) return true;
      if (!single_input("input")) return false;
      if (IsType(input[0], n.type, true)) out.push_back(input[0]);
      return true;
    case Fn::kSingle:
      if (!single_input("input")) return false;
      out.insert(out.end(), input.begin(), input.end());
      return true;
    case Fn::kFirst:
      if (!input.empty()) out.push_back(input.front());
      return true;
    case Fn::kLast:
      if (!input.empty()) out.push_back(input.back());
      return true;
    case Fn::kTail:
      if (input.size() > 1) out.insert(out.end(), input.begin() + 1, input.end());
      return true;
    case Fn::kSkip:
    case Fn::kTake: {
      std::optional<int64_t> k;
      if (!int_arg(0, &k)) return false;
      if (!k) return true;
      int64_t count = static_cast<int64_t>(input.size());
      int64_t m = std::clamp<int64_t>(*k, 0, count);
      if (n.fn == Fn::kSkip) {
        out.insert(out.end(), input.begin() + m, input.end());
      } else {
        out.insert(out.end(), input.begin(), input.begin() + m);
      }
      return true;
    }
    case Fn::kIntersect: {
      Collection other;
      if (!arg(0, other)) return false;
      size_t start = out.size();
      for (const Value& v : input) {
        if (!Contains(other, v)) continue;
        bool dup = false;
        for (size_t k = start; k < out.size() && !dup; ++k) dup = Equal(out[k], v) == true;
        if (!dup) out.push_back(v);
      }
      return true;
    }
    case Fn::kExclude: {
      Collection other;
      if (!arg(0, other)) return false;
      for (const Value& v : input) {
        if (!Contains(other, v)) out.push_back(v);
      }
      return true;
    }
    case Fn::kUnion: {
      Collection other;
      if (!arg(0, other)) return false;
      size_t start = out.size();
      for (const Collection* c : std::initializer_list<const Collection*>{&input, &other}) {
        for (const Value& v : *c) {
          bool dup = false;
          for (size_t k = start; k < out.size() && !dup; ++k) dup = Equal(out[k], v) == true;
          if (!dup) out.push_back(v);
        }
      }
      return true;
    }
    case Fn::kCombine: {
      Collection other;
      if (!arg(0, other)) return false;
      out.insert(out.end(), input.begin(), input.end());
      out.insert(out.end(), other.begin(), other.end());
      return true;
    }
    case Fn::kIif: {
      if (n.source != nullptr && input.size() > 1) {
        return Fail(n, "iif() needs a single input item");
      }
      Collection cond;
      bool ok;
      if (n.source != nullptr && !input.empty()) {
        ok = lambda(0, input[0], 0, cond);
      } else {
        ok = arg(0, cond);
      }
      if (!ok) return false;
      if (cond.size() > 1) return Fail(n, "iif() criterion has more than one item");
      if (!cond.empty() && cond[0].kind != Kind::kBoolean) {
        return Fail(n, "iif() criterion is not a boolean");
      }
      bool b = !cond.empty() && cond[0].b;
      size_t k = b ? 1 : 2;
      if (k >= n.args.size()) return true;
      if (n.source != nullptr && !input.empty()) return lambda(k, input[0], 0, out);
      return arg(k, out);
    }
    case Fn::kToBoolean:
    case Fn::kToInteger:
    case Fn::kToDecimal:
    case Fn::kToDate:
    case Fn::kToDateTime:
    case Fn::kToTime:
    case Fn::kToString:
    case Fn::kConvertsToBoolean:
    case Fn::kConvertsToInteger:
    case Fn::kConvertsToDecimal:
    case Fn::kConvertsToDate:
    case Fn::kConvertsToDateTime:
    case Fn::kConvertsToTime:
    case Fn::kConvertsToString: {
      if (!single_input("input")) return false;
      if (input.empty()) return true;
      const Value& v = input[0];
      std::optional<Value> r;
      switch (n.fn) {
        case Fn::kToBoolean: case Fn::kConvertsToBoolean: r = ConvertToBoolean(v); break;
        case Fn::kToInteger: case Fn::kConvertsToInteger: r = ConvertToInteger(v); break;
        case Fn::kToDecimal: case Fn::kConvertsToDecimal: r = ConvertToDecimal(v); break;
        case Fn::kToDate: case Fn::kConvertsToDate: r = ConvertToTemporal(v, Kind::kDate); break;
        case Fn::kToDateTime: case Fn::kConvertsToDateTime:
          r = ConvertToTemporal(v, Kind::kDateTime);
          break;
        case Fn::kToTime: case Fn::kConvertsToTime: r = ConvertToTemporal(v, Kind::kTime); break;
        default:
          if (ConvertsToString(v)) r = Value::String(ValueToString(v));
          break;
      }
      bool converts_to =
          n.fn == Fn::kConvertsToBoolean || n.fn == Fn::kConvertsToInteger ||
          n.fn == Fn::kConvertsToDecimal || n.fn == Fn::kConvertsToDate ||
          n.fn == Fn::kConvertsToDateTime || n.fn == Fn::kConvertsToTime ||
          n.fn == Fn::kConvertsToString;
      if (converts_to) return boolean(r.has_value());
      if (r) out.push_back(*r);
      return true;
    }
    case Fn::kToQuantity:
    case Fn::kConvertsToQuantity: {
      if (!single_input("input")) return false;
      if (input.empty()) return true;
      std::optional<Value> q = ConvertToQuantity(input[0]);
      if (q && !n.args.empty()) {
        std::optional<std::string> unit;
        if (!string_arg(0, &unit)) return false;
        if (unit && *unit != q->str) {
          auto from = CanonicalQuantity(q->d, q->str);
          auto per = CanonicalQuantity(Decimal::FromInt(1), *unit);
          if (from && per && from->unit == per->unit) {
            q = Value::Quantity(Div(from->value, per->value), *unit);
          } else {
            q.reset();
          }
        }
      }
      if (n.fn == Fn::kConvertsToQuantity) return boolean(q.has_value());
      if (q) out.push_back(*q);
      return true;
    }
    case Fn::kIndexOf:
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContains:
    case Fn::kMatches:
    case Fn::kMatchesFull:
    case Fn::kSplit: {
      std::optional<std::string_view> s;
      if (!string_input(&s)) return false;
      std::optional<std::string> a;
      if (!string_arg(0, &a)) return false;
      if (!s || !a) return true;
      switch (n.fn) {
        case Fn::kIndexOf: {
          size_t pos = s->find(*a);
          if (pos == std::string_view::npos) {
            out.push_back(Value::Integer(-1));
          } else {
            auto cps = CodePoints(s->substr(0, pos));
            out.push_back(Value::Integer(static_cast<int64_t>(cps.size())));
          }
          return true;
        }
        case Fn::kStartsWith: return boolean(s->substr(0, a->size()) == *a);
        case Fn::kEndsWith:
          return boolean(s->size() >= a->size() && s->substr(s->size() - a->size()) == *a);
        case Fn::kContains: return boolean(s->find(*a) != std::string_view::npos);
        case Fn::kMatches:
        case Fn::kMatchesFull: {
          RE2::Options opts;
          opts.set_dot_nl(true);
          opts.set_log_errors(false);
          RE2 re(*a, opts);
          if (!re.ok()) return Fail(n, base::StrCat("bad regular expression: ", re.error()));
          re2::StringPiece text(s->data(), s->size());
          return boolean(n.fn == Fn::kMatches ? RE2::PartialMatch(text, re)
                                              : RE2::FullMatch(text, re));
        }
        default: {  // split
          size_t start = 0;
          while (true) {
            size_t pos = a->empty() ? std::string_view::npos : s->find(*a, start);
            if (pos == std::string_view::npos) {
              out.push_back(Value::String(std::string(s->substr(start))));
              return true;
            }
            out.push_back(Value::String(std::string(s->substr(start, pos - start))));
            start = pos + a->size();
          }
        }
      }
    }
    case Fn::kSubstring: {
      std::optional<std::string_view> s;
      if (!string_input(&s)) return false;
      std::optional<int64_t> start, len;
      if (!int_arg(0, &start)) return false;
      if (n.args.size() > 1 && !int_arg(1, &len)) return false;
      if (!s || !start) return true;
      auto cps = CodePoints(*s);
      int64_t count = static_cast<int64_t>(cps.size());
      if (*start < 0 || *start >= count) return true;
      int64_t end = count;
      if (n.args.size() > 1) {
        if (!len) return true;
        end = std::min(count, *start + std::max<int64_t>(*len, 0));
      }
      size_t b = cps[*start];
      size_t e = end >= count ? s->size() : cps[end];
      out.push_back(Value::String(std::string(s->substr(b, e - b))));
      return true;
    }
    case Fn::kUpper:
    case Fn::kLower:
    case Fn::kLength:
    case Fn::kToChars:
    case Fn::kTrim: {
      std::optional<std::string_view> s;
      if (!string_input(&s)) return false;
      if (!s) return true;
      if (n.fn == Fn::kLength) {
        out.push_back(Value::Integer(static_cast<int64_t>(CodePoints(*s).size())));
      } else if (n.fn == Fn::kToChars) {
        auto cps = CodePoints(*s);
        for (size_t k = 0; k < cps.size(); ++k) {
          size_t e = k + 1 < cps.size() ? cps[k + 1] : s->size();
          out.push_back(Value::String(std::string(s->substr(cps[k], e - cps[k]))));
        }
      } else if (n.fn == Fn::kTrim) {
        out.push_back(Value::String(std::string(Trim(*s))));
      } else {
        std::string r(*s);
        for (char& c : r) {
          if (n.fn == Fn::kUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
          if (n.fn == Fn::kLower && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        out.push_back(Value::String(std::move(r)));
      }
      return true;
    }
    case Fn::kReplace:
    case Fn::kReplaceMatches: {
      std::optional<std::string_view> s;
      if (!string_input(&s)) return false;
      std::optional<std::string> pattern, sub;
      if (!string_arg(0, &pattern) || !string_arg(1, &sub)) return false;
      if (!s || !pattern || !sub) return true;
      std::string r(*s);
      if (n.fn == Fn::kReplace) {
        if (pattern->empty()) {
          std::string x = *sub;
          for (char c : *s) {
            x += c;
            x += *sub;
          }
          r = x;
        } else {
          std::string x;
          size_t start = 0, pos;
          while ((pos = r.find(*pattern, start)) != std::string::npos) {
            x.append(r, start, pos - start);
            x += *sub;
            start = pos + pattern->size();
          }
          x.append(r, start, std::string::npos);
          r = x;
        }
      } else {
        RE2::Options opts;
        opts.set_dot_nl(true);
        opts.set_log_errors(false);
        RE2 re(*pattern, opts);
        if (!re.ok()) return Fail(n, base::StrCat("bad regular expression: ", re.error()));
        // FHIRPath writes groups as $1; RE2 as \1.
        std::string rewrite;
        for (size_t k = 0; k < sub->size(); ++k) {
          char c = (*sub)[k];
          if (c == '$' && k + 1 < sub->size() && (*sub)[k + 1] >= '0' && (*sub)[k + 1] <= '9') {
            rewrite += '\\';
          } else if (c == '\\') {
            rewrite += "\\\\";
          } else {
            rewrite += c;
          }
        }
        if (!pattern->empty()) RE2::GlobalReplace(&r, re, rewrite);
      }
      out.push_back(Value::String(std::move(r)));
      return true;
    }
    case Fn::kEncode:
    case Fn::kDecode:
    case Fn::kEscape:
    case Fn::kUnescape: {
      std::optional<std::string_view> s;
      if (!string_input(&s)) return false;
      std::optional<std::string> format;
      if (!string_arg(0, &format)) return false;
      if (!s || !format) return true;
      std::string r;
      if (n.fn == Fn::kEncode) {
        if (*format == "hex") {
          static const char* kHex = "0123456789abcdef";
          for (unsigned char c : *s) {
            r += kHex[c >> 4];
            r += kHex[c & 15];
          }
        } else if (*format == "base64" || *format == "urlbase64") {
          r = Base64(*s, *format == "urlbase64");
        } else {
          return Fail(n, "encode() knows hex, base64 and urlbase64");
        }
      } else if (n.fn == Fn::kDecode) {
        if (*format == "hex") {
          if (s->size() % 2 != 0) return true;
          for (size_t k = 0; k + 1 < s->size(); k += 2) {
            r += static_cast<char>(std::stoi(std::string(s->substr(k, 2)), nullptr, 16));
          }
        } else if (*format == "base64" || *format == "urlbase64") {
          auto d = Unbase64(*s);
          if (!d) return true;
          r = *d;
        } else {
          return Fail(n, "decode() knows hex, base64 and urlbase64");
        }
      } else if (n.fn == Fn::kEscape) {
        for (char c : *s) {
          if (*format == "html") {
            if (c == '<') r += "&lt;";
            else if (c == '>') r += "&gt;";
            else if (c == '&') r += "&amp;";
            else if (c == '"') r += "&quot;";
            else r += c;
          } else {
            if (c == '"') r += "\\\"";
            else if (c == '\\') r += "\\\\";
            else if (c == '\n') r += "\\n";
            else if (c == '\t') r += "\\t";
            else if (c == '\r') r += "\\r";
            else r += c;
          }
        }
      } else {
        std::string_view v = *s;
        for (size_t k = 0; k < v.size(); ++k) {
          if (*format == "html" && v[k] == '&') {
            size_t semi = v.find(';', k);
            std::string_view ent = semi == std::string_view::npos ? "" : v.substr(k, semi - k + 1);
            if (ent == "&lt;") r += '<';
            else if (ent == "&gt;") r += '>';
            else if (ent == "&amp;") r += '&';
            else if (ent == "&quot;") r += '"';
            else if (ent == "&apos;") r += '\'';
            else {
              r += v[k];
              continue;
            }
            k = semi;
          } else if (*format == "json" && v[k] == '\\' && k + 1 < v.size()) {
            char e = v[++k];
            r += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
          } else {
            r += v[k];
          }
        }
      }
      out.push_back(Value::String(std::move(r)));
      return true;
    }
    case Fn::kJoin: {
      std::optional<std::string> sep;
      if (!n.args.empty() && !string_arg(0, &sep)) return false;
      std::string r;
      for (size_t k = 0; k < input.size(); ++k) {
        if (k > 0 && sep) r += *sep;
        r += ValueToString(input[k]);
      }
      out.push_back(Value::String(std::move(r)));
      return true;
    }
    case Fn::kAbs: {
      Value v;
      int r = number_input(&v);
      if (r <= 0) return r == 0;
      if (v.kind == Kind::kInteger) {
        out.push_back(Value::Integer(v.i < 0 ? -v.i : v.i));
      } else {
        Decimal d = v.d;
        if (d.mantissa < 0) d.mantissa = -d.mantissa;
        out.push_back(v.kind == Kind::kQuantity ? Value::Quantity(d, std::string(v.str))
                                                : Value::Dec(d));
      }
      return true;
    }
    case Fn::kCeiling:
    case Fn::kFloor:
    case Fn::kTruncate: {
      Value v;
      int r = number_input(&v);
      if (r <= 0) return r == 0;
      Decimal d = AsDec(v);
      Decimal x = n.fn == Fn::kCeiling ? d.Ceiling() : n.fn == Fn::kFloor ? d.Floor()
                                                                           : d.Truncated();
      out.push_back(Value::Integer(static_cast<int64_t>(x.mantissa)));
      return true;
    }
    case Fn::kRound: {
      Value v;
      int r = number_input(&v);
      if (r <= 0) return r == 0;
      std::optional<int64_t> digits = 0;
      if (!n.args.empty() && !int_arg(0, &digits)) return false;
      if (!digits || *digits < 0) return Fail(n, "round() needs a non-negative precision");
      out.push_back(Value::Dec(AsDec(v).RoundTo(static_cast<int>(*digits))));
      return true;
    }
    case Fn::kSqrt: return math([](double d) { return std::sqrt(d); });
    case Fn::kExp: return math([](double d) { return std::exp(d); });
    case Fn::kLn: return math([](double d) { return std::log(d); });
    case Fn::kLog:
    case Fn::kPower: {
      Value v;
      int r = number_input(&v);
      if (r <= 0) return r == 0;
      Collection c;
      if (!arg(0, c)) return false;
      if (c.empty()) return true;
      Value p = ToSystemValue(c[0]);
      if (c.size() > 1 || !IsNumberKind(p.kind)) return Fail(n, "needs a number argument");
      if (n.fn == Fn::kPower && v.kind == Kind::kInteger && p.kind == Kind::kInteger &&
          p.i >= 0) {
        __int128 acc = 1;
        for (int64_t k = 0; k < p.i; ++k) {
          acc *= v.i;
          if (acc > 2147483647LL || acc < -2147483648LL) return true;
        }
        out.push_back(Value::Integer(static_cast<int64_t>(acc)));
        return true;
      }
      double a = AsDec(v).ToDouble(), b = AsDec(p).ToDouble();
      double res = n.fn == Fn::kLog ? std::log(a) / std::log(b) : std::pow(a, b);
      if (std::isnan(res) || std::isinf(res)) return true;
      out.push_back(Value::Dec(Decimal::FromDouble(res)));
      return true;
    }
    case Fn::kChildren:
      for (const Value& v : input) Children(v, out);
      return true;
    case Fn::kDescendants: {
      Collection level = input;
      while (!level.empty()) {
        Collection next;
        for (const Value& v : level) Children(v, next);
        out.insert(out.end(), next.begin(), next.end());
        level = std::move(next);
      }
      return true;
    }
    case Fn::kTrace: {
      std::optional<std::string> name;
      if (!string_arg(0, &name)) return false;
      if (env_.trace) {
        if (n.args.size() > 1) {
          Collection projected;
          for (size_t i = 0; i < input.size(); ++i) {
            if (!lambda(1, input[i], static_cast<int64_t>(i), projected)) return false;
          }
          env_.trace(name.value_or(""), projected);
        } else {
          env_.trace(name.value_or(""), input);
        }
      }
      out.insert(out.end(), input.begin(), input.end());
      return true;
    }
    case Fn::kNow:
    case Fn::kToday:
    case Fn::kTimeOfDay: {
      Temporal t = env_.now ? *env_.now : Now();
      if (n.fn == Fn::kToday) {
        t.precision = Temporal::kDay;
        t.has_tz = false;
        out.push_back(Value::Time(Kind::kDate, t));
      } else if (n.fn == Fn::kTimeOfDay) {
        t.has_tz = false;
        out.push_back(Value::Time(Kind::kTime, t));
      } else {
        out.push_back(Value::Time(Kind::kDateTime, t));
      }
      return true;
    }
    case Fn::kNot: {
      bool err = false;
      auto b = ToBool(input, &err);
      if (err) return Fail(n, "not() needs a single item");
      if (b) out.push_back(Value::Boolean(!*b));
      return true;
    }
    case Fn::kAggregate: {
      Collection total;
      if (n.args.size() > 1 && !arg(1, total)) return false;
      for (size_t i = 0; i < input.size(); ++i) {
        Collection next;
        if (!lambda(0, input[i], static_cast<int64_t>(i), next, &total)) return false;
        total = std::move(next);
      }
      out.insert(out.end(), total.begin(), total.end());
      return true;
    }
    case Fn::kSort: {
      // Keys per item; a key expression starting with unary minus sorts descending.
      struct Keyed {
        Value v;
        std::vector<Collection> keys;
      };
      std::vector<Keyed> items;
      for (size_t i = 0; i < input.size(); ++i) {
        Keyed k{input[i], {}};
        if (n.args.empty()) {
          k.keys.push_back(Collection{input[i]});
        }
        for (size_t a = 0; a < n.args.size(); ++a) {
          const Node* key = n.args[a].get();
          if (key->op == Op::kNegate) key = key->args[0].get();
          Collection c;
          Collection single{input[i]};
          frames_.push_back(Frame{&input[i], static_cast<int64_t>(i), nullptr});
          bool ok = Eval(*key, single, c);
          frames_.pop_back();
          if (!ok) return false;
          k.keys.push_back(std::move(c));
        }
        items.push_back(std::move(k));
      }
      bool err = false;
      std::stable_sort(items.begin(), items.end(), [&](const Keyed& x, const Keyed& y) {
        for (size_t a = 0; a < x.keys.size(); ++a) {
          bool desc = a < n.args.size() && n.args[a]->op == Op::kNegate;
          const Collection& kx = x.keys[a];
          const Collection& ky = y.keys[a];
          if (kx.empty() || ky.empty()) {
            if (kx.empty() != ky.empty()) return kx.empty();  // empty keys first
            continue;
          }
          auto c = CompareValues(kx[0], ky[0], &err);
          if (c && *c != 0) return desc ? *c > 0 : *c < 0;
        }
        return false;
      });
      if (err) return Fail(n, "sort() keys cannot be compared");
      for (Keyed& k : items) out.push_back(std::move(k.v));
      return true;
    }
    case Fn::kType:
      for (const Value& v : input) {
        Value t;
        t.kind = Kind::kTypeInfo;
        if (v.type != nullptr) {
          t.fhir_namespace = true;
          t.owned = std::make_shared<const std::string>(TypeName(v));
        } else {
          static const char* const kNames[] = {"Boolean", "Integer", "Decimal", "String",
                                                "Date", "DateTime", "Time", "Quantity"};
          int k = static_cast<int>(v.kind);
          t.owned = std::make_shared<const std::string>(k < 8 ? kNames[k] : "Any");
        }
        t.str = *t.owned;
        out.push_back(std::move(t));
      }
      return true;
    case Fn::kResolve: {
      for (const Value& v : input) {
        std::string_view ref;
        if (v.kind == Kind::kString) {
          ref = v.str;
        } else if (v.kind == Kind::kObject && v.json != nullptr && v.json->IsObject()) {
          auto it = v.json->FindMember("reference");
          if (it != v.json->MemberEnd() && it->value.IsString()) {
            ref = std::string_view(it->value.GetString(), it->value.GetStringLength());
          }
        }
        if (ref.empty()) continue;
        const rapidjson::Value* found = nullptr;
        // Contained resources: "#id" in the resource.
        if (ref[0] == '#' && resource_.json != nullptr && resource_.json->IsObject()) {
          auto c = resource_.json->FindMember("contained");
          if (c != resource_.json->MemberEnd() && c->value.IsArray()) {
            for (const auto& r : c->value.GetArray()) {
              auto id = r.FindMember("id");
              if (id != r.MemberEnd() && id->value.IsString() &&
                  ref.substr(1) == id->value.GetString()) {
                found = &r;
              }
            }
          }
        }
        // Bundle entries: by fullUrl, or by Type/id.
        const Value& root = root_resource_;
        if (found == nullptr && root.json != nullptr && root.type != nullptr &&
            root.type->name == "Bundle") {
          auto entries = root.json->FindMember("entry");
          if (entries != root.json->MemberEnd() && entries->value.IsArray()) {
            for (const auto& e : entries->value.GetArray()) {
              auto full = e.FindMember("fullUrl");
              auto res = e.FindMember("resource");
              if (res == e.MemberEnd()) continue;
              if (full != e.MemberEnd() && full->value.IsString() &&
                  ref == full->value.GetString()) {
                found = &res->value;
                break;
              }
              auto rt = res->value.FindMember("resourceType");
              auto id = res->value.FindMember("id");
              if (rt != res->value.MemberEnd() && id != res->value.MemberEnd() &&
                  rt->value.IsString() && id->value.IsString() &&
                  ref == base::StrCat(rt->value.GetString(), "/", id->value.GetString())) {
                found = &res->value;
                break;
              }
            }
          }
        }
        if (found != nullptr) {
          out.push_back(FhirValue(*found));
          continue;
        }
        // Not available: a stub of the referenced type ("Patient/1", ".../Patient/1/_history/2"),
        // enough for `resolve() is Patient` in search parameters.
        std::vector<std::string_view> parts = base::Split(ref, '/');
        for (size_t k = parts.size(); k-- > 1;) {
          if (parts[k - 1] == "_history") continue;
          const TypeInfo* t = Model::Get().Find(parts[k - 1]);
          if (t != nullptr && t->kind == TypeInfo::kResource) {
            Value stub;
            stub.kind = Kind::kObject;
            stub.type = t;
            out.push_back(stub);
            break;
          }
        }
      }
      return true;
    }
    case Fn::kExtension: {
      std::optional<std::string> url;
      if (!string_arg(0, &url)) return false;
      if (!url) return true;
      static const TypeInfo* extension = Model::Get().Find("Extension");
      for (const Value& v : input) {
        const rapidjson::Value* holder = v.kind == Kind::kObject ? v.json : v.ext;
        if (holder == nullptr || !holder->IsObject()) continue;
        auto ext = holder->FindMember("extension");
        if (ext == holder->MemberEnd() || !ext->value.IsArray()) continue;
        for (const auto& e : ext->value.GetArray()) {
          auto u = e.FindMember("url");
          if (u != e.MemberEnd() && u->value.IsString() && *url == u->value.GetString()) {
            out.push_back(MakeElement(&e, nullptr, extension));
          }
        }
      }
      return true;
    }
    case Fn::kHasValue:
      return boolean(input.size() == 1 && input[0].type != nullptr &&
                     input[0].type->kind == TypeInfo::kPrimitive &&
                     input[0].kind != Kind::kNoValue);
    case Fn::kGetValue:
      if (input.size() == 1 && input[0].type != nullptr &&
          input[0].type->kind == TypeInfo::kPrimitive && input[0].kind != Kind::kNoValue) {
        Value v = input[0];
        v.type = nullptr;
        v.json = nullptr;
        v.ext = nullptr;
        out.push_back(v);
      }
      return true;
    case Fn::kLowBoundary:
    case Fn::kHighBoundary:
    case Fn::kPrecision:
    case Fn::kComparable: {
      if (!single_input("input")) return false;
      if (input.empty()) return true;
      Value v = ToSystemValue(input[0]);
      bool high = n.fn == Fn::kHighBoundary;
      if (n.fn == Fn::kComparable) {
        Collection c;
        if (!arg(0, c)) return false;
        if (c.empty()) return true;
        Value o = ToSystemValue(c[0]);
        if (v.kind != Kind::kQuantity || o.kind != Kind::kQuantity) {
          return Fail(n, "comparable() needs quantities");
        }
        auto a = CanonicalQuantity(v.d, v.str), b = CanonicalQuantity(o.d, o.str);
        return boolean(v.str == o.str || (a && b && a->unit == b->unit));
      }
      if (n.fn == Fn::kPrecision) {
        if (v.kind == Kind::kDecimal) {
          out.push_back(Value::Integer(std::max(v.d.scale, 0)));
        } else if (v.kind == Kind::kInteger) {
          out.push_back(Value::Integer(0));
        } else if (IsTemporalKind(v.kind)) {
          static const int kDateDigits[] = {0, 4, 6, 8, 10, 12, 14, 17};
          int p = kDateDigits[v.t.precision];
          if (v.kind == Kind::kTime) p -= 8;
          out.push_back(Value::Integer(p));
        } else {
          return Fail(n, "precision() needs a number, date or time");
        }
        return true;
      }
      std::optional<int64_t> digits;
      if (!n.args.empty() && !int_arg(0, &digits)) return false;
      if (IsNumberKind(v.kind) || v.kind == Kind::kQuantity) {
        Decimal d = AsDec(v);
        int target = digits ? static_cast<int>(*digits) : 8;
        if (target < 0 || target > 28) return true;
        // The half-unit of the last written digit widens the interval.
        Decimal half{5, std::max(d.scale, 0) + 1};
        Decimal bound = high ? Add(d, half) : Sub(d, half);
        Decimal r;
        if (bound.scale > target) {
          // Floor (low) or ceiling (high) at the target precision; a bound smaller than one
          // unit of that precision is zero (0.0034.highBoundary(1) = 0.0, as the suite has it).
          __int128 p = 1;
          for (int k = 0; k < bound.scale - target; ++k) p *= 10;
          __int128 q = bound.mantissa / p;
          if (q != 0 && bound.mantissa % p != 0) {
            if (high && bound.mantissa > 0) q += 1;
            if (!high && bound.mantissa < 0) q -= 1;
          }
          r = Decimal{q, target};
        } else {
          r = bound;
          while (r.scale < target) {
            r.mantissa *= 10;
            ++r.scale;
          }
        }
        if (v.kind == Kind::kQuantity) {
          out.push_back(Value::Quantity(r, std::string(v.str)));
        } else {
          out.push_back(Value::Dec(r));
        }
        return true;
      }
      if (IsTemporalKind(v.kind)) {
        Temporal t = v.t;
        int target = digits ? static_cast<int>(*digits) : (v.kind == Kind::kDate ? 8 : v.kind ==
                                                               Kind::kTime ? 9 : 17);
        uint8_t prec;
        if (v.kind == Kind::kTime) {
          prec = target >= 9 ? Temporal::kMillisecond : target >= 6 ? Temporal::kSecond
                 : target >= 4 ? Temporal::kMinute : Temporal::kHour;
        } else {
          prec = target >= 17 ? Temporal::kMillisecond : target >= 14 ? Temporal::kSecond
                 : target >= 12 ? Temporal::kMinute : target >= 10 ? Temporal::kHour
                 : target >= 8 ? Temporal::kDay : target >= 6 ? Temporal::kMonth
                 : Temporal::kYear;
          if (v.kind == Kind::kDate && prec > Temporal::kDay) prec = Temporal::kDay;
        }
        if (t.precision < Temporal::kMonth) t.month = high ? 12 : 1;
        if (t.precision < Temporal::kDay) {
          static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
          int dim = kDays[t.month - 1];
          if (t.month == 2 && ((t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0)) {
            dim = 29;
          }
          t.day = static_cast<int8_t>(high ? dim : 1);
        }
        if (t.precision < Temporal::kHour) t.hour = high ? 23 : 0;
        if (t.precision < Temporal::kMinute) t.minute = high ? 59 : 0;
        if (t.precision < Temporal::kSecond) t.second = high ? 59 : 0;
        if (t.precision < Temporal::kMillisecond) t.millis = high ? 999 : 0;
        if (v.kind == Kind::kDateTime && !t.has_tz && prec >= Temporal::kHour) {
          t.has_tz = true;
          t.tz_minutes = static_cast<int16_t>(high ? -12 * 60 : 14 * 60);
        }
        t.precision = prec;
        out.push_back(Value::Time(v.kind, t));
        return true;
      }
      return Fail(n, base::StrCat(n.name, "() needs a number, quantity, date or time"));
    }
    case Fn::kConformsTo: {
      std::optional<std::string> url;
      if (!string_arg(0, &url)) return false;
      if (!url) return true;
      const std::string prefix = "http://hl7.org/fhir/StructureDefinition/";
      if (url->substr(0, prefix.size()) != prefix) {
        return Fail(n, base::StrCat("conformsTo(): unknown profile ", *url));
      }
      const TypeInfo* t = Model::Get().Find(url->substr(prefix.size()));
      for (const Value& v : input) {
        out.push_back(Value::Boolean(t != nullptr && v.type != nullptr && v.type->IsA(t)));
      }
      return true;
    }
    case Fn::kMemberOf:
    case Fn::kElementDefinition:
    case Fn::kSlice:
    case Fn::kCheckModifiers:
    case Fn::kSubsumes:
    case Fn::kSubsumedBy:
    case Fn::kHtmlChecks:
      return Fail(n, base::StrCat(n.name, "() needs a terminology or profile service, which "
                                          "this engine does not have"));
  }
  return Fail(n, "unknown function");
}

}  // namespace isthmus::fhirpath
