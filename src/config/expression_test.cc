#include "config/expression.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::config {
namespace {

using ::testing::HasSubstr;

// An inpatient admission with two patient identifiers, two OBX and an escaped value.
constexpr std::string_view kAdt =
    "MSH|^~\\&|LAB|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01^ADT_A01|MSG1|P|2.5.1\r"
    "PID|1||123^^^HOSP^MR~456^^^SSA^SS||DOE^JANE||19800101|F\r"
    "PV1|1|I|WARD^101\r"
    "OBX|1|NM|GLU^Glucose||5.5\r"
    "OBX|2|ST|NOTE^Note||a\\T\\b\r";

// A v2.3 result without MSH-9.3 and without PV1.
constexpr std::string_view kOru =
    "MSH|^~\\&|RAD|CLINIC|ISTHMUS|HOSP|202401011300||ORU^R01|MSG2|P|2.3\r"
    "PID|1||789^^^CLINIC^PI||ROE^RICHARD\r";

struct Case {
  const char* expr;
  bool adt, oru;
};

class ExpressionTruthTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExpressionTruthTest, MatchesAsReasonedFromTheMessages) {
  static const hl7v2::Message adt = *hl7v2::Message::Parse(kAdt);
  static const hl7v2::Message oru = *hl7v2::Message::Parse(kOru);
  const Case& c = GetParam();
  auto e = Expression::Compile(c.expr);
  ASSERT_TRUE(e.ok()) << c.expr << ": " << e.status();
  EXPECT_EQ(e->Matches(adt), c.adt) << c.expr << " on the ADT";
  EXPECT_EQ(e->Matches(oru), c.oru) << c.expr << " on the ORU";
}

INSTANTIATE_TEST_SUITE_P(
    Shortcuts, ExpressionTruthTest,
    ::testing::Values(Case{"type = ADT", true, false}, Case{"type = ORU", false, true},
                      Case{"trigger = A01", true, false}, Case{"trigger == R01", false, true},
                      Case{"structure = ADT_A01", true, false},
                      // No MSH-9.3 in the ORU: it reads as empty.
                      Case{"structure = ''", false, true}, Case{"structure empty", false, true},
                      Case{"sender = LAB", true, false}, Case{"facility = CLINIC", false, true},
                      Case{"version = 2.5.1", true, false}, Case{"version != 2.5.1", false, true},
                      Case{"TYPE = ADT AND Trigger = A01", true, false}));

INSTANTIATE_TEST_SUITE_P(
    Paths, ExpressionTruthTest,
    ::testing::Values(
        Case{"PV1-2 = I", true, false},
        // Absent PV1 reads as one empty value.
        Case{"PV1-2 = ''", false, true}, Case{"PV1-2 empty", false, true},
        Case{"PV1-2 exists", true, false}, Case{"PV1 exists", true, false},
        Case{"ZPD exists", false, false}, Case{"PID empty", false, false},
        // PID-3 repeats: any repetition counts; [n] picks one.
        Case{"PID-3.5 = MR", true, false}, Case{"PID-3.5 = SS", true, false},
        Case{"PID-3[2].5 = MR", false, false}, Case{"PID-3[2].5 = SS", true, false},
        Case{"PID-3.5 != MR", false, true}, Case{"PID-3.4 in [HOSP, CLINIC]", true, true},
        Case{"PID-3.4 not in [HOSP]", false, true},
        // OBX occurs twice: any occurrence counts; OBX[n] picks one.
        Case{"OBX-3.1 in [GLU, K]", true, false}, Case{"OBX-3.1 in ['NOTE']", true, false},
        Case{"OBX[1]-3.1 = NOTE", false, false}, Case{"OBX[2]-3.1 = NOTE", true, false},
        // Values compare unescaped: \T\ is '&'.
        Case{"OBX-5 = 'a&b'", true, false}, Case{"OBX-5 = 'a\\T\\b'", false, false},
        Case{"MSH-9 = 'ADT^A01^ADT_A01'", true, false},
        // MSH-1 and MSH-2 are the delimiters, compared as written.
        Case{"MSH-1 = '|' and MSH-2 = '^~\\&'", true, true},
        Case{"PID-5 = \"DOE^JANE\"", true, false}, Case{"PID-8 = 'F'", true, false}));

INSTANTIATE_TEST_SUITE_P(
    Regexes, ExpressionTruthTest,
    ::testing::Values(Case{"PID-5.1 matches '^D.E$'", true, false},
                      Case{"PID-3.1 matches '^[0-9]+$'", true, true},
                      // Partial match: no anchors, any substring.
                      Case{"PID-5.1 matches O", true, true},
                      // Any repetition of PID-3.1 (123, 456) starting with 1 makes it true.
                      Case{"PID-3.1 not matches '^1'", false, true},
                      Case{"OBX-5 matches 'a&b'", true, false},
                      Case{"sender matches '^(LAB|RAD)$'", true, true}));

