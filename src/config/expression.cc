#include "config/expression.h"

#include <cctype>
#include <utility>

#include "base/str.h"
#include "hl7v2/escape.h"
#include "re2/re2.h"

namespace isthmus::config {

// ---- Compilation -----------------------------------------------------------------------------

class ExpressionParser {
 public:
  explicit ExpressionParser(std::string_view text) : text_(text) {}

  absl::StatusOr<Expression> Run() {
    Expression e;
    e.text_ = std::string(text_);
    expr_ = &e;
    Next();
    if (tok_.kind == Tok::kEnd) return Fail("the expression is empty (expected e.g. type = ADT)");
    int root = ParseOr(0);
    if (root < 0) return status_;
    if (tok_.kind != Tok::kEnd) {
      return Fail(base::StrCat("unexpected ", Describe(tok_),
                               " (expected 'and', 'or' or the end of the expression)"));
    }
    e.root_ = root;
    expr_ = nullptr;
    return e;
  }

 private:
  enum class Tok { kEnd, kWord, kString, kLParen, kRParen, kLBracket, kRBracket, kComma, kEq,
                   kNe, kBad };
  struct Token {
    Tok kind = Tok::kEnd;
    std::string_view raw;  // as written
    std::string value;     // words and strings: the value (quotes removed, doubled quotes undone)
    size_t pos = 0;        // 0-based offset in the text
  };

  static bool IsWordChar(char c) {
    return !std::isspace(static_cast<unsigned char>(c)) && c != '(' && c != ')' && c != '[' &&
           c != ']' && c != ',' && c != '\'' && c != '"' && c != '=' && c != '!';
  }

  void Next() {
    size_t i = pos_;
    while (i < text_.size() && std::isspace(static_cast<unsigned char>(text_[i]))) ++i;
    tok_ = Token();
    tok_.pos = i;
    if (i >= text_.size()) {
      pos_ = i;
      return;
    }
    char c = text_[i];
    auto single = [&](Tok k, size_t len) {
      tok_.kind = k;
      tok_.raw = text_.substr(i, len);
      pos_ = i + len;
    };
    switch (c) {
      case '(': return single(Tok::kLParen, 1);
      case ')': return single(Tok::kRParen, 1);
      case '[': return single(Tok::kLBracket, 1);
      case ']': return single(Tok::kRBracket, 1);
      case ',': return single(Tok::kComma, 1);
      case '=':
        return single(Tok::kEq, i + 1 < text_.size() && text_[i + 1] == '=' ? 2 : 1);
      case '!':
        if (i + 1 < text_.size() && text_[i + 1] == '=') return single(Tok::kNe, 2);
        return single(Tok::kBad, 1);
      case '\'':
      case '"': {
        // Quoted value: no backslash escapes (regexes keep their backslashes); a doubled quote
        // stands for one quote, as in SQL.
        size_t j = i + 1;
        std::string v;
        while (true) {
          if (j >= text_.size()) {
            tok_.kind = Tok::kBad;
            tok_.raw = text_.substr(i);
            tok_.value = "unterminated";
            pos_ = text_.size();
            return;
          }
          if (text_[j] == c) {
            if (j + 1 < text_.size() && text_[j + 1] == c) {
              v.push_back(c);
              j += 2;
              continue;
            }
            break;
          }
          v.push_back(text_[j++]);
        }
        tok_.kind = Tok::kString;
        tok_.raw = text_.substr(i, j + 1 - i);
        tok_.value = std::move(v);
        pos_ = j + 1;
        return;
      }
      default: break;
    }
    // A word; a `[n]` right after word characters belongs to it (PID-3[2].1, OBX[2]-5).
    size_t j = i;
    while (j < text_.size()) {
      if (IsWordChar(text_[j])) {
        ++j;
        continue;
      }
      if (text_[j] == '[' && j > i) {
        size_t k = j + 1;
        while (k < text_.size() && std::isdigit(static_cast<unsigned char>(text_[k]))) ++k;
        if (k > j + 1 && k < text_.size() && text_[k] == ']') {
          j = k + 1;
          continue;
        }
      }
      break;
    }
    tok_.kind = Tok::kWord;
    tok_.raw = text_.substr(i, j - i);
    tok_.value = std::string(tok_.raw);
    pos_ = j;
  }

