#include "mapping/lua/lua_sandbox.h"

#include <lua.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "base/str.h"
#include "hl7v2/path.h"

// A note on Lua errors and C++: Debian's liblua5.4 is C, so lua_error/luaL_error unwind with
// longjmp. Every lua_CFunction below therefore calls Lua API functions that may raise only while
// no C++ object with a destructor is alive in its frame; the C++ work (paths, Message calls,
// strings) happens in helpers that return before anything can raise and leave their results in
// State::scratch / State::error.

namespace isthmus::mapping {

namespace {

constexpr char kMessageMeta[] = "isthmus.Message";
constexpr uint64_t kHookEvery = 1000;  // instructions between count-hook calls
// What set/add_segment are charged per call on top of the value bytes (Message bookkeeping).
constexpr size_t kPerEditOverhead = 64;

enum class Abort { kNone, kInstructions, kWallTime, kMemory, kMessageGrowth };

}  // namespace

struct LuaSandbox::State {
  LuaSandbox* box = nullptr;
  const LuaScript* script = nullptr;
  const base::Clock* clock = nullptr;
  lua_State* L = nullptr;

  ~State() {
    if (L != nullptr) lua_close(L);
  }

  // Allocator accounting (AllocFn).
  size_t mem_used = 0;
  size_t mem_limit = 0;
  bool mem_refused = false;  // an allocation was refused since the run started

  // Per run.
  uint64_t hook_every = kHookEvery;
  uint64_t max_hook_calls = 0;
  uint64_t hook_calls = 0;
  bool has_deadline = false;
  absl::Time deadline;
  Abort abort = Abort::kNone;
  const hl7v2::Message* msg = nullptr;  // the message of the current run, else null
  hl7v2::Message* writable = nullptr;   // the same message when msg may be changed, else null
  uint64_t generation = 1;              // msg userdata from other runs carry another number
  size_t message_growth = 0;            // bytes set/add_segment added in this run
  std::string scope_segment;            // SetSegmentScope
  int scope_occurrence = 0;

  std::string scratch;  // results of helpers, pushed by the lua_CFunctions
  std::string error;    // error text of helpers, raised by the lua_CFunctions

