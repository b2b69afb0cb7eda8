#include "mapping/v2fhir/loader.h"

#include "gtest/gtest.h"

namespace isthmus::v2fhir {
namespace {

std::string Errors(std::vector<MapFile> files) {
  auto r = CompileMaps(files);
  return r.ok() ? "OK" : std::string(r.status().message());
}

MapFile F(std::string rel, std::string text) { return {rel, "maps/" + rel, std::move(text)}; }

TEST(Loader, ShippedMapsLoad) {
  auto r = LoadMaps({std::string(ISTHMUS_SOURCE_DIR) + "/maps"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE((*r)->FindEvent("ADT", "A04"), nullptr);
  EXPECT_EQ((*r)->FindEvent("ADT", "A08")->name, "ADT_A01");
  EXPECT_NE((*r)->FindMessage("ORU_R01"), nullptr);
}

TEST(Loader, ErrorsCarryFileLineColumn) {
  std::string e = Errors({
      F("datatypes/CX[Identifier].yaml",
        "datatype: CX\nrules:\n  - {component: 1, element: value, type: strng}\n"
        "  - {component: 4, element: system, datatype: \"HD[Nope]\"}\n"
        "  - {component: 5, element: \"type[\", type: string}\n"
        "  - {component: 5, element: x, type: code, vocabulary: Missing}\n"
        "  - {component: 1, when: \"CX.1 =\", element: x, type: string}\n"
        "  - {component: 1, element: x, type: string, colour: red}\n"),
      F("segments/PID[Patient].yaml", "segment: PID\nrules:\n  - {field: PV1-3, element: x, type: string}\n"),
  });
  EXPECT_NE(e.find("maps/datatypes/CX[Identifier].yaml:3:42: unknown type 'strng'"), std::string::npos) << e;
  EXPECT_NE(e.find("maps/datatypes/CX[Identifier].yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("no datatype map 'HD[Nope]'"), std::string::npos) << e;
  EXPECT_NE(e.find(":5:") , std::string::npos) << e;
  EXPECT_NE(e.find("no vocabulary 'Missing'"), std::string::npos) << e;
  EXPECT_NE(e.find("condition: column"), std::string::npos) << e;
  EXPECT_NE(e.find("colour"), std::string::npos) << e;
  EXPECT_NE(e.find("maps/segments/PID[Patient].yaml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("must be PID-F"), std::string::npos) << e;
}

TEST(Loader, MessageMapNeedsHeaderAndProvenance) {
  std::string e = Errors({F("messages/X_Y.yaml", "resources:\n  - {segment: PID, resource: Patient}\n")});
  EXPECT_NE(e.find("maps/messages/X_Y.yaml:1:1: a message map must map MSH"), std::string::npos) << e;
}

TEST(Loader, IncludeCopiesEntriesFirst) {
  const char* base =
      "events: [ADT^A01]\nignore: [SFT]\nresources:\n"
      "  - {segment: MSH, resource: MessageHeader}\n  - {segment: MSH, resource: Provenance}\n";
  auto r = CompileMaps({F("messages/A_B.yaml", base),
                        F("messages/A_C.yaml", "events: [ADT^A02]\ninclude: [A_B]\nresources:\n"
                                               "  - {segment: PID, resource: Patient}\n"),
                        F("messages/A_D.yaml", "include: [A_C]\n")});
  ASSERT_TRUE(r.ok()) << r.status();
  const MessageMap* c = (*r)->FindEvent("ADT", "A02");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->entries.size(), 3u);
  EXPECT_EQ(c->entries[0].resource, "MessageHeader");
  EXPECT_EQ(c->entries[2].resource, "Patient");
  EXPECT_EQ(c->ignore, std::vector<std::string>{"SFT"});
  EXPECT_EQ((*r)->FindMessage("A_D")->entries.size(), 3u);
  std::string e = Errors({F("messages/X_Y.yaml", "include: [Nope]\n")});
  EXPECT_NE(e.find("'include' names no message map 'Nope'"), std::string::npos) << e;
  e = Errors({F("messages/X_Y.yaml", "include: [X_Z]\n"), F("messages/X_Z.yaml", "include: [X_Y]\n")});
  EXPECT_NE(e.find("includes itself"), std::string::npos) << e;
}

TEST(Loader, AnIntoEntryNamesAnEarlierEntrysAs) {
  // IN1[C] names IN1-11's Organization `holder`; `payer` is a typo, PID has no such entry, and an
  // `into` entry has no resource of its own to merge into.
  std::string e = Errors({
      F("datatypes/XON[O].yaml", "datatype: XON\nrules:\n  - {component: 1, element: name, type: string}\n"),
      F("segments/IN1[C].yaml", "segment: IN1\nresource: Coverage\nrules:\n"
        "  - {field: IN1-11, element: policyHolder, datatype: \"XON[O]\", resource: Organization, as: holder}\n"),
      F("segments/IN2[O].yaml", "segment: IN2\nresource: Organization\nrules:\n"
        "  - {field: IN2-49, element: \"contact[+].name.text\", type: string}\n"),
      F("messages/X_Y.yaml",
        "resources:\n"
        "  - {segment: IN1, resource: Coverage, map: \"IN1[C]\"}\n"
        "  - {segment: IN2, resource: Organization, into: IN1.payer, map: \"IN2[O]\"}\n"
        "  - {segment: IN2, resource: Organization, into: PID.holder, map: \"IN2[O]\"}\n"
        "  - {segment: IN2, resource: Organization, into: IN1.holder, merge: true, map: \"IN2[O]\"}\n"
        "  - {segment: IN2, resource: Organization, into: IN1.holder, map: \"IN2[O]\"}\n")});
  EXPECT_NE(e.find("X_Y.yaml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("'into: IN1.payer' needs an earlier entry of this message map for segment IN1"),
            std::string::npos) << e;
  EXPECT_NE(e.find("'into: PID.holder' needs an earlier entry"), std::string::npos) << e;
  EXPECT_NE(e.find("X_Y.yaml:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("no 'merge', 'id', 'references', 'label' or 'from'"), std::string::npos) << e;
  EXPECT_EQ(e.find("X_Y.yaml:6:"), std::string::npos) << e;  // the good one
}

TEST(Loader, LabelFromAndMergeLast) {
  // `from` names the segment the entry's map reads (the map must be that segment's), `label` is
  // a name, and `merge: last` takes whatever label the last resource filled has.
  std::string e = Errors({
      F("segments/ORC[MR].yaml", "segment: ORC\nresource: MedicationRequest\nrules:\n"
        "  - {element: intent, value: order}\n"),
      F("segments/RXE[MR].yaml", "segment: RXE\nresource: MedicationRequest\nrules:\n"
        "  - {element: intent, value: filler-order}\n"),
      F("messages/X_Y.yaml",
        "resources:\n"
        "  - {segment: MSH, resource: MessageHeader}\n"
        "  - {segment: MSH, resource: Provenance}\n"
        "  - {segment: ORC, resource: MedicationRequest, label: order, map: \"ORC[MR]\"}\n"
        "  - {segment: RXE, resource: MedicationRequest, label: enc, from: ORC, map: \"ORC[MR]\",\n"
        "     references: [{element: basedOn, to: MedicationRequest, label: order}]}\n"
        "  - {segment: RXE, resource: MedicationRequest, label: enc, from: ORC, map: \"RXE[MR]\"}\n"
        "  - {segment: RXE, resource: MedicationRequest, label: enc, merge: last, map: \"RXE[MR]\"}\n"
        "  - {segment: RXE, resource: MedicationRequest, label: \"\", map: \"RXE[MR]\"}\n"
        "  - {segment: RXE, resource: MedicationRequest, merge: last, map: \"RXE[MR]\"}\n")});
  EXPECT_EQ(e.find("X_Y.yaml:4:"), std::string::npos) << e;
  EXPECT_EQ(e.find("X_Y.yaml:5:"), std::string::npos) << e;
  EXPECT_EQ(e.find("X_Y.yaml:6:"), std::string::npos) << e;
  EXPECT_NE(e.find("segment map 'RXE[MR]' is for RXE, not ORC"), std::string::npos) << e;
  EXPECT_NE(e.find("X_Y.yaml:8:"), std::string::npos) << e;
  EXPECT_NE(e.find("'merge: last' adds to the last resource filled"), std::string::npos) << e;
  EXPECT_NE(e.find("X_Y.yaml:9:"), std::string::npos) << e;
  EXPECT_NE(e.find("'label' is a name"), std::string::npos) << e;
  EXPECT_EQ(e.find("X_Y.yaml:10:"), std::string::npos) << e;
}

TEST(Loader, IntoNeedsAnEarlierAs) {
  std::string e = Errors({F("segments/IN1[Coverage].yaml",
                            "segment: IN1\nrules:\n"
                            "  - {field: IN1-5, into: payor, element: address, type: string}\n"
                            "  - {field: IN1-4, element: payor, type: string, as: payor}\n")});
  EXPECT_NE(e.find("IN1[Coverage].yaml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("'into: payor' needs an earlier rule"), std::string::npos) << e;
  EXPECT_NE(e.find("IN1[Coverage].yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("'as' names the resource"), std::string::npos) << e;
}

TEST(Loader, IfAbsentNeedsMemberNames) {
  std::string e = Errors({F("segments/OBR[ServiceRequest].yaml",
                            "segment: OBR\nrules:\n"
                            "  - {element: status, value: unknown, if_absent: true}\n"
                            "  - {field: OBR-4, element: code.text, type: string, if_absent: true}\n"
                            "  - {element: note.text, value: x, if_absent: \"note[+].text\"}\n"
                            "  - {element: note.text, value: x, if_absent: [note, code]}\n"
                            "  - {element: note.text, value: x, if_absent: [note, \"code[1]\"]}\n")});
  EXPECT_EQ(e.find("OBR[ServiceRequest].yaml:3:"), std::string::npos) << e;
  EXPECT_EQ(e.find("OBR[ServiceRequest].yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("OBR[ServiceRequest].yaml:5:"), std::string::npos) << e;
  EXPECT_EQ(e.find("OBR[ServiceRequest].yaml:6:"), std::string::npos) << e;  // a list of members
  EXPECT_NE(e.find("OBR[ServiceRequest].yaml:7:"), std::string::npos) << e;  // one is not
  EXPECT_NE(e.find("'if_absent' (true or an element, or a list of elements) needs"), std::string::npos) << e;
}

TEST(Loader, RepeatRestIndexBundleAndScopeResource) {
  std::string e = Errors({F("segments/PID[Patient].yaml",
                            "segment: PID\nrules:\n"
                            "  - {field: PID-3, element: \"identifier[+].value\", type: string, repeat: rest}\n"
                            "  - {field: PID-3, element: \"identifier[+].value\", type: string, repeat: 2}\n"
                            "  - {field: PID-3, element: \"identifier[+].value\", type: string, repeat: 0}\n"
                            "  - {field: PID-3, element: \"identifier[+].value\", type: string, repeat: last}\n"
                            "  - {element: link.other, type: scope-resource}\n"
                            "  - {element: link.other, type: scope-resource, resource: Patient}\n"),
                          F("datatypes/CX[X].yaml",
                            "datatype: CX\nrules:\n"
                            "  - {element: value, type: string, repeat: rest}\n"),
                          F("messages/X_Y.yaml",
                            "resources:\n"
                            "  - segment: MSH\n    resource: Provenance\n    references:\n"
                            "      - {element: \"target[+]\", to: \"Bundle[*]\"}\n"
                            "      - {element: \"target[+]\", to: Bundle, label: x}\n"
                            "      - {element: \"target[+]\", to: Bundle}\n")});
  EXPECT_EQ(e.find("PID[Patient].yaml:3:"), std::string::npos) << e;
  EXPECT_EQ(e.find("PID[Patient].yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("PID[Patient].yaml:5:"), std::string::npos) << e;  // repetitions are 1-based
  EXPECT_NE(e.find("PID[Patient].yaml:6:"), std::string::npos) << e;
  EXPECT_NE(e.find("'repeat' is 'each', 'first', 'rest'"), std::string::npos) << e;
  EXPECT_NE(e.find("PID[Patient].yaml:7:"), std::string::npos) << e;
  EXPECT_NE(e.find("type scope-resource needs 'resource: Type'"), std::string::npos) << e;
  EXPECT_EQ(e.find("PID[Patient].yaml:8:"), std::string::npos) << e;
  EXPECT_NE(e.find("CX[X].yaml:3:"), std::string::npos) << e;  // a datatype map has no field
  EXPECT_NE(e.find("'repeat: rest' needs a segment map rule with a 'field'"), std::string::npos) << e;
  EXPECT_NE(e.find("X_Y.yaml:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("X_Y.yaml:6:"), std::string::npos) << e;
  EXPECT_NE(e.find("'to: Bundle' is the Bundle itself"), std::string::npos) << e;
  EXPECT_EQ(e.find("X_Y.yaml:7:"), std::string::npos) << e;
}

TEST(Loader, YamlSyntaxError) {
  std::string e = Errors({F("vocabulary/V.yaml", "codes: {a: [\n")});
  EXPECT_NE(e.find("maps/vocabulary/V.yaml:"), std::string::npos) << e;
}

}  // namespace
}  // namespace isthmus::v2fhir
