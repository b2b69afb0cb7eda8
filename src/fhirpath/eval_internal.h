// Internal to the fhirpath module: the evaluator shared by eval.cc and functions.cc.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fhirpath/ast.h"
#include "fhirpath/fhirpath.h"

namespace isthmus::fhirpath {

class Evaluator {
 public:
  Evaluator(const Environment& env, const Collection& context);

  // Evaluates `n` with `focus` as the input of root names; appends to out. False on error
  // (error() says why).
  bool Eval(const Node& n, const Collection& focus, Collection& out);
  const absl::Status& error() const { return error_; }

  bool Fail(const Node& n, std::string_view what);
  bool FailMsg(std::string_view what);

  // Functions (functions.cc).
  bool Call(const Node& n, const Collection& input, const Collection& focus, Collection& out);

  // Navigation.
  // Appends item.name; *known is set when the item's type has (or may have) the element.
  void Member(const Value& item, const Node& n, Collection& out, bool* known);
  void Children(const Value& item, Collection& out);

  // Frames for $this/$index/$total.
  struct Frame {
    const Value* self;
    int64_t index;
    const Collection* total;
  };
  std::vector<Frame> frames_;

  const Environment& env_;
  const Collection& context_;
  Value resource_, root_resource_;
  absl::Status error_;
};

// Helpers shared by the evaluator and the functions.
Value MakeElement(const rapidjson::Value* json, const rapidjson::Value* ext, const TypeInfo* type);
Value ToSystemValue(const Value& v);  // FHIR Quantity object -> System Quantity; others as is
std::optional<bool> Equal(const Value& a, const Value& b);
bool Equivalent(const Value& a, const Value& b);
// Collection equality (=): nullopt when empty.
std::optional<bool> EqualCollections(const Collection& a, const Collection& b);
bool EquivalentCollections(const Collection& a, const Collection& b);
// Ordering; nullopt = empty result; sets *error for incompatible operands.
std::optional<int> CompareValues(const Value& a, const Value& b, bool* error);
// is() follows derivation (code is a string); as()/ofType() match primitives exactly.
bool IsType(const Value& v, const TypeSpec& spec, bool exact_primitive = false);
bool IsPrimitive(const Value& v);
// Boolean view of a singleton (FHIRPath singleton evaluation): nullopt when empty; sets *error
// for more than one item.
std::optional<bool> ToBool(const Collection& c, bool* error);
std::string ValueToString(const Value& v);  // toString() semantics; "" when not convertible
bool ConvertsToString(const Value& v);
Value AddToTemporal(const Value& t, const Value& q, bool subtract, bool* error);

}  // namespace isthmus::fhirpath
