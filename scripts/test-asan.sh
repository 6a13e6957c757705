#!/usr/bin/env bash
# The whole test suite under AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer, built with clang in a folder of its own
# (issue 7, "Fuzzing": `make test-asan`). Any sanitizer report fails the test
# that triggered it: UBSan does not recover, ASan aborts.
#
#   scripts/test-asan.sh [extra ctest arguments, e.g. -R codec -E sagad]
#   env: BUILD_ASAN (build-asan), JOBS (1), CTEST_JOBS (JOBS), TARGETS (all),
#        KEEP_GOING=1 (build what compiles, then test it; the build still fails the run),
#        CTEST_EXCLUDE ('^install\.|^dsl\.mistakes\.': the install test builds a
#        consumer with the default compiler and no sanitizer flags, which cannot
#        link the instrumented libraries; the DSL mistake tests run no code, they
#        check that the compiler stops a wrong table with one error, which holds
#        for GCC (make test): clang 14 goes on to a dozen, 29 KB of output that
#        their "two errors" pattern, error:(.|\n)*error:, makes ctest's
#        backtracking regex engine spin on (and once crash); set it empty to run
#        everything)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD_ASAN:-$ROOT/build-asan}"
JOBS="${JOBS:-1}"
CTEST_JOBS="${CTEST_JOBS:-$JOBS}"
CC="${CC_ASAN:-clang}"
CXX="${CXX_ASAN:-clang++}"

for tool in "$CC" "$CXX"; do
  command -v "$tool" >/dev/null || { echo "test-asan.sh: $tool not found (clang is required)" >&2; exit 2; }
done

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
CC="$CC" CXX="$CXX" cmake -S "$ROOT" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$SAN" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSAGA_MIMALLOC=OFF \
  -DSAGA_BUILD_TESTS=ON -DSAGA_BUILD_EXAMPLES=ON
build_status=0
keep=()
[ -n "${KEEP_GOING:-}" ] && keep=(-- -k)  # Makefile generator
targets=()
# shellcheck disable=SC2206
[ -n "${TARGETS:-}" ] && targets=(--target $TARGETS)
cmake --build "$BUILD" -j"$JOBS" "${targets[@]}" "${keep[@]}" || build_status=$?
if [ "$build_status" -ne 0 ] && [ -z "${KEEP_GOING:-}" ]; then exit "$build_status"; fi

# Child processes (sagad, sagactl, saga-sim) inherit these too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}"

cd "$BUILD"
test_status=0
exclude=()
CTEST_EXCLUDE="${CTEST_EXCLUDE-^install\.|^dsl\.mistakes\.}"
[ -n "$CTEST_EXCLUDE" ] && exclude=(-E "$CTEST_EXCLUDE")
ctest --output-on-failure -j"$CTEST_JOBS" "${exclude[@]}" "$@" || test_status=$?
if [ "$build_status" -ne 0 ]; then echo "test-asan.sh: the build failed (exit $build_status); see above" >&2; exit "$build_status"; fi
exit "$test_status"
