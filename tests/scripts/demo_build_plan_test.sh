#!/usr/bin/env bash
# scripts/demo.sh's first run (issue #17 item 5): it builds only the server and the CLI, and the
# tree configures with only the build packages of scripts/install-deps.sh (no --tests). A machine
# without GoogleTest and without libopencv-dev is simulated with CMAKE_DISABLE_FIND_PACKAGE_*: the
# tests are left out with a message and OpenCV core+imgproc are found without OpenCV's CMake config.
# Usage: demo_build_plan_test.sh SOURCE_DIR FULL_BUILD_DIR
set -euo pipefail
src=$1
full_build=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

targets=$(sed -n 's/.*BUILD_TARGETS="\([^"]*\)" scripts\/build.sh.*/\1/p' "$src/scripts/demo.sh")
[[ "$targets" == "cropshield-server cropshield" ]] ||
  fail "demo.sh should build only cropshield-server and cropshield, builds '${targets:-everything}'"

cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_OpenCV=ON >"$dir/configure.log" 2>&1 ||
  { cat "$dir/configure.log"; fail "configure without GoogleTest and libopencv-dev failed"; }
grep -q "GoogleTest not found: tests are not built" "$dir/configure.log" ||
  fail "configure did not say that the tests are left out"
[[ ! -e "$dir/tests" ]] || fail "tests were configured without GoogleTest"
grep -q "^CROPSHIELD_OPENCV_IMGPROC:FILEPATH=/" "$dir/CMakeCache.txt" ||
  fail "OpenCV imgproc was not found without OpenCV's CMake config"

# shellcheck disable=SC2086
demo_units=$(ninja -C "$dir" -t commands $targets | grep -c -- ' -c ')
# shellcheck disable=SC2086
test_units=$(ninja -C "$dir" -t commands $targets | grep -c -E -- " -c $src/(tests|bench)/" || true)
all_units=$(ninja -C "$full_build" -t commands all | grep -c -- ' -c ')
echo "demo build: $demo_units translation units of $all_units in a full build (tests included)"
((test_units == 0)) || fail "the demo build compiles $test_units test or benchmark sources"
((demo_units > 0 && demo_units < all_units)) || fail "the demo build plan is empty or complete"
echo "PASS"
