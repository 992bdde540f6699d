#!/usr/bin/env python3
"""The demo model in INT8 (issue #15 items 1, 2, 5): export, accuracy, Grad-CAM agreement, speed.

  /usr/bin/python3 models/int8_demo.py [--out models/repository-int8] [--no-export] [--json FILE]

1. Generates calibration photos (leafgen seeds from 70,000,000: disjoint from training, 10,000,000+,
   and the held-out set, 50,000,000+) and the demo model card's held-out set (train_demo's
   heldout_items, seed 1: 660 photos) as PNG files in a temporary directory.
2. Exports the fp32 demo package (models/repository/cropshield-demo/1) with
   `export.py --quantize int8` into OUT/cropshield-demo-int8/1 (unless --no-export).
3. Measures on the held-out set: top-1 accuracy of fp32 and INT8 (labels from the generator), and on
   square 256x256 diseased leaves (lesion masks known) the Grad-CAM maps of both: Spearman rank
   correlation per image and the pointing game (peak within 15 px of a lesion, as
   tests/integration/python/test_explain_quality.py).
4. Times forward at batch 1 (median of many, fp32 frozen+optimised vs INT8 frozen+optimised, as the
   server builds them), interleaved in one run so that the ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import leafgen  # noqa: E402
import train_demo  # noqa: E402

FP32_PACKAGE = os.path.join(_HERE, "repository", "cropshield-demo", "1")
DEFAULT_OUT = os.path.join(_HERE, "repository-int8")
CALIBRATION_SEED_BASE = 70_000_000
CAM_SEED_BASE = 80_000_000
POINTING_TOLERANCE_PX = 15


def write_calibration(directory: str, per_class: int) -> None:
    rng = np.random.default_rng([CALIBRATION_SEED_BASE, 1])
    for c in range(leafgen.NUM_CLASSES):
        for k in range(per_class):
            w, h = train_demo.photo_size(rng)
            rgb, _ = leafgen.generate(c, CALIBRATION_SEED_BASE + 1000 * c + k, w, h)
            Image.fromarray(rgb).save(os.path.join(directory, f"c{c:02d}_{k:03d}.png"))


def write_heldout(directory: str, per_class: int) -> list:
    """The model card's held-out set as PNG files; returns the labels in file-name order."""
    labels = []
    for i, (c, seed, w, h) in enumerate(train_demo.heldout_items(1, per_class)):
        rgb, _ = leafgen.generate(c, seed, w, h)
        Image.fromarray(rgb).save(os.path.join(directory, f"{i:04d}.png"))
        labels.append(c)
    return labels


def export_int8(calibration: str, heldout: str, out: str) -> None:
    command = [sys.executable, os.path.join(_HERE, "export.py"), FP32_PACKAGE, out, "--repository",
               "--name", "cropshield-demo-int8", "--version", "1", "--force", "--quantize", "int8",
               "--calibration", calibration, "--heldout", heldout, "--description",
               "CropShield CNN width 0.125 demo model (models/repository/cropshield-demo/1) quantized to "
               "INT8 by models/int8_demo.py; demo only, not for agronomic use"]
    subprocess.run(command, check=True)


def accuracy(model, images: torch.Tensor, labels: list) -> float:
    import quantize

    probs = quantize.probabilities(model, images)
    return float((probs.argmax(1) == torch.tensor(labels)).float().mean())


def grad_cam(model, x: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM at 14x14 through the package's features/head split, as the server computes it."""
    with torch.no_grad():
        activation = model.features(x)
    activation = activation.detach().requires_grad_(True)
    score = model.head(activation)[0, target]
    (gradient,) = torch.autograd.grad(score, activation)
    cam = torch.relu((gradient.mean((2, 3), keepdim=True) * activation).sum(1))[0].detach()
    return ((cam - cam.min()) / torch.clamp_min(cam.max() - cam.min(), 1e-12)).numpy()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(np.ravel(a), np.ravel(b)).correlation)