INSTANTIATE_TEST_SUITE_P(
    Booleans, ExpressionTruthTest,
    ::testing::Values(Case{"type = ADT and not PV1-2 = O", true, false},
                      Case{"(type = ORU or sender = LAB) and facility = HOSP", true, false},
                      // and binds tighter than or: ORU or (LAB and CLINIC).
                      Case{"type = ORU or sender = LAB and facility = CLINIC", false, true},
                      Case{"(type = ORU or sender = LAB) and facility = CLINIC", false, true},
                      Case{"not (type = ADT or type = ORU)", false, false},
                      Case{"not not type = ADT", true, false},
                      Case{"type in [ADT, ORU] and PID-3.1 exists", true, true}));

struct ErrorCase {
  const char* expr;
  int column;
  const char* message;
};

class ExpressionErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ExpressionErrorTest, NamesTheColumn) {
  const ErrorCase& c = GetParam();
  auto e = Expression::Compile(c.expr);
  ASSERT_FALSE(e.ok()) << c.expr;
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExpressionErrorColumn(e.status()), c.column) << e.status();
  EXPECT_THAT(e.status().message(), HasSubstr(c.message)) << c.expr;
}

INSTANTIATE_TEST_SUITE_P(
    All, ExpressionErrorTest,
    ::testing::Values(
        ErrorCase{"", 1, "the expression is empty"},
        ErrorCase{"PV1-2 =", 8, "expected a value after '=', found end of expression"},
        ErrorCase{"PV1-2 = I and", 14, "unexpected end of expression"},
        ErrorCase{"PV1-2 in I", 10, "expected '[' to start the list"},
        ErrorCase{"PV1-2 in [I,", 13, "expected a value in the list opened at column 10"},
        ErrorCase{"PV1-2 in [I E]", 13, "expected ',' or ']'"},
        ErrorCase{"(type = ADT", 12, "expected ')' to close the '(' at column 1"},
        ErrorCase{"type = ADT xyz", 12, "unexpected 'xyz'"},
        ErrorCase{"PV1-2 ~ I", 7, "unexpected '~' after 'PV1-2'"},
        ErrorCase{"pid-3 = x", 1, "segment names are upper case (expected PID-3)"},
        ErrorCase{"PIDX-3 = 1", 1, "'PIDX-3' is not a field path or shortcut"},
        ErrorCase{"PID = 1", 5, "names a whole segment"},
        ErrorCase{"'a' = b", 1, "unexpected ''a''"},
        ErrorCase{"PV1-2 = 'I", 9, "unterminated quoted value"},
        ErrorCase{"PV1-2 ! I", 7, "unexpected '!'"},
        ErrorCase{"type = ADT and or", 16, "unexpected 'or'"},
        ErrorCase{"PID-3 not = x", 11, "expected 'in' or 'matches' after 'PID-3 not'"}));

TEST(ExpressionRegexTest, BadRegexIsACompileErrorAtThePattern) {
  auto e = Expression::Compile("PID-3.1 matches '(['");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(ExpressionErrorColumn(e.status()), 17);
  EXPECT_THAT(e.status().message(), HasSubstr("invalid regular expression '(['"));
  EXPECT_THAT(e.status().message(), HasSubstr("missing ]"));

  // Backreferences are not RE2 (no backtracking): rejected at load, not at the first message.
  e = Expression::Compile("PID-5.1 matches '(a)\\1'");
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("invalid regular expression"));
}

TEST(ExpressionTest, DoubledQuoteIsAQuote) {
  auto msg = hl7v2::Message::Parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rNTE|1||it's\r");
  ASSERT_TRUE(msg.ok());
  auto e = Expression::Compile("NTE-3 = 'it''s'");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->Matches(*msg));
  EXPECT_EQ(e->text(), "NTE-3 = 'it''s'");
}

TEST(ExpressionTest, NestingIsBounded) {
  std::string deep(100, '(');
  deep += "type = ADT";
  deep += std::string(100, ')');
  auto e = Expression::Compile(deep);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("nests too deeply"));
}

TEST(ExpressionTest, NonAsciiValuesAreDecodedPerCharset) {
  // 8859/1 byte 0xE9 is é; the expression is UTF-8.
  std::string bytes =
      "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5||||||8859/1\rPID|1||1||REN\xE9^A\r";
  auto msg = hl7v2::Message::Parse(bytes);
  ASSERT_TRUE(msg.ok());
  auto e = Expression::Compile("PID-5.1 = 'REN\xC3\xA9'");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->Matches(*msg));
}

}  // namespace
}  // namespace isthmus::config
