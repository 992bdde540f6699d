#!/usr/bin/env python3
"""Train the demo model: a reduced-width CropShield CNN on synthetic leaves from leafgen.py.

Deterministic (fixed seeds, deterministic algorithms, 2 threads, data fully determined by the seed), at
the model's real input geometry: photos are generated with a short side of 224..288 px and a varied
aspect ratio, then go through the inference preprocessing (resize the shorter side to 256, crop 224,
ImageNet mean/std) with light augmentation (crop jitter, flips, JPEG re-encoding). Fresh images every
epoch. A DataLoader worker generates images while the main process trains.

At the end the model is evaluated on a held-out set generated with other seeds (validation transform:
resize 256 + center crop 224), exported with export.py's code to
models/repository/cropshield-demo/1/ (model.pt + model.json) and described in
models/repository/cropshield-demo/MODEL_CARD.md.

    /usr/bin/python3 models/train_demo.py            # the committed demo model (about 12 min on 2 cores)
    /usr/bin/python3 models/train_demo.py --train-per-class 40 --epochs 2 --no-export   # quick check
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import time
from typing import List, Optional, Sequence, Tuple

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    # torch.jit.save writes module constants in an order that depends on Python's string hashing; a
    # fixed hash seed makes model.pt (and so its weights_xxh3_128) byte-for-byte reproducible.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402
from torchvision.transforms import functional as TF  # noqa: E402

import export  # noqa: E402
import leafgen  # noqa: E402
from cropshield_cnn import CropShieldCNN, count_parameters  # noqa: E402

MEAN = export.IMAGENET_MEAN
STD = export.IMAGENET_STD
DEFAULT_OUT = os.path.join(_HERE, "repository", "cropshield-demo")
# Seed ranges (leafgen seeds; each also mixes in the class index). Training uses
# TRAIN_SEED_BASE + seed * 10^6 + epoch * 10^4 + k, the held-out set HELDOUT_SEED_BASE + seed * 10^6 + k.
TRAIN_SEED_BASE = 10_000_000
HELDOUT_SEED_BASE = 50_000_000


def validation_transform():
    """The inference preprocessing of MODEL.md, as torchvision's validation transform."""
    return transforms.Compose([
        transforms.Resize(256),  # shorter side -> 256, bilinear (antialiased on PIL images)
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


def photo_size(rng: np.random.Generator) -> Tuple[int, int]:
    """A photo size with short side 224..288 and aspect 1..1.4 in either orientation."""
    short = int(rng.integers(224, 289))
    long_ = int(round(short * rng.uniform(1.0, 1.4)))
    return (long_, short) if rng.random() < 0.5 else (short, long_)


class TrainSet(Dataset):
    """Item i -> (augmented 3x224x224 tensor, class). Everything is derived from the plan row of i."""

    def __init__(self, plan: np.ndarray):
        self.plan = plan  # rows: class, leafgen seed, width, height, jpeg quality (0: none), dx, dy, flips

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int):
        c, seed, w, h, q, dx, dy, flips = (int(v) for v in self.plan[i])
        rgb, _ = leafgen.generate(c, seed, w, h)
        img = Image.fromarray(rgb)
        if q > 0:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=q)
            buf.seek(0)
            img = Image.open(buf).convert("RGB")
        img = TF.resize(img, 256)
        W, H = img.size
        left = min(max(0, (W - 224) // 2 + dx), W - 224)
        top = min(max(0, (H - 224) // 2 + dy), H - 224)
        img = img.crop((left, top, left + 224, top + 224))
        if flips & 1:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if flips & 2:
            img = img.transpose(Image.FLIP_TOP_BOTTOM)
        x = TF.normalize(TF.to_tensor(img), MEAN, STD)
        return x, c


def make_train_plan(seed: int, epoch: int, per_class: int) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch, 7])
    rows = []
    for c in range(leafgen.NUM_CLASSES):
        for k in range(per_class):
            w, h = photo_size(rng)
            q = int(rng.integers(70, 96)) if rng.random() < 0.3 else 0
            dx, dy = (int(v) for v in rng.integers(-16, 17, 2))
            flips = int(rng.integers(0, 4))
            rows.append((c, TRAIN_SEED_BASE + seed * 1_000_000 + epoch * 10_000 + k, w, h, q, dx, dy, flips))
    plan = np.array(rows, dtype=np.int64)
    return plan[rng.permutation(len(plan))]


def heldout_items(seed: int, per_class: int) -> List[Tuple[int, int, int, int]]:
    """(class, leafgen seed, width, height) of the held-out set."""
    rng = np.random.default_rng([seed, 99])
    items = []
    for c in range(leafgen.NUM_CLASSES):
        for k in range(per_class):
            w, h = photo_size(rng)
            items.append((c, HELDOUT_SEED_BASE + seed * 1_000_000 + k, w, h))
    return items


class HeldoutSet(Dataset):
    def __init__(self, items):
        self.items = items
        self.tf = validation_transform()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        c, seed, w, h = self.items[i]
        rgb, _ = leafgen.generate(c, seed, w, h)
        return self.tf(Image.fromarray(rgb)), c


def _worker_init(_):
    torch.set_num_threads(1)


def evaluate(models, loader) -> List[Tuple[float, np.ndarray]]:
    """Top-1 accuracy and confusion matrix (rows: true class) of each model, in one pass over the data."""
    confs = [np.zeros((leafgen.NUM_CLASSES, leafgen.NUM_CLASSES), np.int64) for _ in models]
    with torch.no_grad():
        for x, y in loader:
            for model, conf in zip(models, confs):
                pred = model(x).argmax(1)
                for t, p in zip(y.tolist(), pred.tolist()):
                    conf[t, p] += 1
    return [(float(np.trace(c)) / max(1, c.sum()), c) for c in confs]


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs visible, torch {torch.__version__} with "
            f"{torch.get_num_threads()} intra-op thread(s), Python {platform.python_version()}, {platform.system()}")


def write_model_card(path: str, info: dict) -> None:
    per_class = info["per_class"]
    rows = "\n".join(f"| {i} | {leafgen.LABELS[i]} | {acc * 100:.1f}% |" for i, acc in enumerate(per_class))
    confusions = info["top_confusions"]
    conf_lines = "\n".join(f"- {n} x {a} predicted as {b}" for a, b, n in confusions) or "- none"
    text = f"""# cropshield-demo (version 1): model card

**Synthetic demo model. Not for agronomic use.** It was trained only on procedurally generated
leaf images (`models/leafgen.py`), never on real photographs, so its predictions on real crop photos
mean nothing. It exists so that the server, the client, Grad-CAM and the tests have a small, genuinely
trained model whose answers can be checked.

## Model
- Architecture: CropShield CNN (`models/cropshield_cnn.py`, topology of MODEL.md: 4 blocks of
  conv-BN-ReLU-conv-BN-ReLU-maxpool-Dropout2d, global average pool, Dropout(0.5), Linear), at
  **width {info['width']:g}**: channels {info['channels']} instead of 64, 128, 256, 512;
  {info['parameters']:,} parameters (the full-width model has 4,698,582).
- Input: 3x224x224 RGB; preprocessing as MODEL.md (resize shorter side to 256 bilinear, center crop 224,
  ImageNet mean/std); see `1/model.json`.
- Output: logits over the 22 CropShield classes, in MODEL.md's order.
- Grad-CAM target: block4 output ({info['channels'][-1]}x14x14), exported as `features` / `head`.
- Package: `1/model.pt` (TorchScript, {info['weights_bytes']:,} bytes), `1/model.json`
  (weights_xxh3_128 `{info['weights_xxh3_128']}`).

## Training
- Command: `{info['command']}`
- Data: {info['train_per_class']} fresh synthetic images per class per epoch, {info['epochs']} epochs
  ({info['train_images']:,} images in all), leafgen seeds from {TRAIN_SEED_BASE:,} + seed x 10^6
  (seed {info['seed']}). Photos are generated with a short side of 224-288 px and aspect ratio 1-1.4,
  30% of them re-encoded as JPEG (quality 70-95), then resized to 256 on the shorter side and cropped
  to 224 with up to 16 px of jitter around the center, with random horizontal/vertical flips.
- Optimiser: SGD with Nesterov momentum 0.9, one-cycle schedule peaking at lr {info['lr']:g}, weight
  decay {info['weight_decay']:g} (not on BatchNorm/bias), batch {info['batch_size']}, cross-entropy with
  label smoothing {info['label_smoothing']:g}. {info['dropout_note']}
- Determinism: torch/numpy/random seeded, `torch.use_deterministic_algorithms(True)`, a fixed thread
  count ({info['threads']} torch thread(s) training, {info['workers']} DataLoader worker process generating
  images, i.e. two busy cores); every image depends only on the seed.
- Time: {info['train_seconds']:.0f} s of training, {info['total_seconds']:.0f} s wall-clock for the whole
  script (generation, training, evaluation, export).
- Machine: {info['machine']} (shared with other jobs while training).
- Final training loss {info['final_loss']:.3f}, training accuracy over the last epoch
  {info['final_train_acc'] * 100:.1f}%.

## Evaluation
Held-out set: {info['heldout_per_class']} images per class ({info['heldout_images']} in all), generated
with leafgen seeds from {HELDOUT_SEED_BASE:,} + seed x 10^6 (disjoint from training), short side 224-288 px,
classified by the exported TorchScript `model.pt` after torchvision's validation transform
(Resize(256), CenterCrop(224), ToTensor, Normalize).

**Top-1 accuracy: {info['heldout_acc'] * 100:.2f}%** ({info['heldout_correct']}/{info['heldout_images']}).

| index | class | accuracy |
|---|---|---|
{rows}

Most frequent confusions:
{conf_lines}

The unit test `tests/unit/models/test_demo_model.py` re-measures accuracy on a further held-out set
generated at test time (another seed) and requires at least 95%.

## Limitations
- Synthetic, stylised symptoms (see `models/DATASET.md`); real diseases vary far more, co-occur, and
  resemble each other (and nutrient deficiencies, insect damage) in ways this generator does not model.
- Reduced width: much less capacity than the full CropShield CNN.
- One leaf per image, always in the central crop.
"""
    with open(path, "w") as f:
        f.write(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--train-per-class", type=int, default=91, help="fresh images per class per epoch")
    p.add_argument("--heldout-per-class", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate (SGD, one-cycle)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--train-dropout-scale", type=float, default=0.0,
                   help="multiply the Dropout/Dropout2d rates by this while training (the exported model "
                        "keeps MODEL.md's rates; dropout does nothing at inference)")
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: with the generator worker that makes 2 busy "
                        "cores; 2 torch threads plus the worker oversubscribe 2 cores and run slower)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes generating images")
    p.add_argument("--out", default=DEFAULT_OUT, help="model directory (the package goes to OUT/1)")
    p.add_argument("--no-export", action="store_true", help="train and evaluate only")
    a = p.parse_args(argv)

    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    random.seed(a.seed)
    torch.use_deterministic_algorithms(True)

    model = CropShieldCNN(num_classes=leafgen.NUM_CLASSES, width=a.width)
    n_params = count_parameters(model)
    print(f"CropShield CNN width {a.width:g}: {n_params:,} parameters; {a.epochs} epochs x "
          f"{a.train_per_class * leafgen.NUM_CLASSES} images", flush=True)
    steps_per_epoch = (a.train_per_class * leafgen.NUM_CLASSES + a.batch_size - 1) // a.batch_size
    decay, no_decay = [], []
    for n_, p_ in model.named_parameters():
        (no_decay if p_.ndim <= 1 else decay).append(p_)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, momentum=0.9, nesterov=True)
    dropouts = [m for m in model.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]
    model_rates = [m.p for m in dropouts]
    for m in dropouts:  # the tiny network learns far faster without dropout in this short schedule
        m.p = m.p * a.train_dropout_scale
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, epochs=a.epochs, steps_per_epoch=steps_per_epoch,
                                                pct_start=0.25)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)

    t_train = time.time()
    final_loss, final_acc = float("nan"), 0.0
    for epoch in range(a.epochs):
        ds = TrainSet(make_train_plan(a.seed, epoch, a.train_per_class))
        loader = DataLoader(ds, batch_size=a.batch_size, shuffle=False, num_workers=a.workers,
                            worker_init_fn=_worker_init, prefetch_factor=4 if a.workers > 0 else 2)
        model.train()
        tot_loss, correct, seen = 0.0, 0, 0
        t_ep = time.time()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += float(loss) * len(y)
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
        final_loss, final_acc = tot_loss / seen, correct / seen
        print(f"epoch {epoch + 1}/{a.epochs}: loss {final_loss:.3f}, train acc {final_acc * 100:.1f}%, "
              f"{time.time() - t_ep:.0f} s", flush=True)
    train_seconds = time.time() - t_train
    for m, rate in zip(dropouts, model_rates):  # back to MODEL.md's rates for the exported module
        m.p = rate
    model.eval()

    items = heldout_items(a.seed, a.heldout_per_class)
    eval_loader = DataLoader(HeldoutSet(items), batch_size=64, num_workers=a.workers,
                             worker_init_fn=_worker_init)
    if a.no_export:
        [(acc, conf)] = evaluate([model], eval_loader)
        print(f"held-out accuracy (eager): {acc * 100:.2f}% on {len(items)} images", flush=True)
        print(f"total {time.time() - t_start:.0f} s (no export)")
        return 0

    version_dir = os.path.join(a.out, "1")
    summary = export.export_model(
        model, "cropshield_cnn", version_dir, name="cropshield-demo", version=1, labels=leafgen.LABELS,
        description=(f"CropShield CNN width {a.width:g} trained on synthetic leaves (leafgen) by "
                     "models/train_demo.py; demo only, not for agronomic use"),
        untrained=False, force=True)
    scripted = torch.jit.load(os.path.join(version_dir, export.WEIGHTS_FILE))
    scripted.eval()
    (acc, _), (acc_s, conf) = evaluate([model, scripted], eval_loader)
    print(f"held-out accuracy on {len(items)} images: eager {acc * 100:.2f}%, exported model.pt "
          f"{acc_s * 100:.2f}%", flush=True)
    total_seconds = time.time() - t_start

    per_class = (np.diag(conf) / np.maximum(1, conf.sum(1))).tolist()
    off = [(int(conf[i, j]), i, j) for i in range(len(conf)) for j in range(len(conf)) if i != j and conf[i, j]]
    off.sort(reverse=True)
    info = {
        "width": a.width,
        "channels": [m.out_channels for m in (model.block1[0], model.block2[0], model.block3[0], model.block4[0])],
        "parameters": n_params,
        "weights_bytes": summary["weights_bytes"],
        "weights_xxh3_128": summary["weights_xxh3_128"],
        "command": " ".join(["/usr/bin/python3 models/train_demo.py"]
                            + list(sys.argv[1:] if argv is None else argv)),
        "train_per_class": a.train_per_class,
        "epochs": a.epochs,
        "train_images": a.train_per_class * leafgen.NUM_CLASSES * a.epochs,
        "seed": a.seed,
        "lr": a.lr,
        "weight_decay": a.weight_decay,
        "batch_size": a.batch_size,
        "label_smoothing": a.label_smoothing,
        "dropout_note": ("Dropout/Dropout2d were disabled while training (this short schedule on a tiny "
                         "network learns far faster without them); the exported module keeps MODEL.md's rates, "
                         "which have no effect at inference." if a.train_dropout_scale == 0 else
                         f"Dropout rates were scaled by {a.train_dropout_scale:g} while training; the exported "
                         "module keeps MODEL.md's rates."),
        "train_seconds": train_seconds,
        "total_seconds": total_seconds,
        "machine": machine_description(),
        "threads": a.threads,
        "workers": a.workers,
        "final_loss": final_loss,
        "final_train_acc": final_acc,
        "heldout_per_class": a.heldout_per_class,
        "heldout_images": len(items),
        "heldout_correct": int(np.trace(conf)),
        "heldout_acc": acc_s,
        "per_class": per_class,
        "top_confusions": [(n, leafgen.LABELS[i], leafgen.LABELS[j]) for n, i, j in off[:8]],
    }
    info["top_confusions"] = [(a_, b_, n_) for n_, a_, b_ in info["top_confusions"]]
    write_model_card(os.path.join(a.out, "MODEL_CARD.md"), info)
    with open(os.path.join(a.out, "training_log.json"), "w") as f:
        json.dump({k: v for k, v in info.items()}, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.join(a.out, 'MODEL_CARD.md')}; total {total_seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
