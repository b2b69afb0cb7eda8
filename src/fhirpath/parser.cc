// Lexer and recursive-descent parser for FHIRPath, producing the tree of ast.h with function
// and type names resolved.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/str.h"
#include "fhirpath/ast.h"

namespace isthmus::fhirpath {
namespace {

// Limits for client-supplied expressions; the longest R4 search expression has ~100 tokens
// and a depth under 20.
constexpr int kMaxDepth = 200;
constexpr size_t kMaxTokens = 10000;


enum class Tok : uint8_t { kEnd, kIdent, kDelimited, kString, kNumber, kDate, kDateTime, kTime,
                           kSpecial, kExternal, kPunct };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier, unescaped string, number text, literal body, punctuation
  int pos = 0;
};

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

#define ISTHMUS_RETURN_IF_ERROR_LOCAL(expr) \
  do {                                      \
    absl::Status _s = (expr);               \
    if (!_s.ok()) return _s;                \
  } while (0)

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  absl::Status Run(std::vector<Token>& out) {
    while (true) {
      ISTHMUS_RETURN_IF_ERROR_LOCAL(SkipSpace());
      Token t;
      t.pos = static_cast<int>(i_);
      if (i_ >= s_.size()) {
        out.push_back(t);
        return absl::OkStatus();
      }
      char c = s_[i_];
      if (IsIdentStart(c)) {
        size_t start = i_;
        while (i_ < s_.size() && (IsIdentStart(s_[i_]) || IsDigit(s_[i_]))) ++i_;
        t.kind = Tok::kIdent;
        t.text = std::string(s_.substr(start, i_ - start));
      } else if (c == '`') {
        auto str = Quoted('`');
        if (!str.ok()) return str.status();
        t.kind = Tok::kDelimited;
        t.text = *std::move(str);
      } else if (c == '\'') {
        auto str = Quoted('\'');
        if (!str.ok()) return str.status();
        t.kind = Tok::kString;
        t.text = *std::move(str);
      } else if (IsDigit(c)) {
        size_t start = i_;
        while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
        if (i_ + 1 < s_.size() && s_[i_] == '.' && IsDigit(s_[i_ + 1])) {
          ++i_;
          while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
        }
        t.kind = Tok::kNumber;
        t.text = std::string(s_.substr(start, i_ - start));
      } else if (c == '@') {
        ++i_;
        ISTHMUS_RETURN_IF_ERROR_LOCAL(DateLiteral(t));
      } else if (c == '$') {
        size_t start = i_++;
        while (i_ < s_.size() && (IsIdentStart(s_[i_]) || IsDigit(s_[i_]))) ++i_;
        t.kind = Tok::kSpecial;
        t.text = std::string(s_.substr(start, i_ - start));
        if (t.text != "$this" && t.text != "$index" && t.text != "$total") {
          return Error(t.pos, base::StrCat("unknown special variable ", t.text));
        }
      } else if (c == '%') {
        ++i_;
        t.kind = Tok::kExternal;
        if (i_ < s_.size() && (s_[i_] == '`' || s_[i_] == '\'')) {
          auto str = Quoted(s_[i_]);
          if (!str.ok()) return str.status();
          t.text = *std::move(str);
        } else {
          size_t start = i_;
          while (i_ < s_.size() &&
                 (IsIdentStart(s_[i_]) || IsDigit(s_[i_]) || s_[i_] == '-')) {
            ++i_;
          }
          if (start == i_) return Error(t.pos, "'%' must be followed by a name");
          t.text = std::string(s_.substr(start, i_ - start));
        }
      } else {
        static const char* const kTwo[] = {"<=", ">=", "!=", "!~"};
        t.kind = Tok::kPunct;
        for (const char* two : kTwo) {
          if (s_.substr(i_, 2) == two) t.text = two;
        }
        if (t.text.empty()) {
          if (std::strchr(".,()[]{}+-*/&|<>=~", c) == nullptr) {
            return Error(t.pos, base::StrCat("unexpected character '", std::string(1, c), "'"));
          }
          t.text = std::string(1, c);
        }
        i_ += t.text.size();
      }
      out.push_back(std::move(t));
    }
  }

