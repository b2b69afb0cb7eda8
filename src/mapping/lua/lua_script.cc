#include "mapping/lua/lua_script.h"

#include <lua.hpp>

#include <utility>

#include "base/file.h"
#include "base/status_macros.h"
#include "base/str.h"
#include "mapping/lua/lua_sandbox.h"
#include "mapping/lua/lua_transformer.h"

namespace isthmus::mapping {
namespace {

constexpr size_t kMaxSourceBytes = size_t{16} << 20;

int AppendChunk(lua_State*, const void* p, size_t n, void* ud) {
  try {
    static_cast<std::string*>(ud)->append(static_cast<const char*>(p), n);
    return 0;
  } catch (...) {
    return 1;
  }
}

// Syntax check and byte-compilation in a throwaway state (source text only: mode "t").
absl::StatusOr<std::string> ByteCompile(std::string_view source, const std::string& chunk_name,
                                        std::string_view name) {
  if (source.size() > kMaxSourceBytes) {
    return absl::ResourceExhaustedError(
        base::StrCat("Lua script ", name, " is larger than ", kMaxSourceBytes, " bytes"));
  }
  lua_State* L = luaL_newstate();
  if (L == nullptr) return absl::ResourceExhaustedError("cannot create a Lua state");
  std::string bytecode;
  int rc = luaL_loadbufferx(L, source.data(), source.size(), chunk_name.c_str(), "t");
  absl::Status status;
  if (rc != LUA_OK) {
    const char* msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "unknown error";
    status = rc == LUA_ERRMEM
                 ? absl::ResourceExhaustedError(base::StrCat("cannot compile Lua script ", name,
                                                             ": not enough memory"))
                 : absl::InvalidArgumentError(
                       base::StrCat("cannot compile Lua script: ", std::string_view(msg)));
  } else if (lua_dump(L, AppendChunk, &bytecode, /*strip=*/0) != 0) {
    status = absl::ResourceExhaustedError(
        base::StrCat("cannot byte-compile Lua script ", name, ": out of memory"));
  }
  lua_close(L);
  if (!status.ok()) return status;
  return bytecode;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const LuaScript>> LuaScript::Compile(std::string_view source,
                                                                    std::string_view name,
                                                                    const LuaOptions& options) {
  // "=name": Lua prints the name as given (truncated after 59 bytes).
  ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<LuaScript> script,
                           CompileChunk(source, name, base::StrCat("=", name), options));
  // Trial instantiation: runs the top level and checks that `transform` exists.
  ISTHMUS_RETURN_IF_ERROR(LuaTransformer::Create(script).status());
  return std::shared_ptr<const LuaScript>(std::move(script));
}

absl::StatusOr<std::shared_ptr<const LuaScript>> LuaScript::CompileWithFunctions(
    std::string_view source, std::string_view name, const std::vector<std::string>& functions,
    const LuaOptions& options) {
  ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<LuaScript> script,
                           CompileChunk(source, name, base::StrCat("@", name), options));
  // Trial instantiation: runs the top level and checks that every entry point exists.
  ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<LuaSandbox> box, LuaSandbox::Create(*script));
  for (const std::string& f : functions) {
    if (!box->HasFunction(f.c_str())) {
      return absl::InvalidArgumentError(
          base::StrCat("Lua script ", name, " defines no global function '", f, "'"));
    }
  }
  return std::shared_ptr<const LuaScript>(std::move(script));
}

absl::StatusOr<std::shared_ptr<LuaScript>> LuaScript::CompileChunk(
    std::string_view source, std::string_view name, std::string chunk_name,
    const LuaOptions& options) {
  std::shared_ptr<LuaScript> script(new LuaScript());
  script->name_ = std::string(name);
  script->chunk_name_ = std::move(chunk_name);
  script->options_ = options;
  ISTHMUS_ASSIGN_OR_RETURN(script->bytecode_, ByteCompile(source, script->chunk_name_, name));
  return script;
}

absl::StatusOr<std::shared_ptr<const LuaScript>> LuaScript::CompileFile(
    const std::string& path, const LuaOptions& options) {
  ISTHMUS_ASSIGN_OR_RETURN(std::string source, base::ReadFile(path, kMaxSourceBytes));
  // "@path": Lua prints the path, keeping its end ("...scripts/add-facility.lua") when long.
  ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<LuaScript> script,
                           CompileChunk(source, path, base::StrCat("@", path), options));
  ISTHMUS_RETURN_IF_ERROR(LuaTransformer::Create(script).status());
  return std::shared_ptr<const LuaScript>(std::move(script));
}

}  // namespace isthmus::mapping
