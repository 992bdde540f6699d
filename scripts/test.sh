#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. Run as root on Debian bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}"
