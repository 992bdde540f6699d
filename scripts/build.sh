#!/usr/bin/env bash
# Configures and builds CropShield Serve into ./build (override with BUILD_DIR).
# Extra arguments go to CMake, e.g. scripts/build.sh -DCROPSHIELD_SANITIZE=address
# BUILD_TARGETS="a b" builds only those targets (default: everything, tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
targets=()
for target in ${BUILD_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
