#!/usr/bin/env bash
# Sanitizer stage of CI (scripts/test.sh runs it after the normal tests; docs/FUZZING.md):
#   asan: every C++ unit and integration test (and the fuzz corpora) under ASan+UBSan, build-asan/
#   tsan: the concurrency tests (cache, common: Batcher/BoundedExecutor) under TSan, build-tsan/,
#         against Debian's own Abseil source rebuilt with -fsanitize=thread (absl::Mutex is opaque to
#         TSan when uninstrumented), fetched once with apt-get source into build-tsan/absl/
#   tsan-server (opt-in, not in CI): the real server under the server/hardening/reload/soak
#         integration tests with TSan; see run_tsan_server for why it is not gating.
# Usage: scripts/test-sanitizers.sh [asan|tsan|tsan-server]...   (default: asan tsan)
# A run passes only when every test passes and no sanitizer wrote a report (log files under
# build-*/sanitizer-logs/, also from server processes the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
TEST_JOBS=${TEST_JOBS:-2}
stages=("$@")
((${#stages[@]})) || stages=(asan tsan)

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

log() { echo "test-sanitizers: $*"; }

# Fails when a sanitizer wrote any report under $1.
check_no_reports() {
  local dir=$1 reports
  reports=$(find "$dir" -type f -size +0 2>/dev/null | sort)
  if [[ -n "$reports" ]]; then
    log "sanitizer reports in $dir:"
    for f in $reports; do
      echo "==== $f"
      head -n 60 "$f"
    done
    return 1
  fi
  log "no sanitizer reports"
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
  ASAN_OPTIONS="log_path=$logs/asan:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1:abort_on_error=0" \
  UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1" \
  LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0" \
    ctest --test-dir "$build" --output-on-failure --timeout 1200 -j "$TEST_JOBS" \
      -LE '^(models|python-only)$' -E '^prometheus_'
  check_no_reports "$logs"
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

run_tsan() {
  local build=build-tsan logs=$ROOT/build-tsan/sanitizer-logs absl_lib
  absl_lib=$(build_tsan_abseil)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCROPSHIELD_SANITIZE=thread \
    "${launcher[@]}" >/dev/null
  cmake --build "$build" -j "$JOBS" --target cache_sharded_lru_cache_test cache_concurrency_test \
    common_test
  rm -rf "$logs" && mkdir -p "$logs"
  # The test binaries link Debian's libabsl_*.so.20220623 (same headers, same SONAMEs);
  # LD_LIBRARY_PATH makes them, and gRPC, load the instrumented build instead.
  LD_LIBRARY_PATH="$absl_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  TSAN_OPTIONS="log_path=$logs/tsan:halt_on_error=0:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp" \
    ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$TEST_JOBS" \
      -R '^(cache\.|BatcherTest|BoundedExecutorTest|LatencyWindowTest)'
  check_no_reports "$logs"
}

# Not part of CI (scripts/test.sh): the real server under TSan. gRPC, OpenSSL and libtorch are not
# instrumented, so TSan cannot see their synchronisation; tests/sanitizers/tsan.supp silences the
# gRPC-internal reports seen so far, but runs still show occasional ones from OpenSSL and gRPC's
# callback tags (2026-11-28: one clean run of two), so this stage would make CI flaky.
run_tsan_server() {
  local build=build-tsan logs=$ROOT/build-tsan/sanitizer-logs-server absl_lib
  absl_lib=$(build_tsan_abseil)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCROPSHIELD_SANITIZE=thread \
    "${launcher[@]}" >/dev/null
  cmake --build "$build" -j "$JOBS" --target cropshield-server cropshield integration_server_test \
    integration_hardening_test integration_reload_test integration_soak_test
  rm -rf "$logs" && mkdir -p "$logs"
  # The real server (TSan build, instrumented Abseil) under the integration tests: concurrent and
  # single-flight calls, TLS, drain under load, overload, hot reload under load, and a 30 s soak of
  # 64 mixed clients.
  LD_LIBRARY_PATH="$absl_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  TSAN_OPTIONS="log_path=$logs/tsan:halt_on_error=0:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp" \
  CROPSHIELD_SOAK_SECONDS=30 \
    ctest --test-dir "$build" --output-on-failure --timeout 900 -j 1 \
      -R '^integration_(server|hardening|reload|soak)_test$'
  check_no_reports "$logs"
}

for stage in "${stages[@]}"; do
  start=$SECONDS
  case $stage in
    asan) run_asan ;;
    tsan) run_tsan ;;
    tsan-server) run_tsan_server ;;
    *) echo "usage: $0 [asan|tsan|tsan-server]..." >&2; exit 2 ;;
  esac
  log "$stage stage passed in $((SECONDS - start)) s"
done
