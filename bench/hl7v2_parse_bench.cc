// Throughput of the HL7 v2 parser (and validator) over files of realistic messages.
//
// Each input file holds one message per line: segments end in CR, messages in LF (the format of
// ../shared/tools/gen_hl7.py). One benchmark iteration is one pass over every message of a file,
// so items_per_second is messages per second. The benchmarks are single-threaded: the figures are
// per core.
//
// Usage:
//   hl7v2_parse_bench --adt=adt.hl7 --oru=oru.hl7 [Google Benchmark flags]
//   ISTHMUS_BENCH_ADT=adt.hl7 ISTHMUS_BENCH_ORU=oru.hl7 hl7v2_parse_bench
// bench/run.sh does this, with the peers, and prints a table; see docs/PERFORMANCE.md.
//
// Benchmarks, per workload (adt = ADT^A01, oru = ORU^R01 with 10 OBX):
//   BM_Parse/<w>          Message::Parse of every message
//   BM_ParseGet/<w>       Parse, then ~10 Get()s of typical paths (precompiled Paths)
//   BM_ParseValidate/<w>  Parse, then Validator::Validate (when the validator is built)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "hl7v2/message.h"
#include "hl7v2/path.h"
#ifdef ISTHMUS_BENCH_HAVE_VALIDATOR
#include "hl7v2/validator.h"
#endif

namespace isthmus::hl7v2 {
namespace {

struct Workload {
  std::string name;  // "adt", "oru"
  std::string bytes;
  std::vector<std::string_view> messages;
  std::vector<Path> paths;  // for BM_ParseGet
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "hl7v2_parse_bench: %s\n", why.c_str());
  std::exit(2);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Path> CompilePaths(const std::vector<std::string_view>& texts) {
  std::vector<Path> paths;
  for (std::string_view t : texts) {
    auto p = Path::Parse(t);
    if (!p.ok()) Die("bad path " + std::string(t));
    paths.push_back(*p);
  }
  return paths;
}

// Loads a file and checks that every message parses, so the benchmark measures the success path.
Workload Load(std::string name, const std::string& path) {
  Workload w;
  w.name = std::move(name);
  w.bytes = ReadFile(path);
  std::string_view all = w.bytes;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    if (end > pos) w.messages.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  if (w.messages.empty()) Die(path + " holds no messages");
  size_t segments = 0;
  for (std::string_view m : w.messages) {
    auto msg = Message::Parse(m);
    if (!msg.ok()) Die(path + ": " + std::string(msg.status().message()));
    segments += msg->segment_count();
  }
  std::fprintf(stderr, "%s: %zu messages, %zu bytes (%.0f B/msg, %.1f segments/msg) from %s\n",
               w.name.c_str(), w.messages.size(), w.bytes.size(),
               double(w.bytes.size()) / w.messages.size(), double(segments) / w.messages.size(),
               path.c_str());
  std::vector<std::string_view> texts = {"MSH-9.1", "MSH-10",   "PID-3[1].1", "PID-3[2].1",
                                         "PID-5.1", "PID-5.2",  "PID-7"};
  if (w.name == "adt") {
    for (auto t : {"PV1-3.1", "PV1-19.1", "AL1[1]-3.2", "DG1[2]-3.1"}) texts.push_back(t);
  } else {
    for (auto t : {"OBR-4.1", "OBX[1]-5", "OBX[5]-5", "OBX[10]-3.1", "OBX[10]-5"}) {
      texts.push_back(t);
    }
  }
  w.paths = CompilePaths(texts);
  return w;
}

void SetCounters(benchmark::State& state, const Workload& w) {
  const int64_t n = static_cast<int64_t>(w.messages.size()) * state.iterations();
  state.SetItemsProcessed(n);
  state.SetBytesProcessed(static_cast<int64_t>(w.bytes.size()) * state.iterations());
}

void BM_Parse(benchmark::State& state, const Workload* w) {
  for (auto _ : state) {
    for (std::string_view bytes : w->messages) {
      auto msg = Message::Parse(bytes);
      benchmark::DoNotOptimize(msg);
      benchmark::ClobberMemory();
    }
  }
  SetCounters(state, *w);
}

void BM_ParseGet(benchmark::State& state, const Workload* w) {
  size_t total = 0;
  for (auto _ : state) {
    for (std::string_view bytes : w->messages) {
      auto msg = Message::Parse(bytes);
      if (!msg.ok()) state.SkipWithError("parse failed");
      for (const Path& p : w->paths) {
        std::string_view v = msg->Get(p);
        benchmark::DoNotOptimize(v);
        total += v.size();
      }
    }
  }
  benchmark::DoNotOptimize(total);
  SetCounters(state, *w);
}

#ifdef ISTHMUS_BENCH_HAVE_VALIDATOR
const Validator& TheValidator() {
  static const Validator* v = [] {
    auto created = Validator::Create({});  // version from each message's MSH-12
    if (!created.ok()) Die("Validator::Create: " + std::string(created.status().message()));
    return new Validator(*std::move(created));
  }();
  return *v;
}

// Prints what the validator finds in the workload once, so that a reader can tell a clean pass
// from one that spends its time building Issues.
void ReportFindings(const Workload& w) {
  std::map<std::string, size_t> by_kind;
  size_t total = 0;
  for (std::string_view bytes : w.messages) {
    auto msg = Message::Parse(bytes);
    for (const Issue& i : TheValidator().Validate(*msg)) {
      ++total;
      by_kind[std::string(SeverityName(i.severity)) + " " +
              std::to_string(static_cast<int>(i.code)) + " " + i.location.ToString()]++;
    }
  }
  std::fprintf(stderr, "%s: validator findings: %.3f per message\n", w.name.c_str(),
               double(total) / w.messages.size());
  int shown = 0;
  for (const auto& [kind, n] : by_kind) {
    if (++shown > 12) break;
    std::fprintf(stderr, "  %8zu  %s\n", n, kind.c_str());
  }
}

void BM_ParseValidate(benchmark::State& state, const Workload* w) {
  const Validator& validator = TheValidator();
  size_t issues = 0;
  for (auto _ : state) {
    for (std::string_view bytes : w->messages) {
      auto msg = Message::Parse(bytes);
      if (!msg.ok()) state.SkipWithError("parse failed");
      std::vector<Issue> found = validator.Validate(*msg);
      issues += found.size();
      benchmark::DoNotOptimize(found);
    }
  }
  SetCounters(state, *w);
  state.counters["issues_per_msg"] = benchmark::Counter(
      double(issues) / (double(w->messages.size()) * double(state.iterations())));
}
#endif

std::string FlagOrEnv(int* argc, char** argv, std::string_view flag, const char* env) {
  std::string value;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, flag.size()) == flag && a.size() > flag.size() && a[flag.size()] == '=') {
      value = std::string(a.substr(flag.size() + 1));
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  if (value.empty() && std::getenv(env) != nullptr) value = std::getenv(env);
  return value;
}

}  // namespace
}  // namespace isthmus::hl7v2

