#include "mapping/v2fhir/hooks.h"

#include <lua.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/str.h"
#include "mapping/lua/lua_sandbox.h"

// Debian's liblua5.4 is C: luaL_error unwinds with longjmp. The lua_CFunctions below raise only
// while no C++ object with a destructor is alive in their frame; C++ work happens in Do*
// helpers that leave their result in the call's Ctx (value, list) or its error text.

namespace isthmus::v2fhir {
namespace {

constexpr char kResourceMeta[] = "isthmus.Resource";
constexpr char kBundleMeta[] = "isthmus.Bundle";

// One hook call.
struct Ctx {
  HookHost* host = nullptr;
  const Hook* hook = nullptr;
  uint32_t resource = HookRunner::kNoResource;
  uint64_t serial = 0;
  HookValue value;
  std::vector<uint32_t> list;
  std::string where;
  std::string error;
};

struct ResRef {
  uint64_t serial;
  uint32_t node;
};
struct BundleRef {
  uint64_t serial;
};

Ctx* GetCtx(lua_State* L) { return static_cast<Ctx*>(mapping::LuaSandbox::From(L)->user); }

[[noreturn]] void Raise(lua_State* L, Ctx* c) {
  luaL_error(L, "%s", c->error.c_str());
  std::abort();  // not reached
}

uint32_t CheckRes(lua_State* L, Ctx* c) {
  auto* r = static_cast<ResRef*>(luaL_checkudata(L, 1, kResourceMeta));
  if (c == nullptr || r->serial != c->serial) {
    luaL_error(L, "this resource object belongs to an earlier hook call and can no longer be used");
  }
  return r->node;
}

void CheckBundle(lua_State* L, Ctx* c) {
  auto* b = static_cast<BundleRef*>(luaL_checkudata(L, 1, kBundleMeta));
  if (c == nullptr || b->serial != c->serial) {
    luaL_error(L, "this bundle object belongs to an earlier hook call and can no longer be used");
  }
}

void PushRes(lua_State* L, Ctx* c, uint32_t node) {
  auto* r = static_cast<ResRef*>(lua_newuserdatauv(L, sizeof(ResRef), 0));
  r->serial = c->serial;
  r->node = node;
  luaL_setmetatable(L, kResourceMeta);
}

std::string_view CheckView(lua_State* L, int arg) {
  size_t n = 0;
  const char* p = luaL_checklstring(L, arg, &n);
  return std::string_view(p, n);
}

// ---- helpers (C++; never touch the Lua stack) ----------------------------------------------

bool DoGet(Ctx* c, uint32_t res, std::string_view path) {
  try {
    return c->host->HookGet(res, path, &c->value, &c->error);
  } catch (const std::exception& e) {
    c->error = e.what();
    return false;
  }
}

bool DoCount(Ctx* c, uint32_t res, std::string_view path, int* n) {
  try {
    return c->host->HookCount(res, path, n, &c->error);
  } catch (const std::exception& e) {
    c->error = e.what();
    return false;
  }
}

bool DoSet(Ctx* c, uint32_t res, std::string_view path, std::string_view where) {
  try {
    c->where.assign(where);
    return c->host->HookSet(res, path, c->value, c->where, &c->error);
  } catch (const std::exception& e) {
    c->error = e.what();
    return false;
  }
}

bool DoRemove(Ctx* c, uint32_t res, std::string_view path) {
  try {
    return c->host->HookRemove(res, path, &c->error);
  } catch (const std::exception& e) {
    c->error = e.what();
    return false;
  }
}

bool DoResources(Ctx* c, std::string_view type) {
  try {
    c->list.clear();
    c->host->HookResources(type, &c->list);
    return true;
  } catch (const std::exception& e) {
    c->error = e.what();
    return false;
  }
}

// A Lua value (at `arg`) as c->value: nil, string, number (JSON text) or boolean.
bool DoValue(Ctx* c, int type, std::string_view text, bool integer, lua_Integer i, lua_Number d,
             bool b) {
  try {
    HookValue& v = c->value;
    v.text.clear();
    switch (type) {
      case LUA_TNIL: v.kind = HookValue::kNil; return true;
      case LUA_TBOOLEAN:
        v.kind = HookValue::kBool;
        v.text = b ? "true" : "false";
        return true;
      case LUA_TSTRING:
        v.kind = HookValue::kString;
        v.text.assign(text);
        return true;
      case LUA_TNUMBER: {
        v.kind = HookValue::kNumber;
        if (integer) {
          v.text = std::to_string(i);
          return true;
        }
        if (!std::isfinite(d)) {
          c->error = "a FHIR number is finite (not inf or nan)";
          return false;
        }
        // The shortest of %.15g and %.17g that reads back as the same double.
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.15g", d);
        if (std::strtod(buf, nullptr) != d) std::snprintf(buf, sizeof buf, "%.17g", d);
        v.text = buf;
        return true;
      }
      default:
        c->error = "a value is a string, a number, a boolean or nil (to remove the element)";
        return false;
    }
  } catch (const std::exception& e) {
    c->error = e.what();
    return false;
  }
}

// ---- res ------------------------------------------------------------------------------------

int ResGet(lua_State* L) {
  Ctx* c = GetCtx(L);
  uint32_t res = CheckRes(L, c);
  std::string_view path = CheckView(L, 2);
  if (!DoGet(c, res, path)) Raise(L, c);
  const HookValue& v = c->value;
  switch (v.kind) {
    case HookValue::kNil: lua_pushnil(L); break;
    case HookValue::kBool: lua_pushboolean(L, v.text == "true"); break;
    case HookValue::kNumber:
      if (lua_stringtonumber(L, v.text.c_str()) == 0) lua_pushlstring(L, v.text.data(), v.text.size());
      break;
    case HookValue::kString: lua_pushlstring(L, v.text.data(), v.text.size()); break;
  }
  return 1;
}

int ResCount(lua_State* L) {
  Ctx* c = GetCtx(L);
  uint32_t res = CheckRes(L, c);
  std::string_view path = CheckView(L, 2);
  int n = 0;
  if (!DoCount(c, res, path, &n)) Raise(L, c);
  lua_pushinteger(L, n);
  return 1;
}

int ResSet(lua_State* L) {
  Ctx* c = GetCtx(L);
  uint32_t res = CheckRes(L, c);
  std::string_view path = CheckView(L, 2);
  int type = lua_type(L, 3);
  size_t n = 0;
  const char* s = type == LUA_TSTRING ? lua_tolstring(L, 3, &n) : nullptr;
  bool integer = type == LUA_TNUMBER && lua_isinteger(L, 3);
  lua_Integer i = integer ? lua_tointeger(L, 3) : 0;
  lua_Number d = type == LUA_TNUMBER ? lua_tonumber(L, 3) : 0;
  bool b = type == LUA_TBOOLEAN && lua_toboolean(L, 3);
  if (!DoValue(c, type, s != nullptr ? std::string_view(s, n) : std::string_view(), integer, i, d,
               b)) {
    Raise(L, c);
  }
  luaL_where(L, 1);  // "maps/lua/site.lua:7:" for --explain
  size_t wn = 0;
  const char* w = lua_tolstring(L, -1, &wn);
  bool ok = c->value.kind == HookValue::kNil ? DoRemove(c, res, path)
                                             : DoSet(c, res, path, std::string_view(w, wn));
  if (!ok) Raise(L, c);
  return 0;
}

int ResRemove(lua_State* L) {
  Ctx* c = GetCtx(L);
  uint32_t res = CheckRes(L, c);
  std::string_view path = CheckView(L, 2);
  if (!DoRemove(c, res, path)) Raise(L, c);
  return 0;
}

int ResDrop(lua_State* L) {
  Ctx* c = GetCtx(L);
  uint32_t res = CheckRes(L, c);
  c->host->HookDrop(res);
  return 0;
}

int PushView(lua_State* L, std::string_view v) {
  lua_pushlstring(L, v.data(), v.size());
  return 1;
}

int ResType(lua_State* L) {
  Ctx* c = GetCtx(L);
  return PushView(L, c->host->HookType(CheckRes(L, c)));
}

int ResId(lua_State* L) {
  Ctx* c = GetCtx(L);
  return PushView(L, c->host->HookId(CheckRes(L, c)));
}

int ResToString(lua_State* L) {
  Ctx* c = GetCtx(L);
  uint32_t res = CheckRes(L, c);
  std::string_view t = c->host->HookType(res), id = c->host->HookId(res);
  lua_pushlstring(L, t.data(), t.size());
  lua_pushliteral(L, "/");
  lua_pushlstring(L, id.data(), id.size());
  lua_concat(L, 3);
  return 1;
}

// ---- bundle ---------------------------------------------------------------------------------

// bundle:resources([type]) -> array of res; bundle:find(type) -> the first one or nil.
int BundleList(lua_State* L, bool first) {
  Ctx* c = GetCtx(L);
  CheckBundle(L, c);
  size_t n = 0;
  const char* t = first ? luaL_checklstring(L, 2, &n) : luaL_optlstring(L, 2, "", &n);
  if (!DoResources(c, std::string_view(t, n))) Raise(L, c);
  if (first) {
    if (c->list.empty()) {
      lua_pushnil(L);
    } else {
      PushRes(L, c, c->list[0]);
    }
    return 1;
  }
  lua_createtable(L, static_cast<int>(c->list.size()), 0);
  for (size_t i = 0; i < c->list.size(); ++i) {
    PushRes(L, c, c->list[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}
int BundleResources(lua_State* L) { return BundleList(L, false); }
int BundleFind(lua_State* L) { return BundleList(L, true); }

constexpr luaL_Reg kResourceMethods[] = {
    {"get", ResGet},   {"count", ResCount}, {"set", ResSet}, {"remove", ResRemove},
    {"drop", ResDrop}, {"type", ResType},   {"id", ResId},   {nullptr, nullptr},
};
constexpr luaL_Reg kBundleMethods[] = {
    {"resources", BundleResources},
    {"find", BundleFind},
    {nullptr, nullptr},
};

void Metatable(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction tostring) {
  if (luaL_newmetatable(L, name) == 0) {  // made by an earlier call in this state
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  if (tostring != nullptr) {
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__metatable");  // getmetatable() cannot reach the methods
  lua_pop(L, 1);
}

// Calls the hook function: fn(msg, res, bundle) or fn(msg, bundle). Runs under lua_pcall.
int HookBody(lua_State* L) {
  Ctx* c = GetCtx(L);
  Metatable(L, kResourceMeta, kResourceMethods, ResToString);
  Metatable(L, kBundleMeta, kBundleMethods, nullptr);
  if (lua_getglobal(L, c->hook->function.c_str()) != LUA_TFUNCTION) {
    return luaL_error(L, "the script defines no global function '%s'", c->hook->function.c_str());
  }
  mapping::LuaSandbox::From(L)->PushMessage();
  int args = 2;
  if (c->resource != HookRunner::kNoResource) {
    PushRes(L, c, c->resource);
    args = 3;
  }
  auto* b = static_cast<BundleRef*>(lua_newuserdatauv(L, sizeof(BundleRef), 0));
  b->serial = c->serial;
  luaL_setmetatable(L, kBundleMeta);
  lua_call(L, args, 0);
  return 0;
}

}  // namespace

HookRunner::HookRunner() = default;
HookRunner::~HookRunner() = default;

absl::Status HookRunner::Run(const MapSet& maps, const Hook& hook, const hl7v2::Message& msg,
                             HookHost& host, uint32_t resource, std::string_view segment,
                             int occurrence) {
  if (hook.script < 0 || static_cast<size_t>(hook.script) >= maps.scripts.size() ||
      maps.scripts[hook.script] == nullptr) {
    return absl::InternalError(base::StrCat(hook.src.ToString(), ": hook without a script"));
  }
  if (boxes_.size() < maps.scripts.size()) boxes_.resize(maps.scripts.size());
  auto& [script, box] = boxes_[hook.script];
  if (box == nullptr || script != maps.scripts[hook.script]) {
    box.reset();
    script = maps.scripts[hook.script];
    auto made = mapping::LuaSandbox::Create(*script);
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          base::StrCat(hook.src.ToString(), ": hook '", hook.function,
                                       "': ", std::string(made.status().message())));
    }
    box = *std::move(made);
  }
  Ctx ctx;
  ctx.host = &host;
  ctx.hook = &hook;
  ctx.resource = resource;
  ctx.serial = ++serial_;
  box->user = &ctx;
  box->SetSegmentScope(segment, occurrence);
  int rc = box->Call(HookBody, &msg, nullptr);
  absl::Status status;
  if (rc != LUA_OK) {
    absl::Status e = box->Error(rc, base::StrCat("hook ", hook.function));
    status = absl::Status(e.code(), base::StrCat(hook.src.ToString(), ": hook '", hook.function,
                                                 "' failed: ", std::string(e.message())));
  }
  box->user = nullptr;
  if (box->Settle(rc)) box.reset();  // memory limit: a fresh state next time
  return status;
}

}  // namespace isthmus::v2fhir
