#include "mapping/v2fhir/converter.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "gtest/gtest.h"
#include "mapping/v2fhir/loader.h"
#include "rapidjson/document.h"

namespace isthmus::v2fhir {
namespace {

constexpr char kOru[] =
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
    "PID|1||777^^^HOSP^MR||ROE^RICHARD||19700101|M\r"
    "OBR|1|P1|F1|24317-0^CBC^LN|||20240102073000\r"
    "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL^grams per deciliter^UCUM|12-16|N|||F\r"
    "NTE|1||fasting\r"
    "OBX|2|ST|8251-1^Comment^LN||see \\T\\ note||||||Q\r"
    "OBX|3|CWE|600-7^Culture^LN||27268008^Salmonella^SCT||||||F\r"
    "OBX|4|SN|1-1^Ratio^LN||^1^:^128||||||F\r";

std::shared_ptr<const MapSet> Maps() {
  auto r = LoadMaps({std::string(ISTHMUS_SOURCE_DIR) + "/maps"});
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

ConvertResult Convert(std::string_view text, ConvertOptions o = {}) {
  auto m = hl7v2::Message::Parse(text);
  EXPECT_TRUE(m.ok()) << m.status();
  auto r = Converter(Maps()).Convert(*m, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ConvertResult{};
}

bool Has(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

// The message's Bundle, parsed; false when the JSON does not parse.
bool ParseBundle(const std::string& json, rapidjson::Document* d) {
  d->Parse(json.c_str());
  return !d->HasParseError();
}

TEST(Converter, OruValuesByType) {
  ConvertResult r = Convert(kOru);
  const std::string& j = r.json;
  EXPECT_TRUE(Has(j, R"("valueQuantity":{"value":13.5,"code":"g/dL","unit":"grams per deciliter","system":"http://unitsofmeasure.org"})")) << j;
  EXPECT_TRUE(Has(j, R"("note":[{"text":"fasting"}])")) << j;
  EXPECT_TRUE(Has(j, R"("valueString":"see & note")")) << j;  // unescaped
  EXPECT_TRUE(Has(j, R"("valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"27268008","display":"Salmonella"}]})")) << j;
  EXPECT_TRUE(Has(j, R"("valueRatio":{"numerator":{"value":1},"denominator":{"value":128}})")) << j;
  EXPECT_TRUE(Has(j, R"("interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}])")) << j;
  // OBX-11 "Q" is not in the vocabulary: a code element has a closed value set, so the
  // vocabulary's default (observation-status "unknown") is written, never the unknown code.
  EXPECT_TRUE(Has(j, R"("status":"unknown")")) << j;
  EXPECT_TRUE(Has(j, R"("effectiveDateTime":"2024-01-02T07:30:00+00:00")")) << j;
  EXPECT_TRUE(r.diagnostics.empty()) << r.diagnostics[0].message;
}

// Whether a value needs decoding is tested a word at a time (8 bytes, 4 for short values, the last
// word overlapping): an escape sequence or a non-ASCII byte at every position of values of 1 to
// 20 bytes must still send the value through decoding: \T\ becomes '&', and a no-break space
// (UTF-8 C2 A0) a space (FHIR strings allow no other whitespace than space, tab, CR and LF).
TEST(Converter, EscapesAreDecodedAtEveryPosition) {
  for (int n = 1; n <= 20; ++n) {
    for (int i = 0; i <= n; ++i) {
      for (std::string_view insert : {std::string_view("\\T\\"), std::string_view("\xc2\xa0")}) {
        std::string raw(static_cast<size_t>(n), 'a');
        raw.insert(static_cast<size_t>(i), insert);
        std::string want(static_cast<size_t>(n), 'a');
        want.insert(static_cast<size_t>(i), insert[0] == '\\' ? "&" : " ");
        std::string msg = std::string(
            "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
            "PID|1||777^^^HOSP^MR||ROE^RICHARD\r"
            "OBR|1|P1|F1|24317-0^CBC^LN\r"
            "OBX|1|ST|8251-1^Comment^LN||") + raw + "||||||F\r";
        ConvertResult r = Convert(msg);
        EXPECT_TRUE(Has(r.json, "\"valueString\":\"" + want + "\"")) << n << " " << i << " " << r.json;
      }
    }
  }
}

TEST(Converter, Msh17IsTheSendersCountryOnly) {
  // IG MSH[MessageHeader] row 23: MSH-17 -> sender(Organization.address.country). The receiving
  // facility's Organization (MSH-6, row 11) gets no country (Microsoft's converter copies it
  // there: an intended difference, whose path glob cannot check our sender's copy).
  constexpr char kA01[] =
      "MSH|^~\\&|REG|SENDFAC|EHR|RECVFAC|20240102080000||ADT^A01^ADT_A01|C17|P|2.5.1|||||USA\r"
      "EVN|A01|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN\r"
      "PV1|1|I\r";
  ConvertResult r = Convert(kA01);
  rapidjson::Document d;
  ASSERT_TRUE(ParseBundle(r.json, &d)) << r.json;
  std::string sender, receiver;
  for (const auto& e : d["entry"].GetArray()) {
    const auto& res = e["resource"];
    if (std::string(res["resourceType"].GetString()) != "MessageHeader") continue;
    sender = res["sender"]["reference"].GetString();
    receiver = res["destination"][0]["receiver"]["reference"].GetString();
  }
  ASSERT_FALSE(sender.empty()) << r.json;
  ASSERT_FALSE(receiver.empty()) << r.json;
  ASSERT_NE(sender, receiver);
  int checked = 0;
  for (const auto& e : d["entry"].GetArray()) {
    const auto& res = e["resource"];
    std::string ref = std::string(res["resourceType"].GetString()) + "/" + res["id"].GetString();
    if (ref == sender) {
      ASSERT_TRUE(res.HasMember("address")) << r.json;
      EXPECT_EQ(std::string(res["address"][0]["country"].GetString()), "USA");
      ++checked;
    } else if (ref == receiver) {
      EXPECT_FALSE(res.HasMember("address")) << r.json;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2) << r.json;
}

TEST(Converter, CalledByIsASecondNameWithUseNickname) {
  // IG XPN[HumanName] rows 18-19: XPN.15 "called by" -> [2].given, [2].use "nickname" (the map
  // had "usual", the first name's use of XPN.7 D).
  constexpr char kA01[] =
      "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C15|P|2.5.1\r"
      "EVN|A01|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN^^^^^D^^^^^^^^JJ\r";
  ConvertResult r = Convert(kA01);
  EXPECT_TRUE(Has(r.json, R"("name":[{"family":"DOE","given":["JOHN"],"use":"usual"},{"given":["JJ"],"use":"nickname"}])")) << r.json;
}

TEST(Converter, EncounterStatusFromPatientClass) {
  // IG PV1[Encounter] row 5 (no PV1-45: PV1-2 through ConceptMap PatientClass[EncounterStatus],
  // P -> planned, I -> in-progress), rows 7-8 (assigned location active, planned for P), row 72
  // (PV1-45 -> finished). PV1-44 (admit time) does not decide it.
  auto status = [](const char* pv1) {
    std::string msg = std::string(
        "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C5|P|2.5.1\r"
        "PID|1||111^^^HOSP^MR||DOE^JOHN\r") + pv1 + "\r";
    ConvertResult r = Convert(msg);
    size_t p = r.json.find("\"resourceType\":\"Encounter\"");
    return p == std::string::npos ? std::string("(none)") : r.json.substr(p, 400);
  };
  std::string pre = status("PV1|1|P|W4^412^B");
  EXPECT_TRUE(Has(pre, R"("status":"planned","class")")) << pre;
  EXPECT_TRUE(Has(pre, R"(},"status":"planned"}])")) << pre;  // the assigned location
  std::string in = status("PV1|1|I|W4^412^B");
  EXPECT_TRUE(Has(in, R"("status":"in-progress","class")")) << in;
  EXPECT_TRUE(Has(in, R"(},"status":"active"}])")) << in;
  std::string done = status("PV1|1|I|W4^412^B|||||||||||||||||||||||||||||||||||||||||202401010800|202401020800");
  EXPECT_TRUE(Has(done, R"("status":"finished","class")")) << done;
}

TEST(Converter, ObservationInstanceIdentifierIsTypedFill) {
  // IG OBX[Observation] rows 61-62: OBX-21 -> identifier, identifier.type.coding.code "FILL".
  constexpr char kOru21[] =
      "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ORU^R01^ORU_R01|C21|P|2.5.1\r"
      "PID|1||777^^^HOSP^MR||ROE^RICHARD\r"
      "OBR|1|P1|F1|24317-0^CBC^LN\r"
      "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL|||||F||||||||||OI-7^LAB\r";
  ConvertResult r = Convert(kOru21);
  EXPECT_TRUE(Has(r.json, R"("identifier":[{"value":"OI-7","system":"http://example.com/v2-to-fhir-converter/Identifier/LAB","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"FILL","display":"Filler Identifier"}]}}])")) << r.json;
}

TEST(Converter, TheSameBusinessIdentifierTwiceIsOneEntry) {
  // A merge with two PATIENT groups whose PID-18 is the same account: one Account entry (a
  // transaction with two entries for one resource is refused by every FHIR server).
  constexpr char kA40[] =
      "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A40^ADT_A39|C9|P|2.5.1\r"
      "EVN|A40|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN|||||||||||||ACC1^^^HOSP^AN\r"
      "MRG|222^^^HOSP^MR\r"
      "PID|1||333^^^HOSP^MR||DOE^JON|||||||||||||ACC1^^^HOSP^AN\r"
      "MRG|444^^^HOSP^MR\r";
  ConvertResult r = Convert(kA40);
  size_t accounts = 0;
  for (size_t p = r.json.find("\"url\":\"Account/"); p != std::string::npos;
       p = r.json.find("\"url\":\"Account/", p + 1)) {
    ++accounts;
  }
  EXPECT_EQ(accounts, 1u) << r.json;
  bool warned = false;
  for (const Diagnostic& d : r.diagnostics) warned |= Has(d.message, "same business identifier");
  EXPECT_TRUE(warned);
}

TEST(Converter, ExplainOfAnElementNamedResource) {
  // MRG[Linkage-Patient] writes Linkage.item[n].resource (a Reference element named "resource"):
  // --explain must name the Linkage, not stop at that element (it crashed reading the
  // resourceType it does not have).
  constexpr char kA40[] =
      "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A40^ADT_A39|C9|P|2.5.1\r"
      "EVN|A40|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN\r"
      "MRG|222^^^HOSP^MR\r";
  ConvertOptions o;
  o.explain = true;
  ConvertResult r = Convert(kA40, o);
  // Both items (the map's item[1] and item[2]; --explain counts from 0) name type Patient.
  int found = 0;
  for (const ExplainLine& l : r.explain) {
    if (l.element.starts_with("Linkage/") && (l.element.ends_with(" item[0].resource.type") ||
                                              l.element.ends_with(" item[1].resource.type"))) {
      ++found;
      EXPECT_EQ(l.value, "Patient");
    }
  }
  EXPECT_EQ(found, 2);
}

TEST(Converter, ValuesThatWouldBreakFhirPatternsAreCleanedOrLeftOut) {
  // Seen in real feeds (hl7v2-samples): an "ISO" universal id that is a name, a 0000 date used as
  // "no date", a code with stray spaces, a no-break space in text.
  constexpr char kMsg[] =
      "MSH|^~\\&|LAB|HOSP^Maven EDSS^ISO|EHR|HOSP^1.2.840.114350^ISO|20240102080000||"
      "ORU^R01^ORU_R01|C7|P|2.5.1|||||||UNICODE UTF-8\r"
      "PID|1||777^^^HOSP^MR||ROE^RICHARD||19700101|M||||||||  AME   X \r"
      "OBR|1|P1|F1|24317-0^CBC\xC2\xA0panel^LN|||20240102073000||||||||||||||0000\r"
      "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL^^UCUM|||||F\r";
  ConvertResult r = Convert(kMsg);
  const std::string& j = r.json;
  EXPECT_FALSE(Has(j, "urn:oid:Maven")) << j;
  EXPECT_TRUE(Has(j, "urn:oid:1.2.840.114350")) << j;
  EXPECT_FALSE(Has(j, "0000-01-01")) << j;
  EXPECT_FALSE(Has(j, "\xC2\xA0")) << j;
  EXPECT_TRUE(Has(j, "CBC panel")) << j;
  EXPECT_FALSE(Has(j, "\"code\":\"  AME")) << j;
  EXPECT_TRUE(Has(j, "\"code\":\"AME X\"")) << j;
}

TEST(Converter, UnknownCodingSystemGetsTheSiteBase) {
  // CodingSystem.yaml's unknown_prefix: a local system name (99LOC, "MY LAB") becomes a system
  // under the site base; HL7nnnn and known names keep their URIs.
  std::string msg = kOru;
  msg.replace(msg.find("718-7^Hemoglobin^LN"), 19, "HGB^Hemoglobin^MY LAB");
  msg.replace(msg.find("27268008^Salmonella^SCT"), 23, "SAL^Salmonella^99LOC");
  ConvertResult r = Convert(msg);
  EXPECT_TRUE(Has(r.json, R"({"system":"http://example.com/v2-to-fhir-converter/CodeSystem/MY-LAB","code":"HGB")")) << r.json;
  EXPECT_TRUE(Has(r.json, R"({"system":"http://example.com/v2-to-fhir-converter/CodeSystem/99LOC","code":"SAL")")) << r.json;
  EXPECT_TRUE(Has(r.json, R"("system":"http://loinc.org")")) << r.json;
}

TEST(Converter, IntoWritesIntoTheResourceAnAsRuleMade) {
  // IN1[Coverage]: IN1-4 makes the payor Organization (`as: payor`); IN1-3/5/7 write into it
  // (`into: payor`). The same insurer in a second IN1 is the same Organization, filled once; an
  // IN1 without IN1-4 writes nothing into any Organization.
  constexpr char kAdt[] =
      "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C3|P|2.5.1\r"
      "EVN|A01|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN\r"
      "PV1|1|I\r"
      "IN1|1|PLAN1|INS9^^^HOSP^NIIP|Acme Insurance|1 Main St^^Town^WI|||||||20240101\r"
      "IN1|2|PLAN2|INS9^^^HOSP^NIIP|Acme Insurance|2 Other St^^Town^WI\r"
      "IN1|3|PLAN3|INS7^^^HOSP^NIIP||3 Lost St^^Town^WI\r";
  ConvertResult r = Convert(kAdt);
  const std::string& j = r.json;
  EXPECT_TRUE(Has(j, R"("name":"Acme Insurance")")) << j;
  EXPECT_TRUE(Has(j, R"("address":[{"line":["1 Main St"],"city":"Town","state":"WI"}])")) << j;
  EXPECT_FALSE(Has(j, "2 Other St")) << j;  // the Organization was made by the first IN1
  EXPECT_FALSE(Has(j, "3 Lost St")) << j;   // no IN1-4: no Organization to write into
  EXPECT_TRUE(Has(j, R"("value":"INS9")")) << j;
  // the third Coverage's payor is the logical reference from IN1-3
  EXPECT_TRUE(Has(j, R"("payor":[{"identifier":{)")) << j;
}

TEST(Converter, RepeatingObx5GivesOneComponentPerRepetition) {
  // OBX[Observation]'s nested `rules` under OBX-5 (when "OBX-5 repeats"): each repetition is a
  // component with OBX-3 as code, its own value and OBX-6 units; no value on the Observation.
  std::string msg = kOru;
  msg.replace(msg.find("||13.5|"), 7, "||13.5~14.1|");
  ConvertResult r = Convert(msg);
  const std::string& j = r.json;
  EXPECT_TRUE(Has(j, R"("component":[{"code":{"coding":[{"system":"http://loinc.org","code":"718-7","display":"Hemoglobin"}]},"valueQuantity":{"value":13.5,"code":"g/dL","unit":"grams per deciliter","system":"http://unitsofmeasure.org"},"referenceRange":[{"text":"12-16"}]},{"code":)")) << j;
  EXPECT_TRUE(Has(j, R"("valueQuantity":{"value":14.1,)")) << j;
  EXPECT_FALSE(Has(j, R"("valueQuantity":{"value":13.5,"code":"g/dL","unit":"grams per deciliter","system":"http://unitsofmeasure.org"},"interpretation")")) << j;
}

TEST(Converter, ResourceWithoutElementRefersBackToTheSegmentResource) {
  // PID-21 -> RelatedPerson (CX[RelatedPerson-Mother], a `resource` rule without `element`):
  // its patient is the Patient of the PID (type segment-resource); the Patient does not refer
  // to it.
  std::string msg = kOru;
  msg.replace(msg.find("|19700101|M"), 11, "|19700101|M|||||||||||||MOM1^^^HOSP^MR");
  ConvertResult r = Convert(msg);
  const std::string& j = r.json;
  constexpr std::string_view kPatient = R"("resourceType":"Patient","id":")";
  size_t patient = j.find(kPatient);
  ASSERT_NE(patient, std::string::npos) << j;
  std::string patient_id = j.substr(patient + kPatient.size(), 36);
  EXPECT_TRUE(Has(j, R"("relationship":[{"coding":[{"code":"MTH","system":"http://terminology.hl7.org/CodeSystem/v3-RoleCode"}]}],"patient":{"reference":"Patient/)" + patient_id + "\"}")) << j;
  EXPECT_TRUE(Has(j, R"("value":"MOM1")")) << j;
}

TEST(Converter, RepeatJoinJoinsTheRepetitions) {
  // PID[Patient]: the US Core race text is PID-10.2 of every repetition joined by "+".
  std::string msg = kOru;
  msg.replace(msg.find("|19700101|M"), 11, "|19700101|M||2106-3^White^HL70005~2028-9^Asian^HL70005");
  ConvertResult r = Convert(msg);
  EXPECT_TRUE(Has(r.json, R"({"url":"text","valueString":"White+Asian"})")) << r.json.substr(0, 3000);
}

TEST(Converter, SegmentResourceOfATypeIsTheOneThisSegmentMade) {
  // DG1[Encounter]: each DG1's diagnosis refers to the Condition made from that same DG1
  // (type segment-resource with resource: Condition), not the first Condition in scope.
  constexpr char kAdt[] =
      "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C4|P|2.5.1\r"
      "EVN|A01|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN\r"
      "PV1|1|I\r"
      "DG1|1||I10^Hypertension^I10|||A|||||||||1\r"
      "DG1|2||E11^Diabetes^I10|||W|||||||||2\r";
  ConvertResult r = Convert(kAdt);
  const std::string& j = r.json;
  auto id_after = [&](std::string_view marker) {
    size_t p = j.find(marker);
    if (p == std::string::npos) return std::string();
    constexpr std::string_view kCondition = R"("resourceType":"Condition","id":")";
    size_t q = j.rfind(kCondition, p);
    return q == std::string::npos ? std::string() : j.substr(q + kCondition.size(), 36);
  };
  std::string htn = id_after("Hypertension"), dm = id_after("Diabetes");
  ASSERT_FALSE(htn.empty()) << j;
  ASSERT_FALSE(dm.empty()) << j;
  EXPECT_NE(htn, dm);
  EXPECT_TRUE(Has(j, R"("diagnosis":[{"condition":{"reference":"Condition/)" + htn +
                         R"("},"use":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/diagnosis-role","code":"AD","display":"Admission Diagnosis"}]},"rank":1},{"condition":{"reference":"Condition/)" + dm))
      << j;
}

// An ADT^A01 up to PID, for tests of the shipped ADT map.
constexpr char kAdtHead[] =
    "MSH|^~\\&|REG|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C5|P|2.5.1\r"
    "EVN|A01|20240102080000\r"
    "PID|1||111^^^HOSP^MR||DOE^JOHN\r";

// Maps of a test's own (CompileMaps), with the MessageHeader and Provenance a message map needs.
ConvertResult ConvertWith(std::vector<MapFile> files, std::string_view text) {
  files.push_back({"segments/MSH[H].yaml", "MSH[H].yaml",
                   "segment: MSH\nresource: MessageHeader\nrules:\n"
                   "  - {field: MSH-9, element: eventCoding, type: Coding}\n"});
  files.push_back({"segments/MSH[P].yaml", "MSH[P].yaml",
                   "segment: MSH\nresource: Provenance\nrules:\n"
                   "  - {field: MSH-7, element: recorded, type: instant}\n"});
  auto maps = CompileMaps(files);
  EXPECT_TRUE(maps.ok()) << maps.status();
  if (!maps.ok()) return {};
  auto m = hl7v2::Message::Parse(text);
  EXPECT_TRUE(m.ok()) << m.status();
  auto r = Converter(*maps).Convert(*m, {});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ConvertResult{};
}

size_t Count(const std::string& s, std::string_view what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Converter, ReferenceToTheBundleItself) {
  // `to: Bundle` is "Bundle/<Bundle.id>": the id the engine gave the Bundle (read back from the
  // output, not recomputed), whatever resources the message made.
  ConvertResult r = ConvertWith(
      {{"messages/ADT_A01.yaml", "ADT_A01.yaml",
        "message: ADT_A01\nevents: [ADT^A01]\nresources:\n"
        "  - {segment: MSH, resource: MessageHeader, map: \"MSH[H]\"}\n"
        "  - segment: MSH\n    resource: Provenance\n    map: \"MSH[P]\"\n    references:\n"
        "      - {element: \"target[+]\", to: MessageHeader}\n"
        "      - {element: \"target[+]\", to: Bundle}\n"}},
      "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C1|P|2.5.1\r");
  rapidjson::Document d;
  ASSERT_TRUE(ParseBundle(r.json, &d)) << r.json;
  std::string bundle_id = d["id"].GetString();
  ASSERT_EQ(bundle_id.size(), 36u) << r.json;
  const auto& entries = d["entry"].GetArray();
  ASSERT_EQ(entries.Size(), 2u) << r.json;
  const auto& target = entries[1]["resource"]["target"];
  ASSERT_EQ(target.Size(), 2u) << r.json;
  EXPECT_EQ(std::string(target[0]["reference"].GetString()).rfind("MessageHeader/", 0), 0u);
  EXPECT_EQ(std::string(target[1]["reference"].GetString()), "Bundle/" + bundle_id) << r.json;
}

TEST(Converter, ShippedProvenancesOfSourceAndEventTargetTheBundle) {
  // The shipped ADT map: the source Provenance (MSH-4 valued) and the EVN Provenance each carry
  // the Bundle as a target (as Microsoft's expected Bundles do); the transformation one does not.
  ConvertResult r = Convert(std::string(kAdtHead) + "PV1|1|I\r");
  rapidjson::Document d;
  ASSERT_TRUE(ParseBundle(r.json, &d)) << r.json;
  EXPECT_EQ(Count(r.json, std::string("{\"reference\":\"Bundle/") + d["id"].GetString() + "\"}"), 2u)
      << r.json;
  EXPECT_EQ(Count(r.json, "\"reference\":\"Bundle/"), 2u) << r.json;
}

TEST(Converter, RepeatRestAndRepetitionNumber) {
  // `repeat: rest`: repetitions 2.. of the field; `repeat: 2`: only the second; `repeat: first`
  // the first. A field with one repetition gives nothing to `rest` and `2`.
  std::vector<MapFile> files = {
      {"messages/ADT_A01.yaml", "ADT_A01.yaml",
       "message: ADT_A01\nevents: [ADT^A01]\nresources:\n"
       "  - {segment: MSH, resource: MessageHeader, map: \"MSH[H]\"}\n"
       "  - {segment: MSH, resource: Provenance, map: \"MSH[P]\"}\n"
       "  - {segment: PID, resource: Patient, map: \"PID[T]\"}\n"},
      {"segments/PID[T].yaml", "PID[T].yaml",
       "segment: PID\nresource: Patient\nrules:\n"
       "  - {field: PID-3.1, element: \"identifier[+].value\", type: string, repeat: first}\n"
       "  - {field: PID-3.1, element: \"identifier[+].value\", type: string, repeat: rest}\n"
       "  - {field: PID-5.1, element: \"name[+].family\", type: string, repeat: 2}\n"
       "  - {field: PID-13.1, element: \"telecom[+].value\", type: string, repeat: rest}\n"}};
  ConvertResult r = ConvertWith(
      files,
      "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
      "PID|1||A1~A2~A3||ONE~TWO~THREE||||||||555\r");
  EXPECT_TRUE(Has(r.json, R"("identifier":[{"value":"A1"},{"value":"A2"},{"value":"A3"}])")) << r.json;
  EXPECT_TRUE(Has(r.json, R"("name":[{"family":"TWO"}])")) << r.json;
  EXPECT_FALSE(Has(r.json, "telecom")) << r.json;
  EXPECT_TRUE(r.diagnostics.empty()) << r.diagnostics[0].message;
}

TEST(Converter, Obx18RepetitionsAfterTheFirstIdentifyTheOneDevice) {
  // IG OBX[Observation] row 58: OBX-18 (0..*) -> device(Device.identifier), device 0..1: one
  // Device, identified by every repetition in order; a second OBX with the same first
  // repetition is the same Device and adds no identifier twice.
  std::string msg = kOru;
  const std::string obx18 = "|||||||EQ1^^1.2.3^ISO~^^1.2.4^ISO~EQ3\r";
  msg.replace(msg.find("|N|||F\r") + 6, 1, obx18);                   // OBX 1
  msg.replace(msg.find("Salmonella^SCT||||||F\r") + 21, 1, obx18);   // OBX 3
  ConvertResult r = Convert(msg);
  const std::string& j = r.json;
  EXPECT_EQ(Count(j, R"("resourceType":"Device")"), 1u) << j;
  EXPECT_TRUE(Has(j, R"("identifier":[{"value":"EQ1","system":"urn:oid:1.2.3",)")) << j;
  EXPECT_TRUE(Has(j, R"(},{"system":"urn:oid:1.2.4","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0301","code":"ISO",)")) << j;
  EXPECT_TRUE(Has(j, R"(},{"value":"EQ3"}])")) << j;
  EXPECT_EQ(Count(j, R"("value":"EQ3")"), 1u) << j;
  EXPECT_EQ(Count(j, R"("device":{"reference":"Device/)"), 2u) << j;
}

TEST(Converter, ScopeResourceAndTheParentDiagnosis) {
  // IG DG1[Condition] rows 28-29: DG1-22 -> extension condition-dueTo, valueReference to the
  // Condition EI[Condition] makes from the EI (identifier from it); that Condition's subject
  // (1..1 in R4) is the Patient in scope (type scope-resource). Each DG1's extension refers to
  // the Condition of its own DG1-22: two different parents are two Conditions.
  const std::string kAdt = std::string(kAdtHead) +
      "PV1|1|I\r"
      "DG1|1||I10^Hypertension^I10|||||||||||||||||D1|A|P1\r"
      "DG1|2||E11^Diabetes^I10|||||||||||||||||D2|A|P2\r";
  ConvertResult r = Convert(kAdt);
  rapidjson::Document d;
  ASSERT_TRUE(ParseBundle(r.json, &d)) << r.json;
  std::string patient;
  std::map<std::string, std::string> parent_of, id_of_identifier, subject_of;
  for (const auto& e : d["entry"].GetArray()) {
    const auto& res = e["resource"];
    std::string type = res["resourceType"].GetString(), id = res["id"].GetString();
    if (type == "Patient") patient = "Patient/" + id;
    if (type != "Condition") continue;
    std::string value = res["identifier"][0]["value"].GetString();
    id_of_identifier[value] = "Condition/" + id;
    subject_of[value] = res["subject"]["reference"].GetString();
    if (res.HasMember("extension")) {
      for (const auto& x : res["extension"].GetArray()) {
        if (std::string(x["url"].GetString()) == "http://hl7.org/fhir/StructureDefinition/condition-dueTo") {
          parent_of[value] = x["valueReference"]["reference"].GetString();
        }
      }
    }
  }
  ASSERT_EQ(id_of_identifier.size(), 4u) << r.json;  // D1, D2 and their parents P1, P2
  EXPECT_EQ(parent_of["D1"], id_of_identifier["P1"]) << r.json;
  EXPECT_EQ(parent_of["D2"], id_of_identifier["P2"]) << r.json;
  EXPECT_EQ(subject_of["P1"], patient);
  EXPECT_EQ(subject_of["P2"], patient);
  EXPECT_EQ(parent_of.count("P1"), 0u);
}

TEST(Converter, IfAbsentDefaultsOnlyWhatNoEarlierRuleWrote) {
  // OBR[ServiceRequest]: status/intent `if_absent`: the OBR of a group with an ORC keeps the
  // ORC's status (ORC-5 CM -> completed); an OBR group without ORC (an earlier group's ORC is in
  // a condition's scope) still gets the required status "unknown" and intent "filler-order".
  std::string msg = kOru;
  msg.replace(msg.find("OBR|1|"), 0, "ORC|RE|P1|F1||CM\r");
  msg.replace(msg.find("OBR|1|"), 0, "");
  msg += "OBR|2|P2|F2|2345-7^Glucose^LN|||20240102073000\r";
  ConvertResult r = Convert(msg);
  std::vector<std::string> requests;
  constexpr std::string_view kSr = R"("resourceType":"ServiceRequest")";
  for (size_t p = r.json.find(kSr); p != std::string::npos; p = r.json.find(kSr, p + 1)) {
    requests.push_back(r.json.substr(p, r.json.find("\"resourceType\"", p + 1) - p));
  }
  ASSERT_EQ(requests.size(), 2u) << r.json;
  EXPECT_TRUE(Has(requests[0], R"("status":"completed")")) << requests[0];
  EXPECT_FALSE(Has(requests[0], R"("status":"unknown")")) << requests[0];
  EXPECT_TRUE(Has(requests[1], R"("status":"unknown")")) << requests[1];
  EXPECT_TRUE(Has(requests[1], R"("intent":"filler-order")")) << requests[1];
}

TEST(Converter, IfAbsentPathWritesDataAbsentReasonOnlyWithoutEndpoint) {
  // HD[MessageHeader.endpoint]: MSH-3.2 that is no valid OID gives no endpoint, so the required
  // endpoint carries data-absent-reason; MSH-5 with an OID gets its urn:oid: and no extension.
  std::string msg = kOru;
  msg.replace(msg.find("|LAB|HOSP|EHR|"), 14, "|LAB^2.16.840.TBD^ISO|HOSP|EHR^1.2.3^ISO|");
  ConvertResult r = Convert(msg);
  EXPECT_TRUE(Has(r.json, R"("source":{"name":"LAB","_endpoint":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}})")) << r.json.substr(0, 1500);
  EXPECT_TRUE(Has(r.json, R"("destination":[{"name":"EHR","endpoint":"urn:oid:1.2.3",)")) << r.json.substr(0, 1500);
}

// A deferred (`if_absent`) rule whose datatype map has an `if_absent` rule of its own defers that
// one while the deferred list is being applied: it is applied in the same pass (it was skipped,
// or read through a dangling reference when the list grew).
TEST(Converter, AnIfAbsentRuleInsideADeferredOneIsAppliedToo) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "v2fhir_nested_if_absent";
  fs::remove_all(dir);
  for (const char* sub : {"messages", "segments", "datatypes"}) fs::create_directories(dir / sub);
  auto write = [&](const fs::path& p, std::string_view text) {
    std::ofstream(dir / p) << text;
  };
  write("messages/ADT_A01.yaml",
        "message: ADT_A01\nevents: [ADT^A01]\nresources:\n"
        "  - {segment: MSH, resource: MessageHeader, map: \"MSH[Test]\"}\n"
        "  - {segment: MSH, resource: Provenance, map: \"MSH[TestProvenance]\"}\n");
  write("segments/MSH[TestProvenance].yaml",
        "segment: MSH\nresource: Provenance\nrules:\n"
        "  - {field: MSH-7, element: recorded, type: instant}\n");
  write("segments/MSH[Test].yaml",
        "segment: MSH\nresource: MessageHeader\nrules:\n"
        "  - {field: MSH-9, element: eventCoding, type: Coding}\n"
        "  - {field: MSH-3, element: source, datatype: \"HD[Test]\", if_absent: source}\n");
  write("datatypes/HD[Test].yaml",
        "datatype: HD\ntarget: MessageHeader.source\nrules:\n"
        "  - {component: 1, element: name, type: string}\n"
        "  - {element: endpoint, value: \"urn:test:fallback\", if_absent: endpoint}\n");
  auto maps = LoadMaps({dir.string()});
  ASSERT_TRUE(maps.ok()) << maps.status();
  auto m = hl7v2::Message::Parse(
      "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ADT^A01^ADT_A01|C1|P|2.5.1\r");
  ASSERT_TRUE(m.ok()) << m.status();
  auto r = Converter(*maps).Convert(*m, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(Has(r->json, R"("source":{"name":"LAB","endpoint":"urn:test:fallback"})")) << r->json;
}

TEST(Converter, IfAbsentRunsAfterEverySegmentOneChoiceType) {
  // OBR-6 occurrenceDateTime is `if_absent: occurrenceTiming`: the TQ1 after the OBR (ORU order)
  // still wins, so the ServiceRequest has one occurrence[x] type; without TQ1, OBR-6 is kept.
  std::string msg = kOru;
  msg.replace(msg.find("|24317-0^CBC^LN|||"), 18, "|24317-0^CBC^LN||20240102070000|");
  ConvertResult plain = Convert(msg);
  EXPECT_TRUE(Has(plain.json, R"("occurrenceDateTime":"2024-01-02T07:00:00)")) << plain.json;
  size_t obx = msg.find("OBX|1|");
  msg.insert(obx, "TQ1|1||||||20240103080000\r");
  ConvertResult timed = Convert(msg);
  EXPECT_TRUE(Has(timed.json, R"("occurrenceTiming":{"repeat":{"boundsPeriod":{"start":"2024-01-03T08:00:00)")) << timed.json;
  EXPECT_FALSE(Has(timed.json, "occurrenceDateTime")) << timed.json;
}

TEST(Converter, Base64BinaryKeepsOnlyBase64Data) {
  // ED[Attachment]: ED.5 with ED.4 Base64 is written as is only when it is base64 ("<Base64
  // encoded>" is left out with a diagnostic); ED.4 A (ASCII) text is base64-encoded.
  constexpr char kMdm[] =
      "MSH|^~\\&|DOC|HOSP|EHR|HOSP|20240102080000||MDM^T02^MDM_T02|C9|P|2.5.1\r"
      "EVN|T02|20240102080000\r"
      "PID|1||111^^^HOSP^MR||DOE^JOHN\r"
      "PV1|1|O\r"
      "TXA|1|CN|TX|20240102080000||||||||DOC1|||||AU\r"
      "OBX|1|ED|1^PDF^L||AP^AP^PDF^Base64^<Base64 encoded>||||||F\r"
      "OBX|2|ED|2^PDF^L||AP^AP^PDF^Base64^SGVsbG8=||||||F\r"
      "OBX|3|ED|3^Text^L||AP^TEXT^plain^A^Hi||||||F\r";
  ConvertResult r = Convert(kMdm);
  EXPECT_FALSE(Has(r.json, "Base64 encoded")) << r.json;
  EXPECT_TRUE(Has(r.json, R"("data":"SGVsbG8=")")) << r.json;
  EXPECT_TRUE(Has(r.json, R"("data":"SGk=")")) << r.json;
  bool warned = false;
  for (const auto& d : r.diagnostics) warned |= Has(d.message, "base64Binary");
  EXPECT_TRUE(warned);
}

TEST(Converter, DeterministicAndIdempotent) {
  ConvertResult a = Convert(kOru), b = Convert(kOru);
  EXPECT_EQ(a.json, b.json);
  // The same patient in another message keeps its id (business identifier), the report does not
  // depend on the control id when OBR-3 is valued.
  std::string other = kOru;
  other.replace(other.find("|C1|"), 4, "|C2|");
  ConvertResult c = Convert(other);
  auto id_of = [](const std::string& j, std::string_view type) {
    size_t p = j.find(std::string("\"url\":\"") + std::string(type) + "/");
    return p == std::string::npos ? std::string() : j.substr(p, 60);
  };
  EXPECT_EQ(id_of(a.json, "Patient"), id_of(c.json, "Patient"));
  EXPECT_NE(a.json, c.json);
}

TEST(Converter, TimeZoneForOffsetlessValues) {
  ConvertOptions o;
  ASSERT_TRUE(absl::LoadTimeZone("America/New_York", &o.tz));
  ConvertResult r = Convert(kOru, o);
  EXPECT_TRUE(Has(r.json, R"("effectiveDateTime":"2024-01-02T07:30:00-05:00")")) << r.json;
}

TEST(Converter, UnconsumedSegmentIsWarnedAndInTheBundle) {
  std::string msg = std::string(kOru) + "ZZZ|1|secret\r";
  ConvertResult r = Convert(msg);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].location, "ZZZ");
  EXPECT_TRUE(Has(r.json, R"("resourceType":"OperationOutcome")"));
  EXPECT_TRUE(Has(r.json, "segment ZZZ"));
}

TEST(Converter, BadDateIsADiagnosticNotAFailure) {
  std::string msg = kOru;
  msg.replace(msg.find("19700101"), 8, "19701301");
  ConvertResult r = Convert(msg);
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_TRUE(Has(r.diagnostics[0].message, "19701301")) << r.diagnostics[0].message;
  EXPECT_FALSE(Has(r.json, "birthDate"));
}

TEST(Converter, TypeOverrideAndUnknownType) {
  constexpr char kOdd[] = "MSH|^~\\&|A|B|C|D|20240101||ADT^A99|1|P|2.5.1\rPID|1||5^^^H^MR\r";
  auto m = hl7v2::Message::Parse(kOdd);
  ASSERT_TRUE(m.ok());
  Converter conv(Maps());
  auto r = conv.Convert(*m, ConvertOptions{});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  ConvertOptions o;
  o.type = "ADT_A01";
  r = conv.Convert(*m, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->map, "ADT_A01");
  o.type = "ADT^A08";
  EXPECT_TRUE(conv.Convert(*m, o).ok());
}

TEST(Converter, BatchBundleAndExplain) {
  ConvertOptions o;
  o.bundle = fhir::BundleType::kBatch;
  o.explain = true;
  ConvertResult r = Convert(kOru, o);
  EXPECT_TRUE(Has(r.json, R"("type":"batch")"));
  bool found = false;
  for (const ExplainLine& l : r.explain) {
    if (l.value == "ROE") {
      found = true;
      EXPECT_TRUE(Has(l.element, "Patient/")) << l.element;
      EXPECT_TRUE(Has(l.element, "name[0].family")) << l.element;
      EXPECT_EQ(l.source, "PID-5.1.1");
      EXPECT_TRUE(Has(l.rules, "PID[Patient].yaml:")) << l.rules;
      EXPECT_TRUE(Has(l.rules, "> ")) << l.rules;
      EXPECT_TRUE(Has(l.rules, "XPN[HumanName].yaml:")) << l.rules;
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace isthmus::v2fhir
