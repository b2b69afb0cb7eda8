// Runs a compiled Lua transformer script (lua_script.h) on HL7 v2 messages, one message at a
// time, in a sandboxed Lua 5.4 state (docs/lua-transformers.md).
//
// The script defines a global function `transform(msg)`; `msg` offers get/get_raw/set/set_raw/
// add_segment/count/repetitions/type/trigger/control_id/encode. What `transform` returns decides
// the outcome (TransformResult):
//   nothing, nil or true      -> kContinue: go on with the (possibly modified) message
//   false [, reason]          -> kFilter: the message is filtered out; `reason` (a string, or
//                                nil) is recorded
//   a string                  -> kReplace: the payload becomes this string (e.g. a JSON
//                                document); changes made to `msg` are then irrelevant
//   anything else             -> InvalidArgument
//
// Errors are values, never crashes: a Lua error (runtime error, error(), a bad HL7 path, a
// failed set) is InvalidArgument naming "script:line" plus a one-line traceback; exceeding the
// instruction, wall-time or memory limit is ResourceExhausted. pcall/xpcall inside the script
// cannot swallow a limit. After any error the transformer stays usable for the next message; a
// state that hit its memory limit is rebuilt (its globals start afresh).
//
// The sandbox: the base library without dofile, loadfile, load, print and warn (collectgarbage
// limited to "count", "collect" and "step"; setmetatable refuses __gc), plus string (without
// string.dump), table, math and utf8. No io, os, package/require, debug or coroutine.
//
// Thread-safety: NOT thread-safe. Create one LuaTransformer per pipeline worker thread (the
// LuaScript it runs is shared). A transformer may move between threads between runs.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto t, LuaTransformer::Create(script));
//   ISTHMUS_ASSIGN_OR_RETURN(TransformResult r, t->Run(msg));
//   if (r.action == TransformResult::kFilter) state = "filtered";
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "hl7v2/message.h"
#include "mapping/lua/lua_script.h"

namespace isthmus::mapping {

class LuaSandbox;

struct TransformResult {
  enum Action { kContinue, kFilter, kReplace };
  Action action = kContinue;
  std::string reason;   // kFilter: the second return value, or empty
  std::string payload;  // kReplace: the returned string (may be empty)
  // Lua instructions the run used, rounded up to the hook granularity (<= 1000).
  uint64_t instructions = 0;
};

class LuaTransformer {
 public:
  // Creates a state and runs the script's top level in it. Errors as for LuaScript::Compile.
  static absl::StatusOr<std::unique_ptr<LuaTransformer>> Create(
      std::shared_ptr<const LuaScript> script);
  ~LuaTransformer();
  LuaTransformer(const LuaTransformer&) = delete;
  LuaTransformer& operator=(const LuaTransformer&) = delete;

  // Calls transform(msg). `msg` may be modified even when an error is returned; callers that
  // keep the message after an error must re-parse it from the journal's raw bytes.
  absl::StatusOr<TransformResult> Run(hl7v2::Message& msg);

  // Bytes the Lua state currently holds (for metrics and tests).
  size_t memory_bytes() const;
  // How many times the state was rebuilt after hitting the memory limit.
  int rebuilds() const { return rebuilds_; }


 private:
  explicit LuaTransformer(std::shared_ptr<const LuaScript> script);
  absl::Status NewState();

  std::shared_ptr<const LuaScript> script_;
  std::unique_ptr<LuaSandbox> box_;
  int rebuilds_ = 0;
};

}  // namespace isthmus::mapping
