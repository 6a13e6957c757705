# The two commands of the README, and the builds around them.
#   make test   install dependencies, configure, build, run every test
#   make demo   run orders through the engine and show where they ended
BUILD ?= build
JOBS ?= 2
WERROR ?= OFF
BUILD_TYPE ?= RelWithDebInfo
CTEST_ARGS ?=

.PHONY: all deps configure build test demo bench clean format

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

# The performance table (docs/performance.md); BENCH_ARGS="--json out.json" to keep the figures.
bench: build
	$(BUILD)/tests/bench/saga-bench $(BENCH_ARGS)

format:
	find engine definitions adapters tests examples -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
