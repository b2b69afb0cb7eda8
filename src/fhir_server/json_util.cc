#include "fhir_server/json_util.h"

#include "base/str.h"
#include "fhir/validator.h"

namespace isthmus::fhir_server::internal {

absl::Status ParseJson(std::string_view text, rapidjson::Document& doc, std::string_view what) {
  std::string error;
  if (fhir::ParseFhirJsonKeepingNumbers(text, doc, &error)) return absl::OkStatus();
  return absl::InvalidArgumentError(base::StrCat(what, " is ", error));
}

void WriteValue(rapidjson::Writer<rapidjson::StringBuffer>& w, const rapidjson::Value& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType: w.Null(); break;
    case rapidjson::kFalseType: w.Bool(false); break;
    case rapidjson::kTrueType: w.Bool(true); break;
    case rapidjson::kNumberType: w.Double(v.GetDouble()); break;  // not produced by ParseJson
    case rapidjson::kStringType:
      if (IsNumber(v)) {
        w.RawValue(v.GetString() + 1, v.GetStringLength() - 1, rapidjson::kNumberType);
      } else {
        w.String(v.GetString(), v.GetStringLength());
      }
      break;
    case rapidjson::kArrayType:
      w.StartArray();
      for (const rapidjson::Value& e : v.GetArray()) WriteValue(w, e);
      w.EndArray();
      break;
    case rapidjson::kObjectType:
      w.StartObject();
      for (const auto& m : v.GetObject()) {
        w.Key(m.name.GetString(), m.name.GetStringLength());
        WriteValue(w, m.value);
      }
      w.EndObject();
      break;
  }
}

std::string WriteJson(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  WriteValue(w, v);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace isthmus::fhir_server::internal
