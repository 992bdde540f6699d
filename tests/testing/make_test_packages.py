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
OUT_DIR/optimize_mismatch/      a valid package whose frozen + optimised module computes other
                                activations (by ~2e-3, relative) than the original: the server must
                                keep the original module (--optimize keeps only agreeing outputs)
OUT_DIR/reduced_precision_flip/ a valid package whose top-1 class changes in fp16 and bf16 (two
                                logits 0.2 apart around 1000 round to the same value): a server must
                                refuse to serve it in reduced precision
OUT_DIR/graph_unsafe/           a valid package whose forward reads a device value on the host (a
                                data-dependent branch), which a CUDA graph capture cannot record: a
                                CUDA server must fall back to eager forwards
Each special package is checked here (in Python, on CPU) to have the property it exists for.
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


class OffsetBnNet(TinyNet):
    """TinyNet with a BatchNorm after the conv whose running mean cancels a large conv bias (1e5).

    The original module adds the bias in float32, whose spacing at 1e5 is 2^-7, before the
    BatchNorm subtracts it again: the activations carry rounding errors of up to 0.004. Freezing
    folds the BatchNorm into the conv (bias' = (bias - mean) * scale = 0) and computes them exactly,
    so the frozen, optimised module's activations differ from the original's by ~2e-3 relative, 20x
    the server's limit of 1e-4.
    """

    def __init__(self, classes: int = 22):
        super().__init__(classes)
        conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        bn = torch.nn.BatchNorm2d(8)
        with torch.no_grad():
            conv.bias.add_(1e5)
            bn.running_mean.copy_(conv.bias)
            bn.running_var.fill_(1.0)
        self.block = torch.nn.Sequential(conv, bn, torch.nn.ReLU(), torch.nn.MaxPool2d(16))


class ReducedPrecisionFlipNet(TinyNet):
    """Logits 1000 + tiny (class 0) and 1000.2 + tiny (class 1): class 1 wins clearly in float32
    (probabilities 0.45 / 0.55), but float16 (spacing 0.5 at 1000) and bfloat16 (spacing 4) round
    both biases to 1000, so the two classes tie and the top-1 becomes class 0."""

    def __init__(self, classes: int = 22):
        super().__init__(classes)
        with torch.no_grad():
            self.fc.weight.mul_(1e-4)
            self.fc.bias.zero_()
            self.fc.bias[0] = 1000.0
            self.fc.bias[1] = 1000.2


class GraphUnsafeNet(TinyNet):
    """TinyNet whose forward branches on a device value (read on the host: a synchronisation that
    a CUDA graph capture cannot record). The branch is never taken: the logits are TinyNet's."""

    def forward(self, x):
        logits = self.head(self.features(x))
        if bool(logits.abs().max() > 1e30):
            logits = torch.zeros_like(logits)
        return logits


def check_optimisation_changes_outputs(module, x):
    """The server's verification (server/engine/model_create.cc) must reject the frozen + optimised module:
    probabilities differing by more than 1e-4, or activations by more than 1e-4 relative."""
    optimised = torch.jit.optimize_for_inference(
        torch.jit.freeze(module, preserved_attrs=["features"]), ["features"])
    with torch.no_grad():
        probs = (torch.softmax(module(x), 1) - torch.softmax(optimised(x), 1)).abs().max().item()
        slow = module.features(x)
        features = ((optimised.features(x) - slow).abs().max() / max(1.0, slow.abs().max().item())).item()
    assert probs > 1e-3 or features > 1e-3, (probs, features)


def check_reduced_precision_flips_top1(module, x):
    with torch.no_grad():
        fp32 = module(x).argmax(1)
        assert bool((fp32 == 1).all()), fp32
        for dtype in (torch.float16, torch.bfloat16):
            assert float(module.fc.bias.to(dtype)[1]) == float(module.fc.bias.to(dtype)[0]), dtype
        bf16 = copy.deepcopy(module).to(torch.bfloat16)(x.to(torch.bfloat16)).argmax(1)
        assert bool((bf16 == 0).all()), bf16


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

    # Packages with one property each, checked on inputs like the server's warm-up inputs.
    warmup_like = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    offset = torch.jit.script(OffsetBnNet().eval())
    check_optimisation_changes_outputs(offset, warmup_like)
    write_package(os.path.join(out, "optimize_mismatch"), offset, name="offset")
    flip = torch.jit.script(ReducedPrecisionFlipNet().eval())
    check_reduced_precision_flips_top1(flip, warmup_like)
    write_package(os.path.join(out, "reduced_precision_flip"), flip, name="flip")
    unsafe = torch.jit.script(GraphUnsafeNet().eval())
    with torch.no_grad():
        assert torch.equal(unsafe(warmup_like), unsafe.head(unsafe.features(warmup_like)))
    write_package(os.path.join(out, "graph_unsafe"), unsafe, name="graph-unsafe")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