  static bool IsKeyword(const Token& t, std::string_view kw) {
    if (t.kind != Tok::kWord || t.raw.size() != kw.size()) return false;
    for (size_t i = 0; i < kw.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(t.raw[i])) != kw[i]) return false;
    }
    return true;
  }
  static bool IsAnyKeyword(const Token& t) {
    for (std::string_view kw : {"and", "or", "not", "in", "matches", "exists", "empty"}) {
      if (IsKeyword(t, kw)) return true;
    }
    return false;
  }

  std::string Describe(const Token& t) const {
    switch (t.kind) {
      case Tok::kEnd: return "end of expression";
      case Tok::kBad:
        if (t.value == "unterminated") return base::StrCat("unterminated quoted value ", t.raw);
        return base::StrCat("'", t.raw, "'");
      default: return base::StrCat("'", t.raw, "'");
    }
  }

  int Fail(const Token& at, std::string_view what) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(base::StrCat("column ", at.pos + 1, ": ", what));
    }
    return -1;
  }
  absl::Status Fail(std::string_view what) {
    Fail(tok_, what);
    return status_;
  }

  int Add(Expression::Node n) {
    expr_->nodes_.push_back(std::move(n));
    return static_cast<int>(expr_->nodes_.size()) - 1;
  }

  int ParseOr(int depth) {
    int lhs = ParseAnd(depth);
    while (lhs >= 0 && IsKeyword(tok_, "or")) {
      Next();
      int rhs = ParseAnd(depth);
      if (rhs < 0) return -1;
      lhs = Add({.op = Expression::Op::kOr, .lhs = lhs, .rhs = rhs});
    }
    return lhs;
  }

  int ParseAnd(int depth) {
    int lhs = ParseUnary(depth);
    while (lhs >= 0 && IsKeyword(tok_, "and")) {
      Next();
      int rhs = ParseUnary(depth);
      if (rhs < 0) return -1;
      lhs = Add({.op = Expression::Op::kAnd, .lhs = lhs, .rhs = rhs});
    }
    return lhs;
  }

  int ParseUnary(int depth) {
    if (depth > 64) return Fail(tok_, "the expression nests too deeply (more than 64 levels)");
    if (IsKeyword(tok_, "not")) {
      Next();
      int inner = ParseUnary(depth + 1);
      if (inner < 0) return -1;
      return Add({.op = Expression::Op::kNot, .lhs = inner});
    }
    if (tok_.kind == Tok::kLParen) {
      Token open = tok_;
      Next();
      int inner = ParseOr(depth + 1);
      if (inner < 0) return -1;
      if (tok_.kind != Tok::kRParen) {
        return Fail(tok_, base::StrCat("expected ')' to close the '(' at column ", open.pos + 1,
                                       ", found ", Describe(tok_)));
      }
      Next();
      return inner;
    }
    return ParseComparison();
  }

  int ParseComparison() {
    static constexpr std::string_view kOperandHelp =
        "expected a field path like PV1-2 or PID-3.1, one of type, trigger, structure, sender, "
        "facility, version, or 'not' or '('";
    if (tok_.kind != Tok::kWord || IsAnyKeyword(tok_)) {
      return Fail(tok_, base::StrCat("unexpected ", Describe(tok_), " (", kOperandHelp, ")"));
    }
    Token operand = tok_;
    Expression::Node n{.op = Expression::Op::kExists};
    if (!ResolveOperand(operand, &n.path)) return -1;
    Next();

    bool negate = false;
    Token op = tok_;
    if (IsKeyword(tok_, "not")) {
      Next();
      if (!IsKeyword(tok_, "in") && !IsKeyword(tok_, "matches")) {
        return Fail(tok_, base::StrCat("expected 'in' or 'matches' after '", operand.raw,
                                       " not', found ", Describe(tok_)));
      }
      negate = true;
      op = tok_;
    }
    bool whole_segment = n.path.field == 0;
    if (whole_segment && !IsKeyword(op, "exists") && !IsKeyword(op, "empty")) {
      return Fail(op, base::StrCat("'", operand.raw, "' names a whole segment: it can only be "
                                   "tested with 'exists' or 'empty' (expected e.g. ",
                                   n.path.segment, "-3 = value to compare a field)"));
    }
    if (op.kind == Tok::kEq || op.kind == Tok::kNe) {
      negate = op.kind == Tok::kNe;
      Next();
      std::string v;
      if (!ParseValue(op, &v)) return -1;
      n.op = Expression::Op::kEq;
      n.values.push_back(std::move(v));
    } else if (IsKeyword(op, "in")) {
      Next();
      if (!ParseList(&n.values)) return -1;
      n.op = Expression::Op::kIn;
    } else if (IsKeyword(op, "matches")) {
      Next();
      Token pattern_tok = tok_;
      std::string pattern;
      if (!ParseValue(op, &pattern)) return -1;
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_shared<const RE2>(pattern, options);
      if (!re->ok()) {
        return Fail(pattern_tok, base::StrCat("invalid regular expression ", pattern_tok.raw, ": ",
                                              re->error(), " (RE2 syntax)"));
      }
      n.op = Expression::Op::kMatches;
      n.regex = std::move(re);
    } else if (IsKeyword(op, "exists") || IsKeyword(op, "empty")) {
      negate = IsKeyword(op, "empty");
      Next();
      n.op = Expression::Op::kExists;
    } else {
      return Fail(op, base::StrCat("unexpected ", Describe(op), " after '", operand.raw,
                                   "' (expected =, !=, in, not in, matches, not matches, exists "
                                   "or empty)"));
    }
    int id = Add(std::move(n));
    if (negate) id = Add({.op = Expression::Op::kNot, .lhs = id});
    return id;
  }

  bool ResolveOperand(const Token& t, hl7v2::Path* path) {
    static constexpr std::pair<std::string_view, std::string_view> kShortcuts[] = {
        {"type", "MSH-9.1"},     {"trigger", "MSH-9.2"}, {"structure", "MSH-9.3"},
        {"sender", "MSH-3.1"},   {"facility", "MSH-4.1"}, {"version", "MSH-12.1"},
    };
    for (const auto& [name, target] : kShortcuts) {
      if (IsKeyword(t, name)) {
        *path = *hl7v2::Path::Parse(target);
        return true;
      }
    }
    absl::StatusOr<hl7v2::Path> p = hl7v2::Path::Parse(t.raw);
    if (!p.ok()) {
      Fail(t, base::StrCat("'", t.raw, "' is not a field path or shortcut (expected e.g. PV1-2, "
                           "PID-3.1, OBX[2]-5, PID-3[2].4, or type, trigger, structure, sender, "
                           "facility, version)"));
      return false;
    }
    for (char c : p->segment) {
      if (!std::isupper(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c))) {
        Fail(t, base::StrCat("'", t.raw, "': segment names are upper case (expected e.g. ",
                             p->ToString(), ")"));
        return false;
      }
    }
    if (p->segment != t.raw.substr(0, 3)) {
      Fail(t, base::StrCat("'", t.raw, "': segment names are upper case (expected ",
                           p->ToString(), ")"));
      return false;
    }
    *path = *std::move(p);
    return true;
  }

  bool ParseValue(const Token& after, std::string* out) {
    if (tok_.kind == Tok::kString || (tok_.kind == Tok::kWord)) {
      *out = tok_.value;
      Next();
      return true;
    }
    Fail(tok_, base::StrCat("expected a value after '", after.raw, "', found ", Describe(tok_),
                            " (a bare word like I or a quoted string like 'I' or '')"));
    return false;
  }

  bool ParseList(std::vector<std::string>* out) {
    if (tok_.kind != Tok::kLBracket) {
      Fail(tok_, base::StrCat("expected '[' to start the list after 'in', found ", Describe(tok_),
                              " (e.g. in [I, E, 'O'])"));
      return false;
    }
    Token open = tok_;
    Next();
    while (true) {
      if (tok_.kind != Tok::kString && tok_.kind != Tok::kWord) {
        Fail(tok_, base::StrCat("expected a value in the list opened at column ", open.pos + 1,
                                ", found ", Describe(tok_), " (e.g. in [I, E, 'O'])"));
        return false;
      }
      out->push_back(tok_.value);
      Next();
      if (tok_.kind == Tok::kComma) {
        Next();
        continue;
      }
      if (tok_.kind == Tok::kRBracket) {
        Next();
        return true;
      }
      Fail(tok_, base::StrCat("expected ',' or ']' in the list opened at column ", open.pos + 1,
                              ", found ", Describe(tok_)));
      return false;
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  Token tok_;
  Expression* expr_ = nullptr;
  absl::Status status_;
};

absl::StatusOr<Expression> Expression::Compile(std::string_view text) {
  return ExpressionParser(text).Run();
}

Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;
Expression::~Expression() = default;

int ExpressionErrorColumn(const absl::Status& status) {
  constexpr std::string_view kPrefix = "column ";
  std::string_view m(status.message().data(), status.message().size());
  if (m.substr(0, kPrefix.size()) != kPrefix) return 0;
  m.remove_prefix(kPrefix.size());
  size_t colon = m.find(':');
  int column = 0;
  if (colon == std::string_view::npos || !base::ParseInt(m.substr(0, colon), &column)) return 0;
  return column;
}

// ---- Evaluation ------------------------------------------------------------------------------

bool Expression::Matches(const hl7v2::Message& message) const {
  return root_ >= 0 && Eval(root_, message);
}

bool Expression::Eval(int id, const hl7v2::Message& m) const {
  const Node& n = nodes_[static_cast<size_t>(id)];
  switch (n.op) {
    case Op::kAnd: return Eval(n.lhs, m) && Eval(n.rhs, m);
    case Op::kOr: return Eval(n.lhs, m) || Eval(n.rhs, m);
    case Op::kNot: return !Eval(n.lhs, m);
    default: return AnyValue(n, m);
  }
}

namespace {

bool IsPlainAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

// Tests one raw value. The raw bytes are the text when they hold no escape character and only
// ASCII (every charset maps ASCII to itself); otherwise the value is decoded first.
// MSH-1 and MSH-2 (the delimiters) are compared as written.
bool Expression::Test(const Node& n, const hl7v2::Message& m, std::string_view raw,
                      bool decode) const {
  std::string decoded;
  std::string_view text = raw;
  if (decode && (hl7v2::NeedsUnescape(raw, m.delimiters()) || !IsPlainAscii(raw))) {
    decoded = m.DecodeText(raw);
    text = decoded;
  }
  switch (n.op) {
    case Op::kEq: return text == n.values[0];
    case Op::kIn:
      for (const std::string& v : n.values) {
        if (text == v) return true;
      }
      return false;
    case Op::kMatches:
      return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *n.regex);
    case Op::kExists: return !text.empty();
    default: return false;
  }
}

// True when any value the node's path names (every matching segment occurrence and field
// repetition) passes Test. When nothing is there, the one value tested is "".
bool Expression::AnyValue(const Node& n, const hl7v2::Message& m) const {
  const hl7v2::Path& p = n.path;
  const hl7v2::Delimiters& d = m.delimiters();
  bool any_segment = false;
  for (size_t i = 0; i < m.segment_count(); ++i) {
    hl7v2::SegmentView seg = m.segment(i);
    if (seg.name() != p.segment) continue;
    if (p.segment_index > 0 && seg.occurrence() != p.segment_index) continue;
    any_segment = true;
    if (p.field == 0) return true;  // `SEG exists`
    std::string_view field = seg.field(static_cast<size_t>(p.field));
    if (p.segment == "MSH" && p.field <= 2) {
      bool whole = p.repetition <= 1 && p.component <= 1 && p.subcomponent <= 1;
      if (Test(n, m, whole ? field : std::string_view(), false)) return true;
      continue;
    }
    auto narrow = [&](std::string_view rep) {
      if (p.component == 0) return rep;
      std::string_view c = hl7v2::NthPart(rep, d.component, p.component);
      return p.subcomponent == 0 ? c : hl7v2::NthPart(c, d.subcomponent, p.subcomponent);
    };
    if (p.repetition > 0) {
      if (Test(n, m, narrow(hl7v2::NthPart(field, d.repetition, p.repetition)), true)) return true;
      continue;
    }
    // Every repetition, split in place (an empty field is one empty repetition).
    size_t start = 0;
    while (true) {
      size_t end = d.repetition == '\0' ? std::string_view::npos : field.find(d.repetition, start);
      std::string_view rep = field.substr(start, end == std::string_view::npos ? end : end - start);
      if (Test(n, m, narrow(rep), true)) return true;
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    if (p.segment_index > 0) break;
  }
  if (p.field == 0) return false;
  return !any_segment && Test(n, m, std::string_view(), false);
}

}  // namespace isthmus::config
