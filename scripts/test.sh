#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (what CI runs: .ci/run). Run as root on
# Debian bookworm. Stages:
#   normal  every CTest test of the build. Configured with -DCROPSHIELD_REQUIRE_ALL_TESTS=ON: a
#           missing tool that gates tests (promtool, prometheus, Python's grpc_tools, torch, ...)
#           fails the configure, naming it, instead of leaving its tests out.
#   asan, tsan-unit, tsan-server  scripts/test-sanitizers.sh (ASan+UBSan: unit + integration tests;
#           TSan: the concurrency unit tests, then the server under its integration tests)
#   fuzz    scripts/fuzz.sh: every fuzzer for FUZZ_SECONDS (60) from its seed corpus
# Every stage logs how many tests it selected (ctest -N) and how they ended; a test that did not
# run fails its stage unless it is labelled gpu (those skip on hosts without CUDA). The log ends
# with a summary of every stage. CROPSHIELD_SKIP_SANITIZERS=1 (local runs; .ci/run refuses it) runs
# the normal stage only, and the summary says that this was not a full run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ctest-stage.sh
BUILD_DIR=${BUILD_DIR:-build}

CROPSHIELD_STAGE_SUMMARY=$(mktemp)
export CROPSHIELD_STAGE_SUMMARY
run_start=$SECONDS
print_summary() {
  local rc=$?
  echo
  echo "==== scripts/test.sh summary ($((SECONDS - run_start)) s)"
  sed 's/^/  /' "$CROPSHIELD_STAGE_SUMMARY"
  if ((rc == 0)) && [[ "${CROPSHIELD_SKIP_SANITIZERS:-0}" == 1 ]]; then
    echo "==== PASSED, PARTIAL RUN: the sanitizer and fuzz stages did not run"
  elif ((rc == 0)); then
    echo "==== PASSED: every stage ran"
  else
    echo "==== FAILED (exit $rc; the last stage listed, or the step after it, failed)"
  fi
  rm -f "$CROPSHIELD_STAGE_SUMMARY"
}
trap print_summary EXIT

scripts/install-deps.sh --tests
stage_log "build: $BUILD_DIR (-DCROPSHIELD_REQUIRE_ALL_TESTS=ON)"
start=$SECONDS
scripts/build.sh -DCROPSHIELD_REQUIRE_ALL_TESTS=ON
stage_summary "build: $BUILD_DIR ($((SECONDS - start)) s)"

ctest_stage normal "$BUILD_DIR" --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}"

if [[ "${CROPSHIELD_SKIP_SANITIZERS:-0}" == 1 ]]; then
  stage_log "asan, tsan, fuzz: NOT RUN (CROPSHIELD_SKIP_SANITIZERS=1)"
  stage_summary "asan, tsan-unit, tsan-server, fuzz: NOT RUN (CROPSHIELD_SKIP_SANITIZERS=1: not a full run)"
else
  scripts/test-sanitizers.sh asan tsan
  scripts/fuzz.sh
fi
