#include "hl7v2/message.h"

#include "gtest/gtest.h"
#include "hl7v2/batch.h"
#include "hl7v2/issue.h"

namespace isthmus::hl7v2 {
namespace {

constexpr char kAdt[] =
    "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
    "EVN|A01|202401011200\r"
    "PID|1||12345^^^HOSP^MR~98765^^^SSA^SS||DOE^JANE^Q||19800101|F|||1 Main St^^Town^ST^12345\r"
    "OBX|1|ST|8867-4^Heart rate^LN||72\r"
    "OBX|2|ST|8480-6^Systolic^LN||120|mm[Hg]\r";

TEST(MessageTest, ReadsHeaderAndFields) {
  auto m = Message::Parse(kAdt);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->segment_count(), 5u);
  EXPECT_EQ(m->message_type(), "ADT");
  EXPECT_EQ(m->trigger_event(), "A01");
  EXPECT_EQ(m->structure(), "ADT_A01");
  EXPECT_EQ(m->control_id(), "MSG0001");
  EXPECT_EQ(m->version(), "2.5.1");
  EXPECT_EQ(m->Get("MSH-1"), "|");
  EXPECT_EQ(m->Get("MSH-2"), "^~\\&");
  EXPECT_EQ(m->Get("MSH-3"), "REG");
  EXPECT_EQ(m->Get("PID-3"), "12345^^^HOSP^MR");  // first repetition
  EXPECT_EQ(m->Get("PID-3[2]"), "98765^^^SSA^SS");
  EXPECT_EQ(m->Get("PID-3[2].4"), "SSA");
  EXPECT_EQ(m->Get("PID-3[3].1"), "");
  EXPECT_EQ(m->Get("PID-5.2"), "JANE");
  EXPECT_EQ(m->Get("PID-11.3"), "Town");
  EXPECT_EQ(m->Get("PID-99"), "");
  EXPECT_EQ(m->Get("OBX[2]-5"), "120");
  EXPECT_EQ(m->Get("OBX-5"), "72");
  EXPECT_EQ(m->Get("OBX[3]-5"), "");
  EXPECT_EQ(m->Get("ZZZ-1"), "");
  EXPECT_EQ(m->RepetitionCount(*Path::Parse("PID-3")), 2);
  EXPECT_EQ(m->CountSegments("OBX"), 2);
  EXPECT_EQ(m->FindSegment("OBX", 2)->occurrence(), 2);
  EXPECT_EQ(m->segment(2).field(0), "PID");
  EXPECT_EQ(m->segment(0).field(9), "ADT^A01^ADT_A01");
}

TEST(MessageTest, SubcomponentsAndEscapes) {
  auto m = Message::Parse(
      "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.3\r"
      "OBX|1|TX|x^y||Na\\S\\Cl&sub2\\.br\\next\r");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Get("OBX-5.1.1"), "Na\\S\\Cl");
  EXPECT_EQ(m->Get("OBX-5.1.2"), "sub2\\.br\\next");
  EXPECT_EQ(m->GetText("OBX-5.1.1"), "Na^Cl");
  EXPECT_EQ(m->GetText("OBX-5.1.2"), "sub2\nnext");
}

TEST(MessageTest, AcceptsAnyTerminatorAndKeepsBytes) {
  for (const char* term : {"\r", "\n", "\r\n"}) {
    std::string text = std::string("\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|x||ADT^A04|7|P|2.4") + term +
                       "PID|1||42" + term + term;
    auto m = Message::Parse(text);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->segment_count(), 2u);
    EXPECT_EQ(m->Get("PID-3"), "42");
    EXPECT_EQ(m->Encode(), text);
  }
}

TEST(MessageTest, NonDefaultDelimitersAndTruncationCharacter) {
  auto m = Message::Parse("MSH!@%$*#!A!B!!!x!!ADT@A08!9!P!2.7\rPID!1!!1@@@X%Y!!DOE@JO\r");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->delimiters().field, '!');
  EXPECT_EQ(m->delimiters().component, '@');
  EXPECT_EQ(m->delimiters().repetition, '%');
  EXPECT_EQ(m->delimiters().escape, '$');
  EXPECT_EQ(m->delimiters().subcomponent, '*');
  EXPECT_EQ(m->delimiters().truncation, '#');
  EXPECT_EQ(m->Get("MSH-2"), "@%$*#");
  EXPECT_EQ(m->trigger_event(), "A08");
  EXPECT_EQ(m->Get("PID-3[2]"), "Y");
  EXPECT_EQ(m->Get("PID-5.2"), "JO");
}

TEST(MessageTest, RejectsWhatCannotBeSplit) {
  struct Case { std::string input; std::string expect; };
  std::vector<Case> cases = {
      {"", "does not start with an MSH"},
      {"PID|1", "does not start with an MSH"},
      {"MSH", "does not start with an MSH"},
      {"MSH|^^\\&|A", "same character"},
      {"MSH|^~\\&|A\rpid|1\r", "segment 2 has no valid segment name"},
      {"MSH|^~\\&|A\rMSH|^~\\&|B\r", "second message"},
      {"MSHa^~\\&|", "letter, digit or space"},
  };
  for (const Case& c : cases) {
    auto m = Message::Parse(c.input);
    ASSERT_FALSE(m.ok()) << c.input;
    EXPECT_NE(m.status().message().find(c.expect), std::string::npos)
        << c.input << " -> " << m.status();
    EXPECT_TRUE(IssueFromStatus(m.status()).has_value());
  }
}