int main(int argc, char** argv) {
  using namespace isthmus::hl7v2;
  benchmark::Initialize(&argc, argv);
  std::string adt = FlagOrEnv(&argc, argv, "--adt", "ISTHMUS_BENCH_ADT");
  std::string oru = FlagOrEnv(&argc, argv, "--oru", "ISTHMUS_BENCH_ORU");
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (adt.empty() && oru.empty()) {
    Die("no input: pass --adt=FILE and/or --oru=FILE (or ISTHMUS_BENCH_ADT / ISTHMUS_BENCH_ORU); "
        "bench/run.sh generates them");
  }
  // Workloads live until exit; benchmarks keep pointers to them.
  static std::vector<Workload> workloads;
  workloads.reserve(2);
  if (!adt.empty()) workloads.push_back(Load("adt", adt));
  if (!oru.empty()) workloads.push_back(Load("oru", oru));
  for (const Workload& w : workloads) {
    benchmark::RegisterBenchmark(("BM_Parse/" + w.name).c_str(), BM_Parse, &w)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
    benchmark::RegisterBenchmark(("BM_ParseGet/" + w.name).c_str(), BM_ParseGet, &w)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
#ifdef ISTHMUS_BENCH_HAVE_VALIDATOR
    ReportFindings(w);
    benchmark::RegisterBenchmark(("BM_ParseValidate/" + w.name).c_str(), BM_ParseValidate, &w)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
#endif
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
