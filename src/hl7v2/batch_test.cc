#include "hl7v2/batch.h"

#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

TEST(BatchTest, SplitsPlainConcatenation) {
  std::string in = "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\rPID|1\r\nMSH|^~\\&|A|B|||x||ADT^A01|2|P|2.5\nPID|2\n";
  auto b = SplitBatch(in);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->messages.size(), 2u);
  EXPECT_EQ(b->messages[0].bytes, "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\rPID|1\r\n");
  EXPECT_EQ(b->messages[1].bytes, "MSH|^~\\&|A|B|||x||ADT^A01|2|P|2.5\nPID|2\n");
  EXPECT_EQ(b->messages[1].line, 3u);
  EXPECT_TRUE(b->envelope_issues.empty());
}

TEST(BatchTest, ChecksEnvelopeCounts) {
  std::string in =
      "FHS|^~\\&|A\rBHS|^~\\&|A\r"
      "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\rPID|1\r"
      "MSH|^~\\&|A|B|||x||ADT^A01|2|P|2.5\rPID|2\r"
      "BTS|2\rFTS|1\r";
  auto b = SplitBatch(in);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->messages.size(), 2u);
  EXPECT_TRUE(b->has_file_header);
  EXPECT_EQ(b->batch_count, 1);
  EXPECT_TRUE(b->envelope_issues.empty());
  EXPECT_EQ(b->messages[1].bytes, "MSH|^~\\&|A|B|||x||ADT^A01|2|P|2.5\rPID|2\r");
}

TEST(BatchTest, ReportsWrongCountsAndMissingTrailers) {
  auto b = SplitBatch("BHS|^~\\&\rMSH|^~\\&|A\rBTS|3\rBHS|^~\\&\rMSH|^~\\&|B\r");
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->envelope_issues.size(), 2u);
  EXPECT_EQ(b->envelope_issues[0].location.ToString(), "BTS-1");
  EXPECT_NE(b->envelope_issues[0].message.find("declares 3 messages but the batch has 1"),
            std::string::npos);
  EXPECT_NE(b->envelope_issues[1].message.find("no closing BTS"), std::string::npos);

  b = SplitBatch("FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A\rBTS|1\rFTS|2\r");
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->envelope_issues.size(), 1u);
  EXPECT_EQ(b->envelope_issues[0].location.ToString(), "FTS-1");
}

TEST(BatchTest, RejectsSegmentsBeforeMshAndEmptyInput) {
  auto b = SplitBatch("PID|1\rMSH|^~\\&|A\r");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("line 1"), std::string::npos);
  EXPECT_FALSE(SplitBatch("").ok());
  EXPECT_FALSE(SplitBatch("\r\n  \n").ok());
}

}  // namespace
}  // namespace isthmus::hl7v2
