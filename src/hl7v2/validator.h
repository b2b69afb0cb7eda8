// Validates parsed HL7 v2 messages against the version dictionaries (dictionary.h) and an
// optional site conformance profile (profile.h).
//
// Checks: segment order, required segments and cardinality against the message structure with
// its groups (Z-segments are allowed anywhere unless the profile forbids them); required fields
// and components; repetition of non-repeating fields; lengths (warning); formats of NM, SI, DT,
// TM, DTM and TS values; ID and IS values against their HL7 tables where the dictionary has the
// table's values (ID: error, IS: warning). Each finding is an Issue with the HL7 location, a
// 0357 code and a message that never contains a field value.
//
// Create() compiles per-version lookup tables (segment rules, structure state machines) once;
// versions not fixed by the options are compiled on first use, shared by all validators.
//
// Thread-safety: a Validator is immutable; Validate() may be called from many threads at once.
// Copies are cheap and share state.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(Validator v, Validator::Create({.version = "2.5.1"}));
//   for (const Issue& i : v.Validate(msg)) LOG(INFO) << i.location.ToString() << i.message;
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hl7v2/issue.h"
#include "hl7v2/message.h"
#include "hl7v2/profile.h"

namespace isthmus::hl7v2 {

struct ValidatorOptions {
  // HL7 version to validate against ("2.5.1"); empty = each message's MSH-12.1. A version the
  // dictionaries lack falls back to the nearest lower one (Dictionary::Find).
  std::string version;
  std::shared_ptr<const Profile> profile;  // optional site rules
};

class Validator {
 public:
  // InvalidArgument when `options.version` is set but not a known 2.x version.
  static absl::StatusOr<Validator> Create(ValidatorOptions options);

  // All findings, in message order (structure findings, then field findings per segment).
  // Empty when the message conforms.
  std::vector<Issue> Validate(const Message& message) const;

  struct Impl;

 private:
  explicit Validator(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace isthmus::hl7v2
