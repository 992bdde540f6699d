#!/bin/bash
# The GPU host's benchmark run (docs/PERFORMANCE.md): build with ../shared/gpu/gpu-build.sh, check
# the CUDA server (metrics endpoint, exit 0 on SIGTERM), then bench/run_bench.py with the full-width
# CNN against the Python baseline. Run from the repository root of a checkout whose .gpu/ holds
# ../shared/gpu/* and, in .gpu/python, the *_grpc.py stubs of a local build (the host has no
# grpc_tools):   bash bench/gpu/h200.sh OUT_DIR [--checks-only | run_bench.py args...]
# A build already in build-gpu is reused (the device keeps ignored build outputs between calls).
set -uo pipefail
OUT=${1:?output directory}; shift
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
B=${BUILD_DIR:-build-gpu}
( time bash .gpu/gpu-build.sh . $B -DCROPSHIELD_BUILD_TESTS=OFF ) > "$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; exit 1; }
tail -3 "$OUT/build.log"
export LD_LIBRARY_PATH=/opt/dep/lib/x86_64-linux-gnu
# Python stubs for the baseline: messages from the carried protoc, services from the local build.
mkdir -p $B/python
/opt/dep/bin/protoc -I proto --python_out=$B/python proto/cropshield/v1/cropshield.proto \
  proto/cropshield/v1/model_metadata.proto proto/grpc/health/v1/health.proto
cp .gpu/python/cropshield/v1/*_grpc.py $B/python/cropshield/v1/

# CUDA server checks: /metrics with GPU memory, SIGTERM -> exit 0.
S=$B/server/cropshield-server
rm -f /tmp/port
$S --model=models/repository --address=127.0.0.1:0 --port_file=/tmp/port \
  --metrics_address=127.0.0.1:0 --device=cuda --drain_delay_ms=200 > "$OUT/server-check.log" 2>&1 &
SP=$!
for _ in $(seq 1 600); do [ -s /tmp/port ] && break; sleep 0.05; done
$B/client/cropshield predict "models/samples/$(ls models/samples | grep jpg | head -1)" \
  --target=127.0.0.1:"$(cat /tmp/port)"
MP=$(grep -o 'metrics listening on port [0-9]*' "$OUT/server-check.log" | grep -o '[0-9]*$')
env -u LD_LIBRARY_PATH curl -s "127.0.0.1:$MP/metrics" > "$OUT/metrics.txt"
echo "metrics: $(grep -c '^# TYPE cropshield_' "$OUT/metrics.txt") cropshield families;" \
  "$(grep -E '^cropshield_gpu_memory_allocated' "$OUT/metrics.txt")"
kill -TERM $SP; wait $SP; echo "CUDA server exit code after SIGTERM: $?" | tee -a "$OUT/gpu.txt"

[[ "${1:-}" == "--checks-only" ]] && exit 0
python3 bench/run_bench.py --build $B --out "$OUT/bench" --device cuda --models cnn "$@" \
  2> "$OUT/bench.log"
