// The store's schema: migrations applied in order by db::Migrate. Never edit a shipped entry;
// append a new one.
#pragma once

#include <string_view>
#include <vector>

namespace isthmus::store {

const std::vector<std::string_view>& SchemaMigrations();

}  // namespace isthmus::store
