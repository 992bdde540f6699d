#!/bin/bash
# GPU host: working-tree build (with metrics), /metrics check in the CUDA build, end-to-end bench.
export PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/opt/dep/lib/x86_64-linux-gnu
( time bash .gpu/gpu-build.sh . build-gpu2 -DCROPSHIELD_BUILD_TESTS=OFF ) > $OUT/build2.log 2>&1 || { tail -40 $OUT/build2.log; }
tail -3 $OUT/build2.log
B=build-gpu2
[ -x $B/server/cropshield-server ] || B=build-gpu
echo "using $B"
build-gpu/tests/unit/engine/engine_model_test 2>&1 | grep -B2 -A8 Failure | head -30
python3 models/leafgen.py --help >/dev/null 2>&1; mkdir -p /tmp/w1 /tmp/w2
python3 - <<'PY'
import sys; sys.path.insert(0, "models")
import leafgen
from PIL import Image
for k in range(8):
    Image.fromarray(leafgen.generate((k*5)%22, 777+k, 1600, 1200)[0]).save(f"/tmp/w1/{k}.jpg", quality=90)
    Image.fromarray(leafgen.generate((k*5)%22, 777+k, 256, 256)[0]).save(f"/tmp/w2/{k}.jpg", quality=90)
PY
S=$B/server/cropshield-server; C=$B/client/cropshield; mkdir -p /tmp/r; rm -f /tmp/r/*
[ -f /tmp/pk/cnn/1/model.json ] || python3 models/export.py --arch cropshield_cnn --random-weights --seed 1 /tmp/pk/cnn/1 > /dev/null
start=$(date +%s.%N)
$S --model=/tmp/pk/cnn/1 --address=127.0.0.1:0 --port_file=/tmp/port --metrics_address=127.0.0.1:0 --device=cuda --precision=fp16 --workers=8 --threads=1 > $OUT/server.log 2>&1 &
SP=$!
for i in $(seq 1 600); do [ -s /tmp/port ] && break; sleep 0.05; done
echo "SERVING after $(echo "$(date +%s.%N) - $start" | bc) s"
P=$(cat /tmp/port); MP=$(grep -o 'metrics listening on port [0-9]*' $OUT/server.log | grep -o '[0-9]*$')
T=127.0.0.1:$P
for w in w2 w1; do for c in 1 64; do $C bench --target=$T --images=/tmp/$w --concurrency=$c --duration=6 --warmup=2 --progress=false --json=/tmp/r/cpp_predict_${w}_c$c.json; done; done
$C bench --target=$T --images=/tmp/w2 --rpc=explain --bench_bypass_cache --concurrency=1 --duration=5 --warmup=1 --progress=false --json=/tmp/r/cpp_explain_unc_w2_c1.json
$C bench --target=$T --images=/tmp/w2 --rpc=explain --concurrency=1 --duration=5 --warmup=1 --progress=false --json=/tmp/r/cpp_explain_cached_w2_c1.json
curl -s 127.0.0.1:$MP/metrics > $OUT/metrics.txt; echo "metrics port $MP: $(wc -l < $OUT/metrics.txt) lines"; grep -c '^# TYPE cropshield_' $OUT/metrics.txt; grep -E '^cropshield_(gpu|model_info)' $OUT/metrics.txt | head
grep -E "SERVING|model " $OUT/server.log | head -3
kill -TERM $SP; wait $SP; echo "server exit $?"
PYTHONPATH=.gpu/python:models python3 bench/baseline/server.py --model=/tmp/pk/cnn/1 --device=cuda --workers=16 > $OUT/baseline.log 2>&1 &
BP=$!
for i in $(seq 1 300); do grep -q 'listening on port' $OUT/baseline.log && break; sleep 0.1; done
BT=127.0.0.1:$(grep -o 'port [0-9]*' $OUT/baseline.log | grep -o '[0-9]*')
for w in w2 w1; do for c in 1 64; do $C bench --target=$BT --images=/tmp/$w --concurrency=$c --duration=6 --warmup=2 --progress=false --json=/tmp/r/py_predict_${w}_c$c.json; done; done
$C bench --target=$BT --images=/tmp/w2 --rpc=explain --concurrency=1 --duration=5 --warmup=1 --progress=false --json=/tmp/r/py_explain_w2_c1.json
kill $BP
tail -3 $OUT/baseline.log
for f in /tmp/r/*.json; do echo "$(basename $f) $(cat $f)"; done | tee $OUT/bench.txt
