#include "hl7v2/profile.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::hl7v2 {
namespace {

using ::testing::HasSubstr;

TEST(ProfileTest, ReadsEveryKey) {
  absl::StatusOr<std::shared_ptr<const Profile>> p = LoadProfileFromString(R"(
name: lab
message_types: [ORU^R01, ADT]
forbid_z_segments: yes
forbid_segments: [ZPD, NTE]
required_segments: [PV1]
required_fields: [PID-3, PID-3.1, OBX-3.1.1]
allowed_values:
  PID-8: [F, M]
  "OBX-11": [F, C]
)");
  ASSERT_TRUE(p.ok()) << p.status();
  const Profile& profile = **p;
  EXPECT_EQ(profile.name, "lab");
  EXPECT_EQ(profile.source, "<string>");
  EXPECT_THAT(profile.message_types, testing::ElementsAre("ORU^R01", "ADT"));
  EXPECT_TRUE(profile.forbid_z_segments);
  EXPECT_THAT(profile.forbid_segments, testing::ElementsAre("ZPD", "NTE"));
  EXPECT_THAT(profile.required_segments, testing::ElementsAre("PV1"));
  ASSERT_EQ(profile.required_fields.size(), 3u);
  EXPECT_EQ(profile.required_fields[1].segment, "PID");
  EXPECT_EQ(profile.required_fields[1].field, 3);
  EXPECT_EQ(profile.required_fields[1].component, 1);
  EXPECT_EQ(profile.required_fields[2].subcomponent, 1);
  ASSERT_EQ(profile.allowed_values.size(), 2u);
  EXPECT_EQ(profile.allowed_values[0].path.field, 8);
  EXPECT_THAT(profile.allowed_values[0].values, testing::ElementsAre("F", "M"));
}

TEST(ProfileTest, UnknownKeyNamesFileAndLine) {
  absl::StatusOr<std::shared_ptr<const Profile>> p =
      LoadProfileFromString("name: x\nforbid_z_segments: true\nrequired_feilds: [PID-3]\n",
                            "site.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("site.yaml:3:"));
  EXPECT_THAT(p.status().message(), HasSubstr("required_feilds"));
}

TEST(ProfileTest, BadValuesNameTheirLine) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"name: x\nrequired_fields:\n  - PID-3\n  - PID\n", "p.yaml:4:"},       // no field
      {"forbid_z_segments: maybe\n", "p.yaml:1:"},                            // not a bool
      {"name: x\nforbid_segments: [ZP]\n", "p.yaml:2:"},                      // not a segment
      {"allowed_values:\n  PID-8: F\n", "p.yaml:2:"},                         // not a list
      {"allowed_values:\n  PID[2]-8: [F]\n", "p.yaml:2:"},                    // occurrence given
      {"message_types: [adt]\n", "p.yaml:1:"},                                // lower case
      {"name: [a, b]\n", "p.yaml:1:"},                                        // not a scalar
      {"name: x\nrequired_fields: [PID-3\n", "p.yaml:"},                      // YAML syntax
      {"- a\n- b\n", "p.yaml:1:"},                                            // not a mapping
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::shared_ptr<const Profile>> p = LoadProfileFromString(c.yaml, "p.yaml");
    ASSERT_FALSE(p.ok()) << c.yaml;
    EXPECT_THAT(p.status().message(), HasSubstr(c.expect)) << c.yaml;
  }
}

TEST(ProfileTest, LoadsShippedExample) {
  absl::StatusOr<std::shared_ptr<const Profile>> p =
      LoadProfile(std::string(ISTHMUS_SOURCE_DIR) + "/examples/profiles/adt-site.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name, "adt-site");
  EXPECT_FALSE((*p)->required_fields.empty());
}

TEST(ProfileTest, MissingFileIsAnError) {
  absl::StatusOr<std::shared_ptr<const Profile>> p = LoadProfile("/nonexistent/profile.yaml");
  EXPECT_FALSE(p.ok());
}

}  // namespace
}  // namespace isthmus::hl7v2
