// `isthmus config check FILE`: loads and validates a config without starting anything.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "cli/commands.h"
#include "config/config.h"

namespace isthmus::cli {
namespace {

struct ConfigOptions {
  std::string file;
  CLI::App* check = nullptr;
};

int RunCheck(const ConfigOptions& o) {
  absl::StatusOr<std::shared_ptr<const config::Config>> cfg = config::LoadConfig(o.file);
  if (!cfg.ok()) {
    std::string msg(cfg.status().message());
    if (cfg.status().code() != absl::StatusCode::kInvalidArgument) {
      std::fprintf(stderr, "isthmus config check: cannot read %s: %s\n", o.file.c_str(),
                   msg.c_str());
      return 2;
    }
    std::fprintf(stderr, "%s\n%s: INVALID\n", msg.c_str(), o.file.c_str());
    return 1;
  }
  const config::Config& c = **cfg;
  size_t routes = 0;
  for (const config::Channel& ch : c.channels) routes += ch.routes.size();
  for (const std::string& w : c.warnings) std::fprintf(stderr, "%s: warning\n", w.c_str());
  std::printf(
      "%s: valid. %zu listener(s), %zu channel(s) with %zu route(s), %zu destination(s), "
      "%zu warning(s); HTTP on %s, data in %s.\n",
      o.file.c_str(), c.listeners.size(), c.channels.size(), routes, c.destinations.size(),
      c.warnings.size(), c.server.http_address.c_str(), c.server.data_dir.c_str());
  return 0;
}

}  // namespace

Run AddConfigCommand(CLI::App& app) {
  auto o = std::make_shared<ConfigOptions>();
  CLI::App* sub = app.add_subcommand(
      "config", "Work with the engine configuration (isthmus.yaml). See `isthmus config check -h`.");
  sub->require_subcommand(1);
  o->check = sub->add_subcommand(
      "check",
      "Load and validate a configuration file without starting the engine: YAML syntax, every\n"
      "key and value (unknown keys are errors), durations (30s, 5m), sizes (16MiB), addresses\n"
      "(host:port), networks (10.0.0.0/8), HL7 paths (PID-3.1), filter and route expressions\n"
      "(type = ADT and PV1-2 in [I, E]), regular expressions (RE2), that TLS and script files\n"
      "exist, and that names are unique and every reference resolves (listener -> channel,\n"
      "route -> destination). All problems are listed at once, each as\n"
      "  FILE:LINE:COLUMN: what is wrong (expected ...)\n"
      "Legal but suspicious things (a destination no route uses) are printed as warnings.\n\n"
      "Examples:\n"
      "  isthmus config check isthmus.yaml\n"
      "  isthmus config check examples/isthmus.yaml && systemctl reload isthmus\n\n"
      "Reference and a complete example: docs/configuration.md.\n\n"
      "Exit status: 0 valid (warnings allowed; prints a summary), 1 invalid (errors on\n"
      "stderr), 2 the file could not be read.");
  o->check->add_option("FILE", o->file, "the configuration file (YAML)")->required();
  return [o] { return o->check->parsed() ? RunCheck(*o) : 2; };
}

}  // namespace isthmus::cli
