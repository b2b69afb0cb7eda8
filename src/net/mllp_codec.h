// MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2): a frame is
// <VT 0x0B> payload <FS 0x1C><CR 0x0D>. The decoder is a pure state machine fed with whatever
// the socket delivered; it never allocates more than `max_frame_bytes` per frame and reports
// what it had to skip, so the listener can answer every malformed input with a NAK.
// Thread-safety: a decoder belongs to one connection; not thread-safe.
//
// Example:
//   MllpDecoder dec(1 << 20);
//   std::vector<MllpEvent> events;
//   dec.Feed(bytes_from_socket, &events);
//   for (auto& e : events) if (e.kind == MllpEvent::kFrame) Handle(e.payload);
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace isthmus::net {

inline constexpr char kMllpStart = '\x0b';
inline constexpr char kMllpEnd = '\x1c';
inline constexpr char kMllpTrailer = '\r';

struct MllpEvent {
  enum Kind {
    kFrame,          // `payload` holds a complete message
    kOversized,      // a frame exceeded max_frame_bytes; its bytes were discarded up to FS
    kGarbage,        // `bytes` non-whitespace bytes arrived outside any frame (reported at
                     // the next VT or the end of the Feed() call that holds them)
    kUnterminated,   // a new VT arrived before the previous frame's FS; `payload` = the partial
  };
  Kind kind;
  std::string payload;
  size_t bytes = 0;
};

class MllpDecoder {
 public:
  explicit MllpDecoder(size_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

  // Consumes `data`, appending completed events to `out`.
  void Feed(std::string_view data, std::vector<MllpEvent>* out);

  // True while inside a frame (bytes after VT, FS not yet seen): an idle timeout then means a
  // truncated frame.
  bool in_frame() const { return state_ != State::kIdle; }
  size_t buffered_bytes() const { return frame_.size(); }

 private:
  enum class State { kIdle, kInFrame, kAfterEnd, kSkipping };
  void FlushGarbage(std::vector<MllpEvent>* out);

  size_t max_frame_bytes_;
  State state_ = State::kIdle;
  std::string frame_;
  size_t garbage_ = 0;
  size_t skipped_ = 0;
};

// Wraps `payload` in an MLLP frame.
std::string MllpEncode(std::string_view payload);

}  // namespace isthmus::net
