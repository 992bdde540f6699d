#!/usr/bin/env bash
# Sanitizer stage of CI (scripts/test.sh runs it after the normal tests; docs/FUZZING.md):
#   asan: every C++ unit and integration test (and the fuzz corpora) under ASan+UBSan, build-asan/
#   tsan: TSan, build-tsan/, against Debian's own Abseil source rebuilt with -fsanitize=thread
#         (absl::Mutex is opaque to TSan when uninstrumented), fetched once with apt-get source into
#         build-tsan/absl/. Two parts: the concurrency unit tests (cache, common: Batcher,
#         BoundedExecutor), then the real server under the server, hardening, reload and soak
#         integration tests (CROPSHIELD_SOAK_SECONDS=30). gRPC, OpenSSL, upb and libtorch are not
#         instrumented; tests/sanitizers/tsan.supp names the reports from inside them, nothing else.
#   tsan-server: only the server part of tsan (to repeat it locally).
# Usage: scripts/test-sanitizers.sh [asan|tsan|tsan-server]...   (default: asan tsan)
# A run passes only when every test passes, no test other than a gpu-labelled one is skipped, and
# no sanitizer wrote a report (log files under build-*/sanitizer-logs*/, also from server
# processes the tests start). Each CTest stage logs its test count (scripts/ctest-stage.sh); under
# scripts/test.sh the counts also go to its summary. Nothing in the environment shortens a stage:
# the soak's resident-memory check is off in sanitizer builds by a compile definition
# (tests/integration/CMakeLists.txt), not by a variable.
set -euo pipefail
shopt -s inherit_errexit  # a failing step inside $(build_tsan_abseil) fails the script
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/ctest-stage.sh
JOBS=${JOBS:-$(nproc)}
TEST_JOBS=${TEST_JOBS:-2}
stages=("$@")
((${#stages[@]})) || stages=(asan tsan)

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

log() { echo "test-sanitizers: $*"; }

# Fails when a sanitizer wrote any report under $1 (stage $2).
check_no_reports() {
  local dir=$1 stage=$2 reports
  reports=$(find "$dir" -type f -size +0 2>/dev/null | sort)
  if [[ -n "$reports" ]]; then
    log "sanitizer reports in $dir:"
    for f in $reports; do
      echo "==== $f"
      head -n 60 "$f"
    done
    stage_summary "$stage: FAILED, $(wc -l <<<"$reports") sanitizer report files in $dir"
    return 1
  fi
  log "no sanitizer reports"
  stage_summary "$stage: no sanitizer reports"
}

run_asan() {
  local build=build-asan logs=$ROOT/build-asan/sanitizer-logs
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCROPSHIELD_SANITIZE=address \
    "${launcher[@]}" >/dev/null
  # Everything the tests use (proto/all: the Python stubs); bench/ is not needed.
  cmake --build "$build" -j "$JOBS" --target proto/all server/all client/all tests/all
  rm -rf "$logs" && mkdir -p "$logs"
  # Python-only tests (models/, Prometheus config checks) run no C++ and are left to the normal
  # stage. detect_leaks stays on; lsan.supp lists leaks inside uninstrumented third-party code.
  # Tests labelled latency (the HTTP/2 abuse test: a Predict caller's p99 while the port is flooded)
  # measure the server's speed, which ASan changes; they run in the normal stage only. (Under ASan
  # the rapid-reset flood outran the server: it fell behind, held 10 GB and the attack never ended.)
  # The soak's resident-memory check is compiled out of this build: under ASan the resident set is
  # ASan's allocator (its quarantine of freed blocks fills for the whole run: +5.4% after warm-up
  # measured once), and LSan checks the server for leaks at its exit instead. The normal stage
  # keeps the check.
  local rc=0
  ASAN_OPTIONS="log_path=$logs/asan:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1:abort_on_error=0" \
  UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1" \
  LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0" \
    ctest_stage asan "$build" --output-on-failure --timeout 1200 -j "$TEST_JOBS" \
      -LE '^(models|python-only|latency)$' -E '^prometheus_' || rc=$?
  check_no_reports "$logs" asan || rc=1
  return "$rc"
}

# Debian's Abseil (the version installed) rebuilt with -fsanitize=thread as shared libraries with
# Debian's SONAMEs, so that LD_LIBRARY_PATH swaps them in for gRPC and for our code alike.
# Prints the library directory. Reused while the installed libabsl-dev version is unchanged.
build_tsan_abseil() {
  local dir=$ROOT/build-tsan/absl version
  version=$(dpkg-query -W -f='${source:Version}' libabsl-dev)
  if [[ -f $dir/stamp && $(cat "$dir/stamp") == "$version" ]]; then
    echo "$dir/lib"
    return
  fi
  rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial" "$dir/src"
  # deb-src entries for the Debian archives this machine already uses (deb822 and one-line form).
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk 'BEGIN { RS = ""; ORS = "\n\n" } /URIs:[^\n]*debian/ {
           sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >>"$dir/apt/debian-src.sources"
  done
  if [[ -f /etc/apt/sources.list ]]; then
    sed -n 's/^deb \(.*debian.*\)$/deb-src \1/p' /etc/apt/sources.list >"$dir/apt/sources.list"
  else
    : >"$dir/apt/sources.list"
  fi
  if [[ ! -s $dir/apt/debian-src.sources && ! -s $dir/apt/sources.list ]]; then
    echo "deb-src http://deb.debian.org/debian bookworm main" >"$dir/apt/sources.list"
    echo "deb-src http://deb.debian.org/debian-security bookworm-security main" >>"$dir/apt/sources.list"
  fi
  local apt_opts=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o "Dir::Etc::SourceParts=$dir/apt"
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root)
  log "fetching Debian's abseil $version source" >&2
  apt-get "${apt_opts[@]}" -qq update >&2
  (cd "$dir/src" && apt-get "${apt_opts[@]}" -qq source --download-only "abseil=$version" >&2 &&
    dpkg-source --no-check -x abseil_*.dsc abseil >&2)
  log "building abseil with -fsanitize=thread" >&2
  cmake -S "$dir/src/abseil" -B "$dir/build" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF \
    -DCMAKE_C_FLAGS="-fsanitize=thread" -DCMAKE_CXX_FLAGS="-fsanitize=thread" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_INSTALL_PREFIX="$dir" \
    -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
  cmake --build "$dir/build" -j "$JOBS" >&2
  cmake --install "$dir/build" >/dev/null
  rm -rf "$dir/build" "$dir/src"
  echo "$version" >"$dir/stamp"
  echo "$dir/lib"
}

tsan_unit_targets=(cache_sharded_lru_cache_test cache_concurrency_test common_test)
tsan_server_targets=(cropshield-server cropshield integration_server_test integration_hardening_test
  integration_reload_test integration_soak_test)

# Builds the instrumented Abseil (its lib dir in tsan_absl_lib), configures build-tsan and builds
# the given targets there.
build_tsan() {
  tsan_absl_lib=$(build_tsan_abseil)
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCROPSHIELD_SANITIZE=thread \
    "${launcher[@]}" >/dev/null
  cmake --build build-tsan -j "$JOBS" --target "$@"
}

# Runs stage $1 (ctest in build-tsan, after build_tsan) with TSan logging to $2; the rest are
# ctest arguments. The test binaries link Debian's libabsl_*.so.20220623 (same headers, same SONAMEs);
# LD_LIBRARY_PATH makes them, the servers they start, and gRPC load the instrumented build.
# history_size=7 (4M accesses per thread, default 128K): a report's earlier access is often made
# by one of our workers that then ran much instrumented code (image decoding), and its stack is
# needed to show it and to match tests/sanitizers/tsan.supp. Prints the reports also when a test
# failed. A test that sets TSan options of its own adds them to these (the cache tests:
# tests/unit/cache/CMakeLists.txt), it does not replace them.
ctest_tsan() {
  local stage=$1 logs=$2 rc=0
  shift 2
  rm -rf "$logs" && mkdir -p "$logs"
  LD_LIBRARY_PATH="$tsan_absl_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  TSAN_OPTIONS="log_path=$logs/tsan:halt_on_error=0:second_deadlock_stack=1:history_size=7:suppressions=$ROOT/tests/sanitizers/tsan.supp" \
    ctest_stage "$stage" build-tsan --output-on-failure "$@" || rc=$?
  check_no_reports "$logs" "$stage" || rc=1
  return "$rc"
}

# The concurrency unit tests: the cache, the Batcher, the BoundedExecutor.
run_tsan_unit() {
  ctest_tsan tsan-unit "$ROOT/build-tsan/sanitizer-logs" --timeout 600 -j "$TEST_JOBS" \
    -R '^(cache\.|BatcherTest|BoundedExecutorTest|LatencyWindowTest)'
}

# The real server (TSan build, instrumented Abseil) under the integration tests: concurrent and
# single-flight calls, TLS and mTLS, drain under load, overload, hot reload under load, and a 30 s
# soak of 64 mixed clients. One test at a time: each starts servers and loads both cores. Under
# TSan the soak's resident-memory check would measure TSan's shadow memory: it is compiled out of
# this build (tests/integration/soak_test.cc); the normal stage keeps it. The soak runs 30 s here.
# About 135 s of tests on 2 cores (2026-11-28).
run_tsan_server() {
  CROPSHIELD_SOAK_SECONDS=30 \
    ctest_tsan tsan-server "$ROOT/build-tsan/sanitizer-logs-server" --timeout 900 -j 1 \
      -R '^integration_(server|hardening|reload|soak)_test$'
}

run_tsan() {
  build_tsan "${tsan_unit_targets[@]}" "${tsan_server_targets[@]}"
  run_tsan_unit
  run_tsan_server
}

for stage in "${stages[@]}"; do
  start=$SECONDS
  case $stage in
    asan) run_asan ;;
    tsan) run_tsan ;;
    tsan-server)
      build_tsan "${tsan_server_targets[@]}"
      run_tsan_server
      ;;
    *) echo "usage: $0 [asan|tsan|tsan-server]..." >&2; exit 2 ;;
  esac
  log "$stage stage passed in $((SECONDS - start)) s"
done
