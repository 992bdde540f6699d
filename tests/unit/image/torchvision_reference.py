#!/usr/bin/env python3
"""Writes photo-like test images and torchvision reference tensors for image_parity_test.

Usage: torchvision_reference.py OUT_DIR WIDTHxHEIGHT [WIDTHxHEIGHT ...]

For every size it writes OUT_DIR/WxH.jpg (PIL, quality 90, 4:2:0) and OUT_DIR/WxH.png, and next to
each image <image>.f32: the raw float32 CHW tensor of

    Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])

applied to Image.open(<image>).convert("RGB"), i.e. exactly what the training pipeline feeds the
model. Also OUT_DIR/WxH.x1.jpg and WxH.y1.jpg: the photo moved by one pixel along x or y (no
reference of their own: the test checks that its bounds reject them against WxH.jpg's). Deterministic:
the pixels depend only on the size.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def smooth_noise(rng, width, height, cell):
    """Band-limited noise: a random grid with `cell`-pixel spacing, bicubically interpolated."""
    grid = rng.standard_normal((height // cell + 3, width // cell + 3)).astype(np.float32)
    big = Image.fromarray(grid, mode="F").resize(
        ((width // cell + 3) * cell, (height // cell + 3) * cell), Image.BICUBIC)
    return np.asarray(big)[:height, :width]


def photo_like(width, height):
    """A leaf on a soil-like background: gradients, a sharp leaf edge, veins, 1/f texture, noise."""
    rng = np.random.default_rng(width * 100003 + height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height

    rgb = np.stack([
        90 + 70 * u + 20 * np.sin(3.1 * v + 1.0),
        70 + 40 * v + 15 * np.cos(2.3 * np.pi * u),
        45 + 35 * (1 - u) * v,
    ], axis=-1)

    # Elliptical leaf with a midrib and side veins; its edge is a hard step.
    cx, cy = 0.5 + 0.05 * np.sin(width), 0.5
    du, dv = (u - cx) / 0.38, (v - cy) / 0.30
    leaf = (du * du + dv * dv) < 1.0
    veins = (np.abs(v - cy) < 0.006) | (np.abs(np.sin(40 * (u - cx) + 25 * np.abs(v - cy))) < 0.08)
    leaf_rgb = np.stack([60 + 40 * v, 140 + 50 * u, 40 + 20 * u], axis=-1)
    leaf_rgb[veins & leaf] += 45
    rgb = np.where(leaf[..., None], leaf_rgb, rgb)

    # Roughly 1/f texture at absolute pixel scales (what resampling filters care about), partly
    # shared between channels like real luminance texture.
    texture = np.zeros((height, width), np.float32)
    for cell, amplitude in ((64, 14), (24, 9), (8, 6), (3, 4)):
        texture += amplitude * smooth_noise(rng, width, height, cell)
    rgb += texture[..., None] * np.array([1.0, 0.9, 0.7], np.float32)
    rgb += rng.normal(0, 3.0, rgb.shape)  # sensor noise
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    preprocess = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    for size in sys.argv[2:]:
        width, height = (int(s) for s in size.split("x"))
        pixels = photo_like(width, height)
        image = Image.fromarray(pixels, mode="RGB")
        # The same photo misregistered by one pixel (content moved right, or down; the wrapped
        # column or row lies outside the center crop): what a geometry error would give.
        for name, axis in (("x1", 1), ("y1", 0)):
            Image.fromarray(np.roll(pixels, 1, axis=axis), mode="RGB").save(
                os.path.join(out_dir, f"{width}x{height}.{name}.jpg"), quality=90)
        for ext, options in (("jpg", {"quality": 90}), ("png", {})):
            path = os.path.join(out_dir, f"{width}x{height}.{ext}")
            image.save(path, **options)
            with torch.no_grad():
                tensor = preprocess(Image.open(path).convert("RGB"))
            assert tuple(tensor.shape) == (3, 224, 224), tensor.shape
            tensor.numpy().astype(np.float32).tofile(path + ".f32")


if __name__ == "__main__":
    main()
