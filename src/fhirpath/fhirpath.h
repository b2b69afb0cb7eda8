// FHIRPath (N1, as used by FHIR R4) over FHIR resources held as RapidJSON documents.
//
// An `Expression` is compiled once (lexer, parser, function and type names resolved) and can be
// evaluated any number of times, concurrently, against any resource: search extraction compiles
// each SearchParameter expression at startup and evaluates it on every write.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(fhirpath::Expression expr,
//                            fhirpath::Expression::Compile("Patient.name.family"));
//   rapidjson::Document doc;  doc.Parse(json);
//   ISTHMUS_ASSIGN_OR_RETURN(fhirpath::Collection out, fhirpath::Evaluate(expr, doc));
//   for (const fhirpath::Value& v : out) use(v.str);
//
// Failures: Compile returns kInvalidArgument for syntax errors and unknown functions or types
// ("syntax error at 1:7: ..."); Evaluate returns kInvalidArgument for evaluation errors (a
// multi-item collection where one item is required, an unknown element on a known type, ...).
// Values point into the evaluated document: keep it alive while using the result.
// Thread-safety: an Expression is immutable; Evaluate may run concurrently on one Expression.
// The Environment passed to Evaluate must not be mutated during the call.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "fhirpath/value.h"
#include "rapidjson/document.h"

namespace isthmus::fhirpath {

struct Node;  // ast.h

class Expression {
 public:
  static absl::StatusOr<Expression> Compile(std::string_view text);
  const std::string& text() const { return text_; }
  const Node& root() const { return *root_; }

 private:
  std::shared_ptr<const Node> root_;
  std::string text_;
};

struct Environment {
  // %resource and %rootResource; default: the evaluated resource itself.
  const rapidjson::Value* resource = nullptr;
  const rapidjson::Value* root_resource = nullptr;
  // %name for user variables (without the '%').
  absl::flat_hash_map<std::string, Collection> variables;
  // trace(name, ...) output; default: ignored.
  std::function<void(std::string_view name, const Collection& items)> trace;
  // now(), today() and timeOfDay() read this when set (tests); otherwise the system clock.
  std::optional<Temporal> now;
  // Strict mode: a type name that cannot match the context (`Encounter.x` on a Patient) and
  // `as` that discards items are errors instead of empty results.
  bool strict = false;
};

// Evaluates over a resource (or any JSON object with a resourceType).
absl::StatusOr<Collection> Evaluate(const Expression& expr, const rapidjson::Value& resource,
                                    const Environment& env = {});

// Evaluates with a given input collection as %context (e.g. an element of a known type).
absl::StatusOr<Collection> EvaluateOn(const Expression& expr, const Collection& context,
                                      const Environment& env = {});

// A FHIR element viewed with its type: the entry point for a resource or a typed element.
// `type_name` empty: taken from the object's resourceType.
Value FhirValue(const rapidjson::Value& json, std::string_view type_name = {});

// The type of a value as the test suite and the CLI name it: FHIR type names ("code",
// "HumanName", "Patient") for FHIR elements, System type names in lower camel case ("integer",
// "dateTime", "Quantity") otherwise.
std::string TypeName(const Value& v);

// A value as a FHIRPath literal without '@' ("1974-12-25", "T14:30", "1 'mg'", "true"), and
// complex elements as their JSON text.
std::string ToLiteralString(const Value& v);

// Writes [{"type": T, "value": V}, ...]: V is the JSON string, number or boolean of a primitive,
// the literal form (without '@') of a date, time or quantity as a string, and the element itself
// for complex FHIR elements.
std::string ToJson(const Collection& items, bool pretty = false);

}  // namespace isthmus::fhirpath
