#include "hl7v2/escape.h"

#include <cctype>

namespace isthmus::hl7v2 {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends what the escape sequence `seq` (text between the escape characters) stands for.
// Returns false when the sequence is not one we decode, so the caller keeps it verbatim.
bool DecodeSequence(std::string_view seq, const Delimiters& d, std::string* out) {
  if (seq.size() == 1) {
    char c = '\0';
    switch (seq[0]) {
      case 'F': c = d.field; break;
      case 'S': c = d.component; break;
      case 'T': c = d.subcomponent; break;
      case 'R': c = d.repetition; break;
      case 'E': c = d.escape; break;
      case 'P': c = d.truncation != '\0' ? d.truncation : '#'; break;
      case 'H': case 'N': return true;  // highlighting on/off: no meaning in plain text
      default: return false;
    }
    if (c == '\0') return false;
    out->push_back(c);
    return true;
  }
  if (seq.size() >= 3 && (seq[0] == 'X' || seq[0] == 'x') && seq.size() % 2 == 1) {
    std::string bytes;
    for (size_t i = 1; i + 1 < seq.size(); i += 2) {
      int hi = HexValue(seq[i]), lo = HexValue(seq[i + 1]);
      if (hi < 0 || lo < 0) return false;
      bytes.push_back(static_cast<char>(hi * 16 + lo));
    }
    out->append(bytes);
    return true;
  }
  if (seq.size() >= 3 && seq[0] == '.') {
    std::string_view cmd = seq.substr(1, 2);
    std::string_view arg = seq.substr(3);
    if (cmd == "br") {
      if (!arg.empty()) return false;
      out->push_back('\n');
      return true;
    }
    if (cmd == "sp") {
      int n = 1;
      if (!arg.empty()) {
        n = 0;
        for (char c : arg) {
          if (!std::isdigit(static_cast<unsigned char>(c))) return false;
          n = n * 10 + (c - '0');
          if (n > 100) return false;
        }
      }
      out->append(static_cast<size_t>(n), '\n');
      return true;
    }
    // Other formatting commands (.in .ti .ce .fi .nf .sk) change layout, not text.
    return cmd == "in" || cmd == "ti" || cmd == "ce" || cmd == "fi" || cmd == "nf" ||
           cmd == "sk";
  }
  return false;  // \Cxxyy\, \Mxxyyzz\, \Zxx\ and anything unknown stay as written
}

}  // namespace

std::string Unescape(std::string_view raw, const Delimiters& d) {
  if (!NeedsUnescape(raw, d)) return std::string(raw);
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    char c = raw[i];
    if (c != d.escape) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t end = raw.find(d.escape, i + 1);
    if (end == std::string_view::npos) {  // unterminated: keep as written
      out.append(raw.substr(i));
      break;
    }
    std::string_view seq = raw.substr(i + 1, end - i - 1);
    if (seq.empty() || !DecodeSequence(seq, d, &out)) {
      // Keep the opening escape and rescan from the next character, so a stray escape
      // character does not swallow a following valid sequence.
      if (seq.empty()) {
        out.append(raw.substr(i, 2));
        i += 2;
      } else {
        out.append(raw.substr(i, end - i + 1));
        i = end + 1;
      }
      continue;
    }
    i = end + 1;
  }
  return out;
}

std::string Escape(std::string_view text, const Delimiters& d) {
  std::string out;
  out.reserve(text.size() + 8);
  auto seq = [&](std::string_view s) {
    out.push_back(d.escape);
    out.append(s);
    out.push_back(d.escape);
  };
  // \.br\ would carry a delimiter when '.' is one (MSH-2 allows it): use the hex form then.
  const std::string_view line_break = d.IsSpecial('.') ? "X0A" : ".br";
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\0') continue;
    if (c == d.field) seq("F");
    else if (c == d.component && c != '\0') seq("S");
    else if (c == d.subcomponent && c != '\0') seq("T");
    else if (c == d.repetition && c != '\0') seq("R");
    else if (c == d.escape && c != '\0') seq("E");
    else if (c == d.truncation && c != '\0') seq("P");
    else if (c == '\n') seq(line_break);
    else if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') {
        seq(line_break);
        ++i;
      } else {
        seq("X0D");
      }
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace isthmus::hl7v2
