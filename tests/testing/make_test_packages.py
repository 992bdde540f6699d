#!/usr/bin/python3
"""Writes small model packages for the engine and server tests.

Usage: make_test_packages.py OUT_DIR

OUT_DIR/repo/tiny/{1,2}/       valid packages of a tiny conv net (version 2 has other weights)
OUT_DIR/broken/<case>/          packages that the server must refuse, one per failure case
OUT_DIR/expected.json           probabilities of repo/tiny/2 on a fixed 224x224 input (for parity)
OUT_DIR/input.f32               that input, float32 NCHW
OUT_DIR/gap/                    conv -> global-average-pool -> linear model (CAM oracle), with
OUT_DIR/gap_cam.json            its class activation maps CAM_c = sum_k w_ck A_k computed in closed
                                form (no autograd) for every class on input.f32, min-max normalised
                                (also as gap_cam.f32, raw float32, and gap_cam.txt: "h w top1")
"""
import copy
import json
import os
import sys

import torch
import xxhash

LABELS = [f"class_{i:02d}" for i in range(22)]


class TinyNet(torch.nn.Module):
    """conv -> relu -> pool (features) and avgpool -> linear (head)."""

    def __init__(self, classes: int = 22):
        super().__init__()
        self.block = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(16))
        self.fc = torch.nn.Linear(8, classes)

    def forward(self, x):
        return self.head(self.features(x))

    @torch.jit.export
    def features(self, x):
        return self.block(x)

    @torch.jit.export
    def head(self, a):
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(a, 1), 1))


class GapNet(torch.nn.Module):
    """The CAM paper's architecture: features = conv + relu, head = global average pool + linear."""

    def __init__(self, classes: int = 22):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 5, stride=16, padding=2)
        self.fc = torch.nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.features(x))

    @torch.jit.export
    def features(self, x):
        return torch.relu(self.conv(x))

    @torch.jit.export
    def head(self, a):
        return self.fc(a.mean(dim=(2, 3)))


def metadata(name, version, labels, weights_hash):
    return {
        "format_version": 1, "name": name, "version": version, "architecture": "tiny_test_net",
        "description": "test fixture", "labels": labels, "weights_file": "model.pt",
        "weights_xxh3_128": weights_hash,
        "preprocessing": {"input_size": 224, "resize_shorter_side": 256,
                          "interpolation": "bilinear", "crop": "center",
                          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                          "channel_order": "RGB"},
        "grad_cam": {"features_method": "features", "head_method": "head", "target_layer": "block"},
        "untrained": True,
    }


def write_package(directory, module, meta_overrides=None, name="tiny", version=1, labels=LABELS,
                  drop=None, corrupt_weights=False):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "model.pt")
    torch.jit.save(module, path)
    if corrupt_weights:
        with open(path, "r+b") as f:
            f.seek(0)
            f.write(b"this is not a zip archive" * 4)
    with open(path, "rb") as f:
        digest = xxhash.xxh3_128_hexdigest(f.read())
    meta = metadata(name, version, labels, digest)
    if meta_overrides:
        meta.update(meta_overrides)
    for key in drop or []:
        meta.pop(key)
    with open(os.path.join(directory, "model.json"), "w") as f:
        json.dump(meta, f, indent=2)


def main(out):
    torch.manual_seed(7)
    v1 = torch.jit.script(TinyNet().eval())
    v2 = torch.jit.script(TinyNet().eval())
    write_package(os.path.join(out, "repo", "tiny", "1"), v1, version=1)
    write_package(os.path.join(out, "repo", "tiny", "2"), v2, version=2)

    broken = os.path.join(out, "broken")
    write_package(os.path.join(broken, "missing_labels"), v1, drop=["labels"])
    write_package(os.path.join(broken, "missing_grad_cam"), v1, drop=["grad_cam"])
    write_package(os.path.join(broken, "label_count"), v1, labels=LABELS[:21])
    write_package(os.path.join(broken, "corrupt_torchscript"), v1, corrupt_weights=True)
    write_package(os.path.join(broken, "hash_mismatch"), v1,
                  meta_overrides={"weights_xxh3_128": "0" * 32})
    write_package(os.path.join(broken, "unknown_field"), v1, meta_overrides={"colour": "green"})
    write_package(os.path.join(broken, "no_head_method"), v1,
                  meta_overrides={"grad_cam": {"features_method": "features",
                                               "head_method": "classifier",
                                               "target_layer": "block"}})
    os.makedirs(os.path.join(broken, "bad_json"), exist_ok=True)
    with open(os.path.join(broken, "bad_json", "model.json"), "w") as f:
        f.write("{ not json")

    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        probs = torch.softmax(v2(x), 1)[0].tolist()
    x.numpy().astype("float32").tofile(os.path.join(out, "input.f32"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"probabilities": probs}, f)

    gap = GapNet().eval()
    write_package(os.path.join(out, "gap"), torch.jit.script(gap), name="gap")
    with torch.no_grad():
        a = gap.features(x)[0].double()  # K x h x w
        w = gap.fc.weight.double()  # classes x K
        maps = []
        for c in range(w.shape[0]):
            cam = torch.relu((w[c][:, None, None] * a).sum(0))
            cam = (cam - cam.min()) / torch.clamp_min(cam.max() - cam.min(), 1e-12)
            maps.append(cam.flatten().tolist())
        top1 = int(gap(x)[0].argmax())
    with open(os.path.join(out, "gap_cam.json"), "w") as f:
        json.dump({"height": a.shape[1], "width": a.shape[2], "top1": top1, "maps": maps}, f)
    # The same as raw float32 (classes x h x w) plus "h w top1" for C++ tests.
    torch.tensor(maps, dtype=torch.float32).numpy().tofile(os.path.join(out, "gap_cam.f32"))
    with open(os.path.join(out, "gap_cam.txt"), "w") as f:
        f.write(f"{a.shape[1]} {a.shape[2]} {top1}\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
