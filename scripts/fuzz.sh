#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS (default 60) on a copy of its seed
# corpus (tests/fuzz/corpus/<target>), in a build folder of its own built with
# clang, -fsanitize=fuzzer-no-link,address,undefined for the libraries and
# -fsanitize=fuzzer,address,undefined for the targets (issue 7, "Fuzzing").
# Prints each target's executions; exits non-zero when a target crashed
# (the reproducer is left in $FUZZ_OUT/<target>/, see the log there).
#
#   scripts/fuzz.sh [SECONDS]
#   env: BUILD_FUZZ (build-fuzz), JOBS (1), FUZZ_OUT ($BUILD_FUZZ/fuzz-runs),
#        FUZZ_TARGETS ("codec_fuzz ingress_fuzz engine_fuzz"),
#        FUZZ_MAX_LEN (8192; 1024 for engine_fuzz, whose inputs are programs of events),
#        FUZZ_ARGS (extra libFuzzer flags, e.g. -jobs=2 -workers=2)
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD_FUZZ:-$ROOT/build-fuzz}"
JOBS="${JOBS:-1}"
OUT="${FUZZ_OUT:-$BUILD/fuzz-runs}"
TARGETS="${FUZZ_TARGETS:-codec_fuzz ingress_fuzz engine_fuzz}"
CC="${CC_FUZZ:-clang}"
CXX="${CXX_FUZZ:-clang++}"

for tool in "$CC" "$CXX"; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (clang is required)" >&2; exit 2; }
done

# Until the top-level CMakeLists.txt has option(SAGA_FUZZ) and
# add_subdirectory(tests/fuzz), a small wrapper project adds them.
SRC="$ROOT"
BIN="$BUILD/tests/fuzz"
if ! grep -q 'tests/fuzz' "$ROOT/CMakeLists.txt"; then
  SRC="$BUILD/wrapper-src"
  BIN="$BUILD/fuzz"
  mkdir -p "$SRC"
  cat >"$SRC/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(saga_fuzz_wrapper LANGUAGES CXX)
option(SAGA_FUZZ "Build the libFuzzer targets" ON)
add_subdirectory("$ROOT" saga)
add_subdirectory("$ROOT/tests/fuzz" fuzz)
CMAKE
fi

# A build folder configured from the other source (wrapper or not) is stale.
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$SRC" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"
fi

SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
CC="$CC" CXX="$CXX" cmake -S "$SRC" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSAGA_FUZZ=ON -DSAGA_BUILD_TESTS=OFF -DSAGA_BUILD_EXAMPLES=OFF \
  -DCMAKE_CXX_FLAGS="$SAN" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSAGA_MIMALLOC=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$JOBS" --target $TARGETS

# A smaller quarantine, no malloc fill and short allocation stacks make the engine target about
# 1.6x faster (it allocates a lot, through SQLite); run a reproducer again without them for
# the full stacks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1:quarantine_size_mb=16:max_malloc_fill_size=0:malloc_context_size=4}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
summary=()
for t in $TARGETS; do
  corpus_seed="$ROOT/tests/fuzz/corpus/${t%_fuzz}"
  work="$OUT/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$corpus_seed"/* "$work/corpus/" 2>/dev/null || true
  log="$work/fuzz.log"
  echo "== $t: ${SECONDS_PER_TARGET}s on $(ls "$work/corpus" | wc -l) seed inputs (log: $log)"
  set +e
  max_len="${FUZZ_MAX_LEN:-8192}"
  if [ -z "${FUZZ_MAX_LEN:-}" ] && [ "$t" = engine_fuzz ]; then max_len=1024; fi
  # shellcheck disable=SC2086
  "$BIN/$t" "$work/corpus" -max_total_time="$SECONDS_PER_TARGET" -max_len="$max_len" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  corpus_n="$(ls "$work/corpus" | wc -l)"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "!! $t FAILED (exit $rc) after ${execs:-?} executions; artifacts:"
    ls -1 "$work/artifacts" | sed "s|^|   $work/artifacts/|"
    grep -m1 -E "ERROR|runtime error|[a-z]+_fuzz:|deadly signal" "$log" || tail -20 "$log"
  fi
  summary+=("$t: ${execs:-?} executions in ${SECONDS_PER_TARGET}s, corpus $corpus_n inputs, exit $rc")
done
echo "== fuzz summary"
printf '   %s\n' "${summary[@]}"
exit "$status"
