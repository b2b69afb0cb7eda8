#include "hl7v2/dictionary.h"

#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

TEST(DictionaryTest, KnowsAllVersionsFrom21To281) {
  std::vector<std::string_view> v = Dictionary::KnownVersions();
  EXPECT_EQ(v, (std::vector<std::string_view>{"2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1",
                                              "2.6", "2.7", "2.7.1", "2.8", "2.8.1"}));
  for (std::string_view version : v) {
    const Dictionary* d = Dictionary::Find(version);
    ASSERT_NE(d, nullptr) << version;
    EXPECT_EQ(d->version(), version);
    EXPECT_NE(d->Segment("MSH"), nullptr) << version;
    EXPECT_GT(d->structure_count(), 30u) << version;
  }
}

TEST(DictionaryTest, FallsBackToNearestLowerVersion) {
  EXPECT_EQ(Dictionary::Resolve("2.5.2"), "2.5.1");
  EXPECT_EQ(Dictionary::Resolve("2.3.2"), "2.3.1");
  EXPECT_EQ(Dictionary::Resolve("2.8.2"), "2.8.1");
  EXPECT_EQ(Dictionary::Resolve("2.9"), "2.8.1");
  EXPECT_EQ(Dictionary::Resolve("2.4"), "2.4");
  EXPECT_EQ(Dictionary::Resolve("2.0"), "");
  EXPECT_EQ(Dictionary::Resolve("3.0"), "");
  EXPECT_EQ(Dictionary::Resolve("banana"), "");
  EXPECT_EQ(Dictionary::Resolve(""), "");
  EXPECT_EQ(Dictionary::Find("2.0"), nullptr);
  EXPECT_EQ(Dictionary::Find("2.5.2"), Dictionary::Find("2.5.1"));
}

TEST(DictionaryTest, Pid3In251IsRequiredRepeatingCx) {
  const Dictionary* d = Dictionary::Find("2.5.1");
  ASSERT_NE(d, nullptr);
  const FieldDef* f = d->Field("PID", 3);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->datatype, "CX");
  EXPECT_TRUE(f->required());
  EXPECT_TRUE(f->repeating());
  EXPECT_EQ(f->name, "Patient Identifier List");
  // PID-8 Administrative Sex is IS with user-defined table 0001 in 2.5.1.
  const FieldDef* sex = d->Field("PID", 8);
  ASSERT_NE(sex, nullptr);
  EXPECT_EQ(sex->datatype, "IS");
  EXPECT_EQ(sex->table, 1);
  EXPECT_FALSE(sex->repeating());
  EXPECT_EQ(d->Field("PID", 99), nullptr);
  EXPECT_EQ(d->Field("ZZZ", 1), nullptr);
}

TEST(DictionaryTest, DatatypeComponents) {
  const Dictionary* d = Dictionary::Find("2.5.1");
  const DatatypeDef* cx = d->Datatype("CX");
  ASSERT_NE(cx, nullptr);
  ASSERT_GE(cx->components.size(), 10u);
  EXPECT_EQ(cx->components[0].datatype, "ST");  // CX.1 ID Number
  EXPECT_EQ(cx->components[3].datatype, "HD");  // CX.4 Assigning Authority
  EXPECT_EQ(cx->components[4].datatype, "ID");  // CX.5 Identifier Type Code
  EXPECT_EQ(cx->components[4].table, 203);
  const DatatypeDef* st = d->Datatype("ST");
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->composite());
  // TS is composite from 2.5 on: TS.1 is DTM.
  ASSERT_NE(d->Datatype("TS"), nullptr);
  EXPECT_EQ(d->Datatype("TS")->components[0].datatype, "DTM");
}

TEST(DictionaryTest, AdtA01StructureBeginsMshSftEvn) {
  const Dictionary* d = Dictionary::Find("2.5.1");
  const MessageStructureDef* s = d->Structure("ADT_A01");
  ASSERT_NE(s, nullptr);
  ASSERT_GE(s->nodes.size(), 4u);
  EXPECT_EQ(s->nodes[0].name, "MSH");
  EXPECT_EQ(s->nodes[0].min, 1);
  EXPECT_EQ(s->nodes[0].max, 1);
  EXPECT_EQ(s->nodes[1].name, "SFT");  // [{SFT}]
  EXPECT_EQ(s->nodes[1].min, 0);
  EXPECT_EQ(s->nodes[1].max, 0);
  EXPECT_EQ(s->nodes[2].name, "EVN");
  EXPECT_EQ(s->nodes[2].min, 1);
  EXPECT_EQ(s->nodes[3].name, "PID");
  // [{PROCEDURE}] is an optional repeating group that starts with PR1.
  bool found = false;
  for (const StructureNode& n : s->nodes) {
    if (n.name != "PROCEDURE") continue;
    found = true;
    EXPECT_TRUE(n.group);
    EXPECT_EQ(n.min, 0);
    EXPECT_EQ(n.max, 0);
    ASSERT_FALSE(n.children.empty());
    EXPECT_EQ(n.children[0].name, "PR1");
  }
  EXPECT_TRUE(found);
}

TEST(DictionaryTest, EventMapsToStructure) {
  const Dictionary* d = Dictionary::Find("2.5.1");
  const MessageStructureDef* s = d->StructureFor("ADT", "A04");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->nodes[0].name, "MSH");
  const MessageStructureDef* oru = d->StructureFor("ORU", "R01");
  ASSERT_NE(oru, nullptr);
  EXPECT_EQ(oru->id, "ORU_R01");
  EXPECT_NE(d->StructureFor("ACK", "A01"), nullptr);  // falls back to the ACK structure
  EXPECT_EQ(d->StructureFor("XYZ", "Q99"), nullptr);
  EXPECT_TRUE(d->HasMessageType("ADT"));
  EXPECT_FALSE(d->HasMessageType("XYZ"));
}

TEST(DictionaryTest, TablesFollowTheirVersion) {
  // Table 0001: "A" (Ambiguous) and "N" (Not applicable) were added in v2.4.
  const TableDef* t23 = Dictionary::Find("2.3")->Table(1);
  const TableDef* t251 = Dictionary::Find("2.5.1")->Table(1);
  ASSERT_NE(t23, nullptr);
  ASSERT_NE(t251, nullptr);
  EXPECT_TRUE(t23->Contains("F"));
  EXPECT_FALSE(t23->Contains("A"));
  EXPECT_TRUE(t251->Contains("A"));
  EXPECT_TRUE(t251->Contains("U"));
  EXPECT_FALSE(t251->Contains("X"));
  // Table 0104 (version ID) lists 2.8.1 in the 2.8.1 dictionary.
  const Dictionary* d281 = Dictionary::Find("2.8.1");
  ASSERT_NE(d281, nullptr);
  EXPECT_EQ(d281->data_version(), "2.7.1");
  ASSERT_NE(d281->Table(104), nullptr);
  EXPECT_TRUE(d281->Table(104)->Contains("2.8.1"));
  EXPECT_FALSE(Dictionary::Find("2.5.1")->Table(104)->Contains("2.8.1"));
}

TEST(DictionaryTest, LaterVersionsUseDtm) {
  const Dictionary* d = Dictionary::Find("2.7");
  const FieldDef* f = d->Field("PID", 7);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->datatype, "DTM");
  EXPECT_EQ(Dictionary::Find("2.8.1")->Field("PID", 7)->datatype, "DTM");
}

}  // namespace
}  // namespace isthmus::hl7v2
