// One HL7 v2 message in ER7 ("pipe and hat") encoding, parsed without copying.
//
// Parse() splits the bytes into segments (terminated by CR, LF or CRLF; a run of terminators and
// a leading UTF-8 BOM are kept for re-encoding) and fields. Values are views into the input;
// repetitions, components and subcomponents are split on access. Get() returns raw (escaped)
// text; GetText() returns it unescaped and converted to UTF-8 per MSH-18. Set() changes a value;
// Encode() of an unmodified message returns the input byte for byte.
//
// Field numbering follows HL7: field(0) is the segment name; for MSH, field(1) is the field
// separator and field(2) the encoding characters, neither of which is split further.
//
// Thread-safety: const methods may be called concurrently; Set() needs exclusive access.
// Lifetime: Parse() views the caller's buffer, which must outlive the Message; ParseOwned()
// takes the buffer.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(Message msg, Message::Parse(bytes));
//   std::string_view mrn = msg.Get("PID-3[1].1");
//   ISTHMUS_RETURN_IF_ERROR(msg.Set("PID-8", "F"));
//   std::string out = msg.Encode();
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hl7v2/charset.h"
#include "hl7v2/delimiters.h"
#include "hl7v2/path.h"

namespace isthmus::hl7v2 {

struct ParseOptions {
  size_t max_bytes = 64u << 20;      // larger input: ResourceExhausted
  size_t max_segments = 100'000;     // more segments: ResourceExhausted
  size_t max_fields_per_segment = 10'000;
  // Only MSH is split into fields; every other segment is still checked (a valid name, no
  // second MSH, the limits above but the per-segment field count) and kept as read, with only
  // its name as field 0. Enough for ACKs, duplicate detection and MSH-based routing, at a
  // fraction of the cost; Message::header_only() tells a reader it has no other fields.
  bool header_only = false;
};

class Message;

// A read-only view of one segment of a Message. Cheap to copy; valid while the Message lives and
// is not modified.
class SegmentView {
 public:
  std::string_view name() const;
  // Number of fields including field 0 (the name): the highest field number present + 1.
  size_t field_count() const { return count_; }
  // Raw text of field `n` (0 = name); empty when absent.
  std::string_view field(size_t n) const;
  // 1-based occurrence of this segment name in its message (the [n] of `OBX[3]`).
  int occurrence() const { return occurrence_; }
  size_t index() const { return index_; }

 private:
  friend class Message;
  SegmentView(const Message* m, size_t index, size_t first, size_t count, int occurrence)
      : msg_(m), index_(index), first_(first), count_(count), occurrence_(occurrence) {}
  const Message* msg_;
  size_t index_, first_, count_;
  int occurrence_;
};

class Message {
 public:
  static absl::StatusOr<Message> Parse(std::string_view bytes, const ParseOptions& opts = {});
  static absl::StatusOr<Message> ParseOwned(std::string bytes, const ParseOptions& opts = {});

  Message(Message&&) noexcept;
  Message& operator=(Message&&) noexcept;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message();

  const Delimiters& delimiters() const { return delims_; }
  const CharsetInfo& charset() const { return charset_; }

  size_t segment_count() const { return segments_.size(); }
  SegmentView segment(size_t i) const;
  // The `occurrence`-th (1-based) segment named `name`, if present.
  std::optional<SegmentView> FindSegment(std::string_view name, int occurrence = 1) const;
  // How many segments named `name` the message has.
  int CountSegments(std::string_view name) const;

  // Raw (escaped) value at `path`: a field, one repetition, component or subcomponent. Empty when
  // absent. A path without repetition means the first; without component, the whole repetition.
  std::string_view Get(const Path& path) const;
  // Same, parsing `path`; empty for an unparsable path (use Path::Parse to see why).
  std::string_view Get(std::string_view path) const;
  // Unescaped and converted to UTF-8.
  std::string GetText(const Path& path) const;
  std::string GetText(std::string_view path) const;
  // Converts a raw value of this message (from Get or SegmentView) to UTF-8 text.
  std::string DecodeText(std::string_view raw) const;

  // Number of repetitions of the field at `path` (segment + field); 0 when the field is empty.
  int RepetitionCount(const Path& path) const;

  // Replaces the raw value at `path`, adding separators as needed. A missing segment occurrence
  // is NotFound (segments are added with AddSegment). MSH-1 and MSH-2 cannot be set.
  absl::Status Set(const Path& path, std::string_view raw_value);
  absl::Status Set(std::string_view path, std::string_view raw_value);
  // Escapes `text` and sets it.
  absl::Status SetText(std::string_view path, std::string_view text);
  // Appends a segment given as raw ER7 text without terminator, e.g. "NTE|1||note".
  absl::Status AddSegment(std::string_view raw_segment);

  // The message in ER7. Unmodified segments are written exactly as read, with their original
  // terminators; modified and added ones end with the message's first terminator (CR if none).
  std::string Encode() const;
  bool modified() const { return modified_; }
  // Parsed with ParseOptions::header_only: segments other than MSH have no fields (Get and
  // GetText read them as empty). Parse the bytes again for anything but the header.
  bool header_only() const { return header_only_; }

  // Header shortcuts (raw values). Empty when absent.
  std::string_view message_type() const { return Header(9, 1); }         // MSH-9.1
  std::string_view trigger_event() const { return Header(9, 2); }        // MSH-9.2
  std::string_view structure() const { return Header(9, 3); }            // MSH-9.3
  std::string_view control_id() const { return Header(10, 0); }          // MSH-10
  std::string_view version() const { return Header(12, 1); }             // MSH-12.1
  std::string_view sending_application() const { return Header(3, 1); }  // MSH-3.1
  std::string_view sending_facility() const { return Header(4, 1); }     // MSH-4.1
  // MSH-`field` (first repetition), component `component` (0 = whole).
  std::string_view Header(int field, int component) const;

 private:
  friend class SegmentView;
  struct Segment {
    size_t first;        // index into fields_ of field 0
    size_t count;        // fields including field 0
    std::string_view raw;         // text as read (empty for added segments)
    std::string_view terminator;  // CR/LF run as read
    int occurrence;
    bool modified;
  };
  Message() = default;
  absl::Status ParseInto(std::string_view bytes, const ParseOptions& opts);
  absl::Status SplitFields(std::string_view raw, bool is_msh, size_t max_fields);
  int NextOccurrence(std::string_view name) const;
  std::string_view Own(std::string s);
  void EnsureFields(size_t seg, size_t count);
  std::string_view Locate(const Path& p, size_t* field_index) const;

  std::unique_ptr<std::string> owned_input_;
  std::deque<std::string> owned_values_;  // stable storage for values written by Set()
  std::string_view input_;                // everything parsed, for unmodified Encode()
  std::string_view prefix_;               // UTF-8 BOM and blank lines before MSH
  std::string_view trailer_;              // whitespace after the last segment
  std::vector<std::string_view> fields_;
  std::vector<Segment> segments_;
  Delimiters delims_;
  CharsetInfo charset_;
  bool modified_ = false;
  bool header_only_ = false;
};

// Splits a field (or repetition, component) on `sep`; returns the `index`-th part (1-based), or
// empty. Exposed for the encoder, validator and tests.
std::string_view NthPart(std::string_view s, char sep, int index);
// Number of parts of `s` split on `sep` (1 for a non-empty string without `sep`, 0 for empty).
int PartCount(std::string_view s, char sep);

}  // namespace isthmus::hl7v2
