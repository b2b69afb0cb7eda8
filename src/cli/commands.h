// Subcommands of the `isthmus` binary. Each Add* registers its options on the CLI11 app and
// returns the function that runs it (returning the process exit code).
// Thread-safety: called once from main().
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace isthmus::cli {

using Run = std::function<int()>;

Run AddInspectCommand(CLI::App& app);
Run AddValidateCommand(CLI::App& app);
Run AddServeCommand(CLI::App& app);
Run AddSendCommand(CLI::App& app);
Run AddConfigCommand(CLI::App& app);
Run AddConvertCommand(CLI::App& app);
Run AddFhirpathCommand(CLI::App& app);

}  // namespace isthmus::cli
