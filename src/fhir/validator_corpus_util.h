// Test-only: the v2 -> FHIR converter's Bundles for a directory of the shared corpus, for the
// corpus tests of the validator (fhir_validator_corpus_test) and of the invariants
// (fhir_conformance_corpus_test). Needs the converter (L2) and GoogleTest: link it into tests only.
// Thread-safety: none needed (called from one test at a time).
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "base/file.h"
#include "gtest/gtest.h"
#include "hl7v2/batch.h"
#include "hl7v2/message.h"
#include "mapping/v2fhir/converter.h"
#include "mapping/v2fhir/loader.h"

namespace isthmus::fhir::testing {

struct Converted {
  std::string where;  // file and message number
  std::string json;   // the Bundle
};

// Converts every message of every file under `dir` (sorted, recursive; files that are not HL7 v2
// and messages without a map are passed over) with the shipped maps.
inline std::vector<Converted> ConvertDir(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  auto maps = v2fhir::LoadMaps({std::string(ISTHMUS_SOURCE_DIR) + "/maps"});
  EXPECT_TRUE(maps.ok()) << maps.status();
  if (!maps.ok()) return {};
  v2fhir::Converter converter(*maps);
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<Converted> out;
  for (const fs::path& f : files) {
    auto bytes = base::ReadFile(f.string());
    if (!bytes.ok()) continue;
    auto batch = hl7v2::SplitBatch(*bytes);
    if (!batch.ok()) continue;  // not HL7 v2 (README and the like)
    int n = 0;
    for (const hl7v2::MessageSpan& span : batch->messages) {
      ++n;
      auto m = hl7v2::Message::Parse(span.bytes);
      if (!m.ok()) continue;
      auto r = converter.Convert(*m, v2fhir::ConvertOptions{});
      if (!r.ok()) continue;  // no map for the message type: nothing to validate
      out.push_back(
          {fs::relative(f, dir).string() + " message " + std::to_string(n), std::move(r->json)});
    }
  }
  return out;
}

}  // namespace isthmus::fhir::testing
