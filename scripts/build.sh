#!/usr/bin/env bash
# Configures and builds CropShield Serve into ./build (override with BUILD_DIR).
# Extra arguments go to CMake, e.g. scripts/build.sh -DCROPSHIELD_SANITIZE=address
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
