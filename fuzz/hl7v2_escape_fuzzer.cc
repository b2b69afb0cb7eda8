// libFuzzer target: Unescape of arbitrary bytes, and Unescape(Escape(x)) == x.
// The body and its invariants live in fuzz_bodies.cc (shared with the regression replay test).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_bodies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error = isthmus::fuzz::CheckEscape(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!error.empty()) {
    std::fprintf(stderr, "hl7v2_escape_fuzzer: invariant broken: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}
