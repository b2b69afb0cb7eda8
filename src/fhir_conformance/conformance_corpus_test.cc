// The invariants over every Bundle the v2 -> FHIR converter makes from the shared corpus (the
// messages of fhir-converter-hl7v2 and hl7v2-samples): errors are listed by kind
// ("key ResourceType.path") and must be those of invariants_corpus_known.txt (converter output
// an invariant flags, reported to the maps' owner); a kind no longer seen must leave the list.
// Also prints what the invariants cost per resource (one thread), the figure behind running them
// only in $validate (docs/fhir-validation.md). Skips when the corpus is absent.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fhir/validator.h"
#include "fhir/validator_corpus_util.h"
#include "fhir_conformance/conformance.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir_conformance {
namespace {

namespace fs = std::filesystem;

// "obs-6 Observation.component" from an issue on "Bundle.entry[3].resource.component[0]".
std::string Kind(const fhir::ValidationIssue& i, const rapidjson::Value& bundle) {
  std::string key = i.message.substr(0, i.message.find(':'));
  std::string path;
  int entry = -1;
  size_t rest = 0;
  if (std::sscanf(i.expression.c_str(), "Bundle.entry[%d].resource%zn", &entry, &rest) == 1 &&
      entry >= 0 && bundle["entry"][entry]["resource"].HasMember("resourceType")) {
    path = std::string(bundle["entry"][entry]["resource"]["resourceType"].GetString()) +
           i.expression.substr(rest);
  } else {
    path = i.expression;
  }
  std::string out;
  for (size_t k = 0; k < path.size(); ++k) {
    if (path[k] == '[') {
      while (k < path.size() && path[k] != ']') ++k;
      continue;
    }
    out += path[k];
  }
  return i.code + " " + key + " " + out;
}

// The element an issue's expression names ("Bundle.entry[3].resource.code"), or null.
const rapidjson::Value* At(const rapidjson::Value& root, std::string_view path) {
  const rapidjson::Value* v = &root;
  size_t dot = path.find('.');
  if (dot == std::string_view::npos) return v;
  path = path.substr(dot + 1);
  while (!path.empty() && v != nullptr) {
    size_t end = path.find('.');
    std::string_view step = path.substr(0, end);
    path = end == std::string_view::npos ? "" : path.substr(end + 1);
    size_t br = step.find('[');
    std::string name(step.substr(0, br));
    if (!v->IsObject() || !v->HasMember(name.c_str())) return nullptr;
    v = &(*v)[name.c_str()];
    if (br != std::string_view::npos) {
      size_t i = std::stoul(std::string(step.substr(br + 1)));
      if (!v->IsArray() || i >= v->Size()) return nullptr;
      v = &(*v)[static_cast<rapidjson::SizeType>(i)];
    }
  }
  return v;
}

std::string ToJson(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return std::string(b.GetString(), std::min<size_t>(b.GetSize(), 400));
}

void RunCorpus(const char* corpus, const fs::path& dir) {
  if (!fs::exists(dir)) GTEST_SKIP() << "corpus absent: " << dir;
  std::vector<fhir::testing::Converted> bundles = fhir::testing::ConvertDir(dir);
  ASSERT_GE(bundles.size(), 80u);
  std::vector<rapidjson::Document> docs(bundles.size());
  std::map<std::string, int> errors, warnings;
  size_t resources = 0;
  for (size_t b = 0; b < bundles.size(); ++b) {
    docs[b].Parse(bundles[b].json.c_str());
    ASSERT_TRUE(docs[b].IsObject() && docs[b].HasMember("entry"));
    resources += docs[b]["entry"].Size();
    for (const fhir::ValidationIssue& i : CheckInvariants(docs[b], {.max_issues = 100000})) {
      auto& counts = i.severity == fhir::ValidationIssue::Severity::kError ? errors : warnings;
      std::string kind = Kind(i, docs[b]);
      if (counts[kind]++ == 0 && i.severity == fhir::ValidationIssue::Severity::kError) {
        // The first element of each kind (the corpus is public test data).
        const rapidjson::Value* at = At(docs[b], i.expression);
        std::printf("%s first %s: %s\n", corpus, kind.c_str(), at ? ToJson(*at).c_str() : "?");
      }
    }
  }
  std::set<std::string> known;
  std::ifstream in(std::string(ISTHMUS_SOURCE_DIR) +
                   "/src/fhir_conformance/invariants_corpus_known.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(std::string(corpus) + " ", 0) == 0) known.insert(line.substr(strlen(corpus) + 1));
  }
  for (const auto& [kind, n] : errors) {
    std::printf("%s error %s x%d\n", corpus, kind.c_str(), n);
    EXPECT_TRUE(known.count(kind)) << "new invariant error on the converter's output: " << kind;
  }
  for (const std::string& k : known) {
    EXPECT_TRUE(errors.count(k)) << "listed but no longer seen (remove it): " << k;
  }
  for (const auto& [kind, n] : warnings) std::printf("%s warning %s x%d\n", corpus, kind.c_str(), n);
  // Cost: the invariants of every resource, repeated for a second.
  int passes = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed{};
  do {
    for (const rapidjson::Document& d : docs) CheckInvariants(d, {.max_issues = 100000});
    ++passes;
    elapsed = std::chrono::steady_clock::now() - start;
  } while (elapsed.count() < 1.0);
  std::printf("%s: %zu Bundles, %zu resources; invariants %.0f resources/s (%.1f us each), "
              "%d passes, 1 thread\n",
              corpus, bundles.size(), resources, resources * passes / elapsed.count(),
              1e6 * elapsed.count() / (resources * passes), passes);
}

TEST(InvariantsCorpus, ConverterPairs) {
  RunCorpus("pairs", fs::path(ISTHMUS_CORPUS_DIR) / "fhir-converter-hl7v2" / "hl7v2");
}

TEST(InvariantsCorpus, Samples) { RunCorpus("samples", fs::path(ISTHMUS_CORPUS_DIR) / "hl7v2-samples"); }

}  // namespace
}  // namespace isthmus::fhir_conformance
