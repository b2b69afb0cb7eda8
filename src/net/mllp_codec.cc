#include "net/mllp_codec.h"

#include <cstring>

namespace isthmus::net {

void MllpDecoder::FlushGarbage(std::vector<MllpEvent>* out) {
  if (garbage_ == 0) return;
  out->push_back(MllpEvent{MllpEvent::kGarbage, {}, garbage_});
  garbage_ = 0;
}

void MllpDecoder::Feed(std::string_view data, std::vector<MllpEvent>* out) {
  size_t i = 0;
  while (i < data.size()) {
    switch (state_) {
      case State::kIdle: {
        char c = data[i++];
        if (c == kMllpStart) {
          FlushGarbage(out);
          state_ = State::kInFrame;
          frame_.clear();
        } else if (c != '\r' && c != '\n' && c != ' ' && c != '\t' && c != '\0') {
          ++garbage_;
        }
        break;
      }
      case State::kAfterEnd: {
        // FS seen; the CR that should follow is optional in practice.
        if (data[i] == kMllpTrailer) ++i;
        state_ = State::kIdle;
        break;
      }
      case State::kInFrame: {
        // Copy the run up to the next FS or VT in one go.
        const char* begin = data.data() + i;
        size_t n = data.size() - i;
        const char* fs = static_cast<const char*>(std::memchr(begin, kMllpEnd, n));
        const char* vt = static_cast<const char*>(std::memchr(begin, kMllpStart, fs ? fs - begin : n));
        const char* stop = vt != nullptr ? vt : fs;
        size_t run = stop != nullptr ? static_cast<size_t>(stop - begin) : n;
        if (frame_.size() + run > max_frame_bytes_) {
          skipped_ = frame_.size();
          frame_.clear();
          frame_.shrink_to_fit();
          state_ = State::kSkipping;
          break;  // the skipping state consumes this run
        }
        frame_.append(begin, run);
        i += run;
        if (stop == nullptr) break;
        ++i;
        if (stop == vt) {  // a new frame starts before this one ended
          out->push_back(MllpEvent{MllpEvent::kUnterminated, std::move(frame_), 0});
          frame_.clear();
          state_ = State::kInFrame;
        } else {
          out->push_back(MllpEvent{MllpEvent::kFrame, std::move(frame_), 0});
          frame_.clear();
          state_ = State::kAfterEnd;
        }
        break;
      }
      case State::kSkipping: {
        const char* begin = data.data() + i;
        size_t n = data.size() - i;
        const char* fs = static_cast<const char*>(std::memchr(begin, kMllpEnd, n));
        if (fs == nullptr) {
          skipped_ += n;
          i = data.size();
          break;
        }
        skipped_ += static_cast<size_t>(fs - begin);
        i += static_cast<size_t>(fs - begin) + 1;
        out->push_back(MllpEvent{MllpEvent::kOversized, {}, skipped_});
        state_ = State::kAfterEnd;
        break;
      }
    }
  }
  // Report stray bytes once per read, so a client that sends only garbage gets an answer.
  if (state_ == State::kIdle) FlushGarbage(out);
}

std::string MllpEncode(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 3);
  out.push_back(kMllpStart);
  out.append(payload);
  out.push_back(kMllpEnd);
  out.push_back(kMllpTrailer);
  return out;
}

}  // namespace isthmus::net
