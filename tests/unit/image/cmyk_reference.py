#!/usr/bin/env python3
"""Writes CMYK JPEGs with PIL and PIL's RGB reading of every JPEG, for image_cmyk_parity_test.

Usage: cmyk_reference.py OUT_DIR

Writes OUT_DIR/cmyk_WxH.jpg: a photo-like image converted with PIL's convert("CMYK") and saved by
PIL (4 components, Adobe APP14 segment, transform 0: plain inverted CMYK, as print workflows and
PIL write them), and OUT_DIR/cmyk_exif6.jpg, the same with EXIF orientation 6. Then, for every
*.jpg in OUT_DIR (including JPEGs the test wrote before running this script, e.g. YCCK from
TurboJPEG), writes <name>.jpg.rgb: the raw interleaved RGB8 bytes of
ImageOps.exif_transpose(Image.open(<name>.jpg)).convert("RGB"), preceded by a line "WIDTH HEIGHT".
Deterministic: the pixels depend only on the size. Needs PIL and numpy (Debian python3-pil,
python3-numpy).
"""
import glob
import os
import sys

import numpy as np
from PIL import Image, ImageOps

SIZES = ((640, 480), (301, 199))


def photo_like(width, height):
    """Smooth colour gradients, a leaf-like ellipse with a hard edge, and a little noise."""
    rng = np.random.default_rng(width * 7919 + height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    rgb = np.stack([40 + 180 * u, 60 + 150 * v, 200 - 160 * u * v], axis=-1)
    leaf = ((u - 0.5) / 0.35) ** 2 + ((v - 0.5) / 0.28) ** 2 < 1.0
    rgb = np.where(leaf[..., None], np.stack([50 + 60 * v, 150 + 60 * u, 30 + 30 * u], -1), rgb)
    rgb += rng.normal(0, 4.0, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def write_reference(path):
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    with open(path + ".rgb", "wb") as out:
        out.write(f"{rgb.width} {rgb.height}\n".encode())
        out.write(rgb.tobytes())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for width, height in SIZES:
        cmyk = Image.fromarray(photo_like(width, height)).convert("CMYK")
        cmyk.save(os.path.join(out_dir, f"cmyk_{width}x{height}.jpg"), "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(photo_like(320, 200)).convert("CMYK").save(
        os.path.join(out_dir, "cmyk_exif6.jpg"), "JPEG", quality=90, exif=exif.tobytes())
    for path in sorted(glob.glob(os.path.join(out_dir, "*.jpg"))):
        write_reference(path)


if __name__ == "__main__":
    main()
