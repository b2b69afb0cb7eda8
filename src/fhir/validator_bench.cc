// Validator speed over real resources: reads NDJSON (one resource or Bundle per line, such as
// `isthmus convert --ndjson` output), parses every line once as the FHIR store does (numbers kept
// as text), then validates all of them repeatedly for at least --seconds and prints resources/s
// (a Bundle counts as its entries) and MB/s, one thread. Also prints the issues of the first pass
// with their line numbers.
//
//   isthmus convert --ndjson ../shared/corpus/fhir-converter-hl7v2/hl7v2 > /tmp/c.ndjson
//   fhir_validator_bench /tmp/c.ndjson [seconds]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "fhir/validator.h"
#include "rapidjson/document.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fhir_validator_bench FILE.ndjson [seconds]\n");
    return 2;
  }
  double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  std::ifstream in(argv[1]);
  std::vector<rapidjson::Document> docs;
  size_t bytes = 0, resources = 0;
  std::chrono::duration<double> parse_time{};
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    docs.emplace_back();
    rapidjson::Document& d = docs.back();
    std::string error;
    auto parse_start = std::chrono::steady_clock::now();
    bool ok = isthmus::fhir::ParseFhirJsonKeepingNumbers(line, d, &error);
    parse_time += std::chrono::steady_clock::now() - parse_start;
    if (!ok || !d.IsObject()) {
      std::fprintf(stderr, "line %zu: not a JSON object %s\n", docs.size(), error.c_str());
      return 1;
    }
    bytes += line.size();
    auto entry = d.FindMember("entry");
    resources += entry != d.MemberEnd() && entry->value.IsArray() ? entry->value.Size() : 1;
  }
  size_t errors = 0, warnings = 0;
  for (size_t n = 0; n < docs.size(); ++n) {
    for (const auto& i : isthmus::fhir::ValidateResource(docs[n])) {
      bool error = i.severity == isthmus::fhir::ValidationIssue::Severity::kError;
      (error ? errors : warnings)++;
      std::printf("line %zu: %s %s %s: %s\n", n + 1, error ? "error" : "warning", i.code.c_str(),
                  i.expression.c_str(), i.message.c_str());
    }
  }
  int passes = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed{};
  size_t sink = 0;
  do {
    for (const rapidjson::Document& d : docs) sink += isthmus::fhir::ValidateResource(d).size();
    ++passes;
    elapsed = std::chrono::steady_clock::now() - start;
  } while (elapsed.count() < seconds);
  std::printf("%zu documents, %zu resources, %.1f MB: %zu errors, %zu warnings\n", docs.size(),
              resources, bytes / 1e6, errors, warnings);
  std::printf("parse (once, for comparison): %.0f resources/s, %.1f MB/s\n",
              resources / parse_time.count(), bytes / parse_time.count() / 1e6);
  std::printf("validate: %.0f resources/s, %.1f MB/s (%d passes, 1 thread)\n",
              resources * passes / elapsed.count(), bytes * passes / elapsed.count() / 1e6, passes);
  return sink == static_cast<size_t>(-1) ? 1 : 0;  // keeps the loop's work observable
}
