#include "hl7v2/issue.h"

#include "absl/strings/cord.h"
#include "base/str.h"

namespace isthmus::hl7v2 {
namespace {
constexpr char kPayloadUrl[] = "isthmus.dev/hl7v2.issue";
}

std::string_view ErrorCodeText(ErrorCode code) {
  switch (code) {
    case ErrorCode::kAccepted: return "Message accepted";
    case ErrorCode::kSegmentSequenceError: return "Segment sequence error";
    case ErrorCode::kRequiredFieldMissing: return "Required field missing";
    case ErrorCode::kDataTypeError: return "Data type error";
    case ErrorCode::kTableValueNotFound: return "Table value not found";
    case ErrorCode::kValueTooLong: return "Value too long";
    case ErrorCode::kUnsupportedMessageType: return "Unsupported message type";
    case ErrorCode::kUnsupportedEventCode: return "Unsupported event code";
    case ErrorCode::kUnsupportedProcessingId: return "Unsupported processing id";
    case ErrorCode::kUnsupportedVersionId: return "Unsupported version id";
    case ErrorCode::kUnknownKeyIdentifier: return "Unknown key identifier";
    case ErrorCode::kDuplicateKeyIdentifier: return "Duplicate key identifier";
    case ErrorCode::kApplicationRecordLocked: return "Application record locked";
    case ErrorCode::kApplicationInternalError: return "Application internal error";
  }
  return "Application internal error";
}

char SeverityCode(Severity s) {
  switch (s) {
    case Severity::kError: return 'E';
    case Severity::kWarning: return 'W';
    case Severity::kInformation: return 'I';
  }
  return 'E';
}

std::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kInformation: return "information";
  }
  return "error";
}

absl::Status MakeHl7Error(absl::StatusCode code, Issue issue) {
  std::string where = issue.location.segment.empty() ? "" : issue.location.ToString();
  absl::Status s(code, where.empty() ? issue.message : base::StrCat(where, ": ", issue.message));
  // Payload: "<code>\t<severity>\t<path>" so the issue survives status copies.
  s.SetPayload(kPayloadUrl, absl::Cord(base::StrCat(static_cast<int>(issue.code), "\t",
                                                    SeverityCode(issue.severity), "\t", where)));
  return s;
}

std::optional<Issue> IssueFromStatus(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  std::string payload_text(*payload);
  std::vector<std::string_view> parts = base::Split(payload_text, '\t');
  if (parts.size() != 3) return std::nullopt;
  Issue issue;
  int code = 0;
  if (!base::ParseInt(parts[0], &code)) return std::nullopt;
  issue.code = static_cast<ErrorCode>(code);
  issue.severity = parts[1] == "W"   ? Severity::kWarning
                   : parts[1] == "I" ? Severity::kInformation
                                     : Severity::kError;
  if (!parts[2].empty()) {
    auto p = Path::Parse(parts[2]);
    if (p.ok()) issue.location = *p;
  }
  std::string msg_text(status.message());
  std::string_view msg = msg_text;
  if (!parts[2].empty() && msg.size() > parts[2].size() + 2 && msg.substr(0, parts[2].size()) == parts[2]) {
    msg.remove_prefix(parts[2].size() + 2);
  }
  issue.message = std::string(msg);
  return issue;
}

}  // namespace isthmus::hl7v2
