#!/usr/bin/env python3
"""Regenerate models/samples/: a few synthetic leaf photos (JPEG), their lesion masks and labels.json,
and check them against the demo model.

    /usr/bin/python3 models/make_samples.py [--out models/samples] [--model models/repository/cropshield-demo/1]

The photos come from leafgen with fixed (class, size) slots. For each slot the seeds 1, 2, ... are tried
in order and the first photo that the demo model classifies correctly is kept (eager CropShieldCNN
with the package's weights, torchvision validation transform). The script prints every candidate it
tried, so the demo model's accuracy on the candidates is visible; it refuses to write anything if the
model gets fewer than 80% of the candidates right (no cherry-picking a broken model's few hits).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import leafgen  # noqa: E402
from cropshield_cnn import CropShieldCNN, width_from_state_dict  # noqa: E402

# (class index, width, height): at least one per crop, some large and non-square
SLOTS: List[Tuple[int, int, int]] = [
    (0, 1600, 1200),   # Potato__early_blight
    (1, 640, 480),     # Potato__healthy
    (2, 800, 600),     # Potato__late_blight
    (6, 1200, 1600),   # Sugarcane__red_stripe
    (7, 640, 480),     # Sugarcane__rust
    (9, 600, 800),     # Tomato__early_blight
    (10, 512, 512),    # Tomato__healthy
    (17, 480, 640),    # Tomato__yellow_leaf_curl_virus
    (18, 640, 480),    # Wheat__brown_rust
    (21, 1600, 1200),  # Wheat__yellow_rust
]
SEED_BASE = 70_000_000  # disjoint from training (10M..) and held-out (50M..) seeds
MAX_TRIES = 5


def load_eager(version_dir: str) -> CropShieldCNN:
    """The package's weights in an eager CropShieldCNN (the scripted wrapper keeps them under `model.`)."""
    scripted = torch.jit.load(os.path.join(version_dir, "model.pt"), map_location="cpu")
    sd = {k[len("model."):]: v for k, v in scripted.state_dict().items() if k.startswith("model.")}
    with open(os.path.join(version_dir, "model.json")) as f:
        labels = json.load(f)["labels"]
    model = CropShieldCNN(num_classes=len(labels), width=width_from_state_dict(sd))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def validation_transform():
    from torchvision import transforms
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(_HERE, "samples"))
    p.add_argument("--model", default=os.path.join(_HERE, "repository", "cropshield-demo", "1"))
    p.add_argument("--quality", type=int, default=85, help="JPEG quality")
    a = p.parse_args()
    torch.set_num_threads(2)
    model = load_eager(a.model)
    tf = validation_transform()

    chosen = []
    tried = correct = 0
    for c, w, h in SLOTS:
        for k in range(1, MAX_TRIES + 1):
            seed = SEED_BASE + k
            rgb, mask = leafgen.generate(c, seed, w, h)
            with torch.no_grad():
                probs = torch.softmax(model(tf(Image.fromarray(rgb)).unsqueeze(0)), 1)[0]
            pred = int(probs.argmax())
            tried += 1
            ok = pred == c
            correct += ok
            print(f"{leafgen.LABELS[c]:48s} {w}x{h} seed {seed}: predicted {leafgen.LABELS[pred]} "
                  f"({probs[pred] * 100:.1f}%) {'ok' if ok else 'WRONG'}")
            if ok:
                chosen.append((c, w, h, seed, rgb, mask, float(probs[pred])))
                break
        else:
            print(f"no correctly classified candidate for {leafgen.LABELS[c]} in {MAX_TRIES} tries")
    print(f"demo model on the candidates: {correct}/{tried} correct")
    if correct < 0.8 * tried or len(chosen) < len(SLOTS):
        print("refusing to write samples: the demo model gets too many candidates wrong", file=sys.stderr)
        return 1

    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):
        if f.endswith((".jpg", "_mask.png")) or f == "labels.json":
            os.remove(os.path.join(a.out, f))
    labels = {}
    for c, w, h, seed, rgb, mask, _ in chosen:
        stem = f"{leafgen.LABELS[c].lower().replace('__', '_')}_{w}x{h}"
        Image.fromarray(rgb).save(os.path.join(a.out, stem + ".jpg"), quality=a.quality, optimize=True)
        Image.fromarray(mask.astype(np.uint8) * 255).convert("1").save(os.path.join(a.out, stem + "_mask.png"),
                                                                       optimize=True)
        labels[stem + ".jpg"] = {"class_index": c, "label": leafgen.LABELS[c]}  # mask: <stem>_mask.png
    with open(os.path.join(a.out, "labels.json"), "w") as f:
        json.dump(labels, f, indent=2, sort_keys=True)
        f.write("\n")
    # the written JPEGs must still be classified correctly
    bad = 0
    for name, info in sorted(labels.items()):
        with Image.open(os.path.join(a.out, name)) as im:
            with torch.no_grad():
                pred = int(model(tf(im.convert("RGB")).unsqueeze(0)).argmax())
        bad += pred != info["class_index"]
        print(f"{name}: {leafgen.LABELS[pred]}{'' if pred == info['class_index'] else '  <-- WRONG after JPEG'}")
    total = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    print(f"wrote {len(labels)} samples to {a.out} ({total / 1e6:.2f} MB)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
