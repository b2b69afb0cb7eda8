// Field-level checks: optionality, repetition, length, primitive formats and table values, for
// fields and for the components of composite fields.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "base/str.h"
#include "hl7v2/escape.h"
#include "hl7v2/validator_internal.h"

namespace isthmus::hl7v2::internal {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

int Num(std::string_view s) {  // REQUIRES: AllDigits(s)
  int x = 0;
  for (char c : s) x = x * 10 + (c - '0');
  return x;
}

bool InRange(std::string_view s, int lo, int hi) {
  if (!AllDigits(s)) return false;
  int x = Num(s);
  return x >= lo && x <= hi;
}

// YYYY[MM[DD]]
bool ValidDatePart(std::string_view v) {
  if (v.size() != 4 && v.size() != 6 && v.size() != 8) return false;
  if (!AllDigits(v)) return false;
  if (v.size() >= 6 && !InRange(v.substr(4, 2), 1, 12)) return false;
  if (v.size() == 8) {
    static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int month = Num(v.substr(4, 2));
    if (!InRange(v.substr(6, 2), 1, kDays[month - 1])) return false;
  }
  return true;
}

// Splits "+HHMM"/"-HHMM" off the end of `v`; false when it is malformed.
bool StripZone(std::string_view& v) {
  size_t sign = v.find_first_of("+-");
  if (sign == std::string_view::npos) return true;
  std::string_view zone = v.substr(sign + 1);
  v = v.substr(0, sign);
  return zone.size() == 4 && InRange(zone.substr(0, 2), 0, 14) && InRange(zone.substr(2), 0, 59);
}

// HH[MM[SS[.S[S[S[S]]]]]] without zone.
bool ValidTimePart(std::string_view v) {
  std::string_view frac;
  if (size_t dot = v.find('.'); dot != std::string_view::npos) {
    frac = v.substr(dot + 1);
    v = v.substr(0, dot);
    if (v.size() != 6 || frac.empty() || frac.size() > 4 || !AllDigits(frac)) return false;
  }
  if (v.size() != 2 && v.size() != 4 && v.size() != 6) return false;
  if (!InRange(v.substr(0, 2), 0, 23)) return false;
  if (v.size() >= 4 && !InRange(v.substr(2, 2), 0, 59)) return false;
  if (v.size() == 6 && !InRange(v.substr(4, 2), 0, 59)) return false;
  return true;
}

std::string FieldLabel(const SegmentView& seg, const FieldDef* def, int field) {
  if (def == nullptr || def->name.empty()) return base::StrCat(seg.name(), "-", field);
  return base::StrCat(seg.name(), "-", field, " (", def->name, ")");
}

class FieldChecker {
 public:
  FieldChecker(const CompiledVersion& v, const SegmentView& seg, const Delimiters& d,
               std::vector<Issue>& out)
      : v_(v), seg_(seg), d_(d), out_(out) {}

  void Add(Severity sev, ErrorCode code, int field, int rep, int comp, std::string message) {
    Issue& i = out_.emplace_back();
    i.severity = sev;
    i.code = code;
    i.location.segment = std::string(seg_.name());
    i.location.segment_index = seg_.occurrence();
    i.location.field = field;
    i.location.repetition = rep;
    i.location.component = comp;
    i.message = std::move(message);
  }

  // Checks one primitive value; `label` names it in messages.
  void CheckValue(ValueKind kind, const TableDef* table, std::string_view value, int field,
                  int rep, int comp, const FieldDef* def) {
    if (value.empty() || value == "\"\"") return;
    bool ok = true;
    std::string_view expected;
    switch (kind) {
      case ValueKind::kNM: ok = IsValidNM(value); expected = "a number (NM)"; break;
      case ValueKind::kSI: ok = IsValidSI(value); expected = "a sequence number (SI)"; break;
      case ValueKind::kDT: ok = IsValidDT(value); expected = "a date YYYY[MM[DD]] (DT)"; break;
      case ValueKind::kTM: ok = IsValidTM(value); expected = "a time HH[MM[SS[.S]]] (TM)"; break;
      case ValueKind::kDTM:
        ok = IsValidDTM(value);
        expected = "a date/time YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ] (DTM)";
        break;
      case ValueKind::kTS: {
        std::string_view first = value.substr(0, value.find(d_.component));
        ok = first.empty() || IsValidDTM(first);
        expected = "a date/time YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ] (TS)";
        break;
      }
      case ValueKind::kID:
      case ValueKind::kIS:
        if (table != nullptr && !table->Contains(value)) {
          bool hl7 = kind == ValueKind::kID;
          Add(hl7 ? Severity::kError : Severity::kWarning, ErrorCode::kTableValueNotFound, field,
              rep, comp,
              absl::StrFormat("%s: the code is not in %s table %04d (%s)", Label(field, comp, def),
                              hl7 ? "HL7" : "user-defined", table->number, table->name));
        }
        return;
      case ValueKind::kNone:
        return;
    }
    if (!ok) {
      Add(Severity::kError, ErrorCode::kDataTypeError, field, rep, comp,
          base::StrCat(Label(field, comp, def), ": the value is not ", expected));
    }
  }