  static absl::Status Error(int pos, std::string_view what) {
    return absl::InvalidArgumentError(
        base::StrCat("syntax error at column ", pos + 1, ": ", what));
  }

 private:

  absl::Status SkipSpace() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++i_;
      } else if (s_.substr(i_, 2) == "//") {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (s_.substr(i_, 2) == "/*") {
        size_t end = s_.find("*/", i_ + 2);
        if (end == std::string_view::npos) {
          return Error(static_cast<int>(i_), "unterminated comment");
        }
        i_ = end + 2;
      } else {
        break;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Quoted(char q) {
    int start = static_cast<int>(i_);
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return Error(static_cast<int>(i_), "bad \\u escape");
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s_[i_++];
            cp <<= 4;
            if (IsDigit(h)) cp |= h - '0';
            else if (h >= 'a' && h <= 'f') cp |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') cp |= h - 'A' + 10;
            else return Error(static_cast<int>(i_), "bad \\u escape");
          }
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: out += e; break;  // \' \" \` \\ \/
      }
    }
    if (i_ >= s_.size()) return Error(start, "unterminated string");
    ++i_;
    return out;
  }

  size_t Digits(size_t n) {
    size_t k = 0;
    while (k < n && i_ + k < s_.size() && IsDigit(s_[i_ + k])) ++k;
    return k;
  }

  void Clock() {
    if (Digits(2) != 2) return;
    i_ += 2;
    if (i_ < s_.size() && s_[i_] == ':' && (++i_, Digits(2) == 2)) {
      i_ += 2;
      if (i_ < s_.size() && s_[i_] == ':' && (++i_, Digits(2) == 2)) {
        i_ += 2;
        if (i_ + 1 < s_.size() && s_[i_] == '.' && IsDigit(s_[i_ + 1])) {
          ++i_;
          while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
        }
      }
    }
  }

  absl::Status DateLiteral(Token& t) {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == 'T') {
      ++i_;
      Clock();
      t.kind = Tok::kTime;
      t.text = std::string(s_.substr(start + 1, i_ - start - 1));
      return absl::OkStatus();
    }
    if (Digits(4) != 4) return Error(t.pos, "malformed date/time literal");
    i_ += 4;
    for (int part = 0; part < 2; ++part) {
      if (i_ < s_.size() && s_[i_] == '-' && (i_ + 1 < s_.size() && IsDigit(s_[i_ + 1]))) {
        ++i_;
        i_ += Digits(2);
      }
    }
    t.kind = Tok::kDate;
    if (i_ < s_.size() && s_[i_] == 'T') {
      ++i_;
      t.kind = Tok::kDateTime;
      Clock();
      if (i_ < s_.size() && s_[i_] == 'Z') {
        ++i_;
      } else if (i_ + 5 < s_.size() && (s_[i_] == '+' || s_[i_] == '-') &&
                 IsDigit(s_[i_ + 1]) && IsDigit(s_[i_ + 2]) && s_[i_ + 3] == ':') {
        i_ += 6;
      }
    }
    t.text = std::string(s_.substr(start, i_ - start));
    return absl::OkStatus();
  }

  std::string_view s_;
  size_t i_ = 0;
};

struct FnDef {
  const char* name;
  Fn fn;
  int min_args, max_args;
};

