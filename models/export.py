#!/usr/bin/env python3
"""Export a CropShield checkpoint (or random weights) as a servable model package.

A package version directory holds `model.pt` (TorchScript, eval mode, with `forward(x) -> logits` and
the Grad-CAM split `features(x) -> activation`, `head(activation) -> logits`) and `model.json` (the
cropshield.v1.ModelMetadata message in protobuf JSON mapping). See models/README.md.

Usage:
  export.py CHECKPOINT OUT_DIR [--name NAME] [--version N] [--repository] [options]
  export.py --arch ARCH --random-weights OUT_DIR [--width W] [--seed S] [--name NAME] [--version N]
            [--repository] [options]

OUT_DIR is the version directory to write, or with --repository a repository root, in which case the
package goes to OUT_DIR/NAME/VERSION/ (VERSION defaults to one more than the highest there, or 1).
Exit status: 0 on success, 2 on bad usage or a bad checkpoint, 1 on a failed self-check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    # torch.jit.save writes module constants in an order that depends on Python's string hashing; a
    # fixed hash seed makes model.pt (and so its weights_xxh3_128) byte-for-byte reproducible.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import torch  # noqa: E402
import xxhash  # noqa: E402
from torch import nn  # noqa: E402

from cropshield_cnn import CropShieldCNN, count_parameters, width_from_state_dict  # noqa: E402
from leafgen import LABELS as CROPSHIELD_LABELS  # noqa: E402

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.pt"
METADATA_FILE = "model.json"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INPUT_SIZE = 224
RESIZE_SHORTER_SIDE = 256
TOLERANCE = 1e-5

# model_type values found in CropShield checkpoints -> architecture name used here
CHECKPOINT_MODEL_TYPES = {
    "custom": "cropshield_cnn",
    "efficientnet_b0": "efficientnet_b0",
    "efficientnet": "efficientnet_b0",
    "resnet18": "resnet18",
}
# architectures that --random-weights can build
RANDOM_ARCHS = ("cropshield_cnn", "resnet18", "resnet50", "efficientnet_b0", "mobilenet_v3_large")
TARGET_LAYERS = {
    "cropshield_cnn": "block4",
    "resnet18": "layer4",
    "resnet50": "layer4",
    "efficientnet_b0": "features",
    "mobilenet_v3_large": "features",
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ExportError(Exception):
    """A problem with the input (bad checkpoint, bad arguments): reported without a traceback."""


# --------------------------------------------------------------------------------------------------
# Scriptable wrappers: forward(x) == head(features(x))
# --------------------------------------------------------------------------------------------------


class CropShieldPackage(nn.Module):
    """CropShield CNN; features = block4 output (N x C4 x 14 x 14 at 224 input)."""

    def __init__(self, model: CropShieldCNN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.block4(m.block3(m.block2(m.block1(x))))

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.classifier(torch.flatten(m.global_avg_pool(a), 1))


class ResNetPackage(nn.Module):
    """torchvision ResNet; features = layer4 output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.fc(torch.flatten(m.avgpool(a), 1))


