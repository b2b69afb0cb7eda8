#include "hl7v2/ack.h"

#include "gtest/gtest.h"
#include "hl7v2/message.h"

namespace isthmus::hl7v2 {
namespace {

Issue MissingPid3() {
  Issue i;
  i.code = ErrorCode::kRequiredFieldMissing;
  i.location = *Path::Parse("PID-3");
  i.message = "PID-3 (Patient Identifier List) is required";
  return i;
}

TEST(AckTest, OriginalModeAcceptV251) {
  auto m = Message::Parse("MSH|^~\\&|LAB|HOSP|ISTHMUS|IE|20240101||ORU^R01^ORU_R01|C42|P|2.5.1\rPID|1\r");
  ASSERT_TRUE(m.ok());
  AckOptions o;
  o.control_id = "A1";
  o.timestamp = "20240102030405";
  EXPECT_EQ(BuildAck(*m, o),
            "MSH|^~\\&|ISTHMUS|IE|LAB|HOSP|20240102030405||ACK^R01^ACK|A1|P|2.5.1\r"
            "MSA|AA|C42\r");
}

TEST(AckTest, ErrorInV25FormHasErr2ToErr8) {
  auto m = Message::Parse("MSH|^~\\&|LAB|HOSP|||20240101||ADT^A01|C7|T|2.5\rPID|1\r");
  ASSERT_TRUE(m.ok());
  AckOptions o;
  o.code = AckCode::kAE;
  o.control_id = "A2";
  o.timestamp = "20240102030405";
  o.issues.push_back(MissingPid3());
  // No MSH-5/6 in the original: the ACK is sent from ISTHMUS.
  EXPECT_EQ(BuildAck(*m, o),
            "MSH|^~\\&|ISTHMUS||LAB|HOSP|20240102030405||ACK^A01^ACK|A2|T|2.5\r"
            "MSA|AE|C7\r"
            "ERR||PID^1^3^1|101^Required field missing^HL70357|E||||PID-3 (Patient Identifier "
            "List) is required\r");
}

TEST(AckTest, ErrorInV23FormUsesErr1) {
  auto m = Message::Parse("MSH|^~\\&|LAB|HOSP|IE|IE|20240101||ADT^A01|C9|P|2.3\r");
  ASSERT_TRUE(m.ok());
  AckOptions o;
  o.code = AckCode::kAR;
  o.control_id = "A3";
  o.timestamp = "20240102030405";
  o.text = "rejected";
  o.issues.push_back(MissingPid3());
  EXPECT_EQ(BuildAck(*m, o),
            "MSH|^~\\&|IE|IE|LAB|HOSP|20240102030405||ACK^A01|A3|P|2.3\r"
            "MSA|AR|C9|rejected\r"
            "ERR|PID^1^3^101&Required field missing&HL70357\r");
}

TEST(AckTest, EnhancedModeCommitAckAndOldVersionType) {
  auto m = Message::Parse("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.2\r");
  ASSERT_TRUE(m.ok());
  AckOptions o;
  o.code = AckCode::kCA;
  o.control_id = "A4";
  o.timestamp = "20240102030405";
  EXPECT_EQ(BuildAck(*m, o), "MSH|^~\\&|C|D|A|B|20240102030405||ACK|A4|P|2.2\rMSA|CA|X\r");
}

TEST(AckTest, KeepsNonDefaultDelimitersAndEscapesText) {
  auto m = Message::Parse("MSH!@%$*!A!B!C!D!x!!ADT@A01!Z!P!2.6\r");
  ASSERT_TRUE(m.ok());
  AckOptions o;
  o.code = AckCode::kAE;
  o.control_id = "A5";
  o.timestamp = "20240102030405";
  Issue i = MissingPid3();
  i.message = "bad ! value";
  o.issues.push_back(i);
  EXPECT_EQ(BuildAck(*m, o),
            "MSH!@%$*!C!D!A!B!20240102030405!!ACK@A01@ACK!A5!P!2.6\r"
            "MSA!AE!Z\r"
            "ERR!!PID@1@3@1!101@Required field missing@HL70357!E!!!!bad $F$ value\r");
}

TEST(AckTest, NakForUnparsableInput) {
  AckOptions o;
  o.code = AckCode::kAR;
  o.control_id = "N1";
  o.timestamp = "20240102030405";
  Issue i;
  i.code = ErrorCode::kSegmentSequenceError;
  i.message = "segment 2 has no valid segment name";
  o.issues.push_back(i);
  EXPECT_EQ(BuildNakForUnparsable("MSH|^~\\&|S|F|R|G|x||ADT^A04|Q1|P|2.5.1\rbad segment\r", o),
            "MSH|^~\\&|R|G|S|F|20240102030405||ACK^A04^ACK|N1|P|2.5.1\r"
            "MSA|AR|Q1\r"
            "ERR|||100^Segment sequence error^HL70357|E||||segment 2 has no valid segment name\r");
  // Garbage: nothing echoed, defaults used.
  std::string nak = BuildNakForUnparsable("\x01\x02garbage", o);
  EXPECT_EQ(nak.substr(0, 25), "MSH|^~\\&|ISTHMUS||||20240");
  EXPECT_NE(nak.find("\rMSA|AR|\r"), std::string::npos);
}

}  // namespace
}  // namespace isthmus::hl7v2
