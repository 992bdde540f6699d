#!/bin/bash
# GPU host: build, engine tests, model floor in fp32/fp16, quick server bench.
set -x
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
nproc
( time bash .gpu/gpu-build.sh .gpu/src build-gpu -DCROPSHIELD_BUILD_TESTS=ON ) > $OUT/build.log 2>&1
tail -30 $OUT/build.log
export LD_LIBRARY_PATH=/opt/dep/lib/x86_64-linux-gnu
ls build-gpu/server build-gpu/client build-gpu/bench
(cd build-gpu && ctest -R "engine|common|AdminAuth|cache" --output-on-failure 2>&1 | tail -15)
python3 .gpu/src/models/export.py --arch cropshield_cnn --random-weights --seed 1 /tmp/pk/cnn/1 | tail -3
for p in fp32 fp16 bf16; do
  ./build-gpu/bench/cropshield-model-floor --model /tmp/pk/cnn/1 --device cuda --precision $p --batch_sizes 1,8,32,64,128,256 --explain --iterations 20 2>&1 | tail -2 | tee $OUT/floor_$p.json
done
