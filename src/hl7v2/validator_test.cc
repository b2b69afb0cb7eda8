#include "hl7v2/validator.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

// Joins segments with CR.
std::string Msg(std::initializer_list<std::string_view> segments) {
  std::string s;
  for (std::string_view seg : segments) {
    s.append(seg);
    s.push_back('\r');
  }
  return s;
}

std::vector<Issue> ValidateText(const std::string& text, ValidatorOptions opts = {}) {
  absl::StatusOr<Message> m = Message::Parse(text);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return {};
  absl::StatusOr<Validator> v = Validator::Create(std::move(opts));
  EXPECT_TRUE(v.ok()) << v.status();
  if (!v.ok()) return {};
  return v->Validate(*m);
}

std::string Describe(const std::vector<Issue>& issues) {
  std::string s;
  for (const Issue& i : issues) {
    s += i.location.ToString() + " " + std::to_string(static_cast<int>(i.code)) + " " +
         std::string(SeverityName(i.severity)) + ": " + i.message + "\n";
  }
  return s;
}

// Location, code and severity of an issue, for exact comparisons. The validator always names
// the segment occurrence (PID[1]) and, for findings about one value, the repetition (PID-8[1]).
std::string Key(const Issue& i) {
  return i.location.ToString() + "/" + std::to_string(static_cast<int>(i.code)) + "/" +
         SeverityCode(i.severity);
}
std::vector<std::string> Keys(const std::vector<Issue>& issues) {
  std::vector<std::string> out;
  for (const Issue& i : issues) out.push_back(Key(i));
  return out;
}

// A conforming v2.5.1 ADT^A01: MSH, EVN, PID, PV1 are the required segments of ADT_A01; MSH-9
// carries all three MSG components (MSG.3 is required in 2.5.1); PID-3 and PID-5 are the
// required PID fields; PV1-2 (patient class) is the only required PV1 field.
constexpr std::string_view kMsh251 =
    "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|20240101120000||ADT^A01^ADT_A01|MSG0001|P|2.5.1";
constexpr std::string_view kEvn = "EVN|A01|20240101120000";
constexpr std::string_view kPid = "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F";
constexpr std::string_view kPv1 = "PV1|1|I";

TEST(ValidatorTest, ConformingAdtA01HasNoIssues) {
  std::vector<Issue> issues = ValidateText(Msg({kMsh251, kEvn, kPid, kPv1}));
  EXPECT_TRUE(issues.empty()) << Describe(issues);
}

TEST(ValidatorTest, MissingRequiredSegmentIsSequenceError) {
  // ADT_A01 requires EVN after MSH.
  std::vector<Issue> issues = ValidateText(Msg({kMsh251, kPid, kPv1}));
  ASSERT_EQ(issues.size(), 1u) << Describe(issues);
  EXPECT_EQ(issues[0].code, ErrorCode::kSegmentSequenceError);
  EXPECT_EQ(issues[0].severity, Severity::kError);
  EXPECT_EQ(issues[0].location.segment, "EVN");
  EXPECT_THAT(issues[0].message, testing::HasSubstr("EVN"));
}

