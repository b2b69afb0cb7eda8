#include "pipeline/channel_counters.h"

#include "gtest/gtest.h"

namespace isthmus::pipeline {
namespace {

// channel_counters.h: errored = error + invalid + unrouted + a listener's rejected; filtered is
// its own; queued and processed are not counted here (delivered/dead come per destination).
TEST(ChannelCountersTest, OutcomesByState) {
  ChannelCounterRegistry r;
  ChannelOutcomeCounters* a = r.For("a");
  for (const char* state : {"error", "invalid", "unrouted", "rejected", "filtered", "queued",
                            "processed"}) {
    a->CountOutcome(state);
  }
  r.For("b")->CountOutcome("rejected");
  EXPECT_EQ(r.For("a"), a);  // resolved once, stable
  std::vector<ChannelOutcomeSnapshot> s = r.Snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "a");
  EXPECT_EQ(s[0].errored, 4u);
  EXPECT_EQ(s[0].filtered, 1u);
  EXPECT_EQ(s[0].delivered + s[0].dead, 0u);
  EXPECT_EQ(s[1].name, "b");
  EXPECT_EQ(s[1].errored, 1u);
  EXPECT_EQ(s[1].filtered, 0u);
}

}  // namespace
}  // namespace isthmus::pipeline
