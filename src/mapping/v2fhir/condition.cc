#include "mapping/v2fhir/condition.h"

#include <cctype>

#include "absl/strings/match.h"
#include "base/str.h"

namespace isthmus::v2fhir {

class ConditionParser {
 public:
  ConditionParser(std::string_view text, const ConditionScope& scope, Condition* out)
      : s_(text), scope_(scope), out_(out) {}

  absl::Status Run() {
    Next();
    auto root = Or();
    if (!root.ok()) return root.status();
    if (tok_.kind != Tok::kEnd) return Err("unexpected '" + std::string(tok_.text) + "'");
    out_->root_ = *root;
    return absl::OkStatus();
  }

 private:
  struct Tok {
    enum Kind { kEnd, kWord, kQuoted, kEq, kNe, kLParen, kRParen, kLBracket, kRBracket, kComma };
    Kind kind = kEnd;
    std::string_view text;
    size_t pos = 0;
  };

  absl::Status Err(const std::string& what) const {
    return absl::InvalidArgumentError(base::StrCat("column ", tok_.pos + 1, ": ", what));
  }

  void Next() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    tok_.pos = pos_;
    if (pos_ >= s_.size()) {
      tok_ = {Tok::kEnd, {}, pos_};
      return;
    }
    char c = s_[pos_];
    auto one = [&](Tok::Kind k) {
      tok_ = {k, s_.substr(pos_, 1), pos_};
      ++pos_;
    };
    switch (c) {
      case '(': return one(Tok::kLParen);
      case ')': return one(Tok::kRParen);
      case '[': return one(Tok::kLBracket);
      case ']': return one(Tok::kRBracket);
      case ',': return one(Tok::kComma);
      case '=': return one(Tok::kEq);
      default: break;
    }
    if (c == '!' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '=') {
      tok_ = {Tok::kNe, s_.substr(pos_, 2), pos_};
      pos_ += 2;
      return;
    }
    if (c == '\'' || c == '"') {
      size_t end = s_.find(c, pos_ + 1);
      if (end == std::string_view::npos) {
        tok_ = {Tok::kEnd, {}, pos_};
        bad_quote_ = true;
        return;
      }
      tok_ = {Tok::kQuoted, s_.substr(pos_ + 1, end - pos_ - 1), pos_};
      pos_ = end + 1;
      return;
    }
    size_t start = pos_;
    while (pos_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[pos_])) &&
           std::string_view("()[],=!'\"").find(s_[pos_]) == std::string_view::npos) {
      ++pos_;
    }
    if (pos_ == start) ++pos_;  // a lone '!'
    tok_ = {Tok::kWord, s_.substr(start, pos_ - start), start};
  }

  bool IsKeyword(std::string_view kw) const {
    return tok_.kind == Tok::kWord && absl::EqualsIgnoreCase(
        absl::string_view(tok_.text.data(), tok_.text.size()), absl::string_view(kw.data(), kw.size()));
  }

  int Add(Condition::Node n) {
    out_->nodes_.push_back(std::move(n));
    return static_cast<int>(out_->nodes_.size()) - 1;
  }

  absl::StatusOr<int> Or() {
    auto lhs = And();
    if (!lhs.ok()) return lhs;
    int l = *lhs;
    while (IsKeyword("or")) {
      Next();
      auto rhs = And();
      if (!rhs.ok()) return rhs;
      l = Add({Condition::Op::kOr, l, *rhs, {}, {}});
    }
    return l;
  }

  absl::StatusOr<int> And() {
    auto lhs = Unary();
    if (!lhs.ok()) return lhs;
    int l = *lhs;
    while (IsKeyword("and")) {
      Next();
      auto rhs = Unary();
      if (!rhs.ok()) return rhs;
      l = Add({Condition::Op::kAnd, l, *rhs, {}, {}});
    }
    return l;
  }

  absl::StatusOr<int> Unary() {
    if (IsKeyword("not")) {
      Next();
      auto inner = Unary();
      if (!inner.ok()) return inner;
      return Add({Condition::Op::kNot, *inner, -1, {}, {}});
    }
    if (tok_.kind == Tok::kLParen) {
      Next();
      auto inner = Or();
      if (!inner.ok()) return inner;
      if (tok_.kind != Tok::kRParen) return Err("expected ')'");
      Next();
      return inner;
    }
    return Comparison();
  }

  absl::StatusOr<Operand> ParseOperand() {
    if (tok_.kind != Tok::kWord) return Err("expected a path such as PID-3.1, CX.4 or $");
    std::string_view t = tok_.text;
    Operand op;
    if (t == "$") return op;
    std::string_view rest;
    if (scope_.segment) {
      size_t dash = t.find('-');
      if (dash == std::string_view::npos || dash == 0) {
        return Err(base::StrCat("'", t, "' is not a field path (expected SEG-F[.C[.S]])"));
      }
      op.segment = std::string(t.substr(0, dash));
      op.self = op.segment == scope_.name;
      rest = t.substr(dash + 1);
    } else {
      size_t dot = t.find('.');
      if (dot == std::string_view::npos || t.substr(0, dot) != scope_.name) {
        return Err(base::StrCat("'", t, "' is not a component of ", scope_.name, " (expected ",
                                scope_.name, ".C[.S] or $)"));
      }
      rest = t.substr(dot + 1);
    }
    for (std::string_view piece : base::Split(rest, '.')) {
      int n = 0;
      if (!base::ParseInt(piece, &n) || n < 1) {
        return Err(base::StrCat("'", t, "': '", piece, "' is not a positive number"));
      }
      op.parts.push_back(n);
    }
    if (op.parts.size() > (scope_.segment ? 3u : 2u)) return Err(base::StrCat("'", t, "' is too deep"));
    return op;
  }

  absl::StatusOr<std::string> Value() {
    if (tok_.kind != Tok::kWord && tok_.kind != Tok::kQuoted) return Err("expected a value");
    std::string v(tok_.text);
    Next();
    return v;
  }

  absl::StatusOr<int> Comparison() {
    auto operand = ParseOperand();
    if (!operand.ok()) return operand.status();
    Next();
    Condition::Node n{Condition::Op::kValued, -1, -1, std::move(*operand), {}};
    bool negate = false;
    if (IsKeyword("is")) Next();
    if (IsKeyword("not")) {
      negate = true;
      Next();
    }
    if (IsKeyword("valued")) {
      Next();
    } else if (!negate && IsKeyword("longer")) {
      // `longer than N`: more than N characters (unescaped): a DTM with a time (PID-7 > 8).
      Next();
      if (!IsKeyword("than")) return Err("expected 'than' after 'longer'");
      Next();
      int len = 0;
      if (tok_.kind != Tok::kWord || !base::ParseInt(tok_.text, &len) || len < 0) {
        return Err("expected a length after 'longer than'");
      }
      n.op = Condition::Op::kLonger;
      n.length = static_cast<size_t>(len);
      Next();
    } else if (IsKeyword("repeats")) {
      // The field has a second repetition (segment scope, a whole field).
      if (!scope_.segment || n.operand.parts.size() != 1) {
        return Err("'repeats' tests a field of a segment (OBX-5 repeats)");
      }
      n.operand.repetition = 2;
      Next();
    } else if (!negate && (tok_.kind == Tok::kEq || tok_.kind == Tok::kNe)) {
      negate = tok_.kind == Tok::kNe;
      Next();
      n.op = Condition::Op::kEq;
      auto v = Value();
      if (!v.ok()) return v.status();
      n.values.push_back(std::move(*v));
    } else if (IsKeyword("in")) {
      Next();
      n.op = Condition::Op::kIn;
      if (tok_.kind != Tok::kLBracket) return Err("expected '[' after 'in'");
      Next();
      while (true) {
        auto v = Value();
        if (!v.ok()) return v.status();
        n.values.push_back(std::move(*v));
        if (tok_.kind == Tok::kComma) {
          Next();
          continue;
        }
        if (tok_.kind == Tok::kRBracket) {
          Next();
          break;
        }
        return Err("expected ',' or ']'");
      }
    } else {
      if (bad_quote_) return Err("unterminated quote");
      return Err("expected 'valued', 'not valued', 'repeats', 'longer than', '=', '!=', 'in' or 'not in'");
    }
    int id = Add(std::move(n));
    return negate ? Add({Condition::Op::kNot, id, -1, {}, {}}) : id;
  }

  std::string_view s_;
  const ConditionScope& scope_;
  Condition* out_;
  size_t pos_ = 0;
  Tok tok_;
  bool bad_quote_ = false;
};

absl::StatusOr<Condition> Condition::Compile(std::string_view text, const ConditionScope& scope) {
  Condition c;
  c.text_ = std::string(text);
  ConditionParser p(c.text_, scope, &c);
  if (absl::Status s = p.Run(); !s.ok()) return s;
  return c;
}

bool Condition::Evaluate(const ValueFn& value) const { return root_ >= 0 && Eval(root_, value); }

bool Condition::Eval(int i, const ValueFn& value) const {
  const Node& n = nodes_[i];
  switch (n.op) {
    case Op::kAnd: return Eval(n.lhs, value) && Eval(n.rhs, value);
    case Op::kOr: return Eval(n.lhs, value) || Eval(n.rhs, value);
    case Op::kNot: return !Eval(n.lhs, value);
    default: break;
  }
  std::string scratch;
  std::string_view v = value(n.operand, &scratch);
  switch (n.op) {
    case Op::kValued: return !v.empty() && v != "\"\"";
    case Op::kLonger: return v.size() > n.length && v != "\"\"";
    case Op::kEq: return v == n.values[0];
    case Op::kIn:
      for (const std::string& s : n.values) {
        if (v == s) return true;
      }
      return false;
    default: return false;
  }
}

}  // namespace isthmus::v2fhir
