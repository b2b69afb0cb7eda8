#include "hl7v2/profile.h"

#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "base/str.h"
#include "base/file.h"
#include "base/yaml_util.h"
#include "yaml-cpp/yaml.h"

namespace isthmus::hl7v2 {
namespace {

// Reads one YAML document into a Profile; every failure names source:line.
class ProfileReader {
 public:
  explicit ProfileReader(std::string_view source) : source_(source) {}

  absl::StatusOr<std::shared_ptr<const Profile>> Read(const YAML::Node& root) {
    auto p = std::make_shared<Profile>();
    p->source = source_;
    if (!root || root.IsNull()) return Error(root, "the profile is empty");
    if (!root.IsMap()) return Error(root, "the profile must be a mapping of keys to values");
    for (const auto& kv : root) {
      const YAML::Node& key = kv.first;
      const YAML::Node& value = kv.second;
      const std::string k = key.Scalar();
      absl::Status s;
      if (k == "name") {
        s = Scalar(value, k, &p->name);
      } else if (k == "message_types") {
        s = StringList(value, k, &p->message_types);
        if (s.ok()) s = CheckMessageTypes(value, p->message_types);
      } else if (k == "forbid_z_segments") {
        s = Bool(value, k, &p->forbid_z_segments);
      } else if (k == "forbid_segments") {
        s = SegmentList(value, k, &p->forbid_segments);
      } else if (k == "required_segments") {
        s = SegmentList(value, k, &p->required_segments);
      } else if (k == "required_fields") {
        std::vector<std::string> paths;
        s = StringList(value, k, &paths);
        for (size_t i = 0; s.ok() && i < paths.size(); ++i) {
          absl::StatusOr<Path> path = FieldPath(value[i], paths[i]);
          if (!path.ok()) return path.status();
          p->required_fields.push_back(*std::move(path));
        }
      } else if (k == "allowed_values") {
        s = AllowedValues(value, &p->allowed_values);
      } else {
        return Error(key,
                     base::StrCat("unknown key '", k,
                                  "' (expected name, message_types, forbid_z_segments, "
                                  "forbid_segments, required_segments, required_fields, "
                                  "allowed_values)"));
      }
      if (!s.ok()) return s;
    }
    return std::shared_ptr<const Profile>(std::move(p));
  }

 private:
  absl::Status Error(const YAML::Node& node, std::string_view what) const {
    return base::YamlError(source_, node, what);
  }

  absl::Status Scalar(const YAML::Node& v, std::string_view key, std::string* out) const {
    if (!v.IsScalar()) return Error(v, base::StrCat("'", key, "' must be a single value"));
    *out = v.Scalar();
    return absl::OkStatus();
  }

  absl::Status Bool(const YAML::Node& v, std::string_view key, bool* out) const {
    if (base::ParseYamlBool(v, out)) return absl::OkStatus();
    return Error(v, base::StrCat("'", key, "' must be true or false"));
  }

  absl::Status StringList(const YAML::Node& v, std::string_view key,
                          std::vector<std::string>* out) const {
    if (!v.IsSequence()) return Error(v, base::StrCat("'", key, "' must be a list"));
    for (const auto& item : v) {
      if (!item.IsScalar() || item.Scalar().empty()) {
        return Error(item, base::StrCat("'", key, "' entries must be non-empty single values"));
      }
      out->push_back(item.Scalar());
    }
    return absl::OkStatus();
  }

  absl::Status SegmentList(const YAML::Node& v, std::string_view key,
                           std::vector<std::string>* out) const {
    if (absl::Status s = StringList(v, key, out); !s.ok()) return s;
    for (size_t i = 0; i < out->size(); ++i) {
      if (!IsSegmentName((*out)[i])) {
        return Error(v[i], base::StrCat("'", (*out)[i], "' is not a segment name (3 characters, "
                                        "upper-case letters and digits)"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckMessageTypes(const YAML::Node& v, const std::vector<std::string>& types) {
    for (size_t i = 0; i < types.size(); ++i) {
      const std::string& t = types[i];
      size_t hat = t.find('^');
      bool ok = hat == std::string::npos ? IsCode(t) : IsCode(t.substr(0, hat)) &&
                                                           IsCode(t.substr(hat + 1));
      if (!ok) {
        return Error(v[i], base::StrCat("'", t, "' is not a message type (e.g. ADT or ADT^A01)"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Path> FieldPath(const YAML::Node& node, const std::string& text) const {
    absl::StatusOr<Path> p = Path::Parse(text);
    if (!p.ok() || p->field <= 0) {
      return Error(node, base::StrCat("'", text, "' is not a field path (e.g. PID-3 or PID-3.1)"));
    }
    if (p->segment_index != 0 || p->repetition != 0) {
      return Error(node, base::StrCat("'", text, "': profile paths apply to every segment and "
                                      "repetition; leave out [n]"));
    }
    return p;
  }

  absl::Status AllowedValues(const YAML::Node& v, std::vector<ProfileValueRule>* out) const {
    if (!v.IsMap()) return Error(v, "'allowed_values' must map field paths to lists of values");
    for (const auto& kv : v) {
      absl::StatusOr<Path> path = FieldPath(kv.first, kv.first.Scalar());
      if (!path.ok()) return path.status();
      ProfileValueRule rule{*std::move(path), {}};
      const std::string key = base::StrCat("allowed_values ", kv.first.Scalar());
      if (absl::Status s = StringList(kv.second, key, &rule.values); !s.ok()) return s;
      if (rule.values.empty()) return Error(kv.second, base::StrCat("'", key, "' is empty"));
      out->push_back(std::move(rule));
    }
    return absl::OkStatus();
  }

  static bool IsCode(std::string_view s) {
    if (s.empty() || s.size() > 7) return false;
    for (char c : s) {
      if (!absl::ascii_isupper(c) && !absl::ascii_isdigit(c) && c != '_') return false;
    }
    return true;
  }
  static bool IsSegmentName(std::string_view s) {
    return s.size() == 3 && absl::ascii_isupper(s[0]) && IsCode(s);
  }

  std::string source_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const Profile>> LoadProfileFromString(std::string_view yaml,
                                                                     std::string_view source) {
  absl::StatusOr<YAML::Node> root = base::ParseYaml(yaml, source);
  if (!root.ok()) return root.status();
  // The reader uses non-throwing accessors only; this catch is the adapter's last line.
  try {
    return ProfileReader(source).Read(*root);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(base::StrCat(source, ": ", e.what()));
  }
}

absl::StatusOr<std::shared_ptr<const Profile>> LoadProfile(const std::string& path) {
  absl::StatusOr<std::string> text = base::ReadFile(path, 1 << 20);
  if (!text.ok()) return text.status();
  return LoadProfileFromString(*text, path);
}

}  // namespace isthmus::hl7v2
