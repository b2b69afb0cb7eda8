#include "base/thread_name.h"

#include <pthread.h>

#include <algorithm>
#include <string>

namespace isthmus::base {

void SetThreadName(std::string_view name) {
  std::string cut(name.substr(0, std::min<size_t>(name.size(), 15)));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace isthmus::base