const FnDef kFunctions[] = {
    {"empty", Fn::kEmpty, 0, 0}, {"exists", Fn::kExists, 0, 1}, {"all", Fn::kAll, 1, 1},
    {"allTrue", Fn::kAllTrue, 0, 0}, {"anyTrue", Fn::kAnyTrue, 0, 0},
    {"allFalse", Fn::kAllFalse, 0, 0}, {"anyFalse", Fn::kAnyFalse, 0, 0},
    {"subsetOf", Fn::kSubsetOf, 1, 1}, {"supersetOf", Fn::kSupersetOf, 1, 1},
    {"count", Fn::kCount, 0, 0}, {"distinct", Fn::kDistinct, 0, 0},
    {"isDistinct", Fn::kIsDistinct, 0, 0}, {"where", Fn::kWhere, 1, 1},
    {"select", Fn::kSelect, 1, 1}, {"repeat", Fn::kRepeat, 1, 1}, {"ofType", Fn::kOfType, 1, 1},
    {"is", Fn::kIs, 1, 1}, {"as", Fn::kAs, 1, 1}, {"single", Fn::kSingle, 0, 0},
    {"first", Fn::kFirst, 0, 0}, {"last", Fn::kLast, 0, 0}, {"tail", Fn::kTail, 0, 0},
    {"skip", Fn::kSkip, 1, 1}, {"take", Fn::kTake, 1, 1}, {"intersect", Fn::kIntersect, 1, 1},
    {"exclude", Fn::kExclude, 1, 1}, {"union", Fn::kUnion, 1, 1},
    {"combine", Fn::kCombine, 1, 1}, {"iif", Fn::kIif, 2, 3},
    {"toBoolean", Fn::kToBoolean, 0, 0}, {"convertsToBoolean", Fn::kConvertsToBoolean, 0, 0},
    {"toInteger", Fn::kToInteger, 0, 0}, {"convertsToInteger", Fn::kConvertsToInteger, 0, 0},
    {"toDecimal", Fn::kToDecimal, 0, 0}, {"convertsToDecimal", Fn::kConvertsToDecimal, 0, 0},
    {"toString", Fn::kToString, 0, 0}, {"convertsToString", Fn::kConvertsToString, 0, 0},
    {"toDate", Fn::kToDate, 0, 0}, {"convertsToDate", Fn::kConvertsToDate, 0, 0},
    {"toDateTime", Fn::kToDateTime, 0, 0},
    {"convertsToDateTime", Fn::kConvertsToDateTime, 0, 0}, {"toTime", Fn::kToTime, 0, 0},
    {"convertsToTime", Fn::kConvertsToTime, 0, 0}, {"toQuantity", Fn::kToQuantity, 0, 1},
    {"convertsToQuantity", Fn::kConvertsToQuantity, 0, 1}, {"indexOf", Fn::kIndexOf, 1, 1},
    {"substring", Fn::kSubstring, 1, 2}, {"startsWith", Fn::kStartsWith, 1, 1},
    {"endsWith", Fn::kEndsWith, 1, 1}, {"contains", Fn::kContains, 1, 1},
    {"upper", Fn::kUpper, 0, 0}, {"lower", Fn::kLower, 0, 0}, {"replace", Fn::kReplace, 2, 2},
    {"matches", Fn::kMatches, 1, 1}, {"matchesFull", Fn::kMatchesFull, 1, 1}, {"replaceMatches", Fn::kReplaceMatches, 2, 2},
    {"length", Fn::kLength, 0, 0}, {"toChars", Fn::kToChars, 0, 0},
    {"encode", Fn::kEncode, 1, 1}, {"decode", Fn::kDecode, 1, 1}, {"escape", Fn::kEscape, 1, 1},
    {"unescape", Fn::kUnescape, 1, 1}, {"trim", Fn::kTrim, 0, 0}, {"split", Fn::kSplit, 1, 1},
    {"join", Fn::kJoin, 0, 1}, {"abs", Fn::kAbs, 0, 0}, {"ceiling", Fn::kCeiling, 0, 0},
    {"exp", Fn::kExp, 0, 0}, {"floor", Fn::kFloor, 0, 0}, {"ln", Fn::kLn, 0, 0},
    {"log", Fn::kLog, 1, 1}, {"power", Fn::kPower, 1, 1}, {"round", Fn::kRound, 0, 1},
    {"sqrt", Fn::kSqrt, 0, 0}, {"truncate", Fn::kTruncate, 0, 0},
    {"children", Fn::kChildren, 0, 0}, {"descendants", Fn::kDescendants, 0, 0},
    {"trace", Fn::kTrace, 1, 2}, {"now", Fn::kNow, 0, 0}, {"timeOfDay", Fn::kTimeOfDay, 0, 0},
    {"today", Fn::kToday, 0, 0}, {"not", Fn::kNot, 0, 0}, {"aggregate", Fn::kAggregate, 1, 2},
    {"sort", Fn::kSort, 0, 8}, {"type", Fn::kType, 0, 0}, {"resolve", Fn::kResolve, 0, 0},
    {"extension", Fn::kExtension, 1, 1}, {"hasValue", Fn::kHasValue, 0, 0},
    {"getValue", Fn::kGetValue, 0, 0}, {"memberOf", Fn::kMemberOf, 1, 1},
    {"conformsTo", Fn::kConformsTo, 1, 1}, {"lowBoundary", Fn::kLowBoundary, 0, 1},
    {"highBoundary", Fn::kHighBoundary, 0, 1}, {"precision", Fn::kPrecision, 0, 0},
    {"comparable", Fn::kComparable, 1, 1},
    {"elementDefinition", Fn::kElementDefinition, 0, 0}, {"slice", Fn::kSlice, 2, 2},
    {"checkModifiers", Fn::kCheckModifiers, 1, 1}, {"subsumes", Fn::kSubsumes, 1, 1},
    {"subsumedBy", Fn::kSubsumedBy, 1, 1}, {"htmlChecks", Fn::kHtmlChecks, 0, 0},
};

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  absl::StatusOr<std::unique_ptr<Node>> Run() {
    auto e = Expr(0);
    if (!e.ok()) return e;
    if (Peek().kind != Tok::kEnd) return Err(Peek(), "unexpected '" + Peek().text + "'");
    return e;
  }

 private:
  using NodeOr = absl::StatusOr<std::unique_ptr<Node>>;

  const Token& Peek(int k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool IsPunct(const char* s, int k = 0) const {
    return Peek(k).kind == Tok::kPunct && Peek(k).text == s;
  }
  bool IsWord(const char* s) const { return Peek().kind == Tok::kIdent && Peek().text == s; }
  absl::Status Err(const Token& t, std::string_view what) const {
    if (t.kind == Tok::kEnd) return Lexer::Error(t.pos, "unexpected end of expression");
    return Lexer::Error(t.pos, what);
  }

  // Binary operator at the current token and its precedence level; -1 when none.
  int BinaryLevel(BinOp* op) const {
    const Token& t = Peek();
    struct P { const char* text; BinOp op; int level; };
    static const P kOps[] = {
        {"implies", BinOp::kImplies, 0}, {"or", BinOp::kOr, 1}, {"xor", BinOp::kXor, 1},
        {"and", BinOp::kAnd, 2}, {"in", BinOp::kIn, 3}, {"contains", BinOp::kContains, 3},
        {"=", BinOp::kEq, 4}, {"~", BinOp::kEquiv, 4}, {"!=", BinOp::kNe, 4},
        {"!~", BinOp::kNotEquiv, 4}, {"<", BinOp::kLt, 5}, {">", BinOp::kGt, 5},
        {"<=", BinOp::kLe, 5}, {">=", BinOp::kGe, 5}, {"|", BinOp::kUnion, 6},
        {"+", BinOp::kAdd, 8}, {"-", BinOp::kSub, 8}, {"&", BinOp::kConcat, 8},
        {"*", BinOp::kMul, 9}, {"/", BinOp::kDiv, 9}, {"div", BinOp::kIntDiv, 9},
        {"mod", BinOp::kMod, 9},
    };
    if (t.kind != Tok::kPunct && t.kind != Tok::kIdent) return -1;
    for (const P& p : kOps) {
      if (t.text == p.text) {
        *op = p.op;
        return p.level;
      }
    }
    return -1;
  }

  // Recursion through the grammar (parentheses, unary signs, arguments) is bounded, so a hostile
  // expression (a FHIRPath Patch path is client input) cannot exhaust the stack.
  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  absl::Status TooDeep() const {
    return Err(Peek(), base::StrCat("expression nested more than ", kMaxDepth, " levels deep"));
  }

  NodeOr Expr(int min_level) {
    DepthGuard guard(depth_);
    if (depth_ > kMaxDepth) return TooDeep();
    auto left = Unary();
    if (!left.ok()) return left;
    std::unique_ptr<Node> lhs = *std::move(left);
    while (true) {
      // is / as (level 7) take a type specifier.
      if ((IsWord("is") || IsWord("as")) && min_level <= 7) {
        auto n = std::make_unique<Node>();
        n->op = Peek().text == "is" ? Op::kIs : Op::kAs;
        n->column = Peek().pos;
        ++p_;
        auto spec = TypeSpecifier();
        if (!spec.ok()) return spec.status();
        n->type = *std::move(spec);
        n->args.push_back(std::move(lhs));
        lhs = std::move(n);
        continue;
      }
      BinOp op;
      int level = BinaryLevel(&op);
      if (level < 0 || level < min_level) break;
      auto n = std::make_unique<Node>();
      n->op = Op::kBinary;
      n->bin = op;
      n->column = Peek().pos;
      ++p_;
      auto rhs = Expr(level + 1);
      if (!rhs.ok()) return rhs;
      n->args.push_back(std::move(lhs));
      n->args.push_back(*std::move(rhs));
      lhs = std::move(n);
    }
    return lhs;
  }

  NodeOr Unary() {
    DepthGuard guard(depth_);
    if (depth_ > kMaxDepth) return TooDeep();
    if (IsPunct("-") || IsPunct("+")) {
      bool neg = Peek().text == "-";
      int col = Peek().pos;
      ++p_;
      auto operand = Unary();
      if (!operand.ok()) return operand;
      if (!neg) return operand;
      auto n = std::make_unique<Node>();
      n->op = Op::kNegate;
      n->column = col;
      n->args.push_back(*std::move(operand));
      return n;
    }
    return Postfix();
  }

  NodeOr Postfix() {
    auto term = Term();
    if (!term.ok()) return term;
    std::unique_ptr<Node> n = *std::move(term);
    while (true) {
      if (IsPunct(".")) {
        ++p_;
        auto inv = Invocation(std::move(n), /*root=*/false);
        if (!inv.ok()) return inv;
        n = *std::move(inv);
      } else if (IsPunct("[")) {
        auto idx = std::make_unique<Node>();
        idx->op = Op::kIndexer;
        idx->column = Peek().pos;
        ++p_;
        auto e = Expr(0);
        if (!e.ok()) return e;
        if (!IsPunct("]")) return Err(Peek(), "expected ']'");
        ++p_;
        idx->args.push_back(std::move(n));
        idx->args.push_back(*std::move(e));
        n = std::move(idx);
      } else {
        return n;
      }
    }
  }

  NodeOr Term() {
    const Token& t = Peek();
    auto n = std::make_unique<Node>();
    n->column = t.pos;
    switch (t.kind) {
      case Tok::kEnd: return Err(t, "");
      case Tok::kString:
        n->op = Op::kLiteral;
        n->literal = Value::String(t.text);
        ++p_;
        return n;
      case Tok::kNumber: {
        ++p_;
        n->op = Op::kLiteral;
        bool decimal = t.text.find('.') != std::string::npos;
        auto d = Decimal::Parse(t.text);
        if (!d) return Err(t, "number out of range");
        // A quantity: number followed by a unit string or a calendar duration keyword.
        if (Peek().kind == Tok::kString ||
            (Peek().kind == Tok::kIdent && !CalendarToUcum(Peek().text).empty())) {
          n->literal = Value::Quantity(*d, Peek().text);
          ++p_;
          return n;
        }
        if (decimal) {
          n->literal = Value::Dec(*d);
        } else {
          if (t.text.size() > 18) return Err(t, "integer out of range");
          int64_t v = std::stoll(t.text);
          if (v > 2147483647LL) return Err(t, "integer out of range");
          n->literal = Value::Integer(v);
        }
        return n;
      }
      case Tok::kDate:
      case Tok::kDateTime:
      case Tok::kTime: {
        std::optional<Temporal> v;
        Kind k;
        if (t.kind == Tok::kTime) {
          v = ParseTime(t.text);
          k = Kind::kTime;
        } else if (t.kind == Tok::kDate) {
          v = ParseDate(t.text);
          k = Kind::kDate;
        } else {
          v = ParseDateTime(t.text);
          k = Kind::kDateTime;
          // An hour alone is not a FHIR dateTime: @2014-01-01T08 means 08:00 (as the suite's
          // HighBoundaryDateTimeMillisecond tests explain).
          if (v && v->precision == Temporal::kHour) v->precision = Temporal::kMinute;
        }
        if (!v) return Err(t, "malformed date/time literal @" + t.text);
        ++p_;
        n->op = Op::kLiteral;
        n->literal = Value::Time(k, *v);
        return n;
      }
      case Tok::kSpecial:
        ++p_;
        n->op = t.text == "$this" ? Op::kThis : (t.text == "$index" ? Op::kIndex : Op::kTotal);
        return n;
      case Tok::kExternal:
        ++p_;
        n->op = Op::kVariable;
        n->name = t.text;
        return n;
      case Tok::kIdent:
        if (t.text == "true" || t.text == "false") {
          ++p_;
          n->op = Op::kLiteral;
          n->literal = Value::Boolean(t.text == "true");
          return n;
        }
        return Invocation(nullptr, /*root=*/true);
      case Tok::kDelimited:
        return Invocation(nullptr, /*root=*/true);
      case Tok::kPunct:
        if (t.text == "(") {
          ++p_;
          auto e = Expr(0);
          if (!e.ok()) return e;
          if (!IsPunct(")")) return Err(Peek(), "expected ')'");
          ++p_;
          return e;
        }
        if (t.text == "{" && IsPunct("}", 1)) {
          p_ += 2;
          n->op = Op::kEmpty;
          return n;
        }
        return Err(t, "unexpected '" + t.text + "'");
      default:
        return Err(t, "unexpected token");
    }
  }

  NodeOr Invocation(std::unique_ptr<Node> source, bool root) {
    const Token& t = Peek();
    if (t.kind == Tok::kSpecial && !root) {
      auto n = Term();  // `.$this` is allowed by the grammar
      return n;
    }
    if (t.kind != Tok::kIdent && t.kind != Tok::kDelimited) {
      return Err(t, "expected a name");
    }
    auto n = std::make_unique<Node>();
    n->column = t.pos;
    n->name = t.text;
    bool delimited = t.kind == Tok::kDelimited;
    ++p_;
    n->source = std::move(source);
    if (!delimited && IsPunct("(")) {
      ++p_;
      n->op = Op::kFunction;
      std::vector<std::unique_ptr<Node>> args;
      if (!IsPunct(")")) {
        while (true) {
          auto a = Expr(0);
          if (!a.ok()) return a;
          args.push_back(*std::move(a));
          if (IsPunct(",")) {
            ++p_;
            continue;
          }
          break;
        }
      }
      if (!IsPunct(")")) return Err(Peek(), "expected ')' or ','");
      ++p_;
      n->args = std::move(args);
      auto s = ResolveFunction(*n);
      if (!s.ok()) return s;
      return n;
    }
    n->op = Op::kMember;
    if (root && !n->name.empty() && n->name[0] >= 'A' && n->name[0] <= 'Z') {
      n->root_type = Model::Get().Find(n->name);
    }
    return n;
  }

  absl::Status ResolveFunction(Node& n) {
    for (const FnDef& def : kFunctions) {
      if (n.name != def.name) continue;
      int argc = static_cast<int>(n.args.size());
      if (argc < def.min_args || argc > def.max_args) {
        return Lexer::Error(n.column, base::StrCat("function ", n.name, "() takes ",
                                                   def.min_args == def.max_args
                                                       ? std::to_string(def.min_args)
                                                       : base::StrCat(def.min_args, " to ",
                                                                      def.max_args),
                                                   " argument(s), got ", argc));
      }
      n.fn = def.fn;
      if (def.fn == Fn::kOfType || def.fn == Fn::kIs || def.fn == Fn::kAs) {
        std::string qualified;
        if (!QualifiedName(*n.args[0], qualified)) {
          return Lexer::Error(n.args[0]->column,
                              base::StrCat(n.name, "() needs a type name argument"));
        }
        auto spec = ResolveType(qualified, n.args[0]->column);
        if (!spec.ok()) return spec.status();
        n.type = *std::move(spec);
      }
      return absl::OkStatus();
    }
    return Lexer::Error(n.column, base::StrCat("unknown function ", n.name, "()"));
  }

  static bool QualifiedName(const Node& n, std::string& out) {
    if (n.op != Op::kMember) return false;
    if (n.source) {
      if (!QualifiedName(*n.source, out)) return false;
      out += ".";
    }
    out += n.name;
    return true;
  }

  static absl::StatusOr<TypeSpec> ResolveType(std::string_view qualified, int column) {
    TypeSpec spec;
    spec.name = std::string(qualified);
    const Model& model = Model::Get();
    std::string_view name = qualified;
    if (name.substr(0, 5) == "FHIR.") {
      spec.type = model.Find(name.substr(5));
    } else if (name.substr(0, 7) == "System.") {
      spec.type = model.FindSystem(name.substr(7));
      spec.system = true;
      // System.Patient names nothing, but is a valid specifier that matches nothing.
      if (spec.type == nullptr) spec.type = model.FindSystem("Any");
    } else {
      spec.type = model.Find(name);
      if (spec.type == nullptr) {
        spec.type = model.FindSystem(name);
        spec.system = true;
      }
    }
    if (spec.type == nullptr) {
      return Lexer::Error(column, base::StrCat("unknown type ", qualified));
    }
    return spec;
  }

  absl::StatusOr<TypeSpec> TypeSpecifier() {
    std::string q;
    int col = Peek().pos;
    while (true) {
      if (Peek().kind != Tok::kIdent && Peek().kind != Tok::kDelimited) {
        return Err(Peek(), "expected a type name");
      }
      q += Peek().text;
      ++p_;
      if (IsPunct(".") && (Peek(1).kind == Tok::kIdent || Peek(1).kind == Tok::kDelimited) &&
          (q == "FHIR" || q == "System")) {
        q += ".";
        ++p_;
        continue;
      }
      break;
    }
    return ResolveType(q, col);
  }

  std::vector<Token> t_;
  size_t p_ = 0;
  int depth_ = 0;
};