TEST(MessageTest, HeaderOnlyKeepsTheHeaderAndTheSegmentsButNoOtherFields) {
  ParseOptions o;
  o.header_only = true;
  auto m = Message::Parse(kAdt, o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->header_only());
  EXPECT_EQ(m->segment_count(), 5u);
  EXPECT_EQ(m->message_type(), "ADT");
  EXPECT_EQ(m->trigger_event(), "A01");
  EXPECT_EQ(m->control_id(), "MSG0001");
  EXPECT_EQ(m->Header(3, 0), "REG");
  EXPECT_EQ(m->Get("MSH-12"), "2.5.1");
  // The other segments: names and occurrences, no fields.
  EXPECT_EQ(m->segment(2).field(0), "PID");
  EXPECT_EQ(m->segment(2).field_count(), 1u);
  EXPECT_EQ(m->Get("PID-3"), "");
  EXPECT_EQ(m->CountSegments("OBX"), 2);
  EXPECT_EQ(m->FindSegment("OBX", 2)->occurrence(), 2);
  // Bytes as read.
  EXPECT_EQ(m->Encode(), kAdt);
  // A full parse of the same bytes is not header_only.
  EXPECT_FALSE(Message::Parse(kAdt)->header_only());
}

TEST(MessageTest, HeaderOnlyStillRejectsWhatCannotBeSplit) {
  ParseOptions o;
  o.header_only = true;
  struct Case { std::string input; std::string expect; };
  std::vector<Case> cases = {
      {"PID|1", "does not start with an MSH"},
      {"MSH|^~\\&|A\rpid|1\r", "segment 2 has no valid segment name"},
      {"MSH|^~\\&|A\rMSH|^~\\&|B\r", "second message"},
  };
  for (const Case& c : cases) {
    auto m = Message::Parse(c.input, o);
    ASSERT_FALSE(m.ok()) << c.input;
    EXPECT_NE(m.status().message().find(c.expect), std::string::npos)
        << c.input << " -> " << m.status();
  }
  ParseOptions few = o;
  few.max_segments = 3;
  EXPECT_EQ(Message::Parse(kAdt, few).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(MessageTest, ParseErrorCarriesHl7Location) {
  auto m = Message::Parse("MSH|^~\\&|A\rMSH|^~\\&|B\r");
  ASSERT_FALSE(m.ok());
  auto issue = IssueFromStatus(m.status());
  ASSERT_TRUE(issue.has_value());
  EXPECT_EQ(issue->code, ErrorCode::kSegmentSequenceError);
  EXPECT_EQ(issue->location.segment, "MSH");
  EXPECT_EQ(issue->location.segment_index, 2);
}

TEST(MessageTest, LimitsAreEnforced) {
  ParseOptions small;
  small.max_bytes = 10;
  auto m = Message::Parse(kAdt, small);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted);

  ParseOptions few;
  few.max_segments = 3;
  m = Message::Parse(kAdt, few);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(MessageTest, SetAndEncode) {
  auto m = Message::Parse(kAdt);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->Set("PID-8", "M").ok());
  ASSERT_TRUE(m->Set("PID-3[2].4", "NHS").ok());
  ASSERT_TRUE(m->Set("PID-3[3].1", "777").ok());
  ASSERT_TRUE(m->Set("PID-5.3.2", "X").ok());
  ASSERT_TRUE(m->Set("EVN-5", "OP1").ok());
  ASSERT_TRUE(m->SetText("OBX[2]-6", "a|b").ok());
  EXPECT_EQ(m->Get("PID-8"), "M");
  EXPECT_EQ(m->Get("PID-3[2]"), "98765^^^NHS^SS");
  EXPECT_EQ(m->Get("PID-3[3]"), "777");
  EXPECT_EQ(m->Get("EVN-5"), "OP1");
  EXPECT_EQ(m->GetText("OBX[2]-6"), "a|b");
  EXPECT_EQ(m->Encode(),
            "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
            "EVN|A01|202401011200|||OP1\r"
            "PID|1||12345^^^HOSP^MR~98765^^^NHS^SS~777||DOE^JANE^Q&X||19800101|M|||1 Main "
            "St^^Town^ST^12345\r"
            "OBX|1|ST|8867-4^Heart rate^LN||72\r"
            "OBX|2|ST|8480-6^Systolic^LN||120|a\\F\\b\r");
}

TEST(MessageTest, SetMshFieldAndAddSegment) {
  auto m = Message::Parse("MSH|^~\\&|A|B\nPID|1\n");
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->Set("MSH-10", "C1").ok());
  ASSERT_TRUE(m->AddSegment("NTE|1||hello").ok());
  EXPECT_EQ(m->Get("NTE-3"), "hello");
  EXPECT_EQ(m->Encode(), "MSH|^~\\&|A|B||||||C1\nPID|1\nNTE|1||hello\n");
}

