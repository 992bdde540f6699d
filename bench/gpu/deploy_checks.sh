#!/bin/bash
# Issue #8 on a CUDA host (the H200 of docs/DEPLOY.md): the deploy and client tests that the Debian
# CI runs on CPU, here with the CUDA build (the servers' default device, auto, picks the GPU):
#   reload      integration_reload_test: hot reload under load (CUDA graphs re-captured per version),
#               watch + broken version, reload while idle hands memory back;
#   client      integration_client_test: retries, deadlines, TLS, dns:/// round_robin, connection age;
#   server      integration_server_test;
#   image       the CUDA image's build step (deploy/docker/steps/build.sh into a fresh build dir, pip
#               libtorch and the /opt/dep prefix in place of the image's) + tests/deploy/docker_steps_test.sh;
#   package     tests/integration/client_package_test.sh (installed C++ package + consumer);
#   python      tests/integration/python/test_example_client.py (messages from the carried protoc,
#               services from .gpu/python: the host has no grpc_tools).
# Run from the repository root of a checkout whose .gpu/ holds ../shared/gpu/* and .gpu/python (see
# bench/gpu/h200.sh):   bash bench/gpu/deploy_checks.sh OUT_DIR
# Prints one line per check; logs go to OUT_DIR/logs.tgz. Exit status: the number of failed checks.
set -uo pipefail
OUT=${1:?output directory}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SECONDS=0
src=$PWD
B=${BUILD_DIR:-build-gpu}
B=$(mkdir -p "$B" && cd "$B" && pwd)
DEP=/opt/dep/lib/x86_64-linux-gnu
logs=$(mktemp -d /tmp/deploy_checks.XXXXXX)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/gpu.txt"

bash .gpu/gpu-build.sh . "$B" -DCROPSHIELD_BUILD_TESTS=OFF > "$logs/build.log" 2>&1 \
  || { tail -40 "$logs/build.log"; exit 99; }
( export LD_LIBRARY_PATH=$DEP
  cmake -S . -B "$B" -DCROPSHIELD_BUILD_TESTS=ON -DCROPSHIELD_PYTHON="$(which python3)" &&
  ninja -C "$B" integration_reload_test integration_client_test integration_server_test ) \
  > "$logs/build-tests.log" 2>&1 || { tail -40 "$logs/build-tests.log"; exit 99; }
echo "built in ${SECONDS}s"

# The image's build step on its own build dir, in the background while the first tests run.
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
( export CMAKE_PREFIX_PATH="/opt/dep;$torch_prefix" LD_LIBRARY_PATH=$DEP JOBS=8
  bash deploy/docker/steps/build.sh --deps none --build-dir /tmp/deploy_checks_image \
    --destdir /tmp/deploy_checks_stage -- -DCMAKE_CUDA_ARCHITECTURES=90 -DCROPSHIELD_BUILD_TESTS=OFF \
    -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags
) > "$logs/image-build.log" 2>&1 &
image_build=$!

failed=0
check() {  # check NAME TIMEOUT_S COMMAND...: runs without LD_LIBRARY_PATH (the binaries carry RPATH;
           # the prefix's libcurl would break the host's curl that the tests use)
  local name=$1 limit=$2 rc; shift 2
  env -u LD_LIBRARY_PATH timeout "$limit" "$@" > "$logs/$name.log" 2>&1; rc=$?
  ((rc == 0)) || failed=$((failed + 1))
  echo "$name: $( ((rc == 0)) && echo pass || echo "FAIL (exit $rc)") after ${SECONDS}s;" \
    "$(grep -E '^\[  (PASSED|FAILED) |^Ran |^OK|^FAILED|^PASS|^FAIL' "$logs/$name.log" | tr '\n' ' ' | cut -c1-300)"
}
check reload 300 "$B/tests/integration/integration_reload_test"
check client 300 "$B/tests/integration/integration_client_test"
check server 300 "$B/tests/integration/integration_server_test"
wait $image_build && echo "image build step: $(grep '^build.sh: installed' "$logs/image-build.log" | cut -c1-200)" \
  || { echo "image build step: FAIL"; tail -20 "$logs/image-build.log"; failed=$((failed + 1)); }
check image 300 bash tests/deploy/docker_steps_test.sh /tmp/deploy_checks_image python3
# The consumer links the prefix's gRPC, whose own needs resolve only through LD_LIBRARY_PATH here.
check package 300 env LD_LIBRARY_PATH=$DEP CMAKE_PREFIX_PATH=/opt/dep \
  bash tests/integration/client_package_test.sh "$B" "$src" "$B/server/cropshield-server" cmake Ninja ""
stubs=$logs/python-stubs
mkdir -p "$stubs"
LD_LIBRARY_PATH=$DEP /opt/dep/bin/protoc -I proto --python_out="$stubs" proto/cropshield/v1/cropshield.proto \
  proto/cropshield/v1/model_metadata.proto
LD_LIBRARY_PATH=$DEP /opt/dep/bin/protoc --proto_path=grpc_health=proto/grpc/health --python_out="$stubs" \
  grpc_health/v1/health.proto
cp .gpu/python/cropshield/v1/*_grpc.py "$stubs/cropshield/v1/"
cp .gpu/python/grpc_health/v1/*_grpc.py "$stubs/grpc_health/v1/"
check python 300 env CROPSHIELD_SERVER="$B/server/cropshield-server" CROPSHIELD_SOURCE_DIR="$src" \
  PYTHONPATH="$stubs:$src/tests/integration/python:$src/models" \
  python3 tests/integration/python/test_example_client.py
tar -czf "$OUT/logs.tgz" -C "$logs" --exclude=python-stubs .
echo "$failed failed; ${SECONDS}s"
exit "$failed"
