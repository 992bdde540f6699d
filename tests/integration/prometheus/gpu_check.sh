#!/bin/bash
# CUDA-build check of the metrics endpoint, for a GPU host without a package archive (see
# shared/gpu/README.md). From the repository root:
#   tests/integration/prometheus/gpu_check.sh DEPS_TAR_XZ PROMETHEUS_BINARY [OUT_DIR]
# DEPS_TAR_XZ is shared/gpu/deps.tar.xz (unpacked to /opt/dep unless $DEP_PREFIX says otherwise);
# PROMETHEUS_BINARY is any Prometheus 2.x server binary (Debian's /usr/bin/prometheus runs there).
# Builds cropshield-server, cropshield and metrics_test against the pip CUDA libtorch, runs the
# metrics unit tests, then the Prometheus integration test with the server on the GPU (the test
# then also requires the cropshield_gpu_memory_* families and the dashboard's GPU panel).
set -uo pipefail
DEPS=$1 PROMETHEUS=$2 OUT=${3:-${OUT:-/tmp/cropshield_gpu_check}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
DEP=${DEP_PREFIX:-/opt/dep}
LIBDIR=$DEP/lib/x86_64-linux-gnu
if [ ! -d "$DEP/lib" ]; then
  mkdir -p "$(dirname "$DEP")" && tar -xJf "$DEPS" -C "$(dirname "$DEP")"
  [ "$(basename "$DEP")" = dep ] || mv "$(dirname "$DEP")/dep" "$DEP"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
(
  export LD_LIBRARY_PATH=$LIBDIR PKG_CONFIG_PATH=$LIBDIR/pkgconfig
  cmake -S . -B build-gpu-metrics -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$DEP;$TORCH_PREFIX" -DCMAKE_BUILD_RPATH="$LIBDIR" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,--disable-new-dtags" -DCMAKE_CUDA_ARCHITECTURES=90 &&
    cmake --build build-gpu-metrics -j "$(nproc)" --target cropshield-server cropshield metrics_test
) > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; echo "FAIL: build"; exit 1; }
B=build-gpu-metrics
echo "CUDA allocator stats compiled in: $(nm -C $B/server/cropshield-server |
  grep -c 'CUDACachingAllocator::getDeviceStats') reference(s)"
ldd $B/server/cropshield-server | grep -E "c10_cuda|torch_cuda" || echo "(no CUDA libtorch linked?)"
$B/tests/unit/metrics/metrics_test > "$OUT/unit.txt" 2>&1
unit=$?
tail -3 "$OUT/unit.txt"
python3 tests/integration/prometheus/test_prometheus.py --server $B/server/cropshield-server \
  --cli $B/client/cropshield --source-dir . --prometheus "$PROMETHEUS" \
  --dump-metrics "$OUT/metrics.txt" > "$OUT/integration.txt" 2>&1
integration=$?
tail -15 "$OUT/integration.txt"
grep -E "^cropshield_(gpu_memory|model_info)" "$OUT/metrics.txt"
echo "metrics_test exit $unit, integration test exit $integration (logs in $OUT)"
[ $unit -eq 0 ] && [ $integration -eq 0 ]
