// The `isthmus` command line: one binary, one subcommand per job.
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Isthmus: a healthcare interface engine. It receives HL7 v2, validates and converts it to\n"
      "FHIR R4, routes it to durable destinations and serves it through its own FHIR server.\n\n"
      "Examples:\n"
      "  isthmus inspect adt.hl7                    show every field with its HL7 path\n"
      "  isthmus inspect --path PID-5 adt.hl7       print one value per message\n"
      "  isthmus validate --version 2.5.1 *.hl7     check structure, fields and tables\n"
      "  isthmus serve                              run the engine (MLLP 2575, HTTP 8080)\n"
      "  isthmus send --to 127.0.0.1:2575 dir/      send files over MLLP, report ACKs\n"
      "  isthmus config check isthmus.yaml          validate a configuration file\n"
      "  isthmus convert adt.hl7                    HL7 v2 to a FHIR R4 Bundle\n"
      "  isthmus fhirpath -i p.json 'name.given'    evaluate FHIRPath on a resource\n",
      "isthmus"};
  app.require_subcommand(1);
  app.set_version_flag("--version-info", "isthmus 0.1.0");
  std::vector<std::pair<CLI::App*, isthmus::cli::Run>> commands;
  auto add = [&](isthmus::cli::Run (*fn)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    isthmus::cli::Run run = fn(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(run));
  };
  add(isthmus::cli::AddInspectCommand);
  add(isthmus::cli::AddValidateCommand);
  add(isthmus::cli::AddServeCommand);
  add(isthmus::cli::AddSendCommand);
  add(isthmus::cli::AddConfigCommand);
  add(isthmus::cli::AddConvertCommand);
  add(isthmus::cli::AddFhirpathCommand);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // Usage errors are exit 2, like other Unix tools; --help is 0.
    return rc == 0 ? 0 : 2;
  }
  for (auto& [sub, run] : commands) {
    if (sub->parsed()) return run();
  }
  return 2;
}
