// Replays every input under fuzz/regressions/ (minimised inputs that once broke a fuzz target)
// through both fuzz bodies, plus the hand-written seeds under fuzz/seeds/.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_bodies.h"
#include "gtest/gtest.h"

namespace isthmus::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> FilesUnder(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (name.rfind("README", 0) == 0 || name == ".gitignore") continue;
    out.push_back(e.path());
  }
  return out;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Replay(const fs::path& dir) {
  std::vector<fs::path> files = FilesUnder(dir);
  ASSERT_FALSE(files.empty()) << "no inputs under " << dir;
  for (const fs::path& f : files) {
    std::string data = ReadAll(f);
    EXPECT_EQ(CheckParse(data), "") << "parse body, " << f;
    EXPECT_EQ(CheckEscape(data), "") << "escape body, " << f;
  }
}

TEST(FuzzRegressionTest, ReplaysRegressions) {
  fs::path dir = fs::path(ISTHMUS_SOURCE_DIR) / "fuzz" / "regressions";
  if (FilesUnder(dir).empty()) GTEST_SKIP() << "no regression inputs under " << dir << " yet";
  Replay(dir);
}

TEST(FuzzRegressionTest, ReplaysSeeds) { Replay(fs::path(ISTHMUS_SOURCE_DIR) / "fuzz" / "seeds"); }

}  // namespace
}  // namespace isthmus::fuzz
