// A Lua 5.4 transformer script, compiled once (docs/lua-transformers.md).
//
// LuaScript::Compile checks the syntax, byte-compiles the source and instantiates it once in a
// scratch sandbox (running its top level under the limits) to make sure it defines a global
// function `transform`; config checks therefore catch broken scripts before any message flows.
// A compiled script is immutable and shared by every pipeline worker; each worker runs it in its
// own LuaTransformer (lua_transformer.h).
//
// Thread-safety: a LuaScript is immutable after Compile; share it as
// std::shared_ptr<const LuaScript> between threads.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<const LuaScript> script,
//                            LuaScript::CompileFile("maps/add-facility.lua"));
//   ISTHMUS_ASSIGN_OR_RETURN(std::unique_ptr<LuaTransformer> t, LuaTransformer::Create(script));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace isthmus::mapping {

struct LuaOptions {
  // Lua VM instructions per run of `transform` (and for the script's top level when a state is
  // created). Exceeding it: ResourceExhausted. Counted in steps of at most 1000 instructions.
  uint64_t max_instructions = 10'000'000;
  // Bytes one Lua state may hold (everything the Lua allocator hands out, including the standard
  // libraries, about 25 KiB). Also caps what one run may add to the HL7 message through set and
  // add_segment. Exceeding it: ResourceExhausted, and the state is rebuilt.
  size_t max_memory_bytes = size_t{64} << 20;
  // Wall time per run; zero means none. Checked with the instruction count, i.e. between Lua
  // instructions, never inside one C library call (see "What a script cannot do" in the docs).
  absl::Duration max_wall_time = absl::ZeroDuration();
  // Clock for max_wall_time; nullptr means base::RealClock. Must outlive every transformer.
  const base::Clock* clock = nullptr;
};

class LuaScript {
 public:
  // Compiles `source`. `name` is how errors name the script (e.g. "add-facility.lua"), as in
  // "add-facility.lua:3: 'end' expected near <eof>". InvalidArgument for syntax errors, for
  // precompiled (binary) chunks, for errors in the top level, and when no global function
  // `transform` is defined; ResourceExhausted when the top level exceeds a limit.
  static absl::StatusOr<std::shared_ptr<const LuaScript>> Compile(std::string_view source,
                                                                  std::string_view name,
                                                                  const LuaOptions& options = {});
  // Reads and compiles the file at `path` (errors name the path). NotFound etc. from reading.
  static absl::StatusOr<std::shared_ptr<const LuaScript>> CompileFile(
      const std::string& path, const LuaOptions& options = {});

  // A script whose entry points are the global functions `functions` instead of `transform`
  // (the v2 -> FHIR converter's hooks). Errors name the script by `name` like CompileFile
  // ("maps/lua/site.lua:3: ..."); a function it does not define is InvalidArgument.
  static absl::StatusOr<std::shared_ptr<const LuaScript>> CompileWithFunctions(
      std::string_view source, std::string_view name, const std::vector<std::string>& functions,
      const LuaOptions& options = {});

  const std::string& name() const { return name_; }
  const LuaOptions& options() const { return options_; }
  // The byte-compiled chunk (lua_dump output), loaded by every LuaTransformer.
  const std::string& bytecode() const { return bytecode_; }
  // The chunk name given to Lua ("=name" or "@path"), so messages read "name:line: ...".
  const std::string& chunk_name() const { return chunk_name_; }

 private:
  LuaScript() = default;
  static absl::StatusOr<std::shared_ptr<LuaScript>> CompileChunk(std::string_view source,
                                                                 std::string_view name,
                                                                 std::string chunk_name,
                                                                 const LuaOptions& options);
  std::string name_;
  std::string chunk_name_;
  std::string bytecode_;
  LuaOptions options_;
};

}  // namespace isthmus::mapping
