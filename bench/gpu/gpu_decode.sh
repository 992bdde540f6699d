#!/bin/bash
# GPU JPEG decoding on the H200 host (issue #14 item 1): configure like .gpu/gpu-build.sh, build only
# the nvJPEG component's test and benchmark, run both. Photos: .gpu/photos/{W1,W2} as
# bench/run_bench.py makes them (leafgen, PIL q90) and .gpu/photos/heldout_* (models/leafgen.py of
# several sizes), made on the CPU machine by bench/gpu/make_decode_photos.sh and carried in .gpu.
#   bash bench/gpu/gpu_decode.sh OUT_DIR
set -uo pipefail
OUT=${1:?output directory}
mkdir -p "$OUT"
B=${BUILD_DIR:-build-gpu}
DEP=/opt/dep LIBDIR=/opt/dep/lib/x86_64-linux-gnu
[ -d $DEP/lib ] || tar -xJf .gpu/deps.tar.xz -C /opt
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
export LD_LIBRARY_PATH=$LIBDIR PKG_CONFIG_PATH=$LIBDIR/pkgconfig
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc; date -u; } | tee "$OUT/machine.txt"
# The device keeps build outputs between calls: regenerate the protobuf code whatever the clocks say.
touch proto/cropshield/v1/*.proto
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$DEP;$TORCH_PREFIX" \
  -DCMAKE_BUILD_RPATH="$LIBDIR" -DCMAKE_EXE_LINKER_FLAGS="-Wl,--disable-new-dtags" \
  -DCMAKE_SHARED_LINKER_FLAGS="-Wl,--disable-new-dtags" -DCMAKE_CUDA_ARCHITECTURES=90 \
  > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
grep "GPU JPEG" "$OUT/build.log"
cmake --build $B -j "$(nproc)" --target engine_gpu_image_test cropshield-gpu-decode-bench \
  >> "$OUT/build.log" 2>&1 || { grep -B2 -A12 "error" "$OUT/build.log" | head -120; exit 1; }
[ "${2:-}" = "--build-only" ] && exit 0
CROPSHIELD_GPU_TEST_PHOTOS=.gpu/photos $B/tests/unit/engine/engine_gpu_image_test 2>&1 \
  | tee "$OUT/test.log"
$B/bench/cropshield-gpu-decode-bench --photos .gpu/photos/W1,.gpu/photos/W2,.gpu/photos/heldout_e \
  --model models/repository --batch 64 --iterations 30 --cpu_threads "$(nproc)" --precision fp16 \
  2>&1 | tee "$OUT/bench.log"