class FeaturesClassifierPackage(nn.Module):
    """torchvision EfficientNet / MobileNetV3; features = output of `features` (its last conv block)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.classifier(torch.flatten(m.avgpool(a), 1))


def wrap(arch: str, model: nn.Module) -> nn.Module:
    if arch == "cropshield_cnn":
        return CropShieldPackage(model)
    if arch in ("resnet18", "resnet50"):
        return ResNetPackage(model)
    if arch in ("efficientnet_b0", "mobilenet_v3_large"):
        return FeaturesClassifierPackage(model)
    raise ExportError(f"no wrapper for architecture '{arch}'")


# --------------------------------------------------------------------------------------------------
# Building models
# --------------------------------------------------------------------------------------------------


def build_model(arch: str, num_classes: int, width: float = 1.0) -> nn.Module:
    """An untrained model of `arch` with a `num_classes`-way classifier (torchvision: weights=None)."""
    import torchvision

    if arch == "cropshield_cnn":
        return CropShieldCNN(num_classes=num_classes, width=width)
    if arch == "resnet18":
        m = torchvision.models.resnet18(weights=None)
        m.fc = nn.Linear(m.fc.in_features, num_classes)
        return m
    if arch == "resnet50":
        m = torchvision.models.resnet50(weights=None)
        m.fc = nn.Linear(m.fc.in_features, num_classes)
        return m
    if arch == "efficientnet_b0":
        m = torchvision.models.efficientnet_b0(weights=None)
        m.classifier[1] = nn.Linear(m.classifier[1].in_features, num_classes)
        return m
    if arch == "mobilenet_v3_large":
        m = torchvision.models.mobilenet_v3_large(weights=None)
        m.classifier[3] = nn.Linear(m.classifier[3].in_features, num_classes)
        return m
    raise ExportError(f"unknown architecture '{arch}' (known: {', '.join(RANDOM_ARCHS)})")


def _classifier_key(arch: str) -> str:
    return {
        "cropshield_cnn": "classifier.1.weight",
        "resnet18": "fc.weight",
        "resnet50": "fc.weight",
        "efficientnet_b0": "classifier.1.weight",
        "mobilenet_v3_large": "classifier.3.weight",
    }[arch]


def _infer_arch(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    if "block1.0.weight" in state_dict:
        return "cropshield_cnn"
    if "layer4.0.conv1.weight" in state_dict and "fc.weight" in state_dict:
        return "resnet18" if "layer1.0.conv3.weight" not in state_dict else "resnet50"
    if "features.0.0.weight" in state_dict and "classifier.1.weight" in state_dict:
        return "efficientnet_b0"
    return None


# --------------------------------------------------------------------------------------------------
# Reading checkpoints
# --------------------------------------------------------------------------------------------------


def _strip_prefix(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drops a DataParallel 'module.' prefix when every key has it."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def read_class_to_idx(path: str) -> List[str]:
    """Labels ordered by index from a class_to_idx.json ({label: index}, indices 0..n-1)."""
    try:
        with open(path) as f:
            mapping = json.load(f)
    except FileNotFoundError:
        raise ExportError(f"bare state_dict checkpoint needs class names: {path} not found "
                          "(pass --class-to-idx FILE)")
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read {path}: {e}")
    if not isinstance(mapping, dict) or not mapping:
        raise ExportError(f"{path}: expected a JSON object mapping class name -> index")
    if not all(isinstance(k, str) and k for k in mapping) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in mapping.values()):
        raise ExportError(f"{path}: keys must be class names and values integer indices")
    indices = sorted(mapping.values())
    if indices != list(range(len(mapping))):
        raise ExportError(f"{path}: indices must be exactly 0..{len(mapping) - 1}, got {indices}")
    return [name for name, _ in sorted(mapping.items(), key=lambda kv: kv[1])]


def package_metadata_beside(path: str) -> Optional[str]:
    """model.json of a package when `path` is its version directory or its model.pt, else None."""
    if os.path.isdir(path) or os.path.basename(path) == WEIGHTS_FILE:
        directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        meta = os.path.join(directory, METADATA_FILE)
        return meta if os.path.isfile(meta) else None
    return None


def load_package(meta_path: str) -> Tuple[str, Dict[str, torch.Tensor], List[str], str]:
    """The weights of an fp32 package (its TorchScript wraps the network as `model`), e.g. to quantize
    the demo package, whose training script keeps no separate checkpoint."""
    with open(meta_path) as f:
        meta = json.load(f)
    if "quantization" in meta:
        raise ExportError(f"{meta_path}: already a quantized package; export from the fp32 one")
    weights = os.path.join(os.path.dirname(meta_path), meta.get("weights_file", WEIGHTS_FILE))
    try:
        scripted = torch.jit.load(weights, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any load problem is a bad package
        raise ExportError(f"cannot load {weights}: {type(e).__name__}: {e}")
    state_dict = {k[len("model."):]: v for k, v in scripted.state_dict().items() if k.startswith("model.")}
    if not state_dict:
        raise ExportError(f"{weights}: no 'model.' submodule weights (not written by export.py)")
    return meta["architecture"], state_dict, list(meta["labels"]), "fp32 model package"


def load_checkpoint(path: str, class_to_idx: Optional[str] = None
                    ) -> Tuple[str, Dict[str, torch.Tensor], List[str], str]:
    """Returns (architecture, state_dict, labels, layout description)."""
    package_meta = package_metadata_beside(path)
    if package_meta is not None:
        return load_package(package_meta)
    if not os.path.isfile(path):
        raise ExportError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad checkpoint
        raise ExportError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}")
    if isinstance(obj, dict) and "model_state_dict" in obj:
        layout = "checkpoint dict"
        state_dict = obj["model_state_dict"]
        if not _is_state_dict(state_dict):
            raise ExportError(f"{path}: 'model_state_dict' is not a state_dict (name -> tensor)")
        state_dict = _strip_prefix(dict(state_dict))
        if "class_names" in obj:
            labels = obj["class_names"]
            if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x for x in labels):
                raise ExportError(f"{path}: 'class_names' must be a list of non-empty strings")
            labels = list(labels)
        else:
            side = class_to_idx or os.path.join(os.path.dirname(os.path.abspath(path)), "class_to_idx.json")
            if not os.path.exists(side):
                raise ExportError(f"{path}: checkpoint dict has no 'class_names' key and {side} does not exist")
            labels = read_class_to_idx(side)
        if "num_classes" in obj:
            try:
                nc = int(obj["num_classes"])
            except (TypeError, ValueError):
                raise ExportError(f"{path}: 'num_classes' is not an integer: {obj['num_classes']!r}")
            if nc != len(labels):
                raise ExportError(f"{path}: class count mismatch: num_classes is {nc} but class_names has "
                                  f"{len(labels)} entries")
        if "model_type" in obj:
            mt = obj["model_type"]
            if mt not in CHECKPOINT_MODEL_TYPES:
                raise ExportError(f"{path}: unknown model_type {mt!r} (known: "
                                  f"{', '.join(sorted(CHECKPOINT_MODEL_TYPES))})")
            arch = CHECKPOINT_MODEL_TYPES[mt]
        else:
            arch = _infer_arch(state_dict)
            if arch is None:
                raise ExportError(f"{path}: checkpoint has no 'model_type' and the architecture cannot be "
                                  "recognised from its weights")
            print(f"note: checkpoint has no 'model_type'; recognised {arch} from its weights")
    elif _is_state_dict(obj):
        layout = "bare state_dict + class_to_idx.json"
        state_dict = _strip_prefix(dict(obj))
        side = class_to_idx or os.path.join(os.path.dirname(os.path.abspath(path)), "class_to_idx.json")
        labels = read_class_to_idx(side)
        arch = _infer_arch(state_dict)
        if arch is None:
            raise ExportError(f"{path}: bare state_dict of an unrecognised architecture (expected CropShield "
                              "CNN, torchvision efficientnet_b0 or resnet18 keys)")
    elif isinstance(obj, dict):
        raise ExportError(f"{path}: missing key 'model_state_dict' (keys: {', '.join(map(str, list(obj)[:12]))})")
    else:
        raise ExportError(f"{path}: not a CropShield checkpoint (a {type(obj).__name__})")
    if len(labels) < 2:
        raise ExportError(f"{path}: needs at least 2 classes, got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise ExportError(f"{path}: duplicate class names")
    return arch, state_dict, labels, layout


def model_from_state_dict(arch: str, state_dict: Dict[str, torch.Tensor], labels: List[str],
                          source: str) -> Tuple[nn.Module, float]:
    key = _classifier_key(arch)
    if key not in state_dict:
        raise ExportError(f"{source}: missing key '{key}' for a {arch} state_dict")
    width = 1.0
    if arch == "cropshield_cnn":
        try:
            width = width_from_state_dict(state_dict)
        except KeyError as e:
            raise ExportError(f"{source}: {e.args[0]}")
    out_features = int(state_dict[key].shape[0])
    if out_features != len(labels):
        raise ExportError(f"{source}: class count mismatch: the classifier has {out_features} outputs but "
                          f"there are {len(labels)} class names")
    model = build_model(arch, len(labels), width)
    model_keys = set(model.state_dict())
    missing = sorted(model_keys - set(state_dict))
    unexpected = sorted(set(state_dict) - model_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}"
                         + (" ..." if len(missing) > 8 else ""))
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}"
                         + (" ..." if len(unexpected) > 8 else ""))
        raise ExportError(f"{source}: weights do not match a {arch}: " + "; ".join(parts))
    try:
        model.load_state_dict(state_dict, strict=True)  # also checks shapes
    except RuntimeError as e:
        msg = str(e).strip().splitlines()
        raise ExportError(f"{source}: weights do not match a {arch} (width {width:g}): "
                          + " ".join(m.strip() for m in msg[:6]))
    return model, width


# --------------------------------------------------------------------------------------------------
# Writing packages
# --------------------------------------------------------------------------------------------------


def file_xxh3_128(path: str) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_metadata(name: str, version: int, arch: str, description: str, labels: Sequence[str],
                  weights_hash: str, untrained: bool, quantization: Optional[dict] = None) -> dict:
    """The ModelMetadata message as a dict (protobuf JSON mapping, snake_case field names)."""
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": int(version),
        "architecture": arch,
        "description": description,
        "labels": list(labels),
        "weights_file": WEIGHTS_FILE,
        "weights_xxh3_128": weights_hash,
        "preprocessing": {
            "input_size": INPUT_SIZE,
            "resize_shorter_side": RESIZE_SHORTER_SIDE,
            "interpolation": "bilinear",
            "crop": "center",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "channel_order": "RGB",
        },
        "grad_cam": {
            "features_method": "features",
            "head_method": "head",
            "target_layer": TARGET_LAYERS[arch],
        },
        "untrained": bool(untrained),
    }
    if quantization is not None:
        meta["quantization"] = dict(quantization)
    return meta


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _check_close(what: str, a: torch.Tensor, b: torch.Tensor) -> float:
    d = _max_diff(a, b)
    scale = max(1.0, float(b.abs().max()))
    if not d <= TOLERANCE * scale:
        raise AssertionError(f"self-check failed: {what} differ by {d:.3g} (tolerance {TOLERANCE:g})")
    return d


def verify(scripted, eager: nn.Module, num_classes: int, seed: int = 0,
           reference: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """forward == head(features(x)) == eager model(x) on random input (1e-5, relative for |logits| > 1).
    `reference`: the eager model's logits on that input, if already computed."""
    x = verify_input(seed)
    with torch.no_grad():
        ref = eager(x) if reference is None else reference
        out = scripted(x)
        act = scripted.features(x)
        split = scripted.head(act)
    if tuple(out.shape) != (x.shape[0], num_classes):
        raise AssertionError(f"self-check failed: logits shape {tuple(out.shape)}, expected "
                             f"({x.shape[0]}, {num_classes})")
    if act.dim() != 4:
        raise AssertionError(f"self-check failed: features() returned shape {tuple(act.shape)}, expected NxCxhxw")
    return {
        "forward_vs_eager": _check_close("forward and the eager model", out, ref),
        "split_vs_forward": _check_close("head(features(x)) and forward(x)", split, out),
        "activation_shape": tuple(act.shape[1:]),
    }


