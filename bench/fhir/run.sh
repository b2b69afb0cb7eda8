#!/usr/bin/env bash
# FHIR server benchmark (docs/PERFORMANCE.md, "FHIR server"; issue #5's targets):
#   bench/fhir/run.sh            load 1,000,000 resources, then measure (30-60 min on 2 cores)
#   bench/fhir/run.sh --quick    100,000 resources, shorter phases (~5-8 min)
# Builds `isthmus` in Release in its own build directory, compiles bench/fhir/fhir_load.cc there,
# then runs bench/fhir/run.py: one `isthmus serve` on a fresh data directory (loopback, free
# ports), the load through transaction Bundles of 500 entries, then create, transaction, read and
# search phases with the server's RSS sampled. Results: BUILD/fhir-results.md and
# BUILD/fhir-out/results.jsonl.
#
# Environment (all optional):
#   FHIR_BENCH_BUILD      build directory (default: build-fhirbench in the repository)
#   FHIR_BENCH_RESOURCES  resources loaded before measuring (default 1000000; 100000 with --quick)
#   FHIR_BENCH_SECONDS    seconds of each create/read/search phase (default 20; 10 with --quick)
#   FHIR_BENCH_CMAKE_ARGS extra CMake arguments
#   FHIR_BENCH_KEEP=1     keep the data directory (BUILD/fhir-work/data) afterwards
#   FHIR_BENCH_PHASES     phases after the load, comma-separated (default all: create,transaction,
#                         read,search-identifier,search-code-subject)
#   FHIR_BENCH_CREATE_CONNS  client connections of the create phase (default 16)
#   FHIR_BENCH_SERVER     server config keys for the run, space-separated KEY=VALUE (e.g.
#                         "http_threads=2 sqlite_cache=256MiB")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${FHIR_BENCH_BUILD:-$ROOT/build-fhirbench}"
RESOURCES="${FHIR_BENCH_RESOURCES:-1000000}"
SECONDS_PER_PHASE="${FHIR_BENCH_SECONDS:-20}"
BUNDLES=60
if [[ "${1:-}" == "--quick" ]]; then
  RESOURCES="${FHIR_BENCH_RESOURCES:-100000}"
  SECONDS_PER_PHASE="${FHIR_BENCH_SECONDS:-10}"
  BUNDLES=20
fi
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY="$(command -v python3)"

log() { printf '\n== %s\n' "$*" >&2; }

log "build isthmus (Release) in $BUILD"
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FHIR_BENCH_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}" --target isthmus

log "fhir_load"
"${CXX:-c++}" -O2 -std=c++20 -pthread -o "$BUILD/fhir_load" "$ROOT/bench/fhir/fhir_load.cc"

log "run: $RESOURCES resources (load average $(cut -d' ' -f1 /proc/loadavg))"
KEEP=()
[[ "${FHIR_BENCH_KEEP:-0}" == 1 ]] && KEEP=(--keep)
[[ -n "${FHIR_BENCH_PHASES:-}" ]] && KEEP+=(--phases "$FHIR_BENCH_PHASES")
for kv in ${FHIR_BENCH_SERVER:-}; do KEEP+=(--server "$kv"); done
[[ -n "${FHIR_BENCH_CREATE_CONNS:-}" ]] && KEEP+=(--create-conns "$FHIR_BENCH_CREATE_CONNS")
"$PY" "$ROOT/bench/fhir/run.py" --build "$BUILD" --resources "$RESOURCES" \
  --seconds "$SECONDS_PER_PHASE" --create-seconds "$SECONDS_PER_PHASE" --bundles "$BUNDLES" "${KEEP[@]}"
