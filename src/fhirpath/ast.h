// The compiled form of a FHIRPath expression: an immutable tree with function and type names
// resolved at compile time. Internal to the fhirpath module.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fhirpath/model.h"
#include "fhirpath/value.h"

namespace isthmus::fhirpath {

enum class Op : uint8_t {
  kEmpty,      // {}
  kLiteral,    // literal
  kThis,       // $this
  kIndex,      // $index
  kTotal,      // $total
  kVariable,   // %name
  kMember,     // [source.]name
  kFunction,   // [source.]name(args)
  kIndexer,    // args[0][args[1]]
  kNegate,     // -args[0]
  kBinary,     // args[0] op args[1]
  kIs,         // args[0] is type
  kAs,         // args[0] as type
};

enum class BinOp : uint8_t {
  kMul, kDiv, kIntDiv, kMod, kAdd, kSub, kConcat, kUnion, kLt, kGt, kLe, kGe, kEq, kEquiv,
  kNe, kNotEquiv, kIn, kContains, kAnd, kOr, kXor, kImplies,
};

enum class Fn : uint8_t {
  kEmpty, kExists, kAll, kAllTrue, kAnyTrue, kAllFalse, kAnyFalse, kSubsetOf, kSupersetOf,
  kCount, kDistinct, kIsDistinct, kWhere, kSelect, kRepeat, kOfType, kIs, kAs, kSingle, kFirst,
  kLast, kTail, kSkip, kTake, kIntersect, kExclude, kUnion, kCombine, kIif, kToBoolean,
  kConvertsToBoolean, kToInteger, kConvertsToInteger, kToDecimal, kConvertsToDecimal, kToString,
  kConvertsToString, kToDate, kConvertsToDate, kToDateTime, kConvertsToDateTime, kToTime,
  kConvertsToTime, kToQuantity, kConvertsToQuantity, kIndexOf, kSubstring, kStartsWith,
  kEndsWith, kContains, kUpper, kLower, kReplace, kMatches, kMatchesFull, kReplaceMatches, kLength, kToChars,
  kEncode, kDecode, kEscape, kUnescape, kTrim, kSplit, kJoin, kAbs, kCeiling, kExp, kFloor, kLn,
  kLog, kPower, kRound, kSqrt, kTruncate, kChildren, kDescendants, kTrace, kNow, kTimeOfDay,
  kToday, kNot, kAggregate, kSort, kType, kResolve, kExtension, kHasValue, kGetValue,
  kMemberOf, kConformsTo, kLowBoundary, kHighBoundary, kPrecision, kComparable,
  kElementDefinition, kSlice, kCheckModifiers, kSubsumes, kSubsumedBy, kHtmlChecks,
};

struct TypeSpec {
  const TypeInfo* type = nullptr;  // FHIR or System type
  bool system = false;
  std::string name;                // as written, for messages
};

struct Node {
  Op op = Op::kEmpty;
  BinOp bin = BinOp::kAdd;
  Fn fn = Fn::kEmpty;
  Value literal;
  std::string name;                     // member, variable or function name
  const TypeInfo* root_type = nullptr;  // kMember at the root naming a type: `Patient`
  TypeSpec type;                        // kIs, kAs, and ofType/is/as arguments
  std::unique_ptr<Node> source;         // kMember/kFunction input; null = the focus
  std::vector<std::unique_ptr<Node>> args;
  int column = 0;
};

absl::StatusOr<std::unique_ptr<Node>> Parse(std::string_view text);

}  // namespace isthmus::fhirpath
