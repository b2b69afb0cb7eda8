// Conditions of map rules, evaluated against the segment or the datatype value a rule reads:
//
//   PID-11.9 valued        OBX-2 = NM          NK1-3.1 not in [EMC, C]     OBX-5 repeats
//   not (PV1-2 in [E, I]) and PV1-44 is not valued        CWE.3 != LN        $ valued
//   PID-7 longer than 8 (more than 8 characters: a date with a time)
//
//   cond    := or;  or := and ('or' and)*;  and := unary ('and' unary)*
//   unary   := 'not' unary | '(' cond ')' | operand test
//   test    := ['is'] ['not'] ('valued' | 'repeats') | 'longer than' N | '=' value | '!=' value | ['not'] 'in' '[' value, ... ']'
//   operand := SEG-F[.C[.S]] (segment maps, message maps) | DT.C[.S] (datatype maps) | '$' (the
//              value the rule reads)
//   value   := bare-word | 'single' | "double" quoted
//
// Why not config::Expression: filter expressions are message-wide ("any PID-3 repetition of any
// PID"), map conditions are relative to the segment occurrence and the repetition a rule is
// mapping, so they address a value, not a message. Values compare unescaped (HL7 escapes decoded),
// case-sensitively; an absent value is "".
//
// Thread-safety: immutable after Compile; Evaluate may run concurrently.
#pragma once

#include <type_traits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace isthmus::v2fhir {

// Where operands are looked up: a segment (operands SEG-F.C.S, segment name checked) or a
// datatype value (operands DT.C.S, datatype name checked). `name` is "PID" or "CX".
struct ConditionScope {
  bool segment = true;
  std::string name;
};

// An operand after compilation: the selector numbers relative to the scope ([] = `$`).
struct Operand {
  std::string segment;     // segment scope: the segment named (may differ from the scope's)
  std::vector<int> parts;  // segment: field, component, subcomponent; datatype: component, sub
  // `SEG-F repeats`: the repetition to look at (2: valued when the field has a second one);
  // 0: the repetition being mapped for the rule's own field, else the first.
  int repetition = 0;
  // Bound at compile: `segment` is the scope's segment (PID-3 in a PID map, not ORC-12 in an
  // OBR map), so the converter reads the segment it runs on without comparing names. False for
  // operands built at run time; the converter then compares.
  bool self = false;
};

class Condition {
 public:
  // InvalidArgument "column N: what" for a malformed condition.
  static absl::StatusOr<Condition> Compile(std::string_view text, const ConditionScope& scope);

  // `value(operand, scratch)` returns the unescaped text of an operand ("" when absent); the
  // converter supplies it for the current segment and repetition. A non-owning reference to a
  // callable (no std::function: its allocation per evaluation showed in conversion profiles);
  // the callable must outlive the Evaluate call, which a lambda argument does.
  class ValueFn {
   public:
    template <typename F>
      requires(!std::is_same_v<std::decay_t<F>, ValueFn>)
    ValueFn(const F& f)  // NOLINT(google-explicit-constructor): passed as a lambda
        : obj_(&f), call_([](const void* o, const Operand& op, std::string* scratch) {
            return std::string_view((*static_cast<const F*>(o))(op, scratch));
          }) {}
    std::string_view operator()(const Operand& op, std::string* scratch) const {
      return call_(obj_, op, scratch);
    }

   private:
    const void* obj_;
    std::string_view (*call_)(const void*, const Operand&, std::string*);
  };
  bool Evaluate(const ValueFn& value) const;

  const std::string& text() const { return text_; }

 private:
  enum class Op { kAnd, kOr, kNot, kValued, kEq, kIn, kLonger };
  struct Node {
    Op op;
    int lhs = -1, rhs = -1;
    Operand operand;
    std::vector<std::string> values;
    size_t length = 0;  // kLonger
  };
  friend class ConditionParser;
  bool Eval(int n, const ValueFn& value) const;
  std::string text_;
  std::vector<Node> nodes_;
  int root_ = -1;
};

}  // namespace isthmus::v2fhir
