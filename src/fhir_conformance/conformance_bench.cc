// What the R4 invariants cost against the structural validator, over real resources: reads
// NDJSON (one resource or Bundle per line, such as `isthmus convert --ndjson` output), parses
// every line once, then for at least --seconds each runs fhir::ValidateResource and
// fhir_conformance::CheckInvariants over all of them and prints resources/s and microseconds per
// resource (a Bundle counts as its entries), one thread. The figures behind running invariants
// in $validate only (docs/fhir-validation.md).
//
//   isthmus convert --ndjson ../shared/corpus/fhir-converter-hl7v2/hl7v2 > /tmp/c.ndjson
//   fhir_conformance_bench /tmp/c.ndjson [seconds]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "fhir/validator.h"
#include "fhir_conformance/conformance.h"
#include "rapidjson/document.h"

namespace {

// Runs `f` over every document for at least `seconds`; resources per second.
double Rate(const std::vector<rapidjson::Document>& docs, size_t resources, double seconds,
            const std::function<size_t(const rapidjson::Document&)>& f) {
  int passes = 0;
  size_t sink = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed{};
  do {
    for (const rapidjson::Document& d : docs) sink += f(d);
    ++passes;
    elapsed = std::chrono::steady_clock::now() - start;
  } while (elapsed.count() < seconds);
  if (sink == static_cast<size_t>(-1)) std::printf("!\n");  // keeps the work observable
  return resources * passes / elapsed.count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fhir_conformance_bench FILE.ndjson [seconds]\n");
    return 2;
  }
  double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  std::ifstream in(argv[1]);
  std::vector<rapidjson::Document> docs;
  size_t resources = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    docs.emplace_back();
    docs.back().Parse(line.c_str());
    if (docs.back().HasParseError() || !docs.back().IsObject()) {
      std::fprintf(stderr, "line %zu: not a JSON object\n", docs.size());
      return 1;
    }
    auto entry = docs.back().FindMember("entry");
    resources += entry != docs.back().MemberEnd() && entry->value.IsArray()
                     ? entry->value.Size()
                     : 1;
  }
  if (docs.empty()) {
    std::fprintf(stderr, "no resources in %s\n", argv[1]);
    return 1;
  }
  // First use compiles every expression: time it apart.
  auto compile_start = std::chrono::steady_clock::now();
  isthmus::fhir_conformance::CheckInvariants(docs.at(0));
  std::chrono::duration<double> compile = std::chrono::steady_clock::now() - compile_start;
  double v = Rate(docs, resources, seconds, [](const rapidjson::Document& d) {
    return isthmus::fhir::ValidateResource(d).size();
  });
  double i = Rate(docs, resources, seconds, [](const rapidjson::Document& d) {
    return isthmus::fhir_conformance::CheckInvariants(d, {.max_issues = 100000}).size();
  });
  std::printf("%zu documents, %zu resources; first use (compiles all expressions) %.1f ms\n",
              docs.size(), resources, compile.count() * 1e3);
  std::printf("validate:   %9.0f resources/s, %7.1f us each\n", v, 1e6 / v);
  std::printf("invariants: %9.0f resources/s, %7.1f us each (1 thread)\n", i, 1e6 / i);
  return 0;
}
