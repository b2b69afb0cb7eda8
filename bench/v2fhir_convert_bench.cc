// Throughput of HL7 v2 -> FHIR R4 conversion (parse + convert to Bundle JSON) with the shipped
// maps, per core.
//
// Input files hold one message per line (segments end in CR, messages in LF), as written by
// ../shared/tools/gen_hl7.py: --adt-ratio 1.0 gives ADT^A01, 0.0 gives ORU^R01 with 10 OBX.
// One iteration converts every message of the file; items_per_second is messages per second.
//
// Usage:
//   v2fhir_convert_bench --adt=adt.hl7 --oru=oru.hl7 [Google Benchmark flags]
//   ISTHMUS_BENCH_ADT=adt.hl7 ISTHMUS_BENCH_ORU=oru.hl7 v2fhir_convert_bench
//   v2fhir_convert_bench --passes --adt=adt.hl7 --oru=oru.hl7   no Google Benchmark: per
//       workload one warm-up pass, then one measured pass, for instruction counts per message:
//       valgrind --tool=callgrind v2fhir_convert_bench --passes --adt=adt.hl7
//       writes callgrind.out.<pid>.1, holding exactly the measured pass (statistics zeroed
//       before it and dumped after it, when <valgrind/callgrind.h> was found at build time):
//       its "Collected" Ir / messages = instructions per message. One workload per run.
//
// Benchmarks, per workload:
//   BM_Convert/<w>         Message::Parse + Converter::Convert (compact JSON), one Workspace
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define ISTHMUS_CALLGRIND_ZERO() CALLGRIND_ZERO_STATS
#define ISTHMUS_CALLGRIND_DUMP(what) CALLGRIND_DUMP_STATS_AT(what)
#else
#define ISTHMUS_CALLGRIND_ZERO() ((void)0)
#define ISTHMUS_CALLGRIND_DUMP(what) ((void)0)
#endif

#include "hl7v2/message.h"
#include "mapping/v2fhir/converter.h"
#include "mapping/v2fhir/loader.h"

namespace isthmus::v2fhir {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "v2fhir_convert_bench: %s\n", why.c_str());
  std::exit(2);
}

struct Workload {
  std::string bytes;
  std::vector<std::string_view> messages;
};

Workload Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  Workload w;
  w.bytes = ss.str();
  std::string_view all = w.bytes;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    if (end > pos) w.messages.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  if (w.messages.empty()) Die(path + " holds no messages");
  return w;
}

void BM_Convert(benchmark::State& state, const Workload* w, const Converter* conv) {
  Workspace ws;
  ConvertResult result;
  ConvertOptions options;
  size_t bytes = 0;
  for (auto _ : state) {
    for (std::string_view text : w->messages) {
      auto m = hl7v2::Message::Parse(text);
      if (!m.ok()) Die("parse: " + std::string(m.status().message()));
      absl::Status s = conv->Convert(*m, options, ws, &result);
      if (!s.ok()) Die("convert: " + std::string(s.message()));
      bytes += result.json.size();
      benchmark::DoNotOptimize(result.json.data());
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * w->messages.size()));
  state.counters["bundle_bytes"] = static_cast<double>(bytes) /
      static_cast<double>(std::max<int64_t>(1, state.iterations() * w->messages.size()));
}

// Parses and converts every message of `w` once; returns the Bundle bytes written.
size_t Pass(const Workload& w, const Converter& conv, Workspace& ws, ConvertResult& result) {
  ConvertOptions options;
  size_t bytes = 0;
  for (std::string_view text : w.messages) {
    auto m = hl7v2::Message::Parse(text);
    if (!m.ok()) Die("parse: " + std::string(m.status().message()));
    absl::Status s = conv.Convert(*m, options, ws, &result);
    if (!s.ok()) Die("convert: " + std::string(s.message()));
    bytes += result.json.size();
  }
  return bytes;
}

void RunPasses(const char* name, const Workload& w, const Converter& conv) {
  Workspace ws;
  ConvertResult result;
  Pass(w, conv, ws, result);  // warm-up: the workspace reaches its steady-state size
  ISTHMUS_CALLGRIND_ZERO();
  size_t bytes = Pass(w, conv, ws, result);
  ISTHMUS_CALLGRIND_DUMP(name);
  std::printf("%s: %zu messages, %.0f Bundle bytes per message\n", name, w.messages.size(),
              static_cast<double>(bytes) / static_cast<double>(w.messages.size()));
}

bool BoolFlag(int* argc, char** argv, const char* name) {
  bool found = false;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::string(argv[i]) == std::string("--") + name) {
      found = true;
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return found;
}

std::string Flag(int* argc, char** argv, const char* name, const char* env) {
  std::string prefix = std::string("--") + name + "=", value;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string a = argv[i];
    if (a.rfind(prefix, 0) == 0) {
      value = a.substr(prefix.size());
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  if (value.empty() && std::getenv(env) != nullptr) value = std::getenv(env);
  return value;
}

}  // namespace
}  // namespace isthmus::v2fhir

int main(int argc, char** argv) {
  using namespace isthmus::v2fhir;
  std::string adt = Flag(&argc, argv, "adt", "ISTHMUS_BENCH_ADT");
  std::string oru = Flag(&argc, argv, "oru", "ISTHMUS_BENCH_ORU");
  bool passes = BoolFlag(&argc, argv, "passes");
  if (adt.empty() && oru.empty()) Die("give --adt=FILE and/or --oru=FILE");
  auto maps = LoadMaps({DefaultMapsDir()});
  if (!maps.ok()) Die(std::string(maps.status().message()));
  static Converter converter(*maps);
  if (passes) {
    if (!adt.empty()) RunPasses("adt", Load(adt), converter);
    if (!oru.empty()) RunPasses("oru", Load(oru), converter);
    return 0;
  }
  static Workload wa, wo;
  if (!adt.empty()) {
    wa = Load(adt);
    benchmark::RegisterBenchmark("BM_Convert/adt", BM_Convert, &wa, &converter)->Unit(benchmark::kMillisecond);
  }
  if (!oru.empty()) {
    wo = Load(oru);
    benchmark::RegisterBenchmark("BM_Convert/oru", BM_Convert, &wo, &converter)->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
