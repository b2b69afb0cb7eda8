// `isthmus fhirpath`: evaluates a FHIRPath expression against a FHIR R4 JSON resource
// (src/fhirpath, docs/fhirpath.md) and prints the result as typed JSON items.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "fhirpath/fhirpath.h"
#include "rapidjson/error/en.h"

namespace isthmus::cli {
namespace {

struct FhirpathCliOptions {
  std::string input = "-";
  std::string expression;
  std::vector<std::string> variables;
  bool pretty = false;
  bool strict = false;
  bool trace = false;
};

int RunFhirpath(const FhirpathCliOptions& o) {
  auto expr = fhirpath::Expression::Compile(o.expression);
  if (!expr.ok()) {
    std::fprintf(stderr, "isthmus fhirpath: %s\n  %s\n",
                 std::string(expr.status().message()).c_str(), o.expression.c_str());
    return 2;
  }
  std::string text;
  if (o.input == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(o.input, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "isthmus fhirpath: cannot read %s\n", o.input.c_str());
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.c_str(), text.size());
  if (doc.HasParseError()) {
    std::fprintf(stderr, "isthmus fhirpath: %s: invalid JSON at offset %zu: %s\n",
                 o.input == "-" ? "stdin" : o.input.c_str(), doc.GetErrorOffset(),
                 rapidjson::GetParseError_En(doc.GetParseError()));
    return 2;
  }
  if (!doc.IsObject()) {
    std::fprintf(stderr, "isthmus fhirpath: the input must be a JSON object (a FHIR resource)\n");
    return 2;
  }
  fhirpath::Environment env;
  env.strict = o.strict;
  for (const std::string& v : o.variables) {
    size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "isthmus fhirpath: --var takes NAME=VALUE, got '%s'\n", v.c_str());
      return 2;
    }
    env.variables[v.substr(0, eq)] = {fhirpath::Value::String(v.substr(eq + 1))};
  }
  if (o.trace) {
    env.trace = [](std::string_view name, const fhirpath::Collection& items) {
      std::fprintf(stderr, "trace %.*s: %s\n", static_cast<int>(name.size()), name.data(),
                   fhirpath::ToJson(items).c_str());
    };
  }
  auto result = fhirpath::Evaluate(*expr, doc, env);
  if (!result.ok()) {
    std::fprintf(stderr, "isthmus fhirpath: %s\n  %s\n",
                 std::string(result.status().message()).c_str(), o.expression.c_str());
    return 1;
  }
  std::printf("%s\n", fhirpath::ToJson(*result, o.pretty).c_str());
  return 0;
}

}  // namespace

Run AddFhirpathCommand(CLI::App& app) {
  auto o = std::make_shared<FhirpathCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "fhirpath",
      "Evaluate a FHIRPath expression (FHIR R4) against a FHIR resource in JSON.\n\n"
      "Prints a JSON array with one {\"type\": T, \"value\": V} object per result item. T is the\n"
      "FHIR type of an element (string, code, HumanName, Patient) or the FHIRPath type of a\n"
      "computed value (boolean, integer, decimal, string, date, dateTime, time, Quantity). V is\n"
      "the JSON value; dates, times and quantities are written as FHIRPath literals without\n"
      "'@' (\"1974-12-25\", \"T14:30:00\", \"5.4 'mg'\"); complex elements as their JSON.\n\n"
      "Examples:\n"
      "  isthmus fhirpath --input patient.json 'Patient.name.given'\n"
      "  isthmus fhirpath --input obs.json 'Observation.value.as(Quantity).value > 100'\n"
      "  isthmus fhirpath --input bundle.json \\\n"
      "      'Bundle.entry.resource.ofType(Observation).where(subject.resolve() is Patient)'\n"
      "  isthmus fhirpath --var mrn=12345 --input p.json 'identifier.where(value = %mrn)'\n"
      "  cat patient.json | isthmus fhirpath 'birthDate + 18 years <= today()'\n\n"
      "Supported language and exceptions: docs/fhirpath.md.\n\n"
      "Exit status: 0 evaluated, 1 evaluation error (e.g. a function given several items where\n"
      "one is required, an element the type does not have), 2 syntax error, unknown function or\n"
      "type, unreadable or invalid JSON input.");
  sub->add_option("--input,-i", o->input, "FHIR resource as JSON (default: - for stdin)");
  sub->add_option("--var", o->variables, "NAME=VALUE: a string variable for %NAME (repeatable)");
  sub->add_flag("--pretty", o->pretty, "indent the output");
  sub->add_flag("--strict", o->strict,
                "type names that cannot match the resource and 'as' that discards items are "
                "errors");
  sub->add_flag("--trace", o->trace, "print trace() output on stderr");
  sub->add_option("EXPRESSION", o->expression, "the FHIRPath expression")->required();
  return [o] { return RunFhirpath(*o); };
}

}  // namespace isthmus::cli