TEST(MessageTest, SetRejectsBadInput) {
  auto m = Message::Parse(kAdt);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->Set("MSH-2", "^~").ok());
  EXPECT_FALSE(m->Set("PID-5.1", "A^B").ok());
  EXPECT_FALSE(m->Set("PID-5", "A|B").ok());
  EXPECT_FALSE(m->Set("PID-5", "A\rB").ok());
  EXPECT_EQ(m->Set("PV1-2", "I").code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(m->AddSegment("MSH|x").ok());
  EXPECT_FALSE(m->AddSegment("NTE|a\rb").ok());
  EXPECT_FALSE(m->modified());
  EXPECT_EQ(m->Encode(), kAdt);
}

TEST(MessageTest, CharsetFromMsh18) {
  std::string text = "MSH|^~\\&|A|B|C|D|x||ADT^A01|1|P|2.5|||||DEU|8859/1\rPID|1||1||M\xFCLLER\r";
  auto m = Message::Parse(text);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->charset().charset, Charset::kLatin1);
  EXPECT_EQ(m->GetText("PID-5"), "M\xC3\xBCLLER");
  EXPECT_EQ(m->Encode(), text);  // bytes untouched
}

TEST(MessageTest, ParseOwnedSurvivesMove) {
  std::string text = kAdt;
  auto m = Message::ParseOwned(std::move(text));
  ASSERT_TRUE(m.ok());
  Message moved = std::move(m).value();
  EXPECT_EQ(moved.Get("PID-5.1"), "DOE");
  ASSERT_TRUE(moved.Set("PID-5.1", "ROE").ok());
  Message again = std::move(moved);
  EXPECT_EQ(again.Get("PID-5"), "ROE^JANE^Q");
}

TEST(MessageTest, NthPartAndPartCount) {
  EXPECT_EQ(NthPart("a^b^c", '^', 2), "b");
  EXPECT_EQ(NthPart("a^b^c", '^', 4), "");
  EXPECT_EQ(NthPart("a", '\0', 1), "a");
  EXPECT_EQ(PartCount("", '^'), 0);
  EXPECT_EQ(PartCount("a^^", '^'), 3);
  // Found by hl7v2_parse_fuzzer (fuzz/regressions/set-extends-short-msh): a default-constructed
  // view has a null data(), which must not reach memchr (UBSan: null passed as nonnull).
  EXPECT_EQ(NthPart(std::string_view(), '^', 1), "");
  EXPECT_EQ(NthPart(std::string_view(), '^', 3), "");
}

}  // namespace
}  // namespace isthmus::hl7v2

namespace isthmus::hl7v2 {
namespace {

// Files saved from MLLP feeds keep the framing bytes: VT before MSH, FS CR after the last segment.
TEST(MessageTest, ToleratesLeftoverMllpFraming) {
  std::string text = "\x0bMSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\rPID|1||7\r\x1c\r";
  auto m = Message::Parse(text);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->segment_count(), 2u);
  EXPECT_EQ(m->Get("PID-3"), "7");
  EXPECT_EQ(m->Encode(), text);
  // FS glued to the last segment (no CR before it) is framing too, not part of PID-3.
  std::string glued = "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\rPID|1||7\x1c\r";
  auto g = Message::Parse(glued);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->Get("PID-3"), "7");
  EXPECT_EQ(g->Encode(), glued);
  ASSERT_TRUE(g->Set("PID-3", "8").ok());
  EXPECT_EQ(g->Encode(), "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\rPID|1||8\x1c\r");
  auto b = SplitBatch(text);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->messages.size(), 1u);
  EXPECT_EQ(b->messages[0].bytes.substr(0, 3), "MSH");
}

// "^~\\&" (escape doubled, as written in source code) is read as "^~\&".
TEST(MessageTest, DoubledEscapeInMsh2) {
  auto m = Message::Parse("MSH|^~\\\\&|A|B|||x||ADT^A01|1|P|2.6\rPID|1||1^^^H&X\r");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->delimiters().escape, '\\');
  EXPECT_EQ(m->delimiters().subcomponent, '&');
  EXPECT_EQ(m->Get("PID-3.4.2"), "X");
  EXPECT_EQ(m->Get("MSH-2"), "^~\\\\&");
}

// Found by hl7v2_parse_fuzzer: Set() deep into a field that Set() itself had to create (the MSH
// of "MSH|^~" has no MSH-4) read a null view with memchr.
TEST(MessageTest, SetIntoFieldsAddedBySet) {
  auto m = Message::Parse("MSH|^~");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->Set("MSH-4[2].3", "X").ok());
  EXPECT_EQ(m->Get("MSH-4[2].3"), "X");
  EXPECT_EQ(m->Encode(), "MSH|^~||~^^X");
}

}  // namespace
}  // namespace isthmus::hl7v2
