#include "hl7v2/charset.h"

#include <iconv.h>

#include <cctype>
#include <cerrno>

#include "absl/status/status.h"
#include "base/str.h"

namespace isthmus::hl7v2 {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Latin1ToUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (unsigned char c : s) AppendUtf8(c, &out);
  return out;
}

std::string IconvToUtf8(std::string_view bytes, const std::string& from) {
  iconv_t cd = iconv_open("UTF-8", from.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return Latin1ToUtf8(bytes);
  std::string out;
  out.resize(bytes.size() * 4 + 16);
  char* in = const_cast<char*>(bytes.data());
  size_t in_left = bytes.size();
  char* dst = out.data();
  size_t out_left = out.size();
  while (in_left > 0) {
    size_t r = iconv(cd, &in, &in_left, &dst, &out_left);
    if (r != static_cast<size_t>(-1)) break;
    if (errno == EILSEQ || errno == EINVAL) {  // undecodable byte: U+FFFD, skip it
      if (out_left < 3) break;
      std::string rep;
      AppendUtf8(0xFFFD, &rep);
      for (char c : rep) { *dst++ = c; --out_left; }
      ++in;
      --in_left;
    } else {
      break;  // E2BIG cannot happen with 4x room; stop rather than loop
    }
  }
  iconv_close(cd);
  out.resize(out.size() - out_left);
  return out;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; continue; }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

absl::StatusOr<CharsetInfo> CharsetFromMsh18(std::string_view msh18) {
  while (!msh18.empty() && (msh18.front() == ' ' || msh18.front() == '\t')) msh18.remove_prefix(1);
  while (!msh18.empty() && (msh18.back() == ' ' || msh18.back() == '\t')) msh18.remove_suffix(1);
  std::string code(msh18);
  for (char& c : code) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CharsetInfo info;
  if (code.empty()) return info;
  if (code == "ASCII" || code == "ISO IR6") { info.charset = Charset::kAscii; return info; }
  if (code == "UNICODE UTF-8" || code == "UTF-8" || code == "UTF8" || code == "UNICODE") {
    info.charset = Charset::kUtf8;
    return info;
  }
  if (code == "8859/1" || code == "ISO IR100" || code == "ISO-8859-1") {
    info.charset = Charset::kLatin1;
    return info;
  }
  if (code.rfind("8859/", 0) == 0) {
    std::string n = code.substr(5);
    if (n == "2" || n == "3" || n == "4" || n == "5" || n == "6" || n == "7" || n == "8" ||
        n == "9" || n == "15") {
      info.charset = Charset::kOther;
      info.iconv_name = "ISO-8859-" + n;
      return info;
    }
  }
  struct Known { const char* hl7; const char* iconv; };
  static constexpr Known kKnown[] = {
      {"ISO IR14", "JIS_X0201"}, {"ISO IR87", "EUC-JP"}, {"ISO IR159", "EUC-JP"},
      {"GB 18030-2000", "GB18030"}, {"KS X 1001", "EUC-KR"}, {"CNS 11643-1992", "EUC-TW"},
      {"BIG-5", "BIG5"}, {"WINDOWS-1252", "WINDOWS-1252"}, {"CP1252", "WINDOWS-1252"},
  };
  for (const Known& k : kKnown) {
    if (code == k.hl7) {
      info.charset = Charset::kOther;
      info.iconv_name = k.iconv;
      return info;
    }
  }
  if (code == "UNICODE UTF-16" || code == "UNICODE UTF-32") {
    return absl::InvalidArgumentError(base::StrCat(
        "MSH-18 character set '", code,
        "' is not byte-compatible with ER7; convert the message to UTF-8 first"));
  }
  return absl::InvalidArgumentError(
      base::StrCat("MSH-18 names an unknown character set '", code, "' (HL7 table 0211)"));
}

std::string ToUtf8(std::string_view bytes, const CharsetInfo& cs) {
  bool ascii = true;
  for (unsigned char c : bytes) {
    if (c >= 0x80) { ascii = false; break; }
  }
  if (ascii) return std::string(bytes);
  switch (cs.charset) {
    case Charset::kLatin1:
      return Latin1ToUtf8(bytes);
    case Charset::kOther:
      return IconvToUtf8(bytes, cs.iconv_name);
    case Charset::kUnspecified:
    case Charset::kAscii:
    case Charset::kUtf8:
      // Declared (or defaulted) ASCII/UTF-8 but not valid UTF-8: the usual real-world cause is
      // undeclared 8859/1, so read it as that rather than failing.
      if (IsValidUtf8(bytes)) return std::string(bytes);
      return Latin1ToUtf8(bytes);
  }
  return std::string(bytes);
}

}  // namespace isthmus::hl7v2