  void StartRun(const hl7v2::Message* m, hl7v2::Message* w) {
    hook_calls = 0;
    abort = Abort::kNone;
    mem_refused = false;
    message_growth = 0;
    msg = m;
    writable = w;
    const LuaOptions& o = script->options();
    has_deadline = o.max_wall_time > absl::ZeroDuration();
    if (has_deadline) deadline = clock->Now() + o.max_wall_time;
  }
  void EndRun() {
    msg = nullptr;
    writable = nullptr;
    ++generation;
  }
};

namespace {

using State = LuaSandbox::State;

State* GetState(lua_State* L) { return *static_cast<State**>(lua_getextraspace(L)); }

// lua_Alloc that refuses to grow past the limit. Shrinking never fails (Lua relies on that).
void* AllocFn(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* s = static_cast<State*>(ud);
  size_t old = ptr != nullptr ? osize : 0;  // without ptr, osize is a type tag
  if (nsize == 0) {
    std::free(ptr);
    s->mem_used -= old;
    return nullptr;
  }
  if (nsize > old && s->mem_used + (nsize - old) > s->mem_limit) {
    s->mem_refused = true;
    return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (p == nullptr) {
    s->mem_refused = true;
    return nullptr;
  }
  s->mem_used = s->mem_used - old + nsize;
  return p;
}

// Count hook: enforces the instruction and wall-time limits. Once a limit was hit it raises on
// every call, and the pcall/xpcall wrappers re-raise, so a script cannot catch its way on.
void CountHook(lua_State* L, lua_Debug*) {
  State* s = GetState(L);
  if (s->abort == Abort::kNone) {
    ++s->hook_calls;
    if (s->hook_calls > s->max_hook_calls) {
      s->abort = Abort::kInstructions;
    } else if (s->has_deadline && s->clock->Now() > s->deadline) {
      s->abort = Abort::kWallTime;
    }
  }
  if (s->abort == Abort::kNone) return;
  // In a hook, level 0 is the Lua function that was running: name its line.
  luaL_where(L, 0);
  switch (s->abort) {
    case Abort::kNone:
    case Abort::kInstructions:
      lua_pushfstring(L, "instruction limit exceeded (%I instructions)",
                      static_cast<lua_Integer>(s->script->options().max_instructions));
      break;
    case Abort::kWallTime:
      lua_pushfstring(L, "wall-time limit exceeded (%I ms)",
                      static_cast<lua_Integer>(
                          absl::ToInt64Milliseconds(s->script->options().max_wall_time)));
      break;
    case Abort::kMemory:
    case Abort::kMessageGrowth:
      lua_pushliteral(L, "memory limit exceeded");
      break;
  }
  lua_concat(L, 2);
  lua_error(L);
}

// Whether the error a pcall/xpcall just caught (at stack index `err`) must go on unwinding.
bool MustRethrow(lua_State* L, int err) {
  State* s = GetState(L);
  if (s->abort != Abort::kNone) return true;
  if (!s->mem_refused || lua_type(L, err) != LUA_TSTRING) return false;
  const char* m = lua_tostring(L, err);
  if (std::strcmp(m, "not enough memory") == 0 || std::strcmp(m, "error in error handling") == 0) {
    s->abort = Abort::kMemory;
    return true;
  }
  return false;
}

// pcall and xpcall, wrapping the originals (upvalue 1) so that limits are not swallowed.
int SafePcall(lua_State* L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  if (!lua_toboolean(L, 1) && MustRethrow(L, 2)) {
    lua_settop(L, 2);
    return lua_error(L);
  }
  return lua_gettop(L);
}

// setmetatable, refusing __gc: finalizers run with hooks off, so a finalizer could loop forever.
int SafeSetmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      return luaL_error(L, "__gc metamethods are not allowed in transformer scripts");
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

// collectgarbage limited to "count", "collect" and "step".
int SafeCollectgarbage(lua_State* L) {
  const char* opt = luaL_optstring(L, 1, "collect");
  if (std::strcmp(opt, "count") != 0 && std::strcmp(opt, "collect") != 0 &&
      std::strcmp(opt, "step") != 0) {
    return luaL_error(L, "collectgarbage('%s') is not allowed in transformer scripts", opt);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// ---- msg userdata -------------------------------------------------------------------------

struct MessageRef {
  uint64_t generation;
};

const hl7v2::Message* CheckMessage(lua_State* L) {
  auto* ref = static_cast<MessageRef*>(luaL_checkudata(L, 1, kMessageMeta));
  State* s = GetState(L);
  if (s->msg == nullptr || ref->generation != s->generation) {
    luaL_error(L, "this msg belongs to an earlier call of transform or of a hook and can no longer be used");
  }
  return s->msg;
}

std::string_view CheckView(lua_State* L, int arg) {
  size_t n = 0;
  const char* p = luaL_checklstring(L, arg, &n);
  return std::string_view(p, n);
}

[[noreturn]] void RaiseError(lua_State* L, State* s) {
  luaL_error(L, "%s", s->error.c_str());
  std::abort();  // not reached: luaL_error does not return
}

// Helpers: plain C++, never touch the Lua stack. Return false with s->error set on failure.
bool ParsePath(State* s, std::string_view text, hl7v2::Path* out) {
  absl::StatusOr<hl7v2::Path> p = hl7v2::Path::Parse(text);
  if (!p.ok()) {
    s->error = std::string(p.status().message());
    return false;
  }
  *out = std::move(*p);
  // A per-segment hook: its own segment named without [n] is the occurrence being converted.
  if (!s->scope_segment.empty() && out->segment_index == 0 && out->segment == s->scope_segment) {
    out->segment_index = s->scope_occurrence;
  }
  return true;
}

// Reads `path` into s->scratch; *present is false when the value is empty (absent).
bool DoGet(State* s, std::string_view path_text, bool text, bool* present) {
  try {
    hl7v2::Path path;
    if (!ParsePath(s, path_text, &path)) return false;
    std::string_view raw = s->msg->Get(path);
    *present = !raw.empty();
    if (text) {
      s->scratch = s->msg->GetText(path);
    } else {
      s->scratch.assign(raw);
    }
    return true;
  } catch (const std::exception& e) {
    s->error = e.what();
    return false;
  }
}

bool ChargeGrowth(State* s, size_t bytes) {
  s->message_growth += bytes + kPerEditOverhead;
  if (s->message_growth > s->script->options().max_memory_bytes) {
    s->abort = Abort::kMessageGrowth;
    s->error = base::StrCat("memory limit exceeded: this run added more than ",
                            s->script->options().max_memory_bytes, " bytes to the message");
    return false;
  }
  return true;
}

bool ReadOnly(State* s) {
  if (s->writable != nullptr) return false;
  s->error = "msg is read-only here (a conversion hook changes the FHIR resources, not the message)";
  return true;
}

bool DoSet(State* s, std::string_view path, std::string_view value, bool text) {
  if (ReadOnly(s)) return false;
  try {
    if (!ChargeGrowth(s, value.size())) return false;
    absl::Status st = text ? s->writable->SetText(path, value) : s->writable->Set(path, value);
    if (!st.ok()) {
      s->error = std::string(st.message());
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    s->error = e.what();
    return false;
  }
}

bool DoAddSegment(State* s, std::string_view raw) {
  if (ReadOnly(s)) return false;
  try {
    if (!ChargeGrowth(s, raw.size())) return false;
    absl::Status st = s->writable->AddSegment(raw);
    if (!st.ok()) {
      s->error = base::StrCat("cannot add segment: ", std::string(st.message()));
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    s->error = e.what();
    return false;
  }
}

bool DoRepetitions(State* s, std::string_view path_text, int* n) {
  try {
    hl7v2::Path path;
    if (!ParsePath(s, path_text, &path)) return false;
    *n = s->msg->RepetitionCount(path);
    return true;
  } catch (const std::exception& e) {
    s->error = e.what();
    return false;
  }
}

bool DoEncode(State* s) {
  try {
    s->scratch = s->msg->Encode();
    return true;
  } catch (const std::exception& e) {
    s->error = e.what();
    return false;
  }
}

// Pushes s->scratch, or nil when it is empty.
int PushScratchOrNil(lua_State* L, State* s, bool present) {
  if (!present) {
    lua_pushnil(L);
  } else {
    lua_pushlstring(L, s->scratch.data(), s->scratch.size());
  }
  return 1;
}

int PushViewOrNil(lua_State* L, std::string_view v) {
  if (v.empty()) {
    lua_pushnil(L);
  } else {
    lua_pushlstring(L, v.data(), v.size());
  }
  return 1;
}

int MsgGetImpl(lua_State* L, bool text) {
  CheckMessage(L);
  std::string_view path = CheckView(L, 2);
  State* s = GetState(L);
  bool present = false;
  if (!DoGet(s, path, text, &present)) RaiseError(L, s);
  return PushScratchOrNil(L, s, present);
}
int MsgGet(lua_State* L) { return MsgGetImpl(L, /*text=*/true); }
int MsgGetRaw(lua_State* L) { return MsgGetImpl(L, /*text=*/false); }

int MsgSetImpl(lua_State* L, bool text) {
  CheckMessage(L);
  std::string_view path = CheckView(L, 2);
  size_t n = 0;
  const char* v = luaL_optlstring(L, 3, "", &n);  // nil clears the value
  State* s = GetState(L);
  if (!DoSet(s, path, std::string_view(v, n), text)) RaiseError(L, s);
  return 0;
}
int MsgSet(lua_State* L) { return MsgSetImpl(L, /*text=*/true); }
int MsgSetRaw(lua_State* L) { return MsgSetImpl(L, /*text=*/false); }

int MsgAddSegment(lua_State* L) {
  CheckMessage(L);
  std::string_view raw = CheckView(L, 2);
  State* s = GetState(L);
  if (!DoAddSegment(s, raw)) RaiseError(L, s);
  return 0;
}

int MsgCount(lua_State* L) {
  const hl7v2::Message* m = CheckMessage(L);
  std::string_view name = CheckView(L, 2);
  lua_pushinteger(L, m->CountSegments(name));
  return 1;
}

int MsgRepetitions(lua_State* L) {
  CheckMessage(L);
  std::string_view path = CheckView(L, 2);
  State* s = GetState(L);
  int n = 0;
  if (!DoRepetitions(s, path, &n)) RaiseError(L, s);
  lua_pushinteger(L, n);
  return 1;
}

int MsgType(lua_State* L) { return PushViewOrNil(L, CheckMessage(L)->message_type()); }
int MsgTrigger(lua_State* L) { return PushViewOrNil(L, CheckMessage(L)->trigger_event()); }
int MsgControlId(lua_State* L) { return PushViewOrNil(L, CheckMessage(L)->control_id()); }

int MsgEncode(lua_State* L) {
  CheckMessage(L);
  State* s = GetState(L);
  if (!DoEncode(s)) RaiseError(L, s);
  lua_pushlstring(L, s->scratch.data(), s->scratch.size());
  return 1;
}

int MsgToString(lua_State* L) {
  auto* ref = static_cast<MessageRef*>(luaL_checkudata(L, 1, kMessageMeta));
  lua_pushfstring(L, "HL7 v2 message (run %I)", static_cast<lua_Integer>(ref->generation));
  return 1;
}

constexpr luaL_Reg kMessageMethods[] = {
    {"get", MsgGet},
    {"get_raw", MsgGetRaw},
    {"set", MsgSet},
    {"set_raw", MsgSetRaw},
    {"add_segment", MsgAddSegment},
    {"count", MsgCount},
    {"repetitions", MsgRepetitions},
    {"type", MsgType},
    {"trigger", MsgTrigger},
    {"control_id", MsgControlId},
    {"encode", MsgEncode},
    {nullptr, nullptr},
};

// ---- state setup, run, error text ---------------------------------------------------------

void WrapGlobal(lua_State* L, const char* name, lua_CFunction wrapper) {
  lua_getglobal(L, name);
  lua_pushcclosure(L, wrapper, 1);
  lua_setglobal(L, name);
}

// Opens the sandboxed libraries and registers the msg metatable. Runs under lua_pcall.
int SetupState(lua_State* L) {
  const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},        {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table},  {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8},
  };
  for (const luaL_Reg& lib : libs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  for (const char* name : {"dofile", "loadfile", "load", "print", "warn"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  WrapGlobal(L, "pcall", SafePcall);
  WrapGlobal(L, "xpcall", SafePcall);
  WrapGlobal(L, "setmetatable", SafeSetmetatable);
  WrapGlobal(L, "collectgarbage", SafeCollectgarbage);

  luaL_newmetatable(L, kMessageMeta);
  lua_newtable(L);
  luaL_setfuncs(L, kMessageMethods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, MsgToString);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "isthmus.Message");
  lua_setfield(L, -2, "__metatable");  // getmetatable(msg) cannot reach the methods
  lua_pop(L, 1);
  return 0;
}

// Message handler: the error text plus a traceback.
int MessageHandler(lua_State* L) {
  const char* msg = nullptr;
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    msg = lua_tostring(L, 1);
  } else {
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

}  // namespace

std::string FormatLuaError(std::string_view text) {
  size_t nl = text.find('\n');
  std::string out(text.substr(0, nl));
  if (nl == std::string_view::npos) return out;
  std::string frames;
  int kept = 0;
  for (std::string_view line : base::Split(text.substr(nl + 1), '\n')) {
    while (!line.empty() && (line.front() == '\t' || line.front() == ' ')) line.remove_prefix(1);
    if (line.empty() || line == "stack traceback:" || line.starts_with("[C]:") ||
        line.starts_with("(...tail calls...)")) {
      continue;
    }
    if (kept == 6) {
      frames += "; ...";
      break;
    }
    if (kept++ > 0) frames += "; ";
    frames += line;
  }
  if (!frames.empty()) base::StrAppend(&out, " (traceback: ", frames, ")");
  return out;
}


namespace {

// Pushes a new msg object for the current run. Runs inside a protected call.
void PushMessageObject(lua_State* L, State* s) {
  auto* ref = static_cast<MessageRef*>(lua_newuserdatauv(L, sizeof(MessageRef), 0));
  ref->generation = s->generation;
  luaL_setmetatable(L, kMessageMeta);
}

}  // namespace

LuaSandbox::~LuaSandbox() = default;

LuaSandbox* LuaSandbox::From(lua_State* L) { return GetState(L)->box; }

uint64_t LuaSandbox::instructions() const { return state_->hook_calls * state_->hook_every; }

size_t LuaSandbox::memory_bytes() const { return state_->mem_used; }

void LuaSandbox::PushMessage() { PushMessageObject(L_, state_.get()); }

void LuaSandbox::SetSegmentScope(std::string_view name, int occurrence) {
  state_->scope_segment.assign(name);
  state_->scope_occurrence = occurrence;
}

bool LuaSandbox::HasFunction(const char* name) const {
  bool yes = lua_getglobal(L_, name) == LUA_TFUNCTION;
  lua_pop(L_, 1);
  return yes;
}

absl::StatusOr<std::unique_ptr<LuaSandbox>> LuaSandbox::Create(const LuaScript& script) {
  std::unique_ptr<LuaSandbox> box(new LuaSandbox());
  box->script_ = &script;
  box->state_ = std::make_unique<State>();
  State* s = box->state_.get();
  s->box = box.get();
  s->script = &script;
  const LuaOptions& o = script.options();
  s->clock = o.clock != nullptr ? o.clock : &base::RealClock::Get();
  s->mem_limit = o.max_memory_bytes;
  uint64_t limit = std::max<uint64_t>(o.max_instructions, 1);
  s->hook_every = std::min<uint64_t>(kHookEvery, limit);
  s->max_hook_calls = limit / s->hook_every;

  s->L = lua_newstate(AllocFn, s);
  if (s->L == nullptr) {
    return absl::ResourceExhaustedError(
        base::StrCat("cannot create a Lua state within ", o.max_memory_bytes, " bytes"));
  }
  lua_State* L = s->L;
  box->L_ = L;
  *static_cast<State**>(lua_getextraspace(L)) = s;
  lua_sethook(L, CountHook, LUA_MASKCOUNT, static_cast<int>(s->hook_every));

  lua_pushcfunction(L, SetupState);
  if (int rc = lua_pcall(L, 0, 0, 0); rc != LUA_OK) {
    return absl::ResourceExhaustedError(base::StrCat(
        "cannot set up a Lua state within ", o.max_memory_bytes, " bytes (error ", rc, ")"));
  }

  // Load the byte-compiled chunk and run its top level under the limits.
  s->StartRun(nullptr, nullptr);
  lua_pushcfunction(L, MessageHandler);
  const std::string& code = script.bytecode();
  int rc = luaL_loadbufferx(L, code.data(), code.size(), script.chunk_name().c_str(), "b");
  if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 1);
  if (rc != LUA_OK) return box->Error(rc, "its top level");
  s->EndRun();
  lua_settop(L, 0);
  return box;
}

int LuaSandbox::Call(int (*body)(lua_State*), const hl7v2::Message* msg,
                     hl7v2::Message* writable) {
  State* s = state_.get();
  lua_settop(L_, 0);
  s->StartRun(msg, writable);
  lua_pushcfunction(L_, MessageHandler);
  lua_pushcfunction(L_, body);
  int rc = lua_pcall(L_, 0, LUA_MULTRET, 1);
  s->EndRun();
  return rc;
}

absl::Status LuaSandbox::Error(int rc, std::string_view what) const {
  const State* s = state_.get();
  std::string text;
  if (lua_type(L_, -1) == LUA_TSTRING) text = FormatLuaError(lua_tostring(L_, -1));
  const std::string& name = script_->name();
  bool memory = rc == LUA_ERRMEM || s->abort == Abort::kMemory ||
                s->abort == Abort::kMessageGrowth || (rc == LUA_ERRERR && s->mem_refused);
  if (memory) {
    return absl::ResourceExhaustedError(base::StrCat(
        "Lua script ", name, " exceeded its memory limit of ",
        script_->options().max_memory_bytes, " bytes in ", what,
        s->abort == Abort::kMessageGrowth ? " (message growth): " : ": ", text));
  }
  if (s->abort == Abort::kInstructions || s->abort == Abort::kWallTime) {
    return absl::ResourceExhaustedError(
        base::StrCat("Lua script ", name, " stopped in ", what, ": ", text));
  }
  return absl::InvalidArgumentError(base::StrCat("Lua script error in ", what, ": ", text));
}

bool LuaSandbox::Settle(int rc) {
  const State* s = state_.get();
  lua_settop(L_, 0);
  return rc != LUA_OK &&
         (rc == LUA_ERRMEM || s->abort == Abort::kMemory || (rc == LUA_ERRERR && s->mem_refused));
}

}  // namespace isthmus::mapping
