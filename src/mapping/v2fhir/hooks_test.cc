// Lua hooks and site ConceptMaps of the v2 -> FHIR converter, on small maps written here (not
// the shipped ones, so that each expectation follows from the few rules below).
#include "mapping/v2fhir/hooks.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mapping/v2fhir/converter.h"
#include "mapping/v2fhir/loader.h"

namespace isthmus::v2fhir {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kMsg[] =
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
    "PID|1||777^^^HOSP^MR~888^^^CITY^PI||ROE^RICHARD||19700101|M\r"
    "OBX|1|ST|GLU^Glucose^LOCAL||ninety\r"
    "OBX|2|ST|DROP^Scratch^LOCAL||x\r"
    "OBX|3|ST|K^Potassium^OTHER||four\r";

MapFile F(std::string rel, std::string text) { return {rel, "maps/" + rel, std::move(text)}; }

// The maps: MSH -> MessageHeader + Provenance, PID -> Patient (family name, gender), OBX ->
// Observation (code from OBX-3, valueString from OBX-5, subject -> the Patient). `pid_hook`,
// `obx_hook`, `message_hook`: function names of lua/site.lua to declare (empty: none).
std::vector<MapFile> Files(std::string lua, std::string pid_hook = "", std::string obx_hook = "",
                           std::string message_hook = "", std::string obx_code_extra = "") {
  auto hooks = [](const std::string& fn) {
    return fn.empty() ? std::string() : "hooks:\n  - {lua: site.lua, function: " + fn + "}\n";
  };
  return {
      F("messages/ADT_A01.yaml",
        "events: [ADT^A01]\n" + hooks(message_hook) +
            "resources:\n"
            "  - {segment: MSH, resource: MessageHeader, map: \"MSH[MessageHeader]\"}\n"
            "  - {segment: MSH, resource: Provenance}\n"
            "  - {segment: PID, resource: Patient, id: [PID-3.1], map: \"PID[Patient]\"}\n"
            "  - segment: OBX\n"
            "    resource: Observation\n"
            "    map: \"OBX[Observation]\"\n"
            "    references: [{element: subject, to: Patient}]\n"),
      F("segments/MSH[MessageHeader].yaml",
        "segment: MSH\nrules:\n  - {field: MSH-9.2, element: eventCoding.code, type: string}\n"),
      F("segments/PID[Patient].yaml",
        "segment: PID\nrules:\n"
        "  - {field: PID-5.1, element: \"name[+].family\", type: string}\n"
        "  - {field: PID-8, element: gender, type: string}\n" +
            hooks(pid_hook)),
      F("segments/OBX[Observation].yaml",
        "segment: OBX\nrules:\n"
        "  - {field: OBX-3, element: code, datatype: \"CWE[CodeableConcept]\"" + obx_code_extra +
            "}\n"
            "  - {field: OBX-5, element: valueString, type: string}\n" +
            hooks(obx_hook)),
      F("datatypes/CWE[CodeableConcept].yaml",
        "datatype: CWE\nrules:\n"
        "  - {element: \"coding[+]\", type: Coding}\n"
        "  - {component: 2, element: text, type: string}\n"),
      F("lua/site.lua", std::move(lua)),
  };
}

absl::StatusOr<ConvertResult> ConvertWith(const std::vector<MapFile>& files, bool explain = false,
                                  const char* text = kMsg) {
  auto maps = CompileMaps(files);
  if (!maps.ok()) return maps.status();
  auto m = hl7v2::Message::Parse(text);
  EXPECT_TRUE(m.ok()) << m.status();
  ConvertOptions o;
  o.explain = explain;
  return Converter(*maps).Convert(*m, o);
}

size_t Count(const std::string& s, std::string_view what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Hooks, SegmentHookReadsPathsAndSetsElements) {
  // PID hook: the second identifier's authority (PID-3[2].4 = CITY) and the first one's id
  // (PID-3.1 = 777) become an identifier; the gender the map wrote (M) is replaced.
  // OBX hook: "OBX-1" names the hook's own OBX, so each Observation gets its own set id (1, 2, 3)
  // while "PID-8" (another segment) reads the PID.
  auto r = ConvertWith(Files("function after_pid(msg, res, bundle)\n"
                     "  res:set('identifier[+].system', 'urn:city:' .. msg:get('PID-3[2].4'))\n"
                     "  res:set('identifier[last].value', msg:get('PID-3.1'))\n"
                     "  res:set('gender', 'male')\n"
                     "end\n"
                     "function after_obx(msg, res, bundle)\n"
                     "  res:set('note[+].text', 'set ' .. msg:get('OBX-1') .. ' of ' .. msg:get('PID-8'))\n"
                     "  res:set('valueInteger', nil)\n"
                     "end\n",
                     "after_pid", "after_obx"));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string& j = r->json;
  EXPECT_THAT(j, HasSubstr(R"("identifier":[{"system":"urn:city:CITY","value":"777"}])"));
  EXPECT_THAT(j, HasSubstr(R"("gender":"male")"));
  EXPECT_THAT(j, Not(HasSubstr(R"("gender":"M")")));
  EXPECT_THAT(j, HasSubstr(R"("note":[{"text":"set 1 of M"}])"));
  EXPECT_THAT(j, HasSubstr(R"("note":[{"text":"set 2 of M"}])"));
  EXPECT_THAT(j, HasSubstr(R"("note":[{"text":"set 3 of M"}])"));
}

TEST(Hooks, GetTypesCountAndObjects) {
  // get returns what the maps wrote (a string; nil for absent), count counts list elements; a
  // hook sets numbers and booleans as JSON numbers and booleans.
  auto r = ConvertWith(Files("function after_message(msg, bundle)\n"
                     "  local p = bundle:find('Patient')\n"
                     "  assert(p:get('name[1].family') == 'ROE', 'family')\n"
                     "  assert(p:get('birthDate') == nil, 'absent')\n"
                     "  assert(p:count('name') == 1, 'count')\n"
                     "  assert(#bundle:resources('Observation') == 3, 'observations')\n"
                     "  assert(#bundle:resources() == 6, 'all')\n"
                     "  assert(p:type() == 'Patient' and tostring(p) == 'Patient/' .. p:id())\n"
                     "  p:set('multipleBirthInteger', 2)\n"
                     "  p:set('active', true)\n"
                     "  assert(p:get('multipleBirthInteger') == 2 and p:get('active') == true)\n"
                     "  local ok, err = pcall(p.get, p, 'name')\n"
                     "  assert(not ok and err:find('is a list'), err)\n"
                     "end\n",
                     "", "", "after_message"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->json, HasSubstr(R"("multipleBirthInteger":2,"active":true)"));
}

TEST(Hooks, MessageHookDropsAResourceAndRemovesAnElement) {
  // The message hook runs before references are written: the dropped Observation (OBX-3 DROP)
  // is not in the Bundle and nothing refers to it; the other two still get their subject.
  auto r = ConvertWith(Files("function after_message(msg, bundle)\n"
                     "  for _, o in ipairs(bundle:resources('Observation')) do\n"
                     "    if o:get('code.coding[1].code') == 'DROP' then o:drop() end\n"
                     "  end\n"
                     "  bundle:find('Patient'):remove('gender')\n"
                     "end\n",
                     "", "", "after_message"));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string& j = r->json;
  EXPECT_THAT(j, Not(HasSubstr("DROP")));
  EXPECT_EQ(Count(j, R"("resourceType":"Observation")"), 2u) << j;
  EXPECT_EQ(Count(j, R"("subject":{"reference":"Patient/)"), 2u) << j;
  EXPECT_THAT(j, Not(HasSubstr("gender")));
  EXPECT_THAT(j, HasSubstr(R"("family":"ROE")"));
  // Entries: MessageHeader, Provenance, Patient, 2 Observations.
  EXPECT_EQ(Count(j, R"("request":{"method":"PUT")"), 5u) << j;
}

TEST(Hooks, SegmentHookDropsItsResource) {
  // Dropping in a segment hook: the Observation of OBX 2 is gone (by its value x).
  auto r = ConvertWith(Files("function after_obx(msg, res)\n"
                     "  if msg:get('OBX-5') == 'x' then res:drop() end\n"
                     "end\n",
                     "", "after_obx"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Count(r->json, R"("resourceType":"Observation")"), 2u) << r->json;
  EXPECT_THAT(r->json, Not(HasSubstr(R"("valueString":"x")")));
}

TEST(Hooks, ReferencesToADroppedResourceAreLeftOut) {
  // OBX-16 makes a Practitioner (a `resource:` rule writes performer[+] -> Practitioner/<id>
  // while the OBX is converted); the message hook drops it: the performer References, written
  // before the hook, are left out with it, and the Observations stay.
  std::vector<MapFile> files = Files("function after_message(msg, bundle)\n"
                                     "  bundle:find('Practitioner'):drop()\n"
                                     "end\n",
                                     "", "", "after_message");
  files[3].text += "  - {field: OBX-16, element: \"performer[+]\", datatype: \"XCN[Practitioner]\", "
                   "resource: Practitioner}\n";
  files.push_back(F("datatypes/XCN[Practitioner].yaml",
                    "datatype: XCN\nrules:\n  - {component: 2, element: \"name[+].family\", type: string}\n"));
  std::string text = kMsg;
  text.replace(text.find("ninety"), 6, "ninety|||||||||||DOC1^WHO");
  auto r = ConvertWith(files, false, text.c_str());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->json, Not(HasSubstr("Practitioner")));
  EXPECT_THAT(r->json, Not(HasSubstr("performer")));
  EXPECT_EQ(Count(r->json, R"("resourceType":"Observation")"), 3u) << r->json;
  // Without the hook (same maps but no message hook), the Practitioner and the reference are there.
  files[0] = Files("", "", "", "")[0];
  auto without = ConvertWith(files, false, text.c_str());
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_THAT(without->json, HasSubstr(R"("performer":[{"reference":"Practitioner/)"));
  EXPECT_THAT(without->json, HasSubstr(R"("family":"WHO")"));
}

TEST(Hooks, ErrorNamesTheHookAndScriptLine) {
  // error() on line 3 of the script; the hook is declared on line 5 of PID[Patient].yaml
  // (segment, rules, two rules, then `hooks:` on 5 and its item on 6).
  auto r = ConvertWith(Files("function after_pid(msg, res)\n"
                     "  local x = 1\n"
                     "  error('no MRN for ' .. res:type())\n"
                     "end\n",
                     "after_pid"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("maps/segments/PID[Patient].yaml:6: hook 'after_pid' failed"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("maps/lua/site.lua:3: no MRN for Patient"));
}

TEST(Hooks, BadPathAndReadOnlyMessageAreErrors) {
  auto bad_path = ConvertWith(Files("function after_pid(msg, res)\n  res:set('name[', 'x')\nend\n", "after_pid"));
  ASSERT_FALSE(bad_path.ok());
  EXPECT_THAT(std::string(bad_path.status().message()), HasSubstr("maps/lua/site.lua:2: element 'name['"));
  auto set_id = ConvertWith(Files("function after_pid(msg, res)\n  res:set('id', 'mine')\nend\n", "after_pid"));
  ASSERT_FALSE(set_id.ok());
  EXPECT_THAT(std::string(set_id.status().message()), HasSubstr("maps/lua/site.lua:2: a hook keeps a resource's resourceType and id"));
  auto set_msg = ConvertWith(Files("function after_pid(msg, res)\n  msg:set('PID-8', 'F')\nend\n", "after_pid"));
  ASSERT_FALSE(set_msg.ok());
  EXPECT_THAT(std::string(set_msg.status().message()), HasSubstr("maps/lua/site.lua:2: msg is read-only"));
}

TEST(Hooks, InstructionLimitStopsAnInfiniteLoop) {
  auto r = ConvertWith(Files("function after_message(msg, bundle)\n  while true do end\nend\n", "", "",
                     "after_message"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("instruction limit exceeded"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("maps/lua/site.lua:2"));
}

TEST(Hooks, ExplainShowsTheHookAsTheWriter) {
  auto r = ConvertWith(Files("function after_pid(msg, res)\n"
                     "  res:set('gender', 'male')\n"
                     "end\n",
                     "after_pid"),
               /*explain=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  bool found = false;
  for (const ExplainLine& l : r->explain) {
    if (l.element.ends_with(" gender")) {
      found = true;
      EXPECT_EQ(l.value, "male");
      EXPECT_EQ(l.source, "(hook)");
      EXPECT_EQ(l.rules, "maps/lua/site.lua:2 (hook after_pid of maps/segments/PID[Patient].yaml:6)");
    }
  }
  EXPECT_TRUE(found);
}

TEST(Hooks, LoadErrors) {
  // A hook naming a script that is not there, or a function the script does not define.
  std::vector<MapFile> files = Files("function other() end\n", "after_pid");
  auto r = CompileMaps(files);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("maps/lua/site.lua defines no global function 'after_pid'"));
  files.back().relative_path = "lua/elsewhere.lua";
  r = CompileMaps(files);
  ASSERT_FALSE(r.ok());
  // Line 6 of PID[Patient].yaml is "  - {lua: site.lua, ...}": the value starts at column 11.
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("maps/segments/PID[Patient].yaml:6:11: no Lua script 'site.lua' (lua/site.lua)"));
}

TEST(Hooks, AHooksFileHooksMapsWithoutReplacingThem) {
  // hooks/site.yaml adds a segment hook to PID[Patient] and a message hook to ADT_A01, whose
  // files declare none; an unknown map name is an error at its line and column.
  std::vector<MapFile> files = Files("function after_pid(msg, res) res:set('gender', 'other') end\n"
                                     "function after_msg(msg, bundle)\n"
                                     "  bundle:find('Patient'):set('active', false)\n"
                                     "end\n");
  files.push_back(F("hooks/site.yaml",
                    "- {segment: \"PID[Patient]\", lua: site.lua, function: after_pid}\n"
                    "- {message: ADT_A01, lua: site.lua, function: after_msg}\n"));
  auto r = ConvertWith(files);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->json, HasSubstr(R"("gender":"other","active":false)"));
  files.back().text = "- {message: ADT_A99, lua: site.lua, function: after_msg}\n";
  auto e = CompileMaps(files);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()),
              HasSubstr("maps/hooks/site.yaml:1:13: no message map 'ADT_A99' (messages/ADT_A99.yaml)"));
}

// ---- ConceptMaps --------------------------------------------------------------------------

// The maps above with a CWE map that gives each coding the system "urn:local:" + CWE.3 (these
// maps have no CodingSystem vocabulary), and conceptmaps/LocalLab.json.
std::vector<MapFile> CodeFiles(std::string conceptmap, std::string extra = "") {
  std::vector<MapFile> f = Files("", "", "", "", extra);
  f.pop_back();  // no Lua
  // Codings with system "urn:local:<CWE.3>".
  f[4] = F("datatypes/CWE[CodeableConcept].yaml",
           "datatype: CWE\nrules:\n"
           "  - {component: 1, element: \"coding[+].code\", type: string}\n"
           "  - {component: 3, element: \"coding[last].system\", type: string, prefix: \"urn:local:\"}\n"
           "  - {component: 2, element: \"coding[last].display\", type: string}\n");
  f.push_back(F("conceptmaps/LocalLab.json", std::move(conceptmap)));
  return f;
}

constexpr char kLocalLab[] = R"({
  "resourceType": "ConceptMap",
  "url": "http://hosp.example/fhir/ConceptMap/local-lab",
  "status": "active",
  "group": [{
    "source": "urn:local:LOCAL",
    "target": "http://loinc.org",
    "element": [
      {"code": "GLU", "target": [{"code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma", "equivalence": "equivalent"}]},
      {"code": "DROP", "target": [{"code": "0000-0", "equivalence": "narrower", "comment": "not the same"}]}
    ]
  }]
})";

TEST(ConceptMaps, ALocalCodeGetsItsTargetNextToIt) {
  // GLU of urn:local:LOCAL maps (equivalent) to LOINC 2345-7: added after the original coding.
  // DROP maps only "narrower" (the target means less than the source): not added.
  // K is of urn:local:OTHER, a system no group has: left alone.
  auto r = ConvertWith(CodeFiles(kLocalLab));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string& j = r->json;
  EXPECT_THAT(j, HasSubstr(R"("coding":[{"code":"GLU","system":"urn:local:LOCAL","display":"Glucose"},)"
                           R"({"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}])"));
  EXPECT_THAT(j, HasSubstr(R"("coding":[{"code":"DROP","system":"urn:local:LOCAL","display":"Scratch"}])"));
  EXPECT_THAT(j, HasSubstr(R"("coding":[{"code":"K","system":"urn:local:OTHER","display":"Potassium"}])"));
  EXPECT_THAT(j, Not(HasSubstr("0000-0")));
}

TEST(ConceptMaps, ARuleNamesAConceptMapForCodesOfAnySystem) {
  // A group without source applies only where a rule names the map: K of urn:local:OTHER.
  std::string cm = R"({"resourceType": "ConceptMap", "group": [{"target": "http://loinc.org",
      "element": [{"code": "K", "target": [{"code": "2823-3", "equivalence": "equal"}]}]}]})";
  auto global = ConvertWith(CodeFiles(cm));
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_THAT(global->json, Not(HasSubstr("2823-3")));
  auto named = ConvertWith(CodeFiles(cm, ", conceptmap: LocalLab"));
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_THAT(named->json, HasSubstr(R"({"code":"K","system":"urn:local:OTHER","display":"Potassium"},{"system":"http://loinc.org","code":"2823-3"})"));
}

TEST(ConceptMaps, BadFilesAreLoadErrorsWithFileAndReason) {
  auto e = CompileMaps(CodeFiles("{\n  \"resourceType\": \"ConceptMap\",\n  \"group\": [\n}"));
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("maps/conceptmaps/LocalLab.json:4:1: invalid JSON"));
  e = CompileMaps(CodeFiles(R"({"resourceType": "ValueSet"})"));
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("maps/conceptmaps/LocalLab.json: not a usable FHIR R4 ConceptMap: resourceType"));
  e = CompileMaps(CodeFiles(R"({"resourceType": "ConceptMap", "group": [{"source": "a", "target": "b",
      "element": [{"code": "X", "target": [{"code": "Y", "equivalence": "same"}]}]}]})"));
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("group[0].element[0].target[0].equivalence 'same' is not an R4 ConceptMapEquivalence"));
  e = CompileMaps(CodeFiles(kLocalLab, ", conceptmap: Nope"));
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("no ConceptMap 'Nope' (conceptmaps/Nope.json)"));
}

}  // namespace
}  // namespace isthmus::v2fhir
