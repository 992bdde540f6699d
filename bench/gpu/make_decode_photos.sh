#!/bin/bash
# Makes the photos bench/gpu/gpu_decode.sh reads (on the CPU machine: the GPU host's Python has no
# leafgen dependencies guaranteed), under .gpu/photos (git-ignored, carried to the device):
# W1/W2 exactly as bench/run_bench.py makes them, and held-out leafgen photos of several sizes.
#   bash bench/gpu/make_decode_photos.sh [/usr/bin/python3]
set -euo pipefail
PY=${1:-/usr/bin/python3}
G=$(pwd)/.gpu/photos
(cd models && $PY -c "import sys; sys.path.insert(0, '../bench'); import run_bench; \
run_bench.make_workloads('$G')")
gen() { $PY models/leafgen.py --out "$G/$1" --per-class 1 --seed "$2" --width "$3" --height "$4" \
  --no-masks ${5:+--classes $5}; }
gen heldout_a 9001 640 480
gen heldout_b 9101 300 400
gen heldout_c 9201 1024 768
gen heldout_d 9301 2000 1500 1,4,7,9,12,16,19,21
gen heldout_e 9401 3000 4000 2,6,11,17