def pointing_hit(cam: np.ndarray, mask_crop: np.ndarray) -> bool:
    """Peak of the map (bilinear to the 224 crop) within POINTING_TOLERANCE_PX of a lesion pixel."""
    up = F.interpolate(torch.from_numpy(cam)[None, None], size=mask_crop.shape, mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    y, x = np.unravel_index(np.argmax(up), up.shape)
    ys, xs = np.nonzero(mask_crop)
    return bool(len(ys)) and float(np.sqrt((ys - y) ** 2 + (xs - x) ** 2).min()) <= POINTING_TOLERANCE_PX


def cam_agreement(fp32, int8, per_class: int) -> dict:
    """Square 256x256 diseased leaves (the resize is then the identity, so the mask crops exactly)."""
    tf = train_demo.validation_transform()
    correlations, hits_fp32, hits_int8 = [], [], []
    for c in range(leafgen.NUM_CLASSES):
        if leafgen.is_healthy(c):
            continue
        for k in range(per_class):
            rgb, mask = leafgen.generate(c, CAM_SEED_BASE + 1000 * c + k, 256, 256)
            x = tf(Image.fromarray(rgb)).unsqueeze(0)
            maps = [grad_cam(model, x, c) for model in (fp32, int8)]
            correlations.append(spearman(*maps))
            crop = mask[16:240, 16:240] > 0
            hits_fp32.append(pointing_hit(maps[0], crop))
            hits_int8.append(pointing_hit(maps[1], crop))
    return {
        "images": len(correlations),
        "mean_spearman": float(np.mean(correlations)),
        "min_spearman": float(np.min(correlations)),
        "pointing_fp32": float(np.mean(hits_fp32)),
        "pointing_int8": float(np.mean(hits_int8)),
    }


def serving_module(path: str):
    """Frozen + optimize_for_inference, as the server builds its serving module."""
    module = torch.jit.load(path).eval()
    frozen = torch.jit.freeze(module, preserved_attrs=["features"])
    return torch.jit.optimize_for_inference(frozen, ["features"])


def forward_speed(fp32_path: str, int8_path: str, rounds: int, per_round: int) -> dict:
    """Median batch-1 forward of each, in interleaved rounds (one run, same machine state)."""
    modules = {"fp32": serving_module(fp32_path), "int8": serving_module(int8_path)}
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    times = {name: [] for name in modules}
    with torch.no_grad():
        for m in modules.values():
            for _ in range(5):
                m(x)
        for _ in range(rounds):
            for name, m in modules.items():
                for _ in range(per_round):
                    start = time.perf_counter()
                    m(x)
                    times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    return {"forwards_each": rounds * per_round, "threads": torch.get_num_threads(),
            "fp32_median_ms": median["fp32"], "int8_median_ms": median["int8"],
            "speedup_fp32_over_int8": median["fp32"] / median["int8"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="repository to write cropshield-demo-int8/1 into")
    p.add_argument("--no-export", action="store_true", help="measure the package already in --out")
    p.add_argument("--calibration-per-class", type=int, default=4)
    p.add_argument("--heldout-per-class", type=int, default=30)
    p.add_argument("--cam-per-class", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the measurements")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = "onednn"
    int8_path = os.path.join(a.out, "cropshield-demo-int8", "1", "model.pt")
    with tempfile.TemporaryDirectory() as tmp:
        calibration, heldout = os.path.join(tmp, "calibration"), os.path.join(tmp, "heldout")
        os.makedirs(calibration)
        os.makedirs(heldout)
        write_calibration(calibration, a.calibration_per_class)
        labels = write_heldout(heldout, a.heldout_per_class)
        if not a.no_export:
            export_int8(calibration, heldout, a.out)
        import quantize

        images = quantize.load_photos(quantize.photo_files(heldout))
    fp32 = torch.jit.load(os.path.join(FP32_PACKAGE, "model.pt")).eval()
    int8 = torch.jit.load(int8_path).eval()
    results = {
        "heldout_images": len(labels),
        "accuracy_fp32": accuracy(fp32, images, labels),
        "accuracy_int8": accuracy(int8, images, labels),
        "grad_cam": cam_agreement(fp32, int8, a.cam_per_class),
        "speed": forward_speed(os.path.join(FP32_PACKAGE, "model.pt"), int8_path, rounds=10, per_round=20),
        "machine": train_demo.machine_description(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(results, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
