// Helpers for reading human-edited YAML files (config, conformance profiles) with yaml-cpp:
// parsing without exceptions, `file:line:column` locations, collecting many errors instead of
// stopping at the first, and key checks that reject unknown and duplicate keys.
//
// yaml-cpp reports failures by throwing; ParseYaml is the adapter that turns them into
// absl::Status. Readers that walk a node tree should use only the non-throwing accessors
// (IsMap, IsSequence, IsScalar, Scalar, Mark, iteration), or catch YAML::Exception themselves.
//
// Thread-safety: functions are stateless; a YamlErrors is used by one thread.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(YAML::Node root, base::ParseYaml(text, "site.yaml"));
//   base::YamlErrors errors("site.yaml");
//   base::CheckKeys(root, {"name", "channels"}, errors);
//   if (!errors.empty()) return errors.ToStatus();
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace isthmus::base {

// "source:line:column" (1-based) for `node`, or just "source" when the node has no position
// (an absent node, or one built in code).
std::string YamlLocation(std::string_view source, const YAML::Node& node);

// InvalidArgument "source:line:column: what".
absl::Status YamlError(std::string_view source, const YAML::Node& node, std::string_view what);

// Parses one YAML document. Syntax errors are InvalidArgument "source:line:column: what".
// Never throws.
absl::StatusOr<YAML::Node> ParseYaml(std::string_view text, std::string_view source);

// Collects errors (up to `max_reported`; the rest are counted) for a reader that keeps going
// after the first mistake so a user sees all of them in one run.
class YamlErrors {
 public:
  explicit YamlErrors(std::string source, size_t max_reported = 20)
      : source_(std::move(source)), max_reported_(max_reported) {}

  const std::string& source() const { return source_; }
  // Adds "source:line:column: what" at `node`'s position.
  void Add(const YAML::Node& node, std::string_view what);
  // Adds "source:line:column: what" at an explicit 1-based position (0 = unknown).
  void AddAt(int line, int column, std::string_view what);

  bool empty() const { return total_ == 0; }
  size_t count() const { return total_; }
  // The reported messages, one per error, in the order they were added.
  const std::vector<std::string>& messages() const { return messages_; }
  // OK when empty; else InvalidArgument with one error per line (and "... and N more errors").
  absl::Status ToStatus() const;

 private:
  std::string source_;
  size_t max_reported_;
  size_t total_ = 0;
  std::vector<std::string> messages_;
};

// Checks that `node` is a mapping whose keys are all in `allowed`, each at most once. Adds an
// error naming the allowed keys for each unknown key, and one for each duplicate. Returns false
// (and adds an error saying `what` must be a mapping) when `node` is not a mapping.
bool CheckKeys(const YAML::Node& node, std::span<const std::string_view> allowed,
               YamlErrors& errors, std::string_view what = "this section");
inline bool CheckKeys(const YAML::Node& node, std::initializer_list<std::string_view> allowed,
                      YamlErrors& errors, std::string_view what = "this section") {
  return CheckKeys(node, std::span<const std::string_view>(allowed.begin(), allowed.size()),
                   errors, what);
}

// Reads a YAML boolean scalar (true/false/yes/no/on/off, any case).
bool ParseYamlBool(const YAML::Node& node, bool* out);

}  // namespace isthmus::base
