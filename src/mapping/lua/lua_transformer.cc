#include "mapping/lua/lua_transformer.h"

#include <lua.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "base/status_macros.h"
#include "base/str.h"
#include "mapping/lua/lua_sandbox.h"

// The sandbox, the msg object and the limits are in lua_sandbox.cc; this file is the contract of
// `transform` (what its return values mean).

namespace isthmus::mapping {

namespace {

// Calls transform(msg), leaving its results on the stack. Runs under lua_pcall.
int RunTransform(lua_State* L) {
  if (lua_getglobal(L, "transform") != LUA_TFUNCTION) {
    return luaL_error(L, "the script defines no global function 'transform'");
  }
  int base = lua_gettop(L) - 1;
  LuaSandbox::From(L)->PushMessage();
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - base;
}

}  // namespace

LuaTransformer::LuaTransformer(std::shared_ptr<const LuaScript> script)
    : script_(std::move(script)) {}

LuaTransformer::~LuaTransformer() = default;

size_t LuaTransformer::memory_bytes() const { return box_ ? box_->memory_bytes() : 0; }

absl::StatusOr<std::unique_ptr<LuaTransformer>> LuaTransformer::Create(
    std::shared_ptr<const LuaScript> script) {
  std::unique_ptr<LuaTransformer> t(new LuaTransformer(std::move(script)));
  ISTHMUS_RETURN_IF_ERROR(t->NewState());
  return t;
}

absl::Status LuaTransformer::NewState() {
  box_.reset();
  ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<LuaSandbox> box, LuaSandbox::Create(*script_));
  if (!box->HasFunction("transform")) {
    return absl::InvalidArgumentError(base::StrCat(
        "Lua script ", script_->name(), " defines no global function 'transform(msg)'"));
  }
  box_ = std::move(box);
  return absl::OkStatus();
}

absl::StatusOr<TransformResult> LuaTransformer::Run(hl7v2::Message& msg) {
  if (box_ == nullptr) ISTHMUS_RETURN_IF_ERROR(NewState());
  lua_State* L = box_->L();
  int rc = box_->Call(RunTransform, &msg, &msg);

  TransformResult result;
  result.instructions = box_->instructions();
  absl::Status status;
  if (rc != LUA_OK) {
    status = box_->Error(rc, "transform");
  } else {
    // Results are at 2..top (1 is the message handler). Only inspect types and copy strings:
    // nothing here may raise outside protected mode.
    int n = lua_gettop(L) - 1;
    int t = n >= 1 ? lua_type(L, 2) : LUA_TNIL;
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && lua_toboolean(L, 2))) {
      result.action = TransformResult::kContinue;
    } else if (t == LUA_TBOOLEAN) {
      result.action = TransformResult::kFilter;
      int rt = n >= 2 ? lua_type(L, 3) : LUA_TNIL;
      if (rt == LUA_TSTRING) {
        size_t len = 0;
        const char* p = lua_tolstring(L, 3, &len);
        result.reason.assign(p, len);
      } else if (rt != LUA_TNIL) {
        status = absl::InvalidArgumentError(base::StrCat(
            "Lua script ", script_->name(), ": transform returned false with a ",
            lua_typename(L, rt), " as the reason; the reason must be a string"));
      }
    } else if (t == LUA_TSTRING) {
      result.action = TransformResult::kReplace;
      size_t len = 0;
      const char* p = lua_tolstring(L, 2, &len);
      result.payload.assign(p, len);
    } else {
      status = absl::InvalidArgumentError(base::StrCat(
          "Lua script ", script_->name(), ": transform returned a ", lua_typename(L, t),
          "; expected nothing, true, false [, reason] or a string"));
    }
  }
  if (box_->Settle(rc)) {
    ++rebuilds_;
    absl::Status rebuilt = NewState();  // a failure leaves box_ null; the next Run retries
    (void)rebuilt;
  }
  if (!status.ok()) return status;
  return result;
}

}  // namespace isthmus::mapping
