#include "fhir_server/shaping.h"

#include <algorithm>

#include "absl/status/status.h"
#include "base/str.h"
#include "fhir_server/json_util.h"
#include "fhir_server/rest_tables.h"

namespace isthmus::fhir_server {
namespace {

using internal::Str;
using Value = rapidjson::Value;

constexpr char kSubsettedSystem[] = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

const internal::ResourceElements* ElementsOf(std::string_view type) {
  const internal::ResourceElements* begin = internal::kResourceElements;
  const internal::ResourceElements* end = begin + internal::kResourceElementCount;
  auto it = std::lower_bound(begin, end, type, [](const internal::ResourceElements& e,
                                                  std::string_view t) { return e.type < t; });
  return it != end && it->type == type ? it : nullptr;
}

// Whether JSON member `key` is element `name` ("deceased[x]" or "deceased" match
// "deceasedBoolean"; "_birthDate" is birthDate's extension).
bool Matches(std::string_view key, std::string_view name) {
  if (!key.empty() && key[0] == '_') key.remove_prefix(1);
  if (name.ends_with("[x]")) name.remove_suffix(3);
  if (key == name) return true;
  return key.size() > name.size() && key.starts_with(name) && key[name.size()] >= 'A' &&
         key[name.size()] <= 'Z';
}

bool InList(std::string_view key, std::string_view space_separated) {
  for (std::string_view name : base::Split(space_separated, ' ')) {
    if (!name.empty() && Matches(key, name)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<Shape> ParseShape(const std::vector<std::pair<std::string, std::string>>& params) {
  Shape s;
  bool has_summary = false;
  for (const auto& [k, v] : params) {
    if (k == "_summary") {
      if (v == "true") {
        s.summary = Shape::Summary::kTrue;
      } else if (v == "text") {
        s.summary = Shape::Summary::kText;
      } else if (v == "data") {
        s.summary = Shape::Summary::kData;
      } else if (v == "false" || v == "count") {
        s.summary = Shape::Summary::kFalse;
      } else {
        return absl::InvalidArgumentError("_summary is true, text, data, count or false");
      }
      has_summary = has_summary || (v != "false" && v != "count");
    } else if (k == "_elements") {
      s.has_elements = true;
      for (std::string_view e : base::Split(v, ',')) {
        while (!e.empty() && e.front() == ' ') e.remove_prefix(1);
        while (!e.empty() && e.back() == ' ') e.remove_suffix(1);
        if (!e.empty()) s.elements.emplace_back(e);
      }
    }
  }
  if (has_summary && s.has_elements) {
    return absl::InvalidArgumentError("_summary and _elements cannot be used together");
  }
  return s;
}

absl::StatusOr<std::string> ApplyShape(const Shape& shape, std::string_view json) {
  if (!shape.active()) return std::string(json);
  rapidjson::Document doc;
  if (absl::Status st = internal::ParseJson(json, doc, "the resource"); !st.ok()) return st;
  if (!doc.IsObject() || !doc.HasMember("resourceType") || !doc["resourceType"].IsString()) {
    return absl::InvalidArgumentError("not a resource");
  }
  const std::string type(Str(doc["resourceType"]));
  const internal::ResourceElements* el = ElementsOf(type);
  const std::string_view summary = el != nullptr ? el->summary : std::string_view();
  const std::string_view mandatory = el != nullptr ? el->mandatory : std::string_view();
  const std::string prefix = type + ".";
  auto keep = [&](std::string_view key) {
    if (key == "resourceType" || key == "id" || key == "meta") return true;
    switch (shape.summary) {
      case Shape::Summary::kTrue: return InList(key, summary);
      case Shape::Summary::kText: return key == "text" || InList(key, mandatory);
      case Shape::Summary::kData: return key != "text";
      case Shape::Summary::kFalse: break;
    }
    if (InList(key, mandatory)) return true;
    for (std::string_view e : shape.elements) {
      if (e.starts_with(prefix)) e.remove_prefix(prefix.size());
      if (Matches(key, e)) return true;
    }
    return false;
  };
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  bool wrote_meta = false;
  auto write_meta = [&](const Value* meta) {
    wrote_meta = true;
    w.Key("meta");
    w.StartObject();
    bool tagged = false;
    if (meta != nullptr && meta->IsObject()) {
      for (const auto& m : meta->GetObject()) {
        w.Key(m.name.GetString(), m.name.GetStringLength());
        if (Str(m.name) != "tag" || !m.value.IsArray()) {
          internal::WriteValue(w, m.value);
          continue;
        }
        w.StartArray();
        for (const Value& t : m.value.GetArray()) {
          internal::WriteValue(w, t);
          if (t.IsObject() && t.HasMember("code") && t["code"].IsString() &&
              Str(t["code"]) == "SUBSETTED") {
            tagged = true;
          }
        }
        if (!tagged) {
          tagged = true;
          w.StartObject();
          w.Key("system");
          w.String(kSubsettedSystem);
          w.Key("code");
          w.String("SUBSETTED");
          w.EndObject();
        }
        w.EndArray();
      }
    }
    if (!tagged) {
      w.Key("tag");
      w.StartArray();
      w.StartObject();
      w.Key("system");
      w.String(kSubsettedSystem);
      w.Key("code");
      w.String("SUBSETTED");
      w.EndObject();
      w.EndArray();
    }
    w.EndObject();
  };
  for (const auto& m : doc.GetObject()) {
    const std::string_view key = Str(m.name);
    if (key == "meta") {
      write_meta(&m.value);
      continue;
    }
    if (!keep(key)) continue;
    w.Key(m.name.GetString(), m.name.GetStringLength());
    internal::WriteValue(w, m.value);
    if (key == "id" && !wrote_meta && !doc.HasMember("meta")) write_meta(nullptr);
  }
  if (!wrote_meta) write_meta(nullptr);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace isthmus::fhir_server
