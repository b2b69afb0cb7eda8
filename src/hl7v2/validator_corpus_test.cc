// Runs the validator over every message of the shared corpus (corpus/hl7v2-samples): it must
// never crash, and every issue must carry a location and a message. Skips when the corpus is absent.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "gtest/gtest.h"
#include "hl7v2/validator.h"

namespace isthmus::hl7v2 {
namespace {

TEST(ValidatorCorpusTest, NeverCrashesOnSamples) {
  std::filesystem::path dir = std::filesystem::path(ISTHMUS_CORPUS_DIR) / "hl7v2-samples";
  if (!std::filesystem::is_directory(dir)) {
    GTEST_SKIP() << "corpus not found at " << dir << " (set ISTHMUS_CORPUS_DIR)";
  }
  absl::StatusOr<Validator> v = Validator::Create({});
  ASSERT_TRUE(v.ok());
  int files = 0, messages = 0, issues = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    if (ext == ".md" || ext == ".tsv" || ext == ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string bytes = ss.str();
    ++files;
    // Split on MSH so that files holding several messages are validated one by one.
    size_t pos = bytes.find("MSH");
    while (pos != std::string::npos) {
      size_t next = bytes.find("\nMSH", pos + 3);
      size_t next_cr = bytes.find("\rMSH", pos + 3);
      if (next_cr != std::string::npos && (next == std::string::npos || next_cr < next)) {
        next = next_cr;
      }
      std::string_view one(bytes.data() + pos,
                           (next == std::string::npos ? bytes.size() : next + 1) - pos);
      absl::StatusOr<Message> m = Message::Parse(one);
      if (m.ok()) {
        ++messages;
        for (const Issue& i : v->Validate(*m)) {
          ++issues;
          EXPECT_FALSE(i.message.empty()) << entry.path();
          EXPECT_FALSE(i.location.segment.empty()) << entry.path() << ": " << i.message;
        }
      }
      pos = next == std::string::npos ? next : next + 1;
    }
  }
  RecordProperty("messages", messages);
  EXPECT_GT(files, 0);
  std::cout << files << " files, " << messages << " messages, " << issues << " issues\n";
}

}  // namespace
}  // namespace isthmus::hl7v2
