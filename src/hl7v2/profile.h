// A site conformance profile: rules a site adds on top of the HL7 standard, read from YAML
// (format: docs/conformance-profiles.md). The Validator applies it.
//
// Thread-safety: a Profile is immutable once loaded; share it as std::shared_ptr<const Profile>.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<const Profile> p,
//                            LoadProfile("examples/profiles/adt-site.yaml"));
//   ISTHMUS_ASSIGN_OR_RETURN(Validator v, Validator::Create({.profile = p}));
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hl7v2/path.h"

namespace isthmus::hl7v2 {

struct ProfileValueRule {
  Path path;                        // segment, field, optionally component and subcomponent
  std::vector<std::string> values;  // allowed raw values
};

struct Profile {
  std::string name;
  std::string source;  // file the profile was read from ("<string>" for LoadProfileFromString)
  // Message types this profile accepts, "ADT" (any event) or "ADT^A01". Empty = any. A message of
  // another type is reported as unsupported (0357 code 200, or 201 when only the event differs).
  std::vector<std::string> message_types;
  bool forbid_z_segments = false;               // Z-segments are otherwise allowed anywhere
  std::vector<std::string> forbid_segments;     // segment names that must not appear
  std::vector<std::string> required_segments;   // segment names that must appear at least once
  std::vector<Path> required_fields;            // must be non-empty wherever the segment occurs
  std::vector<ProfileValueRule> allowed_values;
};

// Reads a profile file. InvalidArgument naming file:line for unknown keys, bad paths and values
// of the wrong kind; NotFound when the file cannot be read.
absl::StatusOr<std::shared_ptr<const Profile>> LoadProfile(const std::string& path);
// Same for YAML text; `source_name` stands for the file name in error messages.
absl::StatusOr<std::shared_ptr<const Profile>> LoadProfileFromString(
    std::string_view yaml, std::string_view source_name = "<string>");

}  // namespace isthmus::hl7v2
