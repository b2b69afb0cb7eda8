// FHIRPath values: the System types (Boolean, Integer, Decimal, String, Date, DateTime, Time,
// Quantity) and FHIR elements viewed in place inside a RapidJSON document.
//
// A `Value` is a small copyable handle. FHIR elements point into the caller's JSON document,
// which must outlive every collection evaluated over it; computed strings are owned by the value
// (shared, immutable). Decimals are exact (128-bit scaled integers); dates and times keep the
// precision they were written with.
// Thread-safety: values are immutable; copies may be used from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rapidjson/document.h"

namespace isthmus::fhirpath {

struct TypeInfo;  // model.h

// An exact decimal: mantissa * 10^-scale.
struct Decimal {
  __int128 mantissa = 0;
  int scale = 0;

  static Decimal FromInt(int64_t v) { return Decimal{v, 0}; }
  // Parses "-12.50" (no exponent); nullopt when malformed or too long.
  static std::optional<Decimal> Parse(std::string_view text);
  static Decimal FromDouble(double v);  // 15 significant digits
  double ToDouble() const;
  std::string ToString() const;  // keeps the scale: 1.50 -> "1.50"
  // Sign of a - b.
  static int Compare(const Decimal& a, const Decimal& b);
  Decimal Normalized() const;  // trailing zeros removed
  Decimal RoundTo(int digits) const;  // half away from zero
  Decimal Truncated() const;   // towards zero, scale 0
  Decimal Floor() const;
  Decimal Ceiling() const;
  bool IsInteger() const { return Normalized().scale <= 0; }
  bool IsZero() const { return mantissa == 0; }
  bool Negative() const { return mantissa < 0; }
};

Decimal Add(const Decimal& a, const Decimal& b);
Decimal Sub(const Decimal& a, const Decimal& b);
Decimal Mul(const Decimal& a, const Decimal& b);
// REQUIRES: !b.IsZero(). Rounded to 8 decimal places beyond the inputs' scales.
Decimal Div(const Decimal& a, const Decimal& b);

// A date, dateTime or time with the precision it was written with.
struct Temporal {
  enum Precision : uint8_t { kYear = 1, kMonth, kDay, kHour, kMinute, kSecond, kMillisecond };
  int32_t year = 0;
  int8_t month = 1, day = 1, hour = 0, minute = 0, second = 0;
  int16_t millis = 0;
  uint8_t precision = kYear;
  bool has_tz = false;
  int16_t tz_minutes = 0;
};

enum class Kind : uint8_t {
  kBoolean,
  kInteger,
  kDecimal,
  kString,
  kDate,
  kDateTime,
  kTime,
  kQuantity,
  kObject,       // a FHIR complex element or resource (json is an object), or a resolve() stub
  kNoValue,      // a FHIR primitive that has only an id and/or extensions (`_given`)
  kTypeInfo,     // the result of type(): str is the name, flag kFhirNamespace the namespace
};

struct Value {
  Kind kind = Kind::kBoolean;
  bool fhir_namespace = false;  // kTypeInfo: FHIR (true) or System
  const TypeInfo* type = nullptr;  // FHIR type of a FHIR element; null for System values
  const rapidjson::Value* json = nullptr;  // the element (or primitive value) in the document
  const rapidjson::Value* ext = nullptr;   // the primitive's `_name` sibling object, if any
  bool b = false;
  int64_t i = 0;
  Decimal d;           // kDecimal, kQuantity's value
  Temporal t;          // kDate, kDateTime, kTime
  std::string_view str;  // kString, kQuantity's unit, kTypeInfo's name
  std::shared_ptr<const std::string> owned;  // backs str when computed

  static Value Boolean(bool v) { Value x; x.kind = Kind::kBoolean; x.b = v; return x; }
  static Value Integer(int64_t v) { Value x; x.kind = Kind::kInteger; x.i = v; return x; }
  static Value Dec(Decimal v) { Value x; x.kind = Kind::kDecimal; x.d = v; return x; }
  static Value String(std::string s);
  static Value StringView(std::string_view s) {  // REQUIRES: s outlives the value
    Value x; x.kind = Kind::kString; x.str = s; return x;
  }
  static Value Quantity(Decimal v, std::string unit);
  static Value Time(Kind kind, Temporal t) { Value x; x.kind = kind; x.t = t; return x; }
};

using Collection = std::vector<Value>;

// Temporal parsing and formatting (FHIR JSON forms and FHIRPath literal bodies, without '@').
std::optional<Temporal> ParseDate(std::string_view s);      // YYYY[-MM[-DD]]
std::optional<Temporal> ParseDateTime(std::string_view s);  // YYYY[-MM[-DD[Thh[:mm[:ss[.fff]]][tz]]]]
std::optional<Temporal> ParseTime(std::string_view s);      // hh[:mm[:ss[.fff]]]
std::string FormatTemporal(Kind kind, const Temporal& t);   // no '@', no 'T' prefix for times
// Sign of a - b, or nullopt when the precisions make them incomparable.
std::optional<int> CompareTemporal(Kind kind, const Temporal& a, const Temporal& b);

// UCUM subset and calendar durations. Canonicalizes a quantity to base units for comparison;
// nullopt when the unit is unknown.
struct Canonical {
  Decimal value;
  std::string unit;
};
std::optional<Canonical> CanonicalQuantity(const Decimal& value, std::string_view unit);
// Calendar duration keywords (year, months, ...) -> the UCUM unit they compare as, else empty.
std::string_view CalendarToUcum(std::string_view unit);

}  // namespace isthmus::fhirpath
