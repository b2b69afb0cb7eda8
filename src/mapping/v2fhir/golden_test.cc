// Golden cases: tests/golden/v2fhir/*.test (CONVENTIONS.md, "Golden test format"): an HL7 v2
// message, then the Bundle expected from the shipped maps, written by hand from the IG. Ids are
// SHA-256 derived, so both sides have every UUID-shaped string replaced by <id> before a
// structural comparison (object member order does not matter, array order does).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "hl7v2/message.h"
#include "mapping/v2fhir/converter.h"
#include "mapping/v2fhir/loader.h"
#include "rapidjson/document.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"

namespace isthmus::v2fhir {
namespace {

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

std::string MaskIds(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    bool uuid = i + 36 <= s.size();
    for (size_t k = 0; uuid && k < 36; ++k) {
      char c = s[i + k];
      uuid = (k == 8 || k == 13 || k == 18 || k == 23) ? c == '-' : IsHex(c);
    }
    if (uuid) {
      out += "<id>";
      i += 36;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::string Pretty(const rapidjson::Document& d) {
  rapidjson::StringBuffer b;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(b);
  d.Accept(w);
  return b.GetString();
}

TEST(Golden, V2ToFhir) {
  std::string dir = std::string(ISTHMUS_SOURCE_DIR) + "/tests/golden/v2fhir";
  auto maps = LoadMaps({std::string(ISTHMUS_SOURCE_DIR) + "/maps"});
  ASSERT_TRUE(maps.ok()) << maps.status();
  Converter converter(*maps);
  int cases = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".test") continue;
    ++cases;
    SCOPED_TRACE(e.path().string());
    std::ifstream in(e.path());
    std::string line, hl7, json;
    int part = 0;  // 1: hl7, 2: expected json
    while (std::getline(in, line)) {
      if (line.starts_with("#")) continue;
      if (line == "input hl7") { part = 1; continue; }
      if (line == "----") { part = 0; continue; }
      if (line == "expect fhir") { part = 2; continue; }
      if (part == 1) hl7 += line + "\r";
      if (part == 2) json += line + "\n";
    }
    auto m = hl7v2::Message::Parse(hl7);
    ASSERT_TRUE(m.ok()) << m.status();
    auto r = converter.Convert(*m, ConvertOptions{});
    ASSERT_TRUE(r.ok()) << r.status();
    rapidjson::Document got, want;
    got.Parse(MaskIds(r->json).c_str());
    want.Parse(json.c_str());
    ASSERT_FALSE(want.HasParseError()) << "expected JSON does not parse";
    ASSERT_FALSE(got.HasParseError());
    EXPECT_TRUE(got == want) << "got:\n" << Pretty(got) << "\nwant:\n" << Pretty(want);
  }
  EXPECT_GT(cases, 0);
}

}  // namespace
}  // namespace isthmus::v2fhir
