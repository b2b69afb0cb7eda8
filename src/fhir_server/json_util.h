// JSON helpers of the REST layer (internal to fhir_server): parse into a RapidJSON document
// keeping numbers as written (a number becomes a string value marked by a leading 0xFF byte,
// never part of valid UTF-8, as in the store), and write such a document back. Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace isthmus::fhir_server::internal {

inline constexpr char kNumberMark = '\xFF';

// kInvalidArgument naming `what` and the offset when `text` is not valid JSON.
absl::Status ParseJson(std::string_view text, rapidjson::Document& doc, std::string_view what);

inline std::string_view Str(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}
inline bool IsNumber(const rapidjson::Value& v) {
  return v.IsString() && v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark;
}

// Writes `v` (numbers as written).
void WriteValue(rapidjson::Writer<rapidjson::StringBuffer>& w, const rapidjson::Value& v);
std::string WriteJson(const rapidjson::Value& v);

}  // namespace isthmus::fhir_server::internal
