#include "mapping/v2fhir/grouping.h"

#include "gtest/gtest.h"
#include "hl7v2/dictionary.h"

namespace isthmus::v2fhir {
namespace {

std::vector<std::string> Paths(std::string_view text) {
  auto m = hl7v2::Message::Parse(text);
  EXPECT_TRUE(m.ok()) << m.status();
  const hl7v2::Dictionary* d = hl7v2::Dictionary::Find("2.5.1");
  Grouping g;
  GroupSegments(*m, d->Structure(m->structure()), &g);
  std::vector<std::string> out;
  for (size_t i = 0; i < m->segment_count(); ++i) {
    out.push_back(g.PathOf(*m, i) + (g.segments[i].node == nullptr ? " (unplaced)" : "") + " #" +
                  std::to_string(g.segments[i].group));
  }
  return out;
}

TEST(Grouping, LateRequiredSegmentJoinsItsGroupInstance) {
  // OBR is required in ORDER_OBSERVATION; coming after the ORC and an OBX it belongs to the
  // ORC's group instance (not a new ORDER_OBSERVATION), and what follows continues from it.
  auto p = Paths(
      "MSH|^~\\&|A|B|C|D|20240101||ORU^R01^ORU_R01|1|P|2.5.1\r"
      "PID|1||1\r"
      "ORC|NW|P1\r"
      "OBX|1|ST|A||early\r"
      "OBR|1|P1\r"
      "NTE|1||order note\r"
      "OBX|2|ST|B||late\r"
      "OBR|2|P2\r");
  std::vector<std::string> want = {
      "MSH #0",
      "PATIENT_RESULT.PATIENT.PID #2",
      "PATIENT_RESULT.ORDER_OBSERVATION.ORC #3",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX #4",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBR #3",
      "PATIENT_RESULT.ORDER_OBSERVATION.NTE #3",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX #5",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBR #6",
  };
  EXPECT_EQ(p, want);
}

TEST(Grouping, OruObservationsNotesSpecimensRepeatedOrders) {
  auto p = Paths(
      "MSH|^~\\&|A|B|C|D|20240101||ORU^R01^ORU_R01|1|P|2.5.1\r"
      "PID|1||1\r"
      "OBR|1||F1\r"
      "OBX|1|NM|X||1\r"
      "NTE|1||note on OBX 1\r"
      "OBX|2|NM|Y||2\r"
      "SPM|1|S1\r"
      "OBX|3|NM|Z||3\r"
      "OBR|2||F2\r"
      "OBX|1|ST|W||x\r"
      "ZXY|1\r");
  std::vector<std::string> want = {
      "MSH #0",
      "PATIENT_RESULT.PATIENT.PID #2",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBR #3",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX #4",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.NTE #4",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX #5",
      "PATIENT_RESULT.ORDER_OBSERVATION.SPECIMEN.SPM #6",
      "PATIENT_RESULT.ORDER_OBSERVATION.SPECIMEN.OBX #6",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBR #7",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX #8",
      "PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.ZXY (unplaced) #8",
  };
  EXPECT_EQ(p, want);
}

TEST(Grouping, NoStructureLeavesEverythingAtTheTop) {
  auto m = hl7v2::Message::Parse("MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z01|1|P|2.5.1\rPID|1\r");
  ASSERT_TRUE(m.ok());
  Grouping g;
  GroupSegments(*m, nullptr, &g);
  ASSERT_EQ(g.segments.size(), 2u);
  EXPECT_EQ(g.segments[1].group, 0);
  EXPECT_EQ(g.segments[1].node, nullptr);
}

}  // namespace
}  // namespace isthmus::v2fhir