TEST(ValidatorTest, RepeatedNonRepeatingSegment) {
  // PID occurs once in ADT_A01; a second PID cannot be placed anywhere.
  std::vector<Issue> issues = ValidateText(Msg({kMsh251, kEvn, kPid, kPid, kPv1}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("PID[2]/100/E")) << Describe(issues);
}

TEST(ValidatorTest, OutOfOrderAndUnknownSegments) {
  // PV1 before PID: PID is then out of order (it cannot follow PV1), and the greedy match
  // reports PID missing where PV1 was placed. OBR is not part of ADT_A01 at all.
  std::vector<Issue> issues = ValidateText(Msg({kMsh251, kEvn, kPv1, kPid, "OBR|1||F1|CBC"}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("PID/100/E", "PID/100/E", "OBR/100/E"))
      << Describe(issues);
  EXPECT_THAT(issues[2].message, testing::HasSubstr("not part of message structure ADT_A01"));
}

TEST(ValidatorTest, ZSegmentsAllowedAnywhere) {
  std::vector<Issue> issues = ValidateText(Msg({kMsh251, kEvn, "ZPD|x", kPid, kPv1, "ZPV|1"}));
  EXPECT_TRUE(issues.empty()) << Describe(issues);
}

TEST(ValidatorTest, RequiredFieldMissing) {
  // PID-3 (Patient Identifier List) and PID-5 (Patient Name) are required in 2.5.1.
  std::vector<Issue> issues = ValidateText(Msg({kMsh251, kEvn, "PID|1||||||19800101|F", kPv1}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("PID-3/101/E", "PID-5/101/E"))
      << Describe(issues);
  EXPECT_THAT(issues[0].message, testing::HasSubstr("Patient Identifier List"));
}

TEST(ValidatorTest, DataTypeErrorsNeverQuoteTheValue) {
  // PID-7 is TS (TS.1 DTM): month 13 is not a date. PID-1 is SI: letters are not a sequence.
  std::vector<Issue> issues =
      ValidateText(Msg({kMsh251, kEvn, "PID|A1||12345^^^HOSP^MR||DOE^JANE||19801301|F", kPv1}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("PID-1[1]/102/E", "PID-7[1]/102/E"))
      << Describe(issues);
  for (const Issue& i : issues) {
    EXPECT_THAT(i.message, testing::Not(testing::HasSubstr("19801301")));
    EXPECT_THAT(i.message, testing::Not(testing::HasSubstr("A1")));
  }
}

TEST(ValidatorTest, TableValues) {
  // PID-8 is IS (user-defined table 0001): X is not a code, so a warning. PV1-2 is IS (0004).
  // MSH-11 processing ID is PT whose PT.1 is ID (HL7 table 0103): Q is not a code, an error.
  std::string msh = std::string(kMsh251);
  msh.replace(msh.find("|P|2.5.1"), 8, "|Q|2.5.1");
  std::vector<Issue> issues = ValidateText(
      Msg({msh, kEvn, "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|X", kPv1}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("MSH-11[1].1/103/E", "PID-8[1]/103/W"))
      << Describe(issues);
}

TEST(ValidatorTest, NonRepeatingFieldRepeated) {
  // PID-8 Administrative Sex does not repeat.
  std::vector<Issue> issues = ValidateText(
      Msg({kMsh251, kEvn, "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F~M", kPv1}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("PID-8/102/E")) << Describe(issues);
}

TEST(ValidatorTest, LengthIsAWarningWithCode102Before27) {
  // EVN-1 (Event Type Code) is ID, length 3 in 2.5.1; A01A01 is 6 characters and not in 0003.
  std::vector<Issue> issues =
      ValidateText(Msg({kMsh251, "EVN|A01A01|20240101120000", kPid, kPv1}));
  ASSERT_GE(issues.size(), 1u) << Describe(issues);
  EXPECT_EQ(Key(issues[0]), "EVN-1[1]/102/W") << Describe(issues);
}

TEST(ValidatorTest, UnsupportedVersionAndMessageType) {
  std::string msh = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|1.0";
  std::vector<Issue> issues = ValidateText(Msg({msh, kEvn, kPid, kPv1}));
  EXPECT_THAT(Keys(issues), testing::ElementsAre("MSH-12/203/E")) << Describe(issues);

  std::string unknown = "MSH|^~\\&|A|B|C|D|20240101||XYZ^Q99|1|P|2.5.1";
  issues = ValidateText(Msg({unknown}));
  ASSERT_FALSE(issues.empty());
  EXPECT_EQ(Key(issues[0]), "MSH-9.1/200/E") << Describe(issues);
}

TEST(ValidatorTest, VersionOverride) {
  EXPECT_FALSE(Validator::Create({.version = "1.0"}).ok());
  // The message says 2.5.1, but validated as 2.3 MSH-9.3 does not exist and table 0001 has no A.
  std::vector<Issue> issues = ValidateText(
      Msg({kMsh251, kEvn, "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|A", kPv1}),
      {.version = "2.3"});
  EXPECT_THAT(Keys(issues), testing::Contains("PID-8[1]/103/W")) << Describe(issues);
}

TEST(ValidatorTest, OruWithGroupsAndTenObservations) {
  std::vector<std::string_view> segs = {
      "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|MSG2|P|2.5.1",
      "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F",
      "PV1|1|O",
      "OBR|1||F123|CBC^Complete blood count^L",
  };
  std::vector<std::string> obx;
  for (int i = 1; i <= 10; ++i) {
    obx.push_back("OBX|" + std::to_string(i) + "|NM|" + std::to_string(700 + i) +
                  "^Test^L||" + std::to_string(i) + ".5|mg|||||F");
  }
  for (const auto& o : obx) segs.push_back(o);
  segs.push_back("NTE|1||comment on the last result");
  std::string text;
  for (auto s : segs) text.append(s).push_back('\r');
  std::vector<Issue> issues = ValidateText(text);
  EXPECT_TRUE(issues.empty()) << Describe(issues);

  // OBX-5 is checked against OBX-2 (NM here); OBX before OBR cannot be placed.
  std::string bad = text;
  bad.replace(bad.find("|1.5|"), 5, "|high|");
  issues = ValidateText(bad);
  EXPECT_THAT(Keys(issues), testing::ElementsAre("OBX-5[1]/102/E")) << Describe(issues);
}

TEST(ValidatorTest, MissingRequiredGroup) {
  // ORU_R01 requires at least one ORDER_OBSERVATION group, which must contain OBR.
  std::string text = Msg({"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|M|P|2.5.1",
                          "PID|1||12345^^^HOSP^MR||DOE^JANE"});
  std::vector<Issue> issues = ValidateText(text);
  ASSERT_EQ(issues.size(), 1u) << Describe(issues);
  EXPECT_EQ(Key(issues[0]), "OBR/100/E");
  EXPECT_THAT(issues[0].message, testing::HasSubstr("ORDER_OBSERVATION"));
}

TEST(ValidatorTest, ProfileRules) {
  absl::StatusOr<std::shared_ptr<const Profile>> p = LoadProfileFromString(R"(
name: site
message_types: [ADT^A01, ADT^A04]
forbid_z_segments: true
forbid_segments: [NK1]
required_segments: [PD1]
required_fields: [PID-7, PID-3.5]
allowed_values:
  PID-8: [F, M]
)");
  ASSERT_TRUE(p.ok()) << p.status();
  std::vector<Issue> issues = ValidateText(
      Msg({kMsh251, kEvn, "PID|1||12345^^^HOSP~678^^^HOSP^MR||DOE^JANE|||U", "NK1|1", kPv1,
           "ZPV|1"}),
      {.profile = *p});
  EXPECT_THAT(Keys(issues),
              testing::ElementsAre("ZPV/100/E",    // forbidden Z-segment (structure pass)
                                   "PID-7/101/E",  // required by the profile
                                   "PID-3[1].5/101/E",  // first repetition lacks CX.5
                                   "PID-8/103/E",  // U is in 0001 but not allowed by the site
                                   "NK1/100/E",    // forbidden segment
                                   "PD1/100/E"))      // required segment
      << Describe(issues);

  std::string a08 = std::string(kMsh251);
  a08.replace(a08.find("ADT^A01^ADT_A01"), 15, "ADT^A08^ADT_A01");
  issues = ValidateText(Msg({a08, kEvn, kPid, "PD1", kPv1}), {.profile = *p});
  EXPECT_THAT(Keys(issues), testing::Contains("MSH-9.2/201/E")) << Describe(issues);
}

}  // namespace
}  // namespace isthmus::hl7v2
