// `isthmus convert`: HL7 v2 messages -> FHIR R4 Bundles with the v2 -> FHIR maps
// (src/mapping/v2fhir, maps/, docs/mapping-guide.md).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "base/str.h"
#include "cli/commands.h"
#include "cli/input.h"
#include "hl7v2/message.h"
#include "mapping/v2fhir/converter.h"
#include "mapping/v2fhir/loader.h"

namespace isthmus::cli {
namespace {

struct ConvertCliOptions {
  std::string type;
  std::string bundle = "transaction";
  std::vector<std::string> maps;
  std::string tz = "UTC";
  bool ndjson = false;
  bool explain = false;
  std::vector<std::string> files;
};

// Files named on the command line; a directory stands for its regular files, sorted.
std::vector<std::string> ExpandInputs(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const std::string& p : in) {
    std::error_code ec;
    if (p != "-" && std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> files;
      for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
        if (e.is_regular_file()) files.push_back(e.path().string());
      }
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else {
      out.push_back(p);
    }
  }
  return out;
}

int RunConvert(const ConvertCliOptions& o) {
  v2fhir::ConvertOptions co;
  co.type = o.type;
  co.pretty = !o.ndjson;
  co.explain = o.explain;
  if (!fhir::ParseBundleType(o.bundle, &co.bundle)) {
    std::fprintf(stderr, "isthmus convert: --bundle is transaction, batch or collection\n");
    return 2;
  }
  if (!absl::LoadTimeZone(o.tz, &co.tz)) {
    std::fprintf(stderr, "isthmus convert: unknown time zone '%s' (an IANA name such as "
                         "Europe/Paris; is tzdata installed?)\n", o.tz.c_str());
    return 2;
  }
  std::vector<std::string> dirs = {v2fhir::DefaultMapsDir()};
  dirs.insert(dirs.end(), o.maps.begin(), o.maps.end());
  auto maps = v2fhir::LoadMaps(dirs);
  if (!maps.ok()) {
    std::fprintf(stderr, "isthmus convert: maps:\n%s\n", std::string(maps.status().message()).c_str());
    return 2;
  }
  v2fhir::Converter converter(*maps);
  v2fhir::Workspace workspace;
  v2fhir::ConvertResult result;
  int failures = 0;
  for (const std::string& path : ExpandInputs(o.files)) {
    auto file = ReadHl7File(path);
    if (!file.ok()) {
      std::fprintf(stderr, "isthmus convert: %s\n", std::string(file.status().message()).c_str());
      ++failures;
      continue;
    }
    if (!file->batch.ok()) {
      std::fprintf(stderr, "%s: not HL7 v2: %s\n", path.c_str(),
                   std::string(file->batch.status().message()).c_str());
      ++failures;
      continue;
    }
    size_t n = 0;
    for (const hl7v2::MessageSpan& span : file->batch->messages) {
      ++n;
      std::string where = base::StrCat(path, ":", span.line, ": message ", n);
      auto m = hl7v2::Message::Parse(span.bytes);
      if (!m.ok()) {
        std::fprintf(stderr, "%s: cannot parse: %s\n", where.c_str(),
                     std::string(m.status().message()).c_str());
        ++failures;
        continue;
      }
      absl::Status s = converter.Convert(*m, co, workspace, &result);
      if (!s.ok()) {
        std::fprintf(stderr, "%s: cannot convert: %s\n", where.c_str(),
                     std::string(s.message()).c_str());
        ++failures;
        continue;
      }
      for (const v2fhir::Diagnostic& d : result.diagnostics) {
        std::fprintf(stderr, "%s: warning: %s\n", where.c_str(), d.message.c_str());
      }
      if (o.explain) {
        std::printf("# %s (map %s)\n", where.c_str(), result.map.c_str());
        for (const v2fhir::ExplainLine& l : result.explain) {
          std::printf("%s = %s\n    from %s by %s\n", l.element.c_str(), l.value.c_str(),
                      l.source.c_str(), l.rules.c_str());
        }
        continue;
      }
      std::fwrite(result.json.data(), 1, result.json.size(), stdout);
      std::fputc('\n', stdout);
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

Run AddConvertCommand(CLI::App& app) {
  auto o = std::make_shared<ConvertCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "convert",
      "Convert HL7 v2 messages to FHIR R4 Bundles with the v2-to-FHIR maps.\n\n"
      "Prints one Bundle per message (pretty JSON, or one line each with --ndjson). The message\n"
      "map is chosen from MSH-9 (ADT^A04 uses ADT_A01); --type forces one. Resource ids are\n"
      "derived from business identifiers, and every entry is a PUT, so converting the same\n"
      "message twice changes nothing on a FHIR server. Segments no map consumes are reported on\n"
      "stderr and as an OperationOutcome entry in the Bundle.\n\n"
      "Examples:\n"
      "  isthmus convert adt.hl7                      pretty Bundle(s) on stdout\n"
      "  isthmus convert --ndjson dir/ > out.ndjson   every file of dir/, one Bundle per line\n"
      "  isthmus convert --type ADT_A01 odd.hl7       force the ADT_A01 map\n"
      "  isthmus convert --tz Europe/Paris adt.hl7    zone of timestamps sent without offset\n"
      "  isthmus convert --maps site/maps adt.hl7     site maps over the shipped ones\n"
      "  isthmus convert --explain adt.hl7            each value with its HL7 path and map rule\n"
      "  cat adt.hl7 | isthmus convert -              read standard input\n\n"
      "Shipped maps: $ISTHMUS_MAPS_DIR, else <prefix>/share/isthmus/maps, else the source tree's\n"
      "maps/. A --maps DIR file replaces the shipped file with the same relative path\n"
      "(segments/PID[Patient].yaml) and adds new ones; it may also hold Lua hooks\n"
      "(hooks/*.yaml naming functions of lua/*.lua) and FHIR R4 ConceptMaps for local codes\n"
      "(conceptmaps/*.json). A hook error fails that message. Format: docs/mapping-guide.md.\n\n"
      "Exit status: 0 all converted, 1 some message could not be converted (reason on stderr,\n"
      "the others are still converted), 2 bad options or maps.");
  sub->add_option("--type", o->type, "message map to use (ADT_A01) or event (ADT^A04)");
  sub->add_option("--bundle", o->bundle, "transaction (default), batch or collection")
      ->check(CLI::IsMember({"transaction", "batch", "collection"}));
  sub->add_option("--maps", o->maps, "site maps directory over the shipped maps (repeatable)");
  sub->add_option("--tz", o->tz, "IANA time zone for timestamps without offset (default UTC)");
  sub->add_flag("--ndjson", o->ndjson, "one Bundle per line");
  sub->add_flag("--explain", o->explain,
                "print each output value with its HL7 location and map rules instead of JSON");
  sub->add_option("FILE", o->files, "HL7 v2 files or directories; - for stdin")->required();
  return [o] { return RunConvert(*o); };
}

}  // namespace isthmus::cli
