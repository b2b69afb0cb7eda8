#include "hl7v2/batch.h"

#include <cctype>

#include "absl/status/status.h"
#include "base/str.h"

namespace isthmus::hl7v2 {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool IsTerminator(char c) { return c == '\r' || c == '\n'; }

bool IsBlankLine(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\x1a' && c != '\0' && c != '\x0b' && c != '\x1c') {
      return false;
    }
  }
  return true;
}

// Field 1 of an envelope segment (BTS-1, FTS-1) given the field separator.
std::string_view FirstField(std::string_view line, char sep) {
  if (line.size() < 4 || line[3] != sep) return {};
  std::string_view rest = line.substr(4);
  return rest.substr(0, std::min(rest.find(sep), rest.size()));
}

Issue EnvelopeIssue(std::string_view segment, int field, std::string message) {
  Issue i;
  i.code = ErrorCode::kSegmentSequenceError;
  i.location.segment = std::string(segment);
  i.location.field = field;
  i.message = std::move(message);
  return i;
}

}  // namespace

absl::StatusOr<Batch> SplitBatch(std::string_view bytes) {
  Batch batch;
  size_t pos = bytes.substr(0, kBom.size()) == kBom ? kBom.size() : 0;
  char sep = '|';
  size_t line_no = 0;
  // The open message: start offset and end of its last segment's terminators.
  bool open = false;
  MessageSpan current;
  size_t current_end = 0;
  int in_batch_messages = 0;
  bool in_batch = false;
  bool file_trailer_seen = false;

  auto close = [&]() {
    if (!open) return;
    current.bytes = bytes.substr(current.offset, current_end - current.offset);
    batch.messages.push_back(current);
    open = false;
  };

  while (pos < bytes.size()) {
    size_t end = pos;
    while (end < bytes.size() && !IsTerminator(bytes[end])) ++end;
    size_t term_end = end;
    while (term_end < bytes.size() && IsTerminator(bytes[term_end])) ++term_end;
    std::string_view line = bytes.substr(pos, end - pos);
    ++line_no;
    // A file saved from an MLLP feed may keep the start byte (VT) before MSH.
    if (!line.empty() && line[0] == '\x0b' && line.substr(1, 3) == "MSH") {
      line.remove_prefix(1);
      pos += 1;
    }
    if (IsBlankLine(line)) {
      pos = term_end;
      continue;
    }
    std::string_view name = line.substr(0, 3);
    if (name == "MSH") {
      close();
      if (line.size() >= 4) sep = line[3];
      open = true;
      current = MessageSpan{{}, pos, line_no};
      current_end = term_end;
      ++in_batch_messages;
    } else if (name == "FHS" || name == "BHS") {
      close();
      if (line.size() >= 4) sep = line[3];
      if (name == "FHS") {
        if (batch.has_file_header || batch.batch_count > 0 || !batch.messages.empty()) {
          batch.envelope_issues.push_back(EnvelopeIssue(
              "FHS", 0, base::StrCat("line ", line_no, ": FHS must be the first segment")));
        }
        batch.has_file_header = true;
      } else {
        if (in_batch) {
          batch.envelope_issues.push_back(EnvelopeIssue(
              "BHS", 0, base::StrCat("line ", line_no, ": BHS before the previous batch's BTS")));
        }
        ++batch.batch_count;
        in_batch = true;
        in_batch_messages = 0;
      }
    } else if (name == "BTS") {
      close();
      if (!in_batch) {
        batch.envelope_issues.push_back(
            EnvelopeIssue("BTS", 0, base::StrCat("line ", line_no, ": BTS without a BHS")));
      }
      std::string_view count = FirstField(line, sep);
      int declared = 0;
      if (!count.empty() && (!base::ParseInt(count, &declared) || declared != in_batch_messages)) {
        batch.envelope_issues.push_back(EnvelopeIssue(
            "BTS", 1,
            base::StrCat("line ", line_no, ": BTS-1 declares ", count, " messages but the batch has ",
                         in_batch_messages)));
      }
      in_batch = false;
    } else if (name == "FTS") {
      close();
      if (in_batch) {
        batch.envelope_issues.push_back(EnvelopeIssue(
            "BTS", 0, base::StrCat("line ", line_no, ": FTS before the last batch's BTS")));
        in_batch = false;
      }
      std::string_view count = FirstField(line, sep);
      int declared = 0;
      if (!count.empty() && (!base::ParseInt(count, &declared) || declared != batch.batch_count)) {
        batch.envelope_issues.push_back(EnvelopeIssue(
            "FTS", 1,
            base::StrCat("line ", line_no, ": FTS-1 declares ", count,
                         " batches but the file has ", batch.batch_count)));
      }
      file_trailer_seen = true;
    } else if (open) {
      current_end = term_end;
    } else {
      return absl::InvalidArgumentError(
          base::StrCat("line ", line_no, ": segment '",
                       std::string(line.substr(0, std::min<size_t>(line.size(), 3))),
                       "' comes before any MSH segment"));
    }
    pos = term_end;
  }
  close();
  if (in_batch) {
    batch.envelope_issues.push_back(
        EnvelopeIssue("BTS", 0, "the batch has a BHS but no closing BTS segment"));
  }
  if (batch.has_file_header && !file_trailer_seen) {
    batch.envelope_issues.push_back(
        EnvelopeIssue("FTS", 0, "the file has an FHS but no closing FTS segment"));
  }
  if (batch.messages.empty()) {
    return absl::InvalidArgumentError("the input holds no MSH segment, so no HL7 v2 message");
  }
  return batch;
}

}  // namespace isthmus::hl7v2
