// Names the calling thread, so that `top -H`, `perf` and gdb tell the engine's threads apart
// (net, writer, pipeline-0, dispatch-<destination>...). Linux keeps the first 15 bytes.
#pragma once

#include <string_view>

namespace isthmus::base {

void SetThreadName(std::string_view name);

}  // namespace isthmus::base
