#include "base/yaml_util.h"

#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "base/str.h"

namespace isthmus::base {

std::string YamlLocation(std::string_view source, const YAML::Node& node) {
  if (!node.IsDefined()) return std::string(source);
  YAML::Mark m = node.Mark();
  if (m.is_null()) return std::string(source);
  return StrCat(source, ":", m.line + 1, ":", m.column + 1);
}

absl::Status YamlError(std::string_view source, const YAML::Node& node, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(YamlLocation(source, node), ": ", what));
}

absl::StatusOr<YAML::Node> ParseYaml(std::string_view text, std::string_view source) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return absl::InvalidArgumentError(StrCat(source, ": ", e.msg));
    return absl::InvalidArgumentError(
        StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat(source, ": ", e.what()));
  }
}

void YamlErrors::Add(const YAML::Node& node, std::string_view what) {
  ++total_;
  if (messages_.size() < max_reported_) {
    messages_.push_back(StrCat(YamlLocation(source_, node), ": ", what));
  }
}

void YamlErrors::AddAt(int line, int column, std::string_view what) {
  ++total_;
  if (messages_.size() >= max_reported_) return;
  if (line <= 0) {
    messages_.push_back(StrCat(source_, ": ", what));
  } else {
    messages_.push_back(StrCat(source_, ":", line, ":", column, ": ", what));
  }
}

absl::Status YamlErrors::ToStatus() const {
  if (total_ == 0) return absl::OkStatus();
  std::string out;
  for (size_t i = 0; i < messages_.size(); ++i) {
    if (i > 0) out += '\n';
    out += messages_[i];
  }
  if (total_ > messages_.size()) {
    StrAppend(&out, "\n... and ", total_ - messages_.size(), " more error(s)");
  }
  return absl::InvalidArgumentError(out);
}

bool CheckKeys(const YAML::Node& node, std::span<const std::string_view> allowed,
               YamlErrors& errors, std::string_view what) {
  if (!node.IsMap()) {
    errors.Add(node, StrCat(what, " must be a mapping of keys to values"));
    return false;
  }
  std::vector<std::string> seen;
  for (const auto& kv : node) {
    const std::string& key = kv.first.Scalar();
    bool known = false;
    for (std::string_view a : allowed) known |= a == key;
    if (!known) {
      std::string list;
      for (std::string_view a : allowed) StrAppend(&list, list.empty() ? "" : ", ", a);
      errors.Add(kv.first, StrCat("unknown key '", key, "' in ", what, " (expected one of: ", list,
                                  ")"));
      continue;
    }
    bool dup = false;
    for (const std::string& s : seen) dup |= s == key;
    if (dup) {
      errors.Add(kv.first, StrCat("duplicate key '", key, "' in ", what));
    } else {
      seen.push_back(key);
    }
  }
  return true;
}

bool ParseYamlBool(const YAML::Node& node, bool* out) {
  if (!node.IsScalar()) return false;
  std::string s = absl::AsciiStrToLower(node.Scalar());
  if (s == "true" || s == "yes" || s == "on") {
    *out = true;
    return true;
  }
  if (s == "false" || s == "no" || s == "off") {
    *out = false;
    return true;
  }
  return false;
}

}  // namespace isthmus::base
