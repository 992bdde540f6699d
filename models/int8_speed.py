#!/usr/bin/env python3
"""Forward speed of INT8 vs fp32 for the full-width CropShield CNN (issue #15 goal: >= 2.5x at batch 1).

  /usr/bin/python3 models/int8_speed.py [--width 1.0] [--threads 1] [--rounds 10] [--per-round 10]

Random weights (speed does not depend on them), quantized as `export.py --quantize int8` does,
calibrated on models/samples; both modules frozen + optimised as the server serves them and timed in
interleaved rounds in one run (int8_demo.forward_speed), so the ratio holds on a noisy machine.
"""

import argparse
import json
import os
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import torch  # noqa: E402

import int8_demo  # noqa: E402
import quantize  # noqa: E402
from cropshield_cnn import CropShieldCNN  # noqa: E402
from export import CropShieldPackage  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = CropShieldCNN(22, a.width).eval()
    calibration = quantize.load_photos(quantize.photo_files(os.path.join(_HERE, "samples")))
    int8 = quantize.quantize(model, calibration)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = os.path.join(tmp, "fp32.pt"), os.path.join(tmp, "int8.pt")
        torch.jit.save(torch.jit.script(CropShieldPackage(model).eval()), fp32_path)
        torch.jit.save(torch.jit.script(int8), int8_path)
        result = int8_demo.forward_speed(fp32_path, int8_path, a.rounds, a.per_round)
    result["width"] = a.width
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
