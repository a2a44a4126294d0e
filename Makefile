# Thin wrapper over CMake. The two commands a new user needs:
#   make run    install deps, build, start the server with data in ./data (GraphiQL: /graphiql)
#   make test   install deps, build, run every test
BUILD ?= build
MAKEFLAGS += --no-print-directory
BUILD_ASAN ?= build-asan
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 600

.PHONY: bench-events bench-chain bench-data bench-ledger all deps build install run test test-asan test-crash test-attack fuzz format clean bench

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# `make run` checks the build's packages and configures CMake only when that can have changed
# (install-deps.sh or CMakeLists.txt newer than the stamp / the cache): a second `make run`
# goes straight to the (incremental) build. It needs none of the tests' packages.
$(BUILD)/.deps-build: scripts/install-deps.sh
	@bash scripts/install-deps.sh --build
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/CMakeCache.txt: CMakeLists.txt $(BUILD)/.deps-build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

# Installs into $(DESTDIR)$(PREFIX): bin/ledgermq, lib/libledgermq.a, include/ledgermq/ledgermq.h,
# lib/pkgconfig/ledgermq.pc, share/man/man1/ledgermq*.1 and share/doc/ledgermq/ (README,
# LICENSE, the example ledgermq.conf, the systemd unit). README "Install".
PREFIX ?= /usr/local
install: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) --target ledgermq ledgermq_dist man
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

run: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) --target ledgermq
	@mkdir -p data
	@echo "make run: GraphiQL on the HTTP listener: http://127.0.0.1:8080/graphiql" \
		"(a token: ./$(BUILD)/ledgermq token --key bob.json; README \"Try it\")"
	./$(BUILD)/ledgermq serve --data ./data --models examples/models $(ARGS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer. Excluded: the fuzz smoke
# (fuzz targets are always built with sanitizers) and the crash smoke (its power-loss shim is an
# LD_PRELOAD library, which ASan refuses to load ahead of its runtime).
test-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DLMQ_ASAN=ON -DLMQ_UBSAN=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) --timeout 900 -E "fuzz|crash"

# Hundreds of kill -9 cycles and thousands of simulated power losses (tests/crash).
test-crash: build
	@bash tests/crash/run_long.sh ./$(BUILD)/ledgermq

# Long attacks from docs/SECURITY.md (floods, exhaustion, long stateful fuzzing) against the
# real binary; `make test` runs the short form of each.
test-attack: build
	@bash tests/attack/run.sh ./$(BUILD)/ledgermq

# LedgerMQ (--sync always and off) against Debian's mosquitto and nats-server (installed with
# apt-get if missing), alternating, BENCH_ROUNDS rounds (3); rewrites docs/BENCHMARKS.md.
# BENCH_QUICK=1: a 2-minute smoke run that writes build/BENCHMARKS-quick.md instead.
bench: build
	@/usr/bin/python3 scripts/bench.py --ledgermq ./$(BUILD)/ledgermq

# The ledger's costs: envelope append rate and proof latency at 1,000,000 leaves.
bench-ledger: build
	@/usr/bin/python3 scripts/bench-ledger.py --ledgermq ./$(BUILD)/ledgermq --doc docs/BENCHMARKS.md

# The event stream: envelope throughput with 0, 1 and 10 webhooks, and webhook delivery rate.
bench-events: build
	@/usr/bin/python3 scripts/bench-events.py --ledgermq ./$(BUILD)/ledgermq --doc docs/BENCHMARKS.md

# The chain follower: catch-up from block 0 on a local ganache (blocks/s, logs/s) beside
# ethers.js doing the same eth_getBlockByNumber + eth_getLogs walk, and block-to-inbox latency at
# poll_ms 100 and 1000. BENCH_CHAIN_ARGS more options (scripts/bench-chain.py --help).
BENCH_CHAIN_ARGS ?=
bench-chain: build
	@/usr/bin/python3 scripts/bench-chain.py --ledgermq ./$(BUILD)/ledgermq --doc docs/BENCHMARKS.md \
		$(BENCH_CHAIN_ARGS)

# JSON Schema validation objects/s for three model sizes, LedgerMQ's engine beside ajv (node);
# typed-object ingest beside plain envelopes; rl_T EQ over 1,000,000 seeded resources beside its
# bare SQL (the seed is cached in $(BUILD)/bench-data-1m/). BENCH_DATA_SECONDS per model and
# engine (3); BENCH_DATA_ARGS more options (--quick: a smoke run that writes no doc).
BENCH_DATA_SECONDS ?= 3
BENCH_DATA_ARGS ?=
bench-data: build
	@cmake --build $(BUILD) -j $(JOBS) --target schema_bench data_bench ledgermq
	@/usr/bin/python3 scripts/bench-data.py --bench ./$(BUILD)/tests/schema_bench \
		--data-bench ./$(BUILD)/tests/data_bench --ledgermq ./$(BUILD)/ledgermq \
		--cache ./$(BUILD)/bench-data-1m --seconds $(BENCH_DATA_SECONDS) \
		--doc docs/BENCHMARKS.md $(BENCH_DATA_ARGS)

# Longer fuzzing than the smoke run in `make test`.
fuzz: deps
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz
