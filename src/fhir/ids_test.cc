#include "fhir/ids.h"

#include "gtest/gtest.h"

namespace isthmus::fhir {
namespace {

TEST(DeterministicId, StableUuidShaped) {
  std::string a = DeterministicId("Patient", "12345|HOSP");
  EXPECT_EQ(a, DeterministicId("Patient", "12345|HOSP"));
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[14], '8');  // version nibble
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
  EXPECT_NE(a, DeterministicId("Encounter", "12345|HOSP"));
  // The separator keeps "Pa"+"tient..." from colliding with "Pat"+"ient...".
  EXPECT_NE(DeterministicId("ab", "c"), DeterministicId("a", "bc"));
}

}  // namespace
}  // namespace isthmus::fhir
