#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. Run as root on Debian bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}"
# Sanitizers (ASan+UBSan: unit + integration tests; TSan: the concurrency unit tests, then the
# server under its integration tests), then every fuzzer for FUZZ_SECONDS (60) from its seed corpus.
# Skip with CROPSHIELD_SKIP_SANITIZERS=1 (local runs).
if [[ "${CROPSHIELD_SKIP_SANITIZERS:-0}" != 1 ]]; then
  scripts/test-sanitizers.sh asan tsan
  scripts/fuzz.sh
fi
