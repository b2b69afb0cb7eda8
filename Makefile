# Front door. Every target installs what is missing first (scripts/bootstrap is idempotent).
#   make run        bootstrap, build, start `isthmus serve` on the embedded default
#   make test       bootstrap, build, run the whole test suite
#   make test-asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks with peers measured in the same run (docs/PERFORMANCE.md)
#   make bench-mllp MLLP throughput of `isthmus serve` with peers (bench/mllp/run.sh, ~15 min)
#   make bench-fhir FHIR server at 1M resources: create, transaction, read, search, RSS
#                   (bench/fhir/run.sh in build-fhirbench; FHIR_BENCH_RESOURCES=100000 for a quick run)
#   make fuzz       libFuzzer targets for the parsers (FUZZ_SECONDS=60 each)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all bootstrap build run test test-asan bench bench-mllp bench-fhir fuzz format clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/isthmus serve

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: bootstrap
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DISTHMUS_SANITIZE=ON \
	  -DISTHMUS_BENCH=OFF $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

bench: bootstrap
	bench/run.sh

bench-mllp: bootstrap
	bench/mllp/run.sh

bench-fhir: bootstrap
	bench/fhir/run.sh

fuzz: bootstrap
	scripts/fuzz

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-bench build-fuzz
