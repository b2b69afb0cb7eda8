// Lua hooks of the v2 -> FHIR converter (docs/mapping-guide.md "Lua hooks"): site functions that
// run in the engine's Lua sandbox (mapping/lua/lua_sandbox.h: no io/os, instruction and memory
// limits) and see the HL7 message (read-only `msg`, as in Lua transformers) and the resources
// the maps made, through `res` objects (get/set/remove elements by the maps' element paths,
// drop the resource) and a `bundle` object (find resources).
//
// A segment hook is called as fn(msg, res, bundle) after its segment map's rules ran for one
// segment (`res`: the resource they filled; in msg paths, the hook's own segment named without
// [n] is that occurrence). A message hook is called as fn(msg, bundle) once every segment was
// converted, before references between resources are written.
//
// The converter implements HookHost over its element tree; HookRunner holds the Lua states.
//
// Thread-safety: a HookRunner is per thread (it lives in the converter's Workspace).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "hl7v2/message.h"
#include "mapping/v2fhir/plan.h"

namespace isthmus::mapping {
class LuaSandbox;
}

namespace isthmus::v2fhir {

// A value read from, or written to, a resource element.
struct HookValue {
  enum Kind { kNil, kString, kNumber, kBool };
  Kind kind = kNil;
  std::string text;  // kString: the text; kNumber: JSON number text; kBool: "true"/"false"
};

// What a conversion offers its hooks. Resources are named by their node in the conversion's
// element tree. Methods returning bool return false with *error set (a bad path, an element
// that is an object where a value is expected).
class HookHost {
 public:
  virtual bool HookGet(uint32_t res, std::string_view path, HookValue* out, std::string* error) = 0;
  virtual bool HookCount(uint32_t res, std::string_view path, int* out, std::string* error) = 0;
  // `where`: the script position ("maps/lua/site.lua:7:") for --explain.
  virtual bool HookSet(uint32_t res, std::string_view path, const HookValue& v,
                       std::string_view where, std::string* error) = 0;
  virtual bool HookRemove(uint32_t res, std::string_view path, std::string* error) = 0;
  virtual void HookDrop(uint32_t res) = 0;
  // Resources not dropped, in creation order; every type when `type` is empty.
  virtual void HookResources(std::string_view type, std::vector<uint32_t>* out) = 0;
  virtual std::string_view HookType(uint32_t res) = 0;
  virtual std::string_view HookId(uint32_t res) = 0;

 protected:
  ~HookHost() = default;
};

class HookRunner {
 public:
  static constexpr uint32_t kNoResource = UINT32_MAX;
  HookRunner();
  ~HookRunner();

  // Runs `hook` (of `maps`) on `msg`: a segment hook with `resource` and the segment
  // (`segment`, `occurrence`), a message hook with resource kNoResource. A Lua error or limit is
  // the returned Status: "<declared at file:line>: hook 'fn' failed: Lua script error in hook fn:
  // maps/lua/site.lua:5: ... (traceback: ...)"; InvalidArgument or ResourceExhausted.
  absl::Status Run(const MapSet& maps, const Hook& hook, const hl7v2::Message& msg,
                   HookHost& host, uint32_t resource, std::string_view segment, int occurrence);

 private:
  // One sandbox per script, created on first use; the script is kept alive with it.
  std::vector<std::pair<std::shared_ptr<const mapping::LuaScript>,
                        std::unique_ptr<mapping::LuaSandbox>>>
      boxes_;
  uint64_t serial_ = 0;  // res/bundle objects of earlier calls carry another number
};

}  // namespace isthmus::v2fhir