def verify_input(seed: int = 0) -> torch.Tensor:
    """The self-check's random input: 2 images at 224x224 (batch > 1 catches batch-mixing bugs)."""
    return torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(seed))


def script_model(arch: str, model: nn.Module, wrapped: bool = False):
    model.eval()
    wrapper = model if wrapped else wrap(arch, model).eval()
    try:
        return torch.jit.script(wrapper)
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"torch.jit.script failed for {arch}: {e}")


def resolve_out_dir(out_dir: str, repository: bool, name: Optional[str], version: Optional[int],
                    default_name: str) -> Tuple[str, str, int]:
    """Returns (version directory, name, version)."""
    if repository:
        name = name or default_name
        if not NAME_RE.match(name):
            raise ExportError(f"invalid model name {name!r} (letters, digits, '.', '_', '-')")
        model_dir = os.path.join(out_dir, name)
        if version is None:
            existing = []
            if os.path.isdir(model_dir):
                existing = [int(d) for d in os.listdir(model_dir)
                            if d.isdigit() and int(d) > 0 and os.path.isdir(os.path.join(model_dir, d))]
            version = max(existing, default=0) + 1
        return os.path.join(model_dir, str(version)), name, version
    base = os.path.basename(os.path.normpath(out_dir))
    parent = os.path.basename(os.path.dirname(os.path.abspath(out_dir)))
    if base.isdigit() and int(base) > 0:
        # OUT_DIR looks like <model>/<version>: name and version must agree with it
        if version is None:
            version = int(base)
        elif version != int(base):
            raise ExportError(f"--version {version} disagrees with the version directory {out_dir}")
        if name is None and NAME_RE.match(parent):
            name = parent
        elif name is not None and name != parent:
            print(f"warning: name {name!r} differs from the model directory {parent!r}; a server given the "
                  "model directory or repository would refuse this package", file=sys.stderr)
    name = name or default_name
    if not NAME_RE.match(name):
        raise ExportError(f"invalid model name {name!r} (letters, digits, '.', '_', '-')")
    return out_dir, name, version if version is not None else 1


