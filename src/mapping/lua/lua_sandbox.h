// The sandboxed Lua 5.4 state shared by every Lua entry point of the engine: the channel
// transformer (lua_transformer.h) and the hooks of the v2 -> FHIR converter
// (mapping/v2fhir/converter.h). docs/lua-transformers.md describes the sandbox and its limits.
//
// A LuaSandbox owns one lua_State with: the base library minus dofile/loadfile/load/print/warn,
// string (without dump), table, math and utf8; pcall/xpcall that cannot swallow a limit;
// setmetatable without __gc; collectgarbage limited to count/collect/step; an allocator that
// refuses to grow past LuaOptions::max_memory_bytes; a count hook enforcing max_instructions and
// max_wall_time per Call. It also registers the `msg` object (get, get_raw, set, set_raw,
// add_segment, count, repetitions, type, trigger, control_id, encode) over the message of the
// current Call; a Call without a writable message makes msg read-only (set/set_raw/add_segment
// raise).
//
// Lua stays out of this header: callers that push values include <lua.hpp> themselves. Because
// Debian's liblua5.4 is C (errors unwind with longjmp), lua_CFunctions that may raise must not
// have C++ objects with destructors alive in their frame (see lua_transformer.cc).
//
// Thread-safety: NOT thread-safe; one sandbox per thread (it may move between threads between
// calls). The LuaScript it runs is shared and immutable.
//
// Example (what LuaTransformer::Run does):
//   ISTHMUS_ASSIGN_OR_RETURN(auto box, LuaSandbox::Create(script));   // runs the top level
//   int rc = box->Call(body, &msg, &msg);     // body(L) pushes and calls `transform`
//   if (rc != 0) return box->Error(rc, "transform");
//   ... read results at stack indices 2..top ...; box->Settle();
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hl7v2/message.h"
#include "mapping/lua/lua_script.h"

struct lua_State;

namespace isthmus::mapping {

class LuaSandbox {
 public:
  // Creates the state and runs the script's top level in it under the limits. InvalidArgument
  // for an error in the top level, ResourceExhausted for a limit.
  static absl::StatusOr<std::unique_ptr<LuaSandbox>> Create(const LuaScript& script);
  ~LuaSandbox();
  LuaSandbox(const LuaSandbox&) = delete;
  LuaSandbox& operator=(const LuaSandbox&) = delete;

  // The sandbox of a state (from inside a lua_CFunction).
  static LuaSandbox* From(lua_State* L);

  lua_State* L() const { return L_; }
  const LuaScript& script() const { return *script_; }

  // Whether the script defines a global function `name` (after its top level ran).
  bool HasFunction(const char* name) const;

  // Runs `body` in protected mode with a traceback-adding message handler at stack index 1, under
  // the limits, with `msg` (read-only unless `writable`, which must then be the same message)
  // as the message that msg objects pushed by PushMessage refer to. Returns the lua_pcall code
  // (0 = LUA_OK); body's results stay on the stack at 2..top until Settle().
  int Call(int (*body)(lua_State*), const hl7v2::Message* msg, hl7v2::Message* writable);
  // After a failed Call: the Status (InvalidArgument naming script:line plus a one-line
  // traceback; ResourceExhausted for a limit), `what` saying what ran ("transform",
  // "hook after_pid").
  absl::Status Error(int rc, std::string_view what) const;
  // Clears the stack after a Call; reports whether the state hit its memory limit and must be
  // rebuilt (the caller creates a new sandbox).
  bool Settle(int rc);

  // For body: pushes a msg object valid during this Call.
  void PushMessage();
  // A segment scope for msg:get/get_raw/repetitions during the next Calls: a path naming segment
  // `name` without an occurrence ([n]) reads occurrence `occurrence` (a per-segment hook reads
  // its own OBX with "OBX-5"). Empty name: none.
  void SetSegmentScope(std::string_view name, int occurrence);

  // Lua instructions the last Call used, rounded up to the hook step.
  uint64_t instructions() const;
  // Bytes the state holds.
  size_t memory_bytes() const;

  // Context for the caller's lua_CFunctions during a Call (the converter's run); not touched here.
  void* user = nullptr;

  struct State;  // lua_sandbox.cc

 private:
  LuaSandbox() = default;
  const LuaScript* script_ = nullptr;
  std::unique_ptr<State> state_;
  lua_State* L_ = nullptr;
};

// "msg\nstack traceback:\n\tf:1: in ...\n\t..." -> "msg (traceback: f:1: in ...; ...)".
std::string FormatLuaError(std::string_view text);

}  // namespace isthmus::mapping
