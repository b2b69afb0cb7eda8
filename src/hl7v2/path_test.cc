#include "hl7v2/path.h"

#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

TEST(PathTest, ParsesFullPath) {
  auto p = Path::Parse("PID-3[2].4.1");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->segment, "PID");
  EXPECT_EQ(p->segment_index, 0);
  EXPECT_EQ(p->field, 3);
  EXPECT_EQ(p->repetition, 2);
  EXPECT_EQ(p->component, 4);
  EXPECT_EQ(p->subcomponent, 1);
  EXPECT_EQ(p->ToString(), "PID-3[2].4.1");
}

TEST(PathTest, ParsesSegmentOccurrence) {
  auto p = Path::Parse("OBX[3]-5");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->segment, "OBX");
  EXPECT_EQ(p->segment_index, 3);
  EXPECT_EQ(p->field, 5);
  EXPECT_EQ(p->ToString(), "OBX[3]-5");
}

TEST(PathTest, AcceptsDotShorthandAndLowerCase) {
  auto p = Path::Parse("pid.5.1");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->segment, "PID");
  EXPECT_EQ(p->field, 5);
  EXPECT_EQ(p->component, 1);
}

TEST(PathTest, SegmentOnly) {
  auto p = Path::Parse("ZPD");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->field, 0);
  EXPECT_EQ(p->ToString(), "ZPD");
}

TEST(PathTest, RejectsMalformedWithExplanation) {
  for (const char* bad : {"", "PI", "PID-", "PID-0", "PID-3[", "PID-3[0]", "PID-3.x", "PID-3.1.2.3",
                          "PID-3]", "PIDX-3", "PID-99999999"}) {
    auto p = Path::Parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_NE(std::string(p.status().message()).find("PID-3[2].4.1"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace isthmus::hl7v2
