// Loads v2 -> FHIR map files (YAML, docs/mapping-guide.md) and compiles them into a MapSet.
//
// A maps directory holds messages/*.yaml, segments/*.yaml, datatypes/*.yaml and
// vocabulary/*.yaml; a map's name is its file name without .yaml (`PID[Patient]`). Directories
// are layered: a file in a later directory replaces the file with the same relative path in an
// earlier one (site maps over shipped maps), other files add maps. Every error (YAML syntax,
// unknown key, bad path, unknown map or vocabulary name, malformed condition) is reported as
// `file:line:column: what`, all of them in one run.
//
// Thread-safety: stateless functions; the MapSet they return is immutable.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(std::shared_ptr<const MapSet> maps,
//                            LoadMaps({"/usr/share/isthmus/maps", "/etc/isthmus/maps"}));
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "mapping/v2fhir/plan.h"

namespace isthmus::v2fhir {

// Loads and layers `dirs` (earlier first). NotFound when a directory does not exist.
absl::StatusOr<std::shared_ptr<const MapSet>> LoadMaps(const std::vector<std::string>& dirs);

// One map file in memory: the relative path ("segments/PID[Patient].yaml"), the name used in
// errors and the text.
struct MapFile {
  std::string relative_path;
  std::string display_path;
  std::string text;
};

// Compiles files already read (tests; LoadMaps reads then calls this).
absl::StatusOr<std::shared_ptr<const MapSet>> CompileMaps(const std::vector<MapFile>& files);

}  // namespace isthmus::v2fhir

namespace isthmus::v2fhir {

// Parses an element path as maps write it (`identifier[+].value`, `name[1].family`,
// `extension[url=X].valueString`); the Lua hooks' resource API takes the same paths.
absl::StatusOr<ElementPath> ParseElementPath(std::string_view text);

// The shipped maps: $ISTHMUS_MAPS_DIR when set, else <install prefix>/share/isthmus/maps when it
// exists, else the source tree's maps/ (compiled in, for builds that are not installed).
std::string DefaultMapsDir();

}  // namespace isthmus::v2fhir
