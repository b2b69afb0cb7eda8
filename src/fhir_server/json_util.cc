#include "fhir_server/json_util.h"

#include "base/str.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"

namespace isthmus::fhir_server::internal {
namespace {

struct MarkNumbers {
  rapidjson::Document& d;
  std::string tmp;
  bool Null() { return d.Null(); }
  bool Bool(bool b) { return d.Bool(b); }
  bool Int(int i) { return d.Int(i); }
  bool Uint(unsigned u) { return d.Uint(u); }
  bool Int64(int64_t i) { return d.Int64(i); }
  bool Uint64(uint64_t u) { return d.Uint64(u); }
  bool Double(double x) { return d.Double(x); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    tmp.assign(1, kNumberMark);
    tmp.append(s, n);
    return d.String(tmp.data(), static_cast<rapidjson::SizeType>(tmp.size()), true);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return d.String(s, n, copy); }
  bool StartObject() { return d.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return d.Key(s, n, copy); }
  bool EndObject(rapidjson::SizeType n) { return d.EndObject(n); }
  bool StartArray() { return d.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return d.EndArray(n); }
};

}  // namespace

absl::Status ParseJson(std::string_view text, rapidjson::Document& doc, std::string_view what) {
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::Reader reader;
  auto gen = [&](rapidjson::Document& d) {
    MarkNumbers h{d, {}};
    return !reader.Parse<rapidjson::kParseNumbersAsStringsFlag |
                         rapidjson::kParseValidateEncodingFlag>(ms, h)
                .IsError();
  };
  doc.Populate(gen);
  if (reader.HasParseError()) {
    return absl::InvalidArgumentError(base::StrCat(
        what, " is not valid JSON (offset ", reader.GetErrorOffset(), ": ",
        rapidjson::GetParseError_En(reader.GetParseErrorCode()), ")"));
  }
  return absl::OkStatus();
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
