"""Post-training static INT8 quantization of the CropShield CNN for x86 CPUs (issue #15).

The quantized package keeps the Grad-CAM split of fp32 packages:
  features(x) = quantize -> quantized blocks (conv+BN+ReLU fused, int8) -> block4's output dequantized
  head(a)     = the fp32 global average pool and classifier
so Explain differentiates fp32 logits with respect to an fp32 activation, exactly as with fp32 packages.
Optionally the first blocks stay fp32 too (`fp32_blocks`), which costs speed and may help accuracy.

Weights are quantized per output channel (symmetric int8), activations per tensor (uint8, histogram
observer), with the `onednn` engine's default qconfig. The calibration photos are preprocessed exactly as
serving does (models/train_demo.py's validation transform: resize 256, center crop 224, normalise).
"""

from __future__ import annotations

import copy
import hashlib
import os
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
from torch.ao import quantization as tq

from cropshield_cnn import CropShieldCNN

ENGINE = "onednn"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
QUANTIZED_BLOCKS = ("block1", "block2", "block3", "block4")


class QuantizationError(Exception):
    """A problem with the quantization inputs (no photos, unsupported engine)."""


# --------------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------------


def photo_files(directory: str, limit: int = 0) -> List[str]:
    """Photos in `directory` (not recursive), sorted by name; lesion masks (`*_mask.*`) are skipped.
    `limit` > 0 keeps the first `limit`."""
    if not os.path.isdir(directory):
        raise QuantizationError(f"{directory} is not a directory")
    names = sorted(n for n in os.listdir(directory)
                   if n.lower().endswith(IMAGE_SUFFIXES) and "_mask." not in n)
    if limit > 0:
        names = names[:limit]
    if not names:
        raise QuantizationError(f"{directory} holds no photos ({', '.join(IMAGE_SUFFIXES)})")
    return [os.path.join(directory, n) for n in names]


def photo_set_sha256(files: Sequence[str]) -> str:
    """sha256 over the sorted sha256 hex digests of the files' bytes (one per line): independent of
    names and order, changed by any changed, added or removed photo."""
    digests = []
    for path in files:
        with open(path, "rb") as f:
            digests.append(hashlib.sha256(f.read()).hexdigest())
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def load_photos(files: Sequence[str]) -> torch.Tensor:
    """N x 3 x 224 x 224, preprocessed as serving does (train_demo's validation transform)."""
    from PIL import Image

    from train_demo import validation_transform

    transform = validation_transform()
    tensors = []
    for path in files:
        with Image.open(path) as image:
            tensors.append(transform(image.convert("RGB")))
    return torch.stack(tensors)


# --------------------------------------------------------------------------------------------------
# The quantized module
# --------------------------------------------------------------------------------------------------


class QuantizedCropShieldPackage(nn.Module):
    """forward(x) == head(features(x)); features ends dequantized so that head and Grad-CAM stay fp32."""

    def __init__(self, model: CropShieldCNN, fp32_blocks: int):
        super().__init__()
        blocks = [getattr(model, name) for name in QUANTIZED_BLOCKS]
        self.fp32_stem = nn.Sequential(*blocks[:fp32_blocks])
        self.quant = tq.QuantStub()
        self.quantized_blocks = nn.Sequential(*blocks[fp32_blocks:])
        self.dequant = tq.DeQuantStub()
        self.global_avg_pool = model.global_avg_pool
        self.classifier = model.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.quantized_blocks(self.quant(self.fp32_stem(x))))

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.global_avg_pool(a), 1))


def _fuse_block(block: nn.Sequential) -> None:
    # conv(0) + bn(1) + relu(2), conv(3) + bn(4) + relu(5): one quantized conv-relu each.
    tq.fuse_modules(block, [["0", "1", "2"], ["3", "4", "5"]], inplace=True)


def set_engine(engine: str = ENGINE) -> None:
    if engine not in torch.backends.quantized.supported_engines:
        raise QuantizationError(f"quantized engine '{engine}' is not available in this torch "
                                f"(has: {', '.join(torch.backends.quantized.supported_engines)})")
    torch.backends.quantized.engine = engine


def quantize(model: CropShieldCNN, calibration: torch.Tensor, fp32_blocks: int = 0,
             batch_size: int = 16) -> nn.Module:
    """An eager quantized copy of `model` (eval mode), calibrated on `calibration` (N x 3 x H x W)."""
    if not 0 <= fp32_blocks < len(QUANTIZED_BLOCKS):
        raise QuantizationError(f"fp32_blocks must be in 0..{len(QUANTIZED_BLOCKS) - 1}")
    set_engine()
    package = QuantizedCropShieldPackage(copy.deepcopy(model).eval(), fp32_blocks).eval()
    for block in package.quantized_blocks:
        _fuse_block(block)
    package.qconfig = tq.get_default_qconfig(ENGINE)
    for fp32_part in (package.fp32_stem, package.global_avg_pool, package.classifier):
        fp32_part.qconfig = None
    prepared = tq.prepare(package, inplace=False)
    with torch.no_grad():
        for batch in calibration.split(batch_size):
            prepared.features(batch)
    return tq.convert(prepared, inplace=False).eval()


def fp32_layers(fp32_blocks: int) -> List[str]:
    """Names (in the original model) of the layers that stay fp32."""
    return list(QUANTIZED_BLOCKS[:fp32_blocks]) + ["global_avg_pool", "classifier"]


# --------------------------------------------------------------------------------------------------
# Agreement with fp32
# --------------------------------------------------------------------------------------------------


def probabilities(model, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([torch.softmax(model(b), 1) for b in images.split(batch_size)])


def agreement(fp32_probs: torch.Tensor, int8_probs: torch.Tensor) -> Dict[str, float]:
    """Top-1 agreement (fraction) and largest |probability difference| over a set."""
    same = (fp32_probs.argmax(1) == int8_probs.argmax(1)).float().mean()
    return {
        "top1_agreement": float(same),
        "max_probability_diff": float((fp32_probs - int8_probs).abs().max()),
    }


# --------------------------------------------------------------------------------------------------
# Export step
# --------------------------------------------------------------------------------------------------


def quantize_for_export(model: nn.Module, calibration_dir: str, heldout_dir: str,
                        calibration_count: int = 0, heldout_count: int = 0,
                        fp32_blocks: int = 0) -> Tuple[nn.Module, dict]:
    """The quantized package module and its metadata record (cropshield.v1.Quantization as a dict):
    calibrated on the photos of `calibration_dir`, compared with `model` on those of `heldout_dir`."""
    if not isinstance(model, CropShieldCNN):
        raise QuantizationError("--quantize int8 supports the CropShield CNN (cropshield_cnn) only")
    calibration_files = photo_files(calibration_dir, calibration_count)
    heldout_files = photo_files(heldout_dir, heldout_count)
    quantized = quantize(model.eval(), load_photos(calibration_files), fp32_blocks)
    heldout = load_photos(heldout_files)
    measured = agreement(probabilities(model, heldout), probabilities(quantized, heldout))
    record = {
        "dtype": "int8",
        "engine": ENGINE,
        "fp32_layers": fp32_layers(fp32_blocks),
        "calibration_sha256": photo_set_sha256(calibration_files),
        "calibration_images": len(calibration_files),
        "heldout_sha256": photo_set_sha256(heldout_files),
        "heldout_images": len(heldout_files),
        "heldout_top1_agreement": round(measured["top1_agreement"], 6),
        "heldout_max_probability_diff": round(measured["max_probability_diff"], 6),
    }
    return quantized, record
