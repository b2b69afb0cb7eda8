#include "fhir/element_tree.h"

#include "fhir/bundle.h"
#include "gtest/gtest.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir {
namespace {
using K = Tree::Kind;

TEST(Tree, BuildsAndSkipsEmptyContainers) {
  Tree t;
  Tree::NodeId r = t.NewObject();
  t.SetString(t.Member(r, "resourceType", K::kString), "Patient");
  Tree::NodeId names = t.Member(r, "name", K::kArray);
  Tree::NodeId n0 = t.Append(names, K::kObject);
  t.SetString(t.Member(n0, "family", K::kString), "DOE \"J\"");
  t.SetString(t.Append(t.Member(n0, "given", K::kArray), K::kString), "JANE");
  t.Append(names, K::kObject);                      // stays empty: not written
  t.Member(r, "address", K::kArray);                // empty array: not written
  t.SetNumber(t.Member(r, "n", K::kNumber), "1.50");
  t.SetBool(t.Member(r, "active", K::kBool), true);
  std::string json;
  t.WriteJson(r, &json, false);
  EXPECT_EQ(json,
            R"({"resourceType":"Patient","name":[{"family":"DOE \"J\"","given":["JANE"]}],)"
            R"("n":1.50,"active":true})");
  EXPECT_EQ(t.PathOf(t.first_child(t.FindMember(n0, "given"))), "name[0].given[0]");
}

TEST(Tree, ElementAndElementWhere) {
  Tree t;
  Tree::NodeId r = t.NewObject();
  Tree::NodeId ext = t.Member(r, "extension", K::kArray);
  Tree::NodeId a = t.ElementWhere(ext, "url", "http://x");
  EXPECT_EQ(t.ElementWhere(ext, "url", "http://x"), a);
  EXPECT_NE(t.ElementWhere(ext, "url", "http://y"), a);
  Tree::NodeId c = t.Member(r, "coding", K::kArray);
  Tree::NodeId second = t.Element(c, 1, K::kObject);
  EXPECT_EQ(t.child_count(c), 2u);
  EXPECT_EQ(t.Element(c, 1, K::kObject), second);
}

TEST(Tree, ClearReusesMemory) {
  Tree t;
  for (int round = 0; round < 3; ++round) {
    t.Clear();
    Tree::NodeId r = t.NewObject();
    for (int i = 0; i < 2000; ++i) {
      t.SetString(t.Append(t.Member(r, "a", K::kArray), K::kString), "some text value");
    }
    std::string json;
    t.WriteJson(r, &json, false);
    EXPECT_EQ(json.size(), 2000u * 17 + 1999 + 8);  // {"a":[ ... ]}
  }
}

// The compact writer is hand-written for speed; it must give RapidJSON's bytes for every byte value
// in keys and strings (escapes, control characters, UTF-8 and invalid UTF-8 passed through).
TEST(Tree, CompactJsonMatchesRapidJson) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string utf8 = "Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\/\"\x7f";
  Tree t;
  Tree::NodeId r = t.NewObject();
  t.SetString(t.Member(r, all, K::kString), all);
  Tree::NodeId arr = t.Member(r, "a", K::kArray);
  t.SetString(t.Append(arr, K::kString), utf8);
  t.SetNumber(t.Append(arr, K::kNumber), "-0.50");
  t.SetBool(t.Append(arr, K::kBool), false);
  t.SetString(t.Member(t.Append(arr, K::kObject), "k", K::kString), "v");
  std::string json = "prefix:";
  t.WriteJson(r, &json, false);

  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  w.StartObject();
  w.Key(all.data(), static_cast<rapidjson::SizeType>(all.size()));
  w.String(all.data(), static_cast<rapidjson::SizeType>(all.size()));
  w.Key("a");
  w.StartArray();
  w.String(utf8.data(), static_cast<rapidjson::SizeType>(utf8.size()));
  w.RawValue("-0.50", 5, rapidjson::kNumberType);
  w.Bool(false);
  w.StartObject();
  w.Key("k");
  w.String("v");
  w.EndObject();
  w.EndArray();
  w.EndObject();
  EXPECT_EQ(json, "prefix:" + std::string(b.GetString(), b.GetSize()));

  // Strings of every length from 1 to 40 over an alphabet mixing plain and escaped bytes, so that
  // escapes fall at every position of the writer's 8-byte steps.
  const char alphabet[] = {'a', 'Z', ' ', '"', '\\', '\n', '\x01', '\x1f', '\x7f', '\xc3', '\xa9', '/'};
  uint32_t seed = 12345;
  for (int round = 0; round < 400; ++round) {
    std::string v;
    for (int i = 0; i <= round % 40; ++i) {  // 1 to 40 bytes (an empty value is not written)
      seed = seed * 1103515245u + 12345u;
      v.push_back(alphabet[(seed >> 16) % sizeof(alphabet)]);
    }
    Tree u;
    Tree::NodeId o = u.NewObject();
    u.SetString(u.Member(o, "k", K::kString), v);
    // The same bytes as a key, after a comma (keys are written with their ',' and ':' at once).
    u.SetString(u.Member(o, v, K::kString), "x");
    std::string got;
    u.WriteJson(o, &got, false);
    rapidjson::StringBuffer want;
    rapidjson::Writer<rapidjson::StringBuffer> ww(want);
    ww.StartObject();
    ww.Key("k");
    ww.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    ww.Key(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    ww.String("x");
    ww.EndObject();
    ASSERT_EQ(got, std::string(want.GetString(), want.GetSize())) << "round " << round;
  }
}

TEST(Bundle, TransactionEntriesArePuts) {
  Tree t;
  BundleBuilder b(&t, BundleType::kTransaction);
  Tree::NodeId p = b.AddResource("Patient", "abc");
  t.SetString(t.Member(p, "gender", K::kString), "male");
  std::string json;
  t.WriteJson(b.root(), &json, false);
  EXPECT_EQ(json,
            R"({"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:abc",)"
            R"("resource":{"resourceType":"Patient","id":"abc","gender":"male"},)"
            R"("request":{"method":"PUT","url":"Patient/abc"}}]})");
}

}  // namespace
}  // namespace isthmus::fhir
