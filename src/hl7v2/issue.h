// A finding about a message: what is wrong, where (an HL7 Path), how bad, and its HL7 table 0357
// code. Parser errors, validator findings and NAK ERR segments all use it.
// Thread-safety: value types.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "hl7v2/path.h"

namespace isthmus::hl7v2 {

// HL7 table 0357, Message error condition codes.
enum class ErrorCode : int {
  kAccepted = 0,
  kSegmentSequenceError = 100,
  kRequiredFieldMissing = 101,
  kDataTypeError = 102,
  kTableValueNotFound = 103,
  kValueTooLong = 104,  // added in v2.7; reported as 102 to older versions
  kUnsupportedMessageType = 200,
  kUnsupportedEventCode = 201,
  kUnsupportedProcessingId = 202,
  kUnsupportedVersionId = 203,
  kUnknownKeyIdentifier = 204,
  kDuplicateKeyIdentifier = 205,
  kApplicationRecordLocked = 206,
  kApplicationInternalError = 207,
};

// The HL7 description of a 0357 code ("Segment sequence error", ...).
std::string_view ErrorCodeText(ErrorCode code);

enum class Severity { kError, kWarning, kInformation };
// "E", "W", "I" (HL7 table 0516) and "error", "warning", "information".
char SeverityCode(Severity s);
std::string_view SeverityName(Severity s);

struct Issue {
  Severity severity = Severity::kError;
  ErrorCode code = ErrorCode::kApplicationInternalError;
  Path location;        // segment empty when the problem is not in one place
  std::string message;  // plain language; never contains field values (no PHI)
};

// A Status for a message that cannot be parsed, carrying the Issue as a payload so that a NAK can
// report where and what. The status message reads "PID[2]-3: <message>".
absl::Status MakeHl7Error(absl::StatusCode code, Issue issue);
// The Issue carried by a status made with MakeHl7Error, if any.
std::optional<Issue> IssueFromStatus(const absl::Status& status);

}  // namespace isthmus::hl7v2