  std::string Label(int field, int comp, const FieldDef* def) const {
    if (comp == 0) return FieldLabel(seg_, def, field);
    if (def == nullptr || def->name.empty()) return base::StrCat(seg_.name(), "-", field, ".", comp);
    return base::StrCat(seg_.name(), "-", field, ".", comp, " (", def->name, ")");
  }

  void CheckComponents(const FieldRule& r, std::string_view rv, int field, int rep) {
    // Split once; components beyond the last rule are not looked at.
    std::string_view comps[64];
    int n = 0;
    int last = r.components.back().def->position;
    for (size_t start = 0; n < 64 && n < last;) {
      size_t end = d_.component == '\0' ? std::string_view::npos : rv.find(d_.component, start);
      comps[n++] = rv.substr(start, end == std::string_view::npos ? std::string_view::npos
                                                                 : end - start);
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    for (const ComponentRule& c : r.components) {
      int pos = c.def->position;
      std::string_view value = pos <= n ? comps[pos - 1] : std::string_view();
      if (value.empty()) {
        if (c.required) {
          Add(Severity::kError, ErrorCode::kRequiredFieldMissing, field, rep, pos,
              base::StrCat(Label(field, pos, c.def), " is required when ",
                           FieldLabel(seg_, r.def, field), " is present"));
        }
        continue;
      }
      CheckValue(c.kind, c.table, value, field, rep, pos, c.def);
    }
  }

  void CheckField(const FieldRule& r, int field, std::string_view raw, ValueKind kind) {
    if (raw.empty()) {
      if (r.required) {
        Add(Severity::kError, ErrorCode::kRequiredFieldMissing, field, 0, 0,
            base::StrCat(FieldLabel(seg_, r.def, field), " is required but missing"));
      }
      return;
    }
    if (raw == "\"\"") return;
    int rep = 0;
    for (size_t start = 0;;) {
      size_t end = d_.repetition == '\0' ? std::string_view::npos : raw.find(d_.repetition, start);
      std::string_view rv =
          raw.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
      ++rep;
      if (rep == 2 && r.max_reps == 1) {
        Add(Severity::kError, ErrorCode::kDataTypeError, field, 0, 0,
            base::StrCat(FieldLabel(seg_, r.def, field), " repeats but is not a repeating field"));
      } else if (r.max_reps > 1 && rep == r.max_reps + 1) {
        Add(Severity::kError, ErrorCode::kDataTypeError, field, rep, 0,
            base::StrCat(FieldLabel(seg_, r.def, field), " has more than ", r.max_reps,
                         " repetitions"));
      }
      if (!rv.empty()) CheckRepetition(r, field, rep, rv, kind);
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
  }

  void CheckRepetition(const FieldRule& r, int field, int rep, std::string_view rv,
                       ValueKind kind) {
    if (r.max_length > 0 && rv.size() > static_cast<size_t>(r.max_length)) {
      size_t len = NeedsUnescape(rv, d_) ? Unescape(rv, d_).size() : rv.size();
      if (len > static_cast<size_t>(r.max_length)) {
        Add(Severity::kWarning,
            v_.v27_or_later ? ErrorCode::kValueTooLong : ErrorCode::kDataTypeError, field, rep, 0,
            base::StrCat(FieldLabel(seg_, r.def, field), " is ", len,
                         " characters long; the maximum is ", r.max_length));
      }
    }
    if (kind != ValueKind::kNone) {
      CheckValue(kind, r.table, rv, field, rep, 0, r.def);
    } else if (!r.components.empty()) {
      CheckComponents(r, rv, field, rep);
    }
  }

 private:
  const CompiledVersion& v_;
  const SegmentView& seg_;
  const Delimiters& d_;
  std::vector<Issue>& out_;
};

}  // namespace

ValueKind KindOf(std::string_view t) {
  if (t == "NM") return ValueKind::kNM;
  if (t == "SI") return ValueKind::kSI;
  if (t == "DT") return ValueKind::kDT;
  if (t == "DTM") return ValueKind::kDTM;
  if (t == "TS") return ValueKind::kTS;
  if (t == "TM") return ValueKind::kTM;
  if (t == "ID") return ValueKind::kID;
  if (t == "IS") return ValueKind::kIS;
  return ValueKind::kNone;
}

bool IsValidNM(std::string_view v) {
  if (!v.empty() && (v[0] == '+' || v[0] == '-')) v.remove_prefix(1);
  bool digit = false, dot = false;
  for (char c : v) {
    if (absl::ascii_isdigit(c)) {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  return digit;
}

bool IsValidSI(std::string_view v) { return AllDigits(v); }

bool IsValidDT(std::string_view v) { return ValidDatePart(v); }

bool IsValidTM(std::string_view v) { return StripZone(v) && ValidTimePart(v); }

bool IsValidDTM(std::string_view v) {
  if (!StripZone(v)) return false;
  std::string_view date = v.substr(0, std::min<size_t>(v.size(), 8));
  if (!ValidDatePart(date)) return false;
  if (v.size() <= 8) return true;
  if (date.size() != 8) return false;
  return ValidTimePart(v.substr(8));
}

SegmentRules CompileSegment(const Dictionary& dict, const SegmentDef& def) {
  SegmentRules rules;
  rules.def = &def;
  auto table_of = [&](ValueKind kind, int number) -> const TableDef* {
    if ((kind != ValueKind::kID && kind != ValueKind::kIS) || number == 0) return nullptr;
    // Table 0396 (coding systems) is open-ended in practice: local "99zzz" names, "L", and
    // systems registered after the table was published.
    if (number == 396) return nullptr;
    const TableDef* t = dict.Table(number);
    return t != nullptr && !t->values.empty() ? t : nullptr;
  };
  for (const FieldDef& f : def.fields) {
    FieldRule& r = rules.fields.emplace_back();
    r.def = &f;
    r.required = f.required();
    r.max_reps = f.max_repetitions;
    r.max_length = f.max_length;
    r.kind = KindOf(f.datatype);
    r.table = table_of(r.kind, f.table);
    if (r.required) rules.required.push_back(f.position);
    if (r.kind != ValueKind::kNone) continue;  // primitive (TS: its first component)
    const DatatypeDef* type = dict.Datatype(f.datatype);
    if (type == nullptr || !type->composite()) continue;
    for (const FieldDef& c : type->components) {
      ComponentRule cr;
      cr.def = &c;
      cr.kind = KindOf(c.datatype);
      cr.table = table_of(cr.kind, c.table);
      cr.required = c.required();
      if (cr.kind == ValueKind::kID || cr.kind == ValueKind::kIS) {
        if (cr.table == nullptr) cr.kind = ValueKind::kNone;
      }
      if (cr.kind != ValueKind::kNone || cr.required) r.components.push_back(cr);
    }
    if (!r.components.empty() && r.components.back().def->position > 64) r.components.clear();
  }
  return rules;
}

void CheckSegmentFields(const CompiledVersion& v, const SegmentRules& rules, const SegmentView& seg,
                        const Delimiters& d, std::vector<Issue>& out) {
  FieldChecker checker(v, seg, d, out);
  bool msh = rules.def->name == "MSH";
  bool obx = rules.def->name == "OBX";
  int present = static_cast<int>(seg.field_count()) - 1;
  int count = std::min(static_cast<int>(rules.fields.size()), present);
  for (int f = msh ? 3 : 1; f <= count; ++f) {
    std::string_view raw = seg.field(f);
    const FieldRule& r = rules.fields[f - 1];
    ValueKind kind = r.kind;
    if (obx && f == 5 && kind == ValueKind::kNone && !raw.empty()) {
      // OBX-5's type is named by OBX-2; check the primitive ones.
      ValueKind k = KindOf(seg.field(2));
      if (k != ValueKind::kID && k != ValueKind::kIS) kind = k;
      if (kind != ValueKind::kNone) {
        checker.CheckField(FieldRule{r.def, kind, r.required, r.max_reps, r.max_length}, f, raw,
                           kind);
        continue;
      }
    }
    checker.CheckField(r, f, raw, kind);
  }
  for (int f : rules.required) {  // required fields past the last one present
    if (f > present && f > (msh ? 2 : 0)) {
      checker.CheckField(rules.fields[f - 1], f, std::string_view(), ValueKind::kNone);
    }
  }
}

}  // namespace isthmus::hl7v2::internal
