"""CMYK JPEGs through the running server (issue #17 item 4): before, Predict refused them with "4
colour components (CMYK is not supported)". Each sample photo is converted with PIL to CMYK and
saved as JPEG (Adobe, inverted CMYK, as print workflows write it), and the server's Predict on it
is compared with its Predict on PIL's reading of that file, Image.open(...).convert("RGB"), saved
as PNG: the same top-1 class and nearly the same probabilities."""

import glob
import io
import os
import unittest

import numpy as np
from PIL import Image, ImageOps

import cropshield_testing as cst
from cropshield_testing import Server, probabilities

# Measured (2-core VM, demo model, 2026-12): largest probability difference 0.0001-0.016 over the
# 10 samples (0.016: the 512x512 one, decoded at DCT scale 1/2, which the PNG is not).
MAX_PROBABILITY_DIFF = 0.03


def cmyk_jpeg(path):
    with Image.open(path) as photo:
        rgb = ImageOps.exif_transpose(photo).convert("RGB")
    out = io.BytesIO()
    rgb.convert("CMYK").save(out, "JPEG", quality=92)
    return out.getvalue()


def pil_rgb_png(jpeg):
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.mode == "CMYK", image.mode
        out = io.BytesIO()
        image.convert("RGB").save(out, "PNG")
        return out.getvalue()


class CmykTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--model=" + cst.DEMO_REPOSITORY, "--metrics_address=",
                            "--device=cpu", "--workers=1")
        response = cls.server.stub.Stats(cst.pb.StatsRequest(), timeout=30)
        cls.classes = len(response.models[0].labels)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_cmyk_jpeg_predicts_like_pil_rgb(self):
        photos = sorted(p for p in glob.glob(os.path.join(cst.SOURCE_DIR, "models", "samples",
                                                          "*.jpg")))
        self.assertGreater(len(photos), 3)
        for path in photos:
            with self.subTest(photo=os.path.basename(path)):
                jpeg = cmyk_jpeg(path)
                cmyk = probabilities(self.server.predict(jpeg), self.classes)
                rgb = probabilities(self.server.predict(pil_rgb_png(jpeg)), self.classes)
                diff = float(np.abs(cmyk - rgb).max())
                print(f"{os.path.basename(path)}: top-1 {int(np.argmax(cmyk))} vs "
                      f"{int(np.argmax(rgb))}, largest probability difference {diff:.4f}")
                self.assertEqual(int(np.argmax(cmyk)), int(np.argmax(rgb)))
                self.assertLessEqual(diff, MAX_PROBABILITY_DIFF)


if __name__ == "__main__":
    unittest.main(verbosity=2)