def write_package(version_dir: str, scripted, eager: nn.Module, arch: str, name: str, version: int,
                  description: str, labels: Sequence[str], untrained: bool, force: bool,
                  reference: Optional[torch.Tensor] = None, quantization: Optional[dict] = None) -> dict:
    """Saves model.pt + model.json into version_dir (via a hidden temporary directory beside it, so that a
    scanning server never sees a half-written version), after verifying the saved file."""
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    exists = os.path.isdir(version_dir) and any(
        os.path.exists(os.path.join(version_dir, f)) for f in (WEIGHTS_FILE, METADATA_FILE))
    if exists and not force:
        raise ExportError(f"{version_dir} already holds a package (use --force to overwrite)")
    parent = os.path.dirname(os.path.abspath(version_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a package directory is not
    try:
        pt = os.path.join(tmp, WEIGHTS_FILE)
        torch.jit.save(scripted, pt)
        loaded = torch.jit.load(pt, map_location="cpu")
        loaded.eval()
        checks = verify(loaded, eager, len(labels), reference=reference)
        digest = file_xxh3_128(pt)
        meta = make_metadata(name, version, arch, description, labels, digest, untrained, quantization)
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        if os.path.isdir(version_dir):
            for fname in (WEIGHTS_FILE, METADATA_FILE):  # weights first: json last marks completion
                os.replace(os.path.join(tmp, fname), os.path.join(version_dir, fname))
            os.rmdir(tmp)
        else:
            os.rename(tmp, version_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"metadata": meta, "checks": checks}


def export_model(model: nn.Module, arch: str, out_dir: str, *, name: Optional[str] = None,
                 version: Optional[int] = None, repository: bool = False, labels: Sequence[str],
                 description: str = "", untrained: bool = False, force: bool = False,
                 default_name: str = "model", quiet: bool = False,
                 quantization: Optional[dict] = None) -> dict:
    """Scripts, verifies and writes a package; returns a summary dict (also printed unless quiet).
    With `quantization` (the metadata record), `model` is an already wrapped quantized module."""
    version_dir, name, version = resolve_out_dir(out_dir, repository, name, version, default_name)
    if not force and any(os.path.exists(os.path.join(version_dir, f)) for f in (WEIGHTS_FILE, METADATA_FILE)):
        raise ExportError(f"{version_dir} already holds a package (use --force to overwrite)")
    model = model.eval()
    scripted = script_model(arch, model, wrapped=quantization is not None)
    with torch.no_grad():
        reference = model(verify_input())
    checks = verify(scripted, model, len(labels), reference=reference)
    result = write_package(version_dir, scripted, model, arch, name, version, description, labels, untrained,
                           force, reference=reference, quantization=quantization)
    size = os.path.getsize(os.path.join(version_dir, WEIGHTS_FILE))
    summary = {
        "path": version_dir,
        "name": name,
        "version": version,
        "architecture": arch,
        "classes": len(labels),
        "parameters": count_parameters(model),
        "weights_bytes": size,
        "weights_xxh3_128": result["metadata"]["weights_xxh3_128"],
        "untrained": untrained,
        "max_abs_diff_forward_vs_eager": max(checks["forward_vs_eager"], result["checks"]["forward_vs_eager"]),
        "max_abs_diff_split_vs_forward": max(checks["split_vs_forward"], result["checks"]["split_vs_forward"]),
        "activation_shape": list(checks["activation_shape"]),
        "quantization": quantization,
    }
    if not quiet:
        print(f"wrote {os.path.join(version_dir, WEIGHTS_FILE)} ({size} bytes) and "
              f"{os.path.join(version_dir, METADATA_FILE)}")
        print(f"  name {name}, version {version}, architecture {arch}"
              + (" (untrained: random weights)" if untrained else ""))
        print(f"  classes {len(labels)}: {', '.join(labels[:4])}{', ...' if len(labels) > 4 else ''}")
        print(f"  parameters {summary['parameters']:,}")
        print(f"  weights_xxh3_128 {summary['weights_xxh3_128']}")
        print(f"  Grad-CAM target {TARGET_LAYERS[arch]}, activation {'x'.join(map(str, checks['activation_shape']))}")
        print(f"  self-check: |forward - eager| {summary['max_abs_diff_forward_vs_eager']:.2e}, "
              f"|head(features) - forward| {summary['max_abs_diff_split_vs_forward']:.2e} (after reload too)")
        if quantization is not None:
            q = quantization
            print(f"  quantization {q['dtype']} ({q['engine']}), fp32 layers {', '.join(q['fp32_layers'])}; "
                  f"calibrated on {q['calibration_images']} photos (sha256 {q['calibration_sha256'][:16]}...)")
            print(f"  vs fp32 on {q['heldout_images']} held-out photos: top-1 agreement "
                  f"{q['heldout_top1_agreement'] * 100:.2f}%, max |prob diff| {q['heldout_max_probability_diff']:.4f}")
    return summary


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def quantize_model(model: nn.Module, a: argparse.Namespace) -> Tuple[nn.Module, dict]:
    """--quantize int8: the quantized package module and its metadata record."""
    import quantize

    try:
        return quantize.quantize_for_export(model, a.calibration, a.heldout, a.calibration_count,
                                            a.heldout_count, a.fp32_blocks)
    except quantize.QuantizationError as e:
        raise ExportError(str(e))


def _sanitize(stem: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")
    return s or "model"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="export.py",
        description="Export a CropShield checkpoint (or random weights) as a model package "
                    "(model.pt TorchScript + model.json metadata).",
        epilog="Examples:\n"
               "  export.py ckpt/best_model.pth /srv/models --repository --name cropshield --version 3\n"
               "  export.py ckpt/best_model.pth out/cropshield/1\n"
               "  export.py --arch resnet50 --random-weights /srv/bench --repository --name resnet50-random",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="CHECKPOINT OUT_DIR, or only OUT_DIR with --random-weights")
    p.add_argument("--name", help="model name (default: the version directory's parent name, else the "
                                  "checkpoint's file stem, else ARCH-random)")
    p.add_argument("--version", type=int, help="positive version number (default: OUT_DIR's name if it is a "
                                               "number; with --repository one more than the highest there)")
    p.add_argument("--repository", action="store_true",
                   help="OUT_DIR is a repository root: write OUT_DIR/NAME/VERSION/")
    p.add_argument("--description", default=None, help="free text stored in model.json")
    p.add_argument("--class-to-idx", default=None,
                   help="class_to_idx.json for a bare state_dict (default: beside the checkpoint)")
    p.add_argument("--force", action="store_true", help="overwrite an existing package version")
    p.add_argument("--arch", choices=RANDOM_ARCHS, help="architecture for --random-weights")
    p.add_argument("--random-weights", action="store_true",
                   help="no checkpoint: export a randomly initialised ARCH (benchmarks; marked untrained)")
    p.add_argument("--width", type=float, default=1.0, help="CropShield CNN width for --random-weights")
    p.add_argument("--seed", type=int, default=0, help="torch seed for --random-weights")
    q = p.add_argument_group("INT8 quantization (CropShield CNN, CPU only; see models/README.md)")
    q.add_argument("--quantize", choices=("int8",), help="post-training static quantization (onednn engine)")
    q.add_argument("--calibration", metavar="DIR", help="photos to calibrate activation ranges on")
    q.add_argument("--calibration-count", type=int, default=0, metavar="N",
                   help="use the first N photos of DIR by name (default: all)")
    q.add_argument("--heldout", metavar="DIR",
                   help="other photos on which agreement with fp32 is measured and recorded")
    q.add_argument("--heldout-count", type=int, default=0, metavar="N",
                   help="use the first N photos of the held-out DIR by name (default: all)")
    q.add_argument("--fp32-blocks", type=int, default=0, metavar="K",
                   help="keep block1..blockK in fp32 too (default 0: all four blocks int8)")
    a = p.parse_args(argv)

    try:
        if a.quantize and not (a.calibration and a.heldout):
            raise ExportError("--quantize int8 needs --calibration DIR and --heldout DIR")
        if not a.quantize and (a.calibration or a.heldout):
            raise ExportError("--calibration and --heldout apply to --quantize int8 only")
        if a.random_weights:
            if not a.arch:
                raise ExportError("--random-weights needs --arch")
            if len(a.paths) != 1:
                raise ExportError("with --random-weights give only OUT_DIR (no checkpoint)")
            if not a.width > 0:
                raise ExportError("--width must be > 0")
            if a.arch != "cropshield_cnn" and a.width != 1.0:
                raise ExportError("--width applies to cropshield_cnn only")
            out_dir = a.paths[0]
            torch.manual_seed(a.seed)
            model = build_model(a.arch, len(CROPSHIELD_LABELS), a.width)
            desc = a.description or (f"{a.arch}" + (f" width {a.width:g}" if a.arch == "cropshield_cnn" else "")
                                     + (" INT8" if a.quantize else "")
                                     + f", random weights (seed {a.seed}); for benchmarks only, "
                                       "predictions are meaningless")
            default_name = f"{a.arch.replace('_', '-')}-random" + ("-int8" if a.quantize else "")
            quantization = None
            if a.quantize:  # speed benchmarks: the recorded agreement means as little as the weights
                model, quantization = quantize_model(model, a)
            export_model(model, a.arch, out_dir, name=a.name, version=a.version, repository=a.repository,
                         labels=CROPSHIELD_LABELS, description=desc, untrained=True, force=a.force,
                         default_name=default_name, quantization=quantization)
        else:
            if a.arch:
                raise ExportError("--arch is only for --random-weights (a checkpoint names its model_type)")
            if len(a.paths) != 2:
                raise ExportError("expected CHECKPOINT OUT_DIR")
            ckpt, out_dir = a.paths
            arch, state_dict, labels, layout = load_checkpoint(ckpt, a.class_to_idx)
            model, width = model_from_state_dict(arch, state_dict, labels, ckpt)
            desc = a.description or (f"{arch}" + (f" width {width:g}" if arch == "cropshield_cnn" else "")
                                     + (" INT8" if a.quantize else "")
                                     + f" exported from {os.path.basename(ckpt)} ({layout})")
            quantization = None
            if a.quantize:
                model, quantization = quantize_model(model, a)
            export_model(model, arch, out_dir, name=a.name, version=a.version, repository=a.repository,
                         labels=labels, description=desc, untrained=False, force=a.force,
                         default_name=_sanitize(os.path.splitext(os.path.basename(ckpt))[0]),
                         quantization=quantization)
    except ExportError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 2
    except AssertionError as e:
        print(f"export.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
