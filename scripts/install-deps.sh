#!/usr/bin/env bash
# Installs the Debian bookworm packages CropShield Serve needs to build, run and test.
# Idempotent: prints nothing and touches nothing when every package is already present.
# Usage: scripts/install-deps.sh [--tests]   (--tests adds what only the test suite needs: a browser)
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev python3-torch python3-torchvision python3-numpy python3-pil
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libopencv-dev libturbojpeg0-dev libpng-dev libwebp-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtcmalloc-minimal4
  prometheus python3-grpcio python3-grpc-tools python3-protobuf python3-xxhash python3-yaml python3-h2
  procps curl openssl clang libclang-rt-14-dev
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev libcli11-dev
)
# Only the tests need these: the web page's browser test; building the Python client wheel offline.
test_packages=(chromium chromium-driver python3-selenium python3-pip python3-setuptools python3-wheel
  python3-venv)
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
