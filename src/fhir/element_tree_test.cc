#include "fhir/element_tree.h"

#include "fhir/bundle.h"
#include "gtest/gtest.h"

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
