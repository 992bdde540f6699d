#!/usr/bin/env python3
"""leafgen: determinism, shapes, lesion masks (non-empty exactly for diseased classes), CLI output."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import _paths
import numpy as np
from PIL import Image

import leafgen

MODEL_MD_LABELS = [
    "Potato__early_blight", "Potato__healthy", "Potato__late_blight", "Sugarcane__bacterial_blight",
    "Sugarcane__healthy", "Sugarcane__red_rot", "Sugarcane__red_stripe", "Sugarcane__rust",
    "Tomato__bacterial_spot", "Tomato__early_blight", "Tomato__healthy", "Tomato__late_blight",
    "Tomato__leaf_mold", "Tomato__mosaic_virus", "Tomato__septoria_leaf_spot",
    "Tomato__spider_mites_(two_spotted_spider_mite)", "Tomato__target_spot",
    "Tomato__yellow_leaf_curl_virus", "Wheat__brown_rust", "Wheat__healthy", "Wheat__septoria",
    "Wheat__yellow_rust",
]


class LeafgenTest(unittest.TestCase):
    def test_labels(self):
        self.assertEqual(leafgen.LABELS, MODEL_MD_LABELS)
        self.assertEqual(sorted(leafgen.HEALTHY), [1, 4, 10, 19])

    def test_deterministic(self):
        for c in (0, 6, 13, 15, 21):
            a_rgb, a_mask = leafgen.generate(c, 1234)
            b_rgb, b_mask = leafgen.generate(c, 1234)
            self.assertTrue(np.array_equal(a_rgb, b_rgb))
            self.assertTrue(np.array_equal(a_mask, b_mask))
            c_rgb, _ = leafgen.generate(c, 1235)
            self.assertFalse(np.array_equal(a_rgb, c_rgb), "another seed gives another image")
        # same seed, another class: another image
        self.assertFalse(np.array_equal(leafgen.generate(1, 7)[0], leafgen.generate(2, 7)[0]))

    def test_shapes_and_types(self):
        for (w, h) in ((256, 256), (320, 240), (200, 300), (64, 48)):
            rgb, mask = leafgen.generate(9, 3, w, h)
            self.assertEqual(rgb.shape, (h, w, 3))
            self.assertEqual(rgb.dtype, np.uint8)
            self.assertEqual(mask.shape, (h, w))
            self.assertEqual(mask.dtype, np.bool_)
            self.assertTrue(rgb.flags["C_CONTIGUOUS"])
        with self.assertRaises(ValueError):
            leafgen.generate(22, 0)
        with self.assertRaises(ValueError):
            leafgen.generate(-1, 0)

    def test_masks_non_empty_exactly_for_diseased_classes(self):
        for c in range(leafgen.NUM_CLASSES):
            for seed in range(6):
                rgb, mask = leafgen.generate(c, 1000 + seed)
                if c in leafgen.HEALTHY:
                    self.assertFalse(mask.any(), f"healthy class {c} seed {seed} has a lesion mask")
                else:
                    frac = mask.mean()
                    self.assertGreater(frac, 0.001, f"class {c} ({leafgen.LABELS[c]}) seed {seed}: empty mask")
                    self.assertLess(frac, 0.6, f"class {c} seed {seed}: mask covers {frac:.0%}")
                    # lesions show: masked pixels differ in colour from the rest of the image
                    self.assertGreater(np.abs(rgb[mask].mean(0) - rgb[~mask].mean(0)).max(), 3.0)

    def test_images_vary(self):
        """Backgrounds, poses and lighting vary between seeds: images of one class are not near-copies."""
        imgs = [leafgen.generate(4, s)[0].astype(np.float32) for s in range(4)]
        for i in range(3):
            self.assertGreater(np.abs(imgs[i] - imgs[i + 1]).mean(), 10.0)

    def test_large_non_square(self):
        rgb, mask = leafgen.generate(20, 5, 1200, 1600)
        self.assertEqual(rgb.shape, (1600, 1200, 3))
        self.assertTrue(mask.any())

    def test_speed(self):
        leafgen.generate(0, 0)
        t = time.perf_counter()
        n = 44
        for i in range(n):
            leafgen.generate(i % 22, i)
        per_image = (time.perf_counter() - t) / n
        # generous bound (shared CI machines); typically under 10 ms on an idle core
        self.assertLess(per_image, 0.1, f"{per_image * 1000:.1f} ms per 256x256 image")

    def test_cli(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, os.path.join(_paths.MODELS, "leafgen.py"), "--out", d,
                                "--per-class", "1", "--seed", "3", "--width", "96", "--height", "80",
                                "--jpeg-quality", "80", "--classes", "0,1,21"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "labels.json")) as f:
                labels = json.load(f)
            self.assertEqual(sorted(labels.values()), [0, 1, 21])
            for name, c in labels.items():
                self.assertTrue(name.startswith(f"{c:02d}_{leafgen.LABELS[c]}_"), name)
                with Image.open(os.path.join(d, name)) as im:
                    self.assertEqual(im.size, (96, 80))
                    self.assertEqual(im.format, "JPEG")
                with Image.open(os.path.join(d, name[:-4] + "_mask.png")) as im:
                    mask = np.asarray(im)
                self.assertEqual(mask.shape, (80, 96))
                self.assertEqual(bool(mask.any()), c not in leafgen.HEALTHY)
            r = subprocess.run([sys.executable, os.path.join(_paths.MODELS, "leafgen.py"), "--out", d,
                                "--per-class", "1", "--seed", "3", "--classes", "30"],
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()
