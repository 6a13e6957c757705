# The two commands of the README, and the builds around them.
#   make test   install dependencies, configure, build, run every test
#   make demo   run orders through the engine and show where they ended
#   make demo-cluster   the same on three sagad sharing one PostgreSQL
#   make package  the Debian packages saga and saga-dev, in $(BUILD) (docs/operations.md)
BUILD ?= build
JOBS ?= 2
WERROR ?= OFF
BUILD_TYPE ?= RelWithDebInfo
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60
COMPILE_COST_ARGS ?=

.PHONY: all deps configure build test demo demo-cluster package bench torture fuzz test-asan clean format

all: build

deps:
	@if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then ./scripts/install-deps.sh; \
	 else echo "make: not root and no sudo; assuming dependencies are installed"; fi

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSAGA_WERROR=$(WERROR)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

demo: build
	./scripts/demo.sh $(BUILD)

# The demo on three sagad sharing one throw-away PostgreSQL, one of them killed and restarted.
demo-cluster: build
	./scripts/demo-cluster.sh $(BUILD)

package: build
	cd $(BUILD) && cpack

# The performance table (docs/performance.md); BENCH_ARGS="--json out.json" to keep the figures.
# Then what each definition costs to compile (docs/dsl.md "Compile cost"), COMPILE_COST_ARGS likewise.
bench: build
	$(BUILD)/tests/bench/saga-bench $(BENCH_ARGS)
	$(BUILD)/tests/bench/saga-compile-cost $(COMPILE_COST_ARGS)

# The full reliability runs (docs/reliability.md): about 10 min of crash torture (1,000
# counted kills, 20 hits of each fault point), the I/O-fault sweep up to the 64th call, and the
# PostgreSQL cluster's failures and race (5,000 sagas x 20 events on three sagad) at full size
# (docs/postgres.md).
torture: build
	$(BUILD)/tests/reliability/saga-torture --sagas 15000 --kills 1000 --fault-kills 20 --report $(BUILD)/torture-full.json
	SAGA_IO_FAULT_MAX_N=64 $(BUILD)/tests/saga-io-faults
	# Several sagad on one PostgreSQL at full size (issue 17), on a throw-away cluster of their own.
	bash tests/support/pg_cluster.sh start $(BUILD)/torture-pg.conninfo && \
	  SAGA_TEST_POSTGRES=$(BUILD)/torture-pg.conninfo SAGA_PG_TORTURE=1 \
	    $(BUILD)/tests/postgres_tests -ts="postgres sagad failures,postgres sagad race"; \
	  rc=$$?; bash tests/support/pg_cluster.sh stop $(BUILD)/torture-pg.conninfo; exit $$rc

# libFuzzer targets (clang, ASan + UBSan) in build-fuzz, each for FUZZ_SECONDS.
fuzz: deps
	JOBS=$(JOBS) ./scripts/fuzz.sh $(FUZZ_SECONDS)

# The whole test suite built with clang under ASan and UBSan, in build-asan.
test-asan: deps
	JOBS=$(JOBS) ./scripts/test-asan.sh $(CTEST_ARGS)

format:
	find engine definitions adapters tests examples -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
