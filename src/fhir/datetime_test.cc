#include "fhir/datetime.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace isthmus::fhir {
namespace {

absl::TimeZone Zone(const char* name) {
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone(name, &tz)) << name << " (is tzdata installed?)";
  return tz;
}

std::string Dt(std::string_view v, TimeType t = TimeType::kDateTime,
               absl::TimeZone tz = absl::UTCTimeZone()) {
  auto r = FhirTime(v, t, tz);
  return r.ok() ? *r : "ERROR: " + std::string(r.status().message());
}

TEST(FhirTime, KeepsPrecisionOfDates) {
  EXPECT_EQ(Dt("2024"), "2024");
  EXPECT_EQ(Dt("202402"), "2024-02");
  EXPECT_EQ(Dt("20240229"), "2024-02-29");
}

TEST(FhirTime, TimeGetsSecondsAndKeepsOffset) {
  EXPECT_EQ(Dt("2024022914-0500"), "2024-02-29T14:00:00-05:00");
  EXPECT_EQ(Dt("202402291405+0215"), "2024-02-29T14:05:00+02:15");
  EXPECT_EQ(Dt("20240229140502.1234+0000"), "2024-02-29T14:05:02.1234+00:00");
  EXPECT_EQ(Dt("20240229140502.5-0330"), "2024-02-29T14:05:02.5-03:30");
}

TEST(FhirTime, OffsetlessUsesConfiguredZoneIncludingDst) {
  absl::TimeZone ny = Zone("America/New_York");
  EXPECT_EQ(Dt("20240115083000", TimeType::kDateTime, ny), "2024-01-15T08:30:00-05:00");
  EXPECT_EQ(Dt("20240715083000", TimeType::kDateTime, ny), "2024-07-15T08:30:00-04:00");
  absl::TimeZone kolkata = Zone("Asia/Kolkata");
  EXPECT_EQ(Dt("202401150830", TimeType::kDateTime, kolkata), "2024-01-15T08:30:00+05:30");
  // A date alone has no offset in FHIR.
  EXPECT_EQ(Dt("20240115", TimeType::kDateTime, ny), "2024-01-15");
}

TEST(FhirTime, DateDropsTime) {
  EXPECT_EQ(Dt("198808181126+0215", TimeType::kDate), "1988-08-18");
  EXPECT_EQ(Dt("1988", TimeType::kDate), "1988");
}

TEST(FhirTime, InstantIsAlwaysFull) {
  EXPECT_EQ(Dt("20240229", TimeType::kInstant), "2024-02-29T00:00:00+00:00");
  EXPECT_EQ(Dt("20240229140502-0500", TimeType::kInstant), "2024-02-29T14:05:02-05:00");
}

TEST(FhirTime, Time) {
  EXPECT_EQ(Dt("1405", TimeType::kTime), "14:05:00");
  EXPECT_EQ(Dt("140502.12", TimeType::kTime), "14:05:02.12");
}

TEST(FhirTime, RejectsMalformed) {
  for (const char* bad : {"", "20", "2024021", "20240230", "20241301", "2024022925", "20240229.5",
                          "20240229140502.12345", "202402291405+05", "202402291405+2500",
                          "2024-02-29", "abc"}) {
    EXPECT_FALSE(FhirTime(bad, TimeType::kDateTime, absl::UTCTimeZone()).ok()) << bad;
  }
}

TEST(FhirTime, TrimsSpaces) { EXPECT_EQ(Dt(" 20240229 "), "2024-02-29"); }

}  // namespace
}  // namespace isthmus::fhir
