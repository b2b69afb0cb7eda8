#include "base/file.h"

#include <filesystem>

#include "gtest/gtest.h"

namespace isthmus::base {
namespace {

TEST(FileTest, WriteThenReadRoundTrips) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "isthmus_file_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / "a.bin").string();
  std::string data("MSH|^~\\&|\0x\r", 12);
  ASSERT_TRUE(WriteFileAtomic(path, data).ok());
  auto read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(FileTest, MissingFileIsNotFoundWithPath) {
  auto read = ReadFile("/nonexistent/isthmus/x.hl7");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("/nonexistent/isthmus/x.hl7"), std::string::npos);
}

TEST(FileTest, SizeLimitIsEnforced) {
  auto dir = std::filesystem::path(::testing::TempDir());
  std::string path = (dir / "isthmus_big.bin").string();
  ASSERT_TRUE(WriteFileAtomic(path, std::string(100, 'x')).ok());
  auto read = ReadFile(path, 50);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace isthmus::base
