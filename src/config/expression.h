// Filter and route expressions over an HL7 v2 message: `type = ADT and PV1-2 in [I, E]`.
//
// An Expression is compiled once (at config load) and evaluated per message. Grammar, value
// semantics and examples: docs/configuration.md, "Expressions". In short:
//
//   expr       := or
//   or         := and ('or' and)*
//   and        := unary ('and' unary)*
//   unary      := 'not' unary | '(' expr ')' | comparison
//   comparison := operand '=' value | operand '!=' value
//               | operand ['not'] 'in' '[' value (',' value)* ']'
//               | operand ['not'] 'matches' value          (RE2, partial match)
//               | operand 'exists' | operand 'empty'
//   operand    := HL7 path (PID-3, PID-3.1, OBX[2]-5, PID-3[2].4, PID)
//               | type | trigger | structure | sender | facility | version
//   value      := 'single quoted' | "double quoted" | bare-word
//
// Keywords are case-insensitive. Values are compared with the unescaped text of the message
// (Message::GetText semantics), case-sensitively. A path without a segment index means every
// occurrence of that segment, and without a repetition index every repetition: `=`, `in`,
// `matches` and `exists` are true when ANY of those values satisfies them; `!=`, `not in`,
// `not matches` and `empty` are their negations (true when NONE does). A value that is absent
// reads as the empty string.
//
// Thread-safety: an Expression is immutable after Compile; Matches() may run concurrently.
// Matches() does not allocate unless a value needs unescaping or charset conversion.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(Expression e,
//                            Expression::Compile("type = ADT and PV1-2 in [I, E]"));
//   if (e.Matches(message)) ...
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"

namespace re2 {
class RE2;
}

namespace isthmus::config {

class Expression {
 public:
  // InvalidArgument "column N: what is wrong (expected ...)" with N the 1-based column of the
  // offending token in `text` (ExpressionErrorColumn reads it back).
  static absl::StatusOr<Expression> Compile(std::string_view text);

  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;
  Expression(const Expression&) = delete;
  Expression& operator=(const Expression&) = delete;
  ~Expression();

  // True when `message` satisfies the expression.
  bool Matches(const hl7v2::Message& message) const;

  // The source text as compiled.
  const std::string& text() const { return text_; }

 private:
  enum class Op { kAnd, kOr, kNot, kEq, kIn, kMatches, kExists };
  struct Node {
    Op op;
    int lhs = -1, rhs = -1;           // children (kAnd, kOr: both; kNot: lhs)
    hl7v2::Path path;                 // comparisons
    std::vector<std::string> values;  // kEq: one; kIn: the list
    std::shared_ptr<const re2::RE2> regex;
  };
  friend class ExpressionParser;
  Expression() = default;
  bool Eval(int node, const hl7v2::Message& m) const;
  bool Test(const Node& n, const hl7v2::Message& m, std::string_view raw, bool decode) const;
  bool AnyValue(const Node& n, const hl7v2::Message& m) const;

  std::string text_;
  std::vector<Node> nodes_;
  int root_ = -1;
};

// The 1-based column an Expression::Compile error names, or 0 for another status.
int ExpressionErrorColumn(const absl::Status& status);

}  // namespace isthmus::config
