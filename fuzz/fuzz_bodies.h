// The bodies of the HL7 v2 fuzz targets, shared by the libFuzzer binaries (fuzz/*_fuzzer.cc) and
// the regression replay test (src/hl7v2/fuzz_regression_test.cc), so that a crash file in
// fuzz/regressions/ is replayed through exactly the code that found it.
//
// Each body feeds arbitrary bytes to the library and checks invariants that must hold for ANY
// input. It returns an empty string when all held, otherwise a description of the first broken
// invariant (the fuzzer aborts on it, the test reports it). Crashes and sanitizer reports are
// caught by the sanitizers, not here.
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

namespace isthmus::fuzz {

// SplitBatch + Message::Parse of every message (and of the whole input): rejected input has a
// non-empty error and a NAK that parses; parsed messages re-encode byte-identically, Get/GetText
// of fixed and input-derived paths never crash, a no-op Set keeps the encoding, a real Set and
// AddSegment survive Encode + re-Parse, and BuildAck yields a parsable ACK.
std::string CheckParse(std::string_view data);

// Unescape of arbitrary bytes never crashes; for text without NUL, Unescape(Escape(x)) == x
// (with "\r\n" read as "\n", which Escape writes as \.br\) under the default delimiters and under
// delimiters taken from the input; Escape's output holds no delimiter or line break.
std::string CheckEscape(std::string_view data);

}  // namespace isthmus::fuzz
