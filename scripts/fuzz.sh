#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (ASan+UBSan, coverage in every library) into
# build-fuzz/ and runs each one for FUZZ_SECONDS (default 60) from its committed seed corpus
# (tests/fuzz/<dir>/corpus, read only; new inputs go to build-fuzz/corpus/<target>). Fails on the
# first crash, leak, sanitizer report, timeout or out-of-memory; the input is saved as
# build-fuzz/artifacts/<target>-*, and when a target executed no input at all. Under scripts/test.sh
# each target's duration and execution count go to its summary. See docs/FUZZING.md.
# Usage: scripts/fuzz.sh [target...]   (default: all three)
#   FUZZ_SECONDS=600 scripts/fuzz.sh image_decode_fuzzer      # a longer run of one target
#   FUZZ_RUNS=1000000 scripts/fuzz.sh request_fuzzer          # a fixed number of executions
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RUNS=${FUZZ_RUNS:--1}

# target -> directory under tests/fuzz holding its corpus (and dictionary, if any)
declare -A corpus_dir=([image_decode_fuzzer]=image [request_fuzzer]=request
  [model_metadata_fuzzer]=model_package)
declare -A dictionary=([model_metadata_fuzzer]=model_json.dict)
# Largest input: images get room for a few small photos, the others are small text/protobuf.
declare -A max_len=([image_decode_fuzzer]=65536 [request_fuzzer]=4096 [model_metadata_fuzzer]=8192)

targets=("$@")
((${#targets[@]})) || targets=(image_decode_fuzzer request_fuzzer model_metadata_fuzzer)
for t in "${targets[@]}"; do
  [[ -n ${corpus_dir[$t]:-} ]] || { echo "fuzz: unknown target $t" >&2; exit 2; }
done

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DCROPSHIELD_SANITIZE=fuzzer "${launcher[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"

mkdir -p "$BUILD_DIR/artifacts"
for t in "${targets[@]}"; do
  seeds=tests/fuzz/${corpus_dir[$t]}/corpus
  work=$BUILD_DIR/corpus/$t
  mkdir -p "$work"
  args=(-max_total_time="$FUZZ_SECONDS" -runs="$FUZZ_RUNS" -max_len="${max_len[$t]}" -timeout=25
    -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$t-")
  if [[ -n ${dictionary[$t]:-} ]]; then
    args+=(-dict="tests/fuzz/${corpus_dir[$t]}/${dictionary[$t]}")
  fi
  echo "fuzz: $t for ${FUZZ_SECONDS} s (runs ${FUZZ_RUNS}) from $seeds"
  start=$SECONDS
  # detect_leaks: a leak in a decoder is a bug too. The log goes to a file: libFuzzer is chatty.
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      "$BUILD_DIR/tests/fuzz/$t" "${args[@]}" "$work" "$seeds" >"$BUILD_DIR/$t.log" 2>&1; then
    tail -n 80 "$BUILD_DIR/$t.log"
    echo "fuzz: $t FAILED after $((SECONDS - start)) s; reproduce with" \
      "$BUILD_DIR/tests/fuzz/$t $BUILD_DIR/artifacts/$t-<file>" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)|^#[0-9]+ +DONE' \
    "$BUILD_DIR/$t.log" | sed "s/^/fuzz: $t: /"
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "$BUILD_DIR/$t.log" | tail -n 1)
  if [[ -z $runs || $runs -eq 0 ]]; then
    echo "fuzz: $t executed no input (FUZZ_SECONDS=$FUZZ_SECONDS, FUZZ_RUNS=$FUZZ_RUNS)" >&2
    exit 1
  fi
  echo "fuzz: $t passed in $((SECONDS - start)) s"
  if [[ -n ${CROPSHIELD_STAGE_SUMMARY:-} ]]; then
    echo "fuzz: $t: $runs inputs in $((SECONDS - start)) s (FUZZ_SECONDS=$FUZZ_SECONDS)" \
      >>"$CROPSHIELD_STAGE_SUMMARY"
  fi
done
