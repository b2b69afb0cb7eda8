// `isthmus validate`: checks HL7 v2 messages against their version's dictionary and an optional
// site conformance profile; prints a report per message.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/str.h"
#include "cli/commands.h"
#include "cli/input.h"
#include "hl7v2/message.h"
#include "hl7v2/profile.h"
#include "hl7v2/validator.h"
#include "rapidjson/ostreamwrapper.h"
#include "rapidjson/writer.h"

namespace isthmus::cli {
namespace {

struct ValidateOptions {
  std::string version;
  std::string profile;
  bool json = false;
  std::vector<std::string> files;
};

struct MessageReport {
  std::string file;
  size_t number = 0;
  size_t line = 0;
  std::string control_id, type, version;
  bool parsed = false;
  std::vector<hl7v2::Issue> issues;
  bool valid() const {
    for (const hl7v2::Issue& i : issues) {
      if (i.severity == hl7v2::Severity::kError) return false;
    }
    return true;
  }
};

void PrintText(const MessageReport& r) {
  int errors = 0, warnings = 0;
  for (const hl7v2::Issue& i : r.issues) {
    (i.severity == hl7v2::Severity::kError ? errors : warnings) += 1;
  }
  std::string what = r.parsed ? base::StrCat(r.type, ", control id ", r.control_id, ", v", r.version)
                              : std::string("not parsed");
  std::printf("%s:%zu: message %zu (%s): %s\n", r.file.c_str(), r.line, r.number, what.c_str(),
              errors == 0 && warnings == 0
                  ? "valid"
                  : base::StrCat(errors == 0 ? "valid with " : "INVALID: ", errors, " error(s), ",
                                 warnings, " warning(s)")
                        .c_str());
  for (const hl7v2::Issue& i : r.issues) {
    std::string loc = i.location.segment.empty() ? "-" : i.location.ToString();
    std::printf("  %-7s %-16s %d %s: %s\n", std::string(hl7v2::SeverityName(i.severity)).c_str(),
                loc.c_str(), static_cast<int>(i.code),
                std::string(hl7v2::ErrorCodeText(i.code)).c_str(), i.message.c_str());
  }
}

template <typename W>
void WriteJson(W& w, const MessageReport& r) {
  auto str = [&](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("file"); str(r.file);
  w.Key("message"); w.Uint64(r.number);
  w.Key("line"); w.Uint64(r.line);
  w.Key("control_id"); str(r.control_id);
  w.Key("type"); str(r.type);
  w.Key("version"); str(r.version);
  w.Key("valid"); w.Bool(r.valid());
  w.Key("issues");
  w.StartArray();
  for (const hl7v2::Issue& i : r.issues) {
    w.StartObject();
    w.Key("severity"); str(hl7v2::SeverityName(i.severity));
    w.Key("location"); str(i.location.segment.empty() ? "" : i.location.ToString());
    w.Key("code"); w.Int(static_cast<int>(i.code));
    w.Key("code_text"); str(hl7v2::ErrorCodeText(i.code));
    w.Key("message"); str(i.message);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

int RunValidate(const ValidateOptions& o) {
  hl7v2::ValidatorOptions vo;
  vo.version = o.version;
  if (!o.profile.empty()) {
    auto profile = hl7v2::LoadProfile(o.profile);
    if (!profile.ok()) {
      std::fprintf(stderr, "isthmus validate: %s\n", std::string(profile.status().message()).c_str());
      return 2;
    }
    vo.profile = *profile;
  }
  auto validator = hl7v2::Validator::Create(vo);
  if (!validator.ok()) {
    std::fprintf(stderr, "isthmus validate: %s\n", std::string(validator.status().message()).c_str());
    return 2;
  }
  bool any_invalid = false, any_unreadable = false;
  rapidjson::OStreamWrapper os(std::cout);
  rapidjson::Writer<rapidjson::OStreamWrapper> w(os);
  if (o.json) w.StartArray();
  for (const std::string& path : o.files) {
    auto file = ReadHl7File(path);
    if (!file.ok()) {
      std::fprintf(stderr, "isthmus validate: %s\n", std::string(file.status().message()).c_str());
      any_unreadable = true;
      continue;
    }
    std::vector<MessageReport> reports;
    if (!file->batch.ok()) {
      MessageReport r{path, 0, 1};
      hl7v2::Issue issue;
      issue.code = hl7v2::ErrorCode::kSegmentSequenceError;
      issue.message = std::string(file->batch.status().message());
      r.issues.push_back(issue);
      reports.push_back(std::move(r));
    } else {
      size_t n = 0;
      for (const hl7v2::MessageSpan& span : file->batch->messages) {
        MessageReport r{path, ++n, span.line};
        auto m = hl7v2::Message::Parse(span.bytes);
        if (!m.ok()) {
          auto issue = hl7v2::IssueFromStatus(m.status());
          hl7v2::Issue i = issue.value_or(hl7v2::Issue{});
          if (!issue.has_value()) i.message = std::string(m.status().message());
          r.issues.push_back(std::move(i));
        } else {
          r.parsed = true;
          r.control_id = m->DecodeText(m->control_id());
          r.type = base::StrCat(m->message_type(), m->trigger_event().empty() ? "" : "^",
                                m->trigger_event());
          r.version = std::string(m->version());
          r.issues = validator->Validate(*m);
        }
        reports.push_back(std::move(r));
      }
      if (!file->batch->envelope_issues.empty() && !reports.empty()) {
        for (const hl7v2::Issue& i : file->batch->envelope_issues) reports[0].issues.push_back(i);
      }
    }
    for (const MessageReport& r : reports) {
      any_invalid |= !r.valid();
      if (o.json) {
        WriteJson(w, r);
      } else {
        PrintText(r);
      }
    }
  }
  if (o.json) {
    w.EndArray();
    std::cout << "\n";
  }
  std::cout.flush();
  if (any_unreadable) return 2;
  return any_invalid ? 1 : 0;
}

}  // namespace

Run AddValidateCommand(CLI::App& app) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* sub = app.add_subcommand(
      "validate",
      "Check HL7 v2 messages: segment order, groups and cardinality of the message structure,\n"
      "required fields, repetition, lengths, data types and table values, per the version in\n"
      "MSH-12 (or --version), plus the rules of a site conformance profile (--profile).\n\n"
      "Examples:\n"
      "  isthmus validate adt.hl7\n"
      "  isthmus validate --version 2.5.1 --profile site.yaml inbox/*.hl7\n"
      "  isthmus validate --json batch.hl7 | jq '.[] | select(.valid | not)'\n\n"
      "Every finding names its severity, HL7 location (PID-3[2].1), HL7 error code (table 0357)\n"
      "and what is wrong. Profile format: docs/conformance-profiles.md.\n\n"
      "Exit status: 0 all messages valid (warnings allowed), 1 any message invalid, 2 a file\n"
      "or profile could not be read.");
  sub->add_option("--version", o->version, "HL7 version to validate against (default: MSH-12)");
  sub->add_option("--profile", o->profile, "site conformance profile (YAML)");
  sub->add_flag("--json", o->json, "print a JSON array, one object per message");
  sub->add_option("FILE", o->files, "HL7 v2 files (one message, several, or a batch); - for stdin")
      ->required();
  return [o] { return RunValidate(*o); };
}

}  // namespace isthmus::cli
