#!/bin/bash
# The HTTP ports of a CUDA build on the GPU host (issue #16): the HTTP transport's unit tests and
# the metrics endpoint test, then a CUDA server's /metrics (with GPU memory families), REST
# Predict/Explain/infer calls, and REST against gRPC latency (bench/rest_vs_grpc.cc) on a W2 photo.
# From the repository root with ../shared/gpu/* in .gpu/:   bash bench/gpu/http_check.sh OUT_DIR
set -uo pipefail
OUT=${1:?output directory}
mkdir -p "$OUT"
DEP=${DEP_PREFIX:-/opt/dep}
LIBDIR=$DEP/lib/x86_64-linux-gnu
if [ ! -d "$DEP/lib" ]; then
  mkdir -p "$(dirname "$DEP")" && tar -xJf .gpu/deps.tar.xz -C "$(dirname "$DEP")"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
B=build-gpu-http
(
  export LD_LIBRARY_PATH=$LIBDIR PKG_CONFIG_PATH=$LIBDIR/pkgconfig
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$DEP;$TORCH_PREFIX" \
    -DCMAKE_BUILD_RPATH="$LIBDIR" -DCMAKE_EXE_LINKER_FLAGS="-Wl,--disable-new-dtags" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCROPSHIELD_REQUIRE_ALL_TESTS=OFF &&
    cmake --build $B -j "$(nproc)" --target cropshield-server http_server_test \
      metrics_endpoint_test cropshield-rest-vs-grpc
) > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; echo "FAIL: build"; exit 1; }
export LD_LIBRARY_PATH=$LIBDIR
for t in http/http_server_test metrics/metrics_endpoint_test; do
  $B/tests/unit/$t > "$OUT/$(basename $t).txt" 2>&1; echo "$t exit $?: $(tail -1 "$OUT/$(basename $t).txt")"
done
python3 -c "
from PIL import Image
Image.open('models/samples/tomato_early_blight_600x800.jpg').convert('RGB').resize((256, 256)).save('$OUT/w2.jpg', quality=90)"
$B/server/cropshield-server --model=models/repository --address=127.0.0.1:0 --device=cuda \
  --precision=fp16 --metrics_address=127.0.0.1:0 --http_address=127.0.0.1:0 \
  --drain_delay_ms=200 > "$OUT/server.log" 2>&1 &
SP=$!
for _ in $(seq 1 1200); do grep -q " I SERVING" "$OUT/server.log" && break; sleep 0.05; done
port() { sed -n "s/.*$1 listening on port \([0-9]*\).*/\1/p" "$OUT/server.log" | head -1; }
GP=$(sed -n 's/.* I listening on port \([0-9]*\).*/\1/p' "$OUT/server.log"); MP=$(port metrics); HP=$(port http)
grep -E "SERVING|listening" "$OUT/server.log"
C="env -u LD_LIBRARY_PATH curl -s"
$C "127.0.0.1:$MP/metrics" > "$OUT/metrics.txt"
echo "metrics: $(grep -c '^# TYPE cropshield_' "$OUT/metrics.txt") cropshield families; $(grep -E '^cropshield_gpu_memory_allocated' "$OUT/metrics.txt" | head -1)"
S=models/samples/tomato_early_blight_600x800.jpg
echo "ready: $($C -o /dev/null -w '%{http_code}' 127.0.0.1:$HP/v2/health/ready)"
echo "predict: $($C -X POST --data-binary @$S -H 'Content-Type: image/jpeg' "127.0.0.1:$HP/v1/predict?top_k=2")"
echo "explain: $($C -X POST --data-binary @$S -H 'Content-Type: image/jpeg' -H 'Accept: image/png' -o "$OUT/overlay.png" -w '%{http_code} %{content_type} %{size_download} bytes' "127.0.0.1:$HP/v1/explain")"
python3 -c "
import base64, json
print(json.dumps({'inputs': [{'name': 'image', 'shape': [1], 'datatype': 'BYTES', 'data': [base64.b64encode(open('$S', 'rb').read()).decode()]}], 'parameters': {'top_k': 1}}))" > "$OUT/infer.json"
echo "infer: $($C -X POST -H 'Content-Type: application/json' --data-binary @"$OUT/infer.json" 127.0.0.1:$HP/v2/models/cropshield-demo/infer | head -c 300)"
for run in 1 2 3; do
  $B/bench/cropshield-rest-vs-grpc --grpc=127.0.0.1:$GP --http=127.0.0.1:$HP --image="$OUT/w2.jpg" \
    --calls=3000 --block=100 --warmup=300 | tee -a "$OUT/rest_vs_grpc.jsonl"
done
kill -TERM $SP; wait $SP; echo "CUDA server exit code after SIGTERM: $?"
