// `isthmus inspect`: a readable tree of each message with HL7 paths, one value by path, or the
// JSON form documented in --help.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/str.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/input.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"
#include "rapidjson/ostreamwrapper.h"
#include "rapidjson/writer.h"

namespace isthmus::cli {
namespace {

struct InspectOptions {
  std::string path;
  std::string format = "text";
  std::string file;
};

using JsonWriter = rapidjson::Writer<rapidjson::OStreamWrapper>;

void WriteString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// Splits `s` on `sep` (no split when the delimiter is absent from MSH-2).
std::vector<std::string_view> Split(std::string_view s, char sep) {
  if (sep == '\0') return {s};
  return base::Split(s, sep);
}

// message = [segment...]; segment = [name, field1...]; field = [repetition...];
// repetition = [component...]; component = [subcomponent text...]; empty field = [].
void WriteMessageJson(JsonWriter& w, const hl7v2::Message& m) {
  const hl7v2::Delimiters& d = m.delimiters();
  w.StartArray();
  for (size_t i = 0; i < m.segment_count(); ++i) {
    hl7v2::SegmentView seg = m.segment(i);
    w.StartArray();
    WriteString(w, seg.name());
    bool is_msh = i == 0;
    for (size_t f = 1; f < seg.field_count(); ++f) {
      std::string_view field = seg.field(f);
      w.StartArray();
      if (is_msh && f <= 2) {
        w.StartArray();
        w.StartArray();
        WriteString(w, field);
        w.EndArray();
        w.EndArray();
      } else if (!field.empty()) {
        for (std::string_view rep : Split(field, d.repetition)) {
          w.StartArray();
          for (std::string_view comp : Split(rep, d.component)) {
            w.StartArray();
            for (std::string_view sub : Split(comp, d.subcomponent)) {
              WriteString(w, m.DecodeText(sub));
            }
            w.EndArray();
          }
          w.EndArray();
        }
      }
      w.EndArray();
    }
    w.EndArray();
  }
  w.EndArray();
}

// Text tree: one line per non-empty value, with its path; composite values are broken down.
void PrintMessageText(const hl7v2::Message& m, size_t number, size_t line) {
  const hl7v2::Delimiters& d = m.delimiters();
  std::printf("Message %zu (line %zu): %s^%s, control id %s, version %s, %zu segments\n", number,
              line, std::string(m.message_type()).c_str(), std::string(m.trigger_event()).c_str(),
              m.DecodeText(m.control_id()).c_str(), std::string(m.version()).c_str(),
              m.segment_count());
  for (size_t i = 0; i < m.segment_count(); ++i) {
    hl7v2::SegmentView seg = m.segment(i);
    int count = m.CountSegments(seg.name());
    std::string seg_label = count > 1 ? base::StrCat(seg.name(), "[", seg.occurrence(), "]")
                                      : std::string(seg.name());
    std::printf("  %s\n", seg_label.c_str());
    for (size_t f = 1; f < seg.field_count(); ++f) {
      std::string_view field = seg.field(f);
      if (field.empty()) continue;
      std::string base = base::StrCat(seg_label, "-", f);
      if (i == 0 && f <= 2) {
        std::printf("    %-18s %s\n", base.c_str(), std::string(field).c_str());
        continue;
      }
      std::vector<std::string_view> reps = Split(field, d.repetition);
      for (size_t r = 0; r < reps.size(); ++r) {
        if (reps[r].empty()) continue;
        std::string rep_label = reps.size() > 1 ? base::StrCat(base, "[", r + 1, "]") : base;
        std::vector<std::string_view> comps = Split(reps[r], d.component);
        bool composite = comps.size() > 1 || Split(comps[0], d.subcomponent).size() > 1;
        std::printf("    %-18s %s\n", rep_label.c_str(),
                    (composite ? std::string(reps[r]) : m.DecodeText(reps[r])).c_str());
        if (!composite) continue;
        for (size_t c = 0; c < comps.size(); ++c) {
          if (comps[c].empty()) continue;
          std::string comp_label = base::StrCat(rep_label, ".", c + 1);
          std::vector<std::string_view> subs = Split(comps[c], d.subcomponent);
          if (subs.size() == 1) {
            std::printf("      %-16s %s\n", comp_label.c_str(), m.DecodeText(comps[c]).c_str());
            continue;
          }
          for (size_t s = 0; s < subs.size(); ++s) {
            if (subs[s].empty()) continue;
            std::printf("        %-14s %s\n", base::StrCat(comp_label, ".", s + 1).c_str(),
                        m.DecodeText(subs[s]).c_str());
          }
        }
      }
    }
  }
}

int RunInspect(const InspectOptions& o) {
  auto file = ReadHl7File(o.file);
  if (!file.ok()) {
    std::fprintf(stderr, "isthmus inspect: %s\n", std::string(file.status().message()).c_str());
    return 2;
  }
  if (!file->batch.ok()) {
    std::fprintf(stderr, "isthmus inspect: %s: %s\n", o.file.c_str(),
                 std::string(file->batch.status().message()).c_str());
    return 2;
  }
  std::optional<hl7v2::Path> path;
  if (!o.path.empty()) {
    auto p = hl7v2::Path::Parse(o.path);
    if (!p.ok()) {
      std::fprintf(stderr, "isthmus inspect: %s\n", std::string(p.status().message()).c_str());
      return 2;
    }
    path = *p;
  }
  for (const hl7v2::Issue& issue : file->batch->envelope_issues) {
    std::fprintf(stderr, "%s: warning: %s\n", o.file.c_str(), issue.message.c_str());
  }
  int rc = 0;
  rapidjson::OStreamWrapper os(std::cout);
  JsonWriter w(os);
  bool json = o.format == "json";
  if (json) w.StartArray();
  size_t n = 0;
  for (const hl7v2::MessageSpan& span : file->batch->messages) {
    ++n;
    auto m = hl7v2::Message::Parse(span.bytes);
    if (!m.ok()) {
      std::fprintf(stderr, "%s:%zu: message %zu cannot be parsed: %s\n", o.file.c_str(), span.line,
                   n, std::string(m.status().message()).c_str());
      rc = 2;
      if (json) w.Null();
      continue;
    }
    if (path.has_value()) {
      std::string value = m->GetText(*path);
      if (json) {
        WriteString(w, value);
      } else {
        std::printf("%s\n", value.c_str());
      }
    } else if (json) {
      WriteMessageJson(w, *m);
    } else {
      PrintMessageText(*m, n, span.line);
    }
  }
  if (json) {
    w.EndArray();
    std::cout << "\n";
  }
  std::cout.flush();
  return rc;
}

}  // namespace

Run AddInspectCommand(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "Show the structure of HL7 v2 messages with their HL7 paths.\n\n"
      "Examples:\n"
      "  isthmus inspect adt.hl7                   tree of every non-empty value\n"
      "  isthmus inspect --path 'PID-3[2].4' a.hl7  one value per message (unescaped, UTF-8)\n"
      "  isthmus inspect --format json a.hl7        machine-readable\n\n"
      "JSON form: an array with one element per message; message = array of segments; segment =\n"
      "[name, field1, field2, ...] in HL7 numbering (MSH-1 = [[[\"|\"]]], MSH-2 = the encoding\n"
      "characters, unsplit); field = array of repetitions; repetition = array of components;\n"
      "component = array of subcomponent strings with escapes decoded; an empty field is [].\n"
      "With --path, the array holds one string per message.\n\n"
      "Exit status: 0 success, 2 unreadable file or unparsable message.");
  sub->add_option("--path", o->path, "HL7 path to print, e.g. PID-5.1, OBX[2]-5, PID-3[2].4");
  sub->add_option("--format", o->format, "text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  sub->add_option("FILE", o->file, "HL7 v2 file (one message, several, or a batch); - for stdin")
      ->required();
  return [o] { return RunInspect(*o); };
}

}  // namespace isthmus::cli
