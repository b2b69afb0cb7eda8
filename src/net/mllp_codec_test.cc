#include "net/mllp_codec.h"

#include "gtest/gtest.h"

namespace isthmus::net {
namespace {

std::vector<MllpEvent> FeedAll(MllpDecoder& d, std::vector<std::string_view> chunks) {
  std::vector<MllpEvent> out;
  for (auto c : chunks) d.Feed(c, &out);
  return out;
}

TEST(MllpCodecTest, RoundTrip) {
  MllpDecoder d(1024);
  auto ev = FeedAll(d, {MllpEncode("MSH|a\rPID|1\r")});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, MllpEvent::kFrame);
  EXPECT_EQ(ev[0].payload, "MSH|a\rPID|1\r");
  EXPECT_FALSE(d.in_frame());
}

TEST(MllpCodecTest, FramesSplitAcrossReadsAndSeveralPerRead) {
  MllpDecoder d(1024);
  std::string two = MllpEncode("A") + MllpEncode("BB");
  std::vector<MllpEvent> out;
  for (char c : two) d.Feed(std::string_view(&c, 1), &out);  // one byte at a time
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].payload, "A");
  EXPECT_EQ(out[1].payload, "BB");
  out.clear();
  d.Feed(two + two, &out);
  EXPECT_EQ(out.size(), 4u);
}

TEST(MllpCodecTest, MissingTrailingCrIsAccepted) {
  MllpDecoder d(1024);
  auto ev = FeedAll(d, {"\x0b" "A\x1c", "\x0b" "B\x1c\r"});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].payload, "B");
}

TEST(MllpCodecTest, GarbageOutsideFramesIsCounted) {
  MllpDecoder d(1024);
  auto ev = FeedAll(d, {"hello\r\n", "\x0b" "A\x1c\r"});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, MllpEvent::kGarbage);
  EXPECT_EQ(ev[0].bytes, 5u);
  EXPECT_EQ(ev[1].kind, MllpEvent::kFrame);
}

TEST(MllpCodecTest, OversizedFrameIsSkippedAndNextFrameStillWorks) {
  MllpDecoder d(10);
  std::string big = "\x0b" + std::string(25, 'x') + "\x1c\r";
  auto ev = FeedAll(d, {big.substr(0, 7), big.substr(7), MllpEncode("ok")});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, MllpEvent::kOversized);
  EXPECT_EQ(ev[0].bytes, 25u);
  EXPECT_EQ(ev[1].kind, MllpEvent::kFrame);
  EXPECT_EQ(ev[1].payload, "ok");
  EXPECT_LE(d.buffered_bytes(), 10u);
}

TEST(MllpCodecTest, NewStartBeforeEndReportsUnterminated) {
  MllpDecoder d(1024);
  auto ev = FeedAll(d, {"\x0b" "partial", "\x0b" "B\x1c\r"});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, MllpEvent::kUnterminated);
  EXPECT_EQ(ev[0].payload, "partial");
  EXPECT_EQ(ev[1].payload, "B");
}

TEST(MllpCodecTest, InFrameTellsATruncatedFrame) {
  MllpDecoder d(1024);
  auto ev = FeedAll(d, {"\x0b" "MSH|"});
  EXPECT_TRUE(ev.empty());
  EXPECT_TRUE(d.in_frame());
}

}  // namespace
}  // namespace isthmus::net
