#!/usr/bin/env bash
# Installs the Debian bookworm packages CropShield Serve needs to build, run and test.
# Idempotent: prints nothing and touches nothing when every package is already present.
# Usage: scripts/install-deps.sh [--tests]   (--tests adds what only the tests and benchmarks need)
set -euo pipefail

# What building the server and the CLI and running the demo need (scripts/demo.sh). OpenCV: core and
# imgproc only (libopencv-dev would add every module's headers: 64 packages, 64 MB). libjpeg62-turbo-dev:
# libjpeg-turbo's CMake config names its static library.
build_packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl python3
  libtorch-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libopencv-core-dev libopencv-imgproc-dev libturbojpeg0-dev libpng-dev libwebp-dev
  libjpeg62-turbo-dev libxxhash-dev libcpp-httplib-dev libssl-dev nlohmann-json3-dev libcli11-dev
)
# What only the tests, sanitizer and fuzz stages and the benchmarks need: GoogleTest and Google
# Benchmark, clang for the sanitizers and fuzzers, Prometheus (promtool), Python's torch, gRPC and
# protobuf for the reference and client tests, a browser for the web page, the Python client wheel's
# build tools, matplotlib for bench/run_bench.py's plots.
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev prometheus procps openssl
  python3-torch python3-torchvision python3-numpy python3-pil python3-grpcio python3-grpc-tools
  python3-protobuf python3-xxhash python3-yaml python3-h2 python3-matplotlib
  chromium chromium-driver python3-selenium python3-pip python3-setuptools python3-wheel python3-venv
)
[[ "${1:-}" == "--tests" ]] && build_packages+=("${test_packages[@]}")

missing=()
for pkg in "${build_packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "install-deps: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
