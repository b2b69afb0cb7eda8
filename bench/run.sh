#!/usr/bin/env bash
# `make bench`: builds the benchmarks in Release, generates the workload files, runs
# hl7v2_parse_bench and the peers (python3-hl7, simple-hl7, @medplum/hl7) on the same files in one
# run, and prints a Markdown table, also written to $BUILD/results.md. See docs/PERFORMANCE.md.
#
# Environment (all optional):
#   BENCH_BUILD         build directory (default: build-bench in the repository)
#   BENCH_MESSAGES      messages per workload file (default 100000)
#   BENCH_PEER_SECONDS  time budget per peer and workload (default 5; a peer parses the messages
#                       in file order until all are done or the budget is spent)
#   BENCH_REPETITIONS   Google Benchmark repetitions, median reported (default 3)
#   BENCH_CMAKE_ARGS    extra CMake arguments (e.g. -DISTHMUS_TMP_NO_VALIDATOR=ON)
#   BENCH_V2FHIR        1 (default): also run v2fhir_convert_bench (HL7 v2 -> FHIR Bundle JSON with
#                       the shipped maps) on the same files; its results are printed and written to
#                       $BUILD/bench-out/v2fhir.json (docs/PERFORMANCE.md, "HL7 v2 -> FHIR
#                       conversion"); 0 skips it
#   GEN_HL7             the generator (default: ../shared/tools/gen_hl7.py next to the repository)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BENCH_BUILD:-$ROOT/build-bench}"
N="${BENCH_MESSAGES:-100000}"
PEER_SECONDS="${BENCH_PEER_SECONDS:-5}"
REPS="${BENCH_REPETITIONS:-3}"
GEN="${GEN_HL7:-$ROOT/../shared/tools/gen_hl7.py}"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY="$(command -v python3)"

log() { printf '\n== %s\n' "$*" >&2; }

[[ -f "$GEN" ]] || { echo "run.sh: generator not found: $GEN (set GEN_HL7)" >&2; exit 1; }

log "build (Release) in $BUILD"
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${BENCH_CMAKE_ARGS:-} >/dev/null
V2FHIR="${BENCH_V2FHIR:-1}"
if [[ "$V2FHIR" == 1 ]]; then
  ninja -C "$BUILD" hl7v2_parse_bench v2fhir_convert_bench
else
  ninja -C "$BUILD" hl7v2_parse_bench
fi

DATA="$BUILD/bench-data"
OUT="$BUILD/bench-out"
mkdir -p "$DATA" "$OUT"
# Deterministic (fixed seeds): regenerated only when missing or when the generator changed.
ADT="$DATA/adt_a01-$N.hl7"
ORU="$DATA/oru_r01-$N.hl7"
gen() {  # gen FILE ADT_RATIO SEED
  if [[ ! -s "$1" || "$GEN" -nt "$1" ]]; then
    log "generate $(basename "$1")"
    "$PY" "$GEN" -n "$N" --adt-ratio "$2" --seed "$3" -o "$1.tmp" && mv "$1.tmp" "$1"
  fi
}
gen "$ADT" 1.0 42
gen "$ORU" 0.0 43

cxx="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
"$PY" - "$OUT/machine.json" "$N" "$GEN" "${cxx:-c++}" <<'PY'
import json, os, platform, subprocess, sys, datetime
cpu = "unknown CPU"
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
comp = subprocess.run([sys.argv[4], "--version"], capture_output=True, text=True).stdout
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "nproc": os.cpu_count(), "cpu": cpu, "kernel": "Linux " + platform.release(),
    "compiler": (comp.splitlines() or ["?"])[0] + " -O3 (Release)",
    "load_start": open("/proc/loadavg").read().split()[0], "load_end": "?",
    "messages": sys.argv[2], "generator": os.path.basename(sys.argv[3]),
}, open(sys.argv[1], "w"))
PY

log "Isthmus: hl7v2_parse_bench ($REPS repetitions, median)"
"$BUILD/bench/hl7v2_parse_bench" --adt="$ADT" --oru="$ORU" \
  --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
  --benchmark_out="$OUT/isthmus.json" --benchmark_out_format=json

if [[ "$V2FHIR" == 1 ]]; then
  log "Isthmus: v2fhir_convert_bench, parse + convert to Bundle JSON ($REPS repetitions, median)"
  ISTHMUS_MAPS_DIR="${ISTHMUS_MAPS_DIR:-$ROOT/maps}" "$BUILD/bench/v2fhir_convert_bench" \
    --adt="$ADT" --oru="$ORU" \
    --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT/v2fhir.json" --benchmark_out_format=json
fi

log "peers (budget ${PEER_SECONDS}s each)"
: > "$OUT/peers.jsonl"
"$PY" "$ROOT/bench/peers/python_hl7_peer.py" --budget "$PEER_SECONDS" adt="$ADT" oru="$ORU" \
  | tee -a "$OUT/peers.jsonl"
(cd "$ROOT" && node bench/peers/node_peers.mjs --budget "$PEER_SECONDS" adt="$ADT" oru="$ORU") \
  | tee -a "$OUT/peers.jsonl"

"$PY" - "$OUT/machine.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["load_end"] = open("/proc/loadavg").read().split()[0]
json.dump(m, open(sys.argv[1], "w"))
PY

log "results ($BUILD/results.md)"
"$PY" "$ROOT/bench/report.py" --ours "$OUT/isthmus.json" --peers "$OUT/peers.jsonl" \
  --machine "$OUT/machine.json" --out "$BUILD/results.md"
