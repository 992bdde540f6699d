#!/bin/bash
export PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/opt/dep/lib/x86_64-linux-gnu
B=build-gpu2; S=$B/server/cropshield-server; C=$B/client/cropshield; mkdir -p /tmp/r; rm -f /tmp/r/*
mkdir -p /tmp/py && /opt/dep/bin/protoc -I proto --python_out=/tmp/py proto/cropshield/v1/cropshield.proto proto/cropshield/v1/model_metadata.proto && cp .gpu/python/cropshield/v1/*_grpc.py /tmp/py/cropshield/v1/ || ls /opt/dep/bin
rm -f /tmp/port
$S --model=/tmp/pk/cnn/1 --address=127.0.0.1:0 --port_file=/tmp/port --metrics_address=127.0.0.1:0 --device=cuda --precision=fp16 --workers=8 --threads=1 > $OUT/server.log 2>&1 &
SP=$!
for i in $(seq 1 600); do [ -s /tmp/port ] && break; sleep 0.05; done
P=$(cat /tmp/port); MP=$(grep -o 'metrics listening on port [0-9]*' $OUT/server.log | grep -o '[0-9]*$')
$C bench --target=127.0.0.1:$P --images=/tmp/w2 --rpc=explain --concurrency=4 --duration=2 --warmup=1 --progress=false
$C predict /tmp/w2/0.jpg --target=127.0.0.1:$P >/dev/null
env -u LD_LIBRARY_PATH curl -s 127.0.0.1:$MP/metrics > $OUT/metrics.txt; echo "metrics: $(wc -l < $OUT/metrics.txt) lines, $(grep -c '^# TYPE cropshield_' $OUT/metrics.txt) cropshield families"
grep -E '^cropshield_(gpu|model_info|process_resident)' $OUT/metrics.txt | head -6
kill -TERM $SP; wait $SP; echo "server exit $?"
which gdb && gdb -batch -ex run -ex bt --args $S --model=/tmp/pk/cnn/1 --address=127.0.0.1:0 --metrics_address= --device=cuda > $OUT/gdb.txt 2>&1 &
sleep 6; pkill -TERM -f "cropshield-server --model" ; sleep 4; tail -25 $OUT/gdb.txt
PYTHONPATH=/tmp/py:models python3 bench/baseline/server.py --model=/tmp/pk/cnn/1 --device=cuda --workers=16 > $OUT/baseline.log 2>&1 &
BP=$!
for i in $(seq 1 300); do grep -q 'listening on port' $OUT/baseline.log && break; sleep 0.1; done
BT=127.0.0.1:$(grep -o 'port [0-9]*' $OUT/baseline.log | grep -o '[0-9]*')
for w in w2 w1; do for c in 1 64; do $C bench --target=$BT --images=/tmp/$w --concurrency=$c --duration=5 --warmup=2 --progress=false --json=/tmp/r/py_predict_${w}_c$c.json; done; done
$C bench --target=$BT --images=/tmp/w2 --rpc=explain --concurrency=1 --duration=5 --warmup=1 --progress=false --json=/tmp/r/py_explain_w2_c1.json
kill $BP
for f in /tmp/r/*.json; do echo "$(basename $f) $(cat $f)"; done > $OUT/bench_py.txt