// The depth of the tree, without recursion: a long chain (a.b.c... or a+a+a...) is built by
// loops in the parser but would be evaluated recursively.
size_t TreeDepth(const Node& root) {
  size_t deepest = 0;
  std::vector<std::pair<const Node*, size_t>> stack = {{&root, 1}};
  while (!stack.empty()) {
    auto [n, d] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, d);
    if (n->source) stack.push_back({n->source.get(), d + 1});
    for (const auto& a : n->args) {
      if (a) stack.push_back({a.get(), d + 1});
    }
  }
  return deepest;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Node>> Parse(std::string_view text) {
  std::vector<Token> toks;
  Lexer lexer(text);
  absl::Status s = lexer.Run(toks);
  if (!s.ok()) return s;
  // Bounds the tree's size (and so the recursion of its destructor) before it is built.
  if (toks.size() > kMaxTokens) {
    return absl::InvalidArgumentError(
        base::StrCat("expression has more than ", kMaxTokens, " tokens"));
  }
  Parser parser(std::move(toks));
  absl::StatusOr<std::unique_ptr<Node>> tree = parser.Run();
  if (tree.ok() && TreeDepth(**tree) > static_cast<size_t>(kMaxDepth)) {
    return absl::InvalidArgumentError(
        base::StrCat("expression nested more than ", kMaxDepth, " levels deep"));
  }
  return tree;
}

}  // namespace isthmus::fhirpath
