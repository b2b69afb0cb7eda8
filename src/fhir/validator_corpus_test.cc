// Every Bundle the v2 -> FHIR converter makes from the shared corpus validates against R4: the
// messages of fhir-converter-hl7v2 (the pairs) and of hl7v2-samples. The goal is zero errors;
// the converter errors found so far (missing 1..1 elements, two types of one choice element...)
// are listed by kind in validator_corpus_known.txt, reported to the lead as converter bugs. The
// test fails on an error of a kind not listed (printing every error with its file, so it reads as
// a converter or a validator bug) and on a listed kind that no longer occurs (trim the list).
// Also reports the validator's speed on that output (resources per second, one thread).
// Skips (with the reason) when the corpus directory is absent.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fhir/validator.h"
#include "fhir/validator_corpus_util.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace isthmus::fhir {
namespace {

namespace fs = std::filesystem;

using testing::Converted;
using testing::ConvertDir;

// Removes "[n]" indices: "Patient.name[0].given[1]" -> "Patient.name.given".
std::string WithoutIndices(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[' && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
      while (i < s.size() && s[i] != ']') ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

struct CorpusErrors {
  size_t resources = 0;
  std::vector<std::string> lines;  // "where: code expression: message"
  std::set<std::string> patterns;  // "code ResourceType.path" (entry resources by their type)
};

CorpusErrors ErrorsOf(const std::vector<Converted>& bundles) {
  CorpusErrors out;
  for (const Converted& c : bundles) {
    rapidjson::Document d;
    d.Parse(c.json.data(), c.json.size());
    const rapidjson::Value* entries = nullptr;
    if (d.IsObject() && d.HasMember("entry") && d["entry"].IsArray()) {
      entries = &d["entry"];
      out.resources += entries->Size();
    }
    for (const ValidationIssue& i : ValidateResourceJson(c.json)) {
      if (i.severity != ValidationIssue::Severity::kError) continue;
      out.lines.push_back(c.where + ": " + i.code + " " + i.expression + ": " + i.message);
      std::string pattern = WithoutIndices(i.expression);
      int entry = -1;
      size_t rest = 0;
      if (std::sscanf(i.expression.c_str(), "Bundle.entry[%d].resource%zn", &entry, &rest) == 1 &&
          entries != nullptr && entry >= 0 && static_cast<size_t>(entry) < entries->Size() &&
          (*entries)[entry].HasMember("resource") &&
          (*entries)[entry]["resource"].HasMember("resourceType")) {
        pattern = std::string((*entries)[entry]["resource"]["resourceType"].GetString()) +
                  WithoutIndices(std::string_view(i.expression).substr(rest));
      }
      out.patterns.insert(i.code + " " + pattern);
    }
  }
  return out;
}

// Known converter errors: src/fhir/validator_corpus_known.txt, lines "corpus code pattern".
std::set<std::string> Known(const std::string& corpus) {
  std::set<std::string> known;
  std::ifstream in(std::string(ISTHMUS_SOURCE_DIR) + "/src/fhir/validator_corpus_known.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string c, code, pattern;
    fields >> c >> code >> pattern;
    if (c == corpus) known.insert(code + " " + pattern);
  }
  return known;
}

// Every error is of a known kind, and every known kind still occurs (else: trim the list).
void ExpectOnlyKnown(const std::string& corpus, const CorpusErrors& e) {
  std::set<std::string> known = Known(corpus);
  for (const std::string& p : e.patterns) {
    EXPECT_TRUE(known.count(p)) << "new validation error kind on the " << corpus << " corpus: " << p
                                << "\nall errors:\n"
                                << [&] {
                                     std::string all;
                                     for (const std::string& l : e.lines) all += l + "\n";
                                     return all;
                                   }();
  }
  for (const std::string& k : known) {
    EXPECT_TRUE(e.patterns.count(k))
        << "known error no longer occurs on the " << corpus
        << " corpus (fixed? remove it from validator_corpus_known.txt): " << k;
  }
}

fs::path CorpusDir(const char* name) { return fs::path(ISTHMUS_CORPUS_DIR) / name; }

TEST(ValidatorCorpus, ConverterPairsValidate) {
  fs::path dir = CorpusDir("fhir-converter-hl7v2") / "hl7v2";
  if (!fs::exists(dir)) GTEST_SKIP() << "corpus absent: " << dir << " (../shared/corpus)";
  std::vector<Converted> bundles = ConvertDir(dir);
  ASSERT_GE(bundles.size(), 80u) << "fewer converted messages than the corpus holds";
  CorpusErrors e = ErrorsOf(bundles);
  ExpectOnlyKnown("pairs", e);
  std::printf("validated %zu Bundles (%zu resources): %zu errors of %zu known kinds\n",
              bundles.size(), e.resources, e.lines.size(), e.patterns.size());

  // Speed: validating the parsed Bundles (parsing is the caller's, as in the store). In a Debug
  // build this says little: docs/fhir-validation.md has optimized numbers.
  std::vector<rapidjson::Document> docs(bundles.size());
  size_t bytes = 0;
  for (size_t i = 0; i < bundles.size(); ++i) {
    docs[i].Parse(bundles[i].json.c_str());
    bytes += bundles[i].json.size();
  }
  int passes = 0;
  size_t issues = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed{};
  do {
    for (const rapidjson::Document& d : docs) issues += ValidateResource(d).size();
    ++passes;
    elapsed = std::chrono::steady_clock::now() - start;
  } while (elapsed.count() < 1.0);
  std::printf("validator: %.0f resources/s, %.1f MB/s of JSON (%d passes, 1 thread, %zu issues)\n",
              e.resources * passes / elapsed.count(), bytes * passes / elapsed.count() / 1e6,
              passes, issues / passes);
}

TEST(ValidatorCorpus, SamplesValidate) {
  fs::path dir = CorpusDir("hl7v2-samples");
  if (!fs::exists(dir)) GTEST_SKIP() << "corpus absent: " << dir << " (../shared/corpus)";
  std::vector<Converted> bundles = ConvertDir(dir);
  ASSERT_GT(bundles.size(), 100u);
  CorpusErrors e = ErrorsOf(bundles);
  ExpectOnlyKnown("samples", e);
  std::printf("validated %zu Bundles (%zu resources): %zu errors of %zu known kinds\n",
              bundles.size(), e.resources, e.lines.size(), e.patterns.size());
}

}  // namespace
}  // namespace isthmus::fhir
