#!/usr/bin/env python3
"""export.py --quantize int8 (issue #15): the quantized module's Grad-CAM split, the metadata record,
photo-set hashes and the CLI's refusals. Small: a width-0.125 CNN and a few sample photos."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import _paths
import torch

import export
import quantize
from cropshield_cnn import CropShieldCNN

SAMPLES = os.path.join(_paths.MODELS, "samples")
PARSE = _paths.metadata_parser()


def call_export(*args):
    """export.main in this process; same exit codes and messages as the CLI."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = export.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


class Int8ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(3)
        cls.model = CropShieldCNN(num_classes=22, width=0.125).eval()
        # Calibration and held-out sets: disjoint halves of the samples.
        names = quantize.photo_files(SAMPLES)
        cls.calibration = os.path.join(cls.tmp.name, "calibration")
        cls.heldout = os.path.join(cls.tmp.name, "heldout")
        for directory, files in ((cls.calibration, names[:5]), (cls.heldout, names[5:])):
            os.makedirs(directory)
            for path in files:
                shutil.copy(path, directory)
        cls.checkpoint = os.path.join(cls.tmp.name, "ckpt.pth")
        torch.save({"model_state_dict": cls.model.state_dict(), "class_names": export.CROPSHIELD_LABELS,
                    "num_classes": 22, "model_type": "custom"}, cls.checkpoint)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_package_keeps_the_fp32_grad_cam_split_and_records_the_quantization(self):
        version_dir = os.path.join(self.tmp.name, "repo", "int8", "1")
        result = call_export(self.checkpoint, version_dir, "--quantize", "int8", "--calibration",
                             self.calibration, "--heldout", self.heldout)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(version_dir, "model.json")) as f:
            text = f.read()
        record = json.loads(text)["quantization"]
        self.assertEqual(set(record), set(_paths.proto_field_names()["Quantization"]))
        self.assertEqual(record["calibration_images"], 5)
        self.assertEqual(record["heldout_images"], 5)
        self.assertEqual(record["calibration_sha256"],
                         quantize.photo_set_sha256(quantize.photo_files(self.calibration)))
        if PARSE is not None:
            self.assertEqual(PARSE(text).quantization.engine, "onednn")
        scripted = torch.jit.load(os.path.join(version_dir, "model.pt")).eval()
        x = quantize.load_photos(quantize.photo_files(self.heldout)[:2])
        activation = scripted.features(x).detach().requires_grad_(True)
        self.assertEqual(activation.dtype, torch.float32)
        logits = scripted.head(activation)
        self.assertTrue(torch.equal(logits.detach(), scripted(x)))
        (gradient,) = torch.autograd.grad(logits[:, 0].sum(), activation)
        self.assertGreater(float(gradient.abs().sum()), 0.0)  # Grad-CAM has something to weigh

    def test_photo_set_hash_ignores_names_and_order_but_not_content(self):
        files = quantize.photo_files(SAMPLES)[:3]
        renamed = os.path.join(self.tmp.name, "renamed")
        os.makedirs(renamed)
        for i, path in enumerate(reversed(files)):
            shutil.copy(path, os.path.join(renamed, f"z{i}.jpg"))
        self.assertEqual(quantize.photo_set_sha256(files),
                         quantize.photo_set_sha256(quantize.photo_files(renamed)))
        self.assertNotEqual(quantize.photo_set_sha256(files), quantize.photo_set_sha256(files[:2]))

    def test_masks_are_not_calibration_photos(self):
        self.assertFalse(any("_mask." in p for p in quantize.photo_files(SAMPLES)))

    def test_refusals(self):
        out = os.path.join(self.tmp.name, "refused", "1")
        empty = os.path.join(self.tmp.name, "empty")
        os.makedirs(empty, exist_ok=True)
        cases = [
            ((self.checkpoint, out, "--quantize", "int8", "--calibration", self.calibration),
             "needs --calibration DIR and --heldout DIR"),
            ((self.checkpoint, out, "--calibration", self.calibration), "apply to --quantize int8 only"),
            ((self.checkpoint, out, "--quantize", "int8", "--calibration", empty, "--heldout",
              self.heldout), "holds no photos"),
            ((self.checkpoint, out, "--quantize", "int8", "--calibration", self.calibration, "--heldout",
              self.heldout, "--fp32-blocks", "4"), "fp32_blocks must be in 0..3"),
        ]
        for args, message in cases:
            result = call_export(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(message, result.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
