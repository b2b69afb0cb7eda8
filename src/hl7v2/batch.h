// Input that holds many messages: a plain concatenation of messages, or the HL7 batch protocol
// (FHS / BHS ... messages ... BTS / FTS). Envelopes are checked: BTS-1 must equal the number of
// messages in its batch, FTS-1 the number of batches in the file.
// Thread-safety: stateless functions; results view the caller's buffer.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(Batch b, SplitBatch(file_bytes));
//   for (const MessageSpan& m : b.messages) { auto msg = Message::Parse(m.bytes); ... }
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hl7v2/issue.h"

namespace isthmus::hl7v2 {

struct MessageSpan {
  std::string_view bytes;  // from "MSH" through the last terminator of the message
  size_t offset = 0;       // byte offset in the input
  size_t line = 1;         // 1-based line (segment) number of its MSH in the input
};

struct Batch {
  std::vector<MessageSpan> messages;
  bool has_file_header = false;   // FHS present
  int batch_count = 0;            // BHS segments seen
  std::vector<Issue> envelope_issues;  // count mismatches, missing trailers (severity error)
};

// Splits `bytes` into messages at each MSH segment. Envelope segments are recognised and checked;
// a segment before the first MSH that is not an envelope is an error (InvalidArgument, with its
// line). Input without any MSH is InvalidArgument.
absl::StatusOr<Batch> SplitBatch(std::string_view bytes);

}  // namespace isthmus::hl7v2
