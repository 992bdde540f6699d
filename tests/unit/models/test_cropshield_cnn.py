#!/usr/bin/env python3
"""CropShield CNN definition: parameter count, state_dict key names, topology, width handling."""
import unittest

import _paths  # noqa: F401  (puts models/ on sys.path)
import torch
from torch import nn

from cropshield_cnn import (FULL_WIDTH_PARAMETERS, CropShieldCNN, block_channels, count_parameters,
                            width_from_state_dict)


class CropShieldCNNTest(unittest.TestCase):
    def test_full_width_parameter_count(self):
        model = CropShieldCNN()
        self.assertEqual(count_parameters(model), 4_698_582)
        self.assertEqual(FULL_WIDTH_PARAMETERS, 4_698_582)

    def test_state_dict_keys(self):
        keys = set(CropShieldCNN().state_dict())
        for k in ("block1.0.weight", "block1.1.weight", "block1.1.bias", "block1.1.running_mean",
                  "block1.1.running_var", "block1.1.num_batches_tracked", "block1.3.weight",
                  "block2.4.running_var", "block3.0.weight", "block4.4.num_batches_tracked",
                  "classifier.1.weight", "classifier.1.bias"):
            self.assertIn(k, keys)
        self.assertEqual(len(keys), 4 * 12 + 2)
        self.assertFalse(any(k.startswith("global_avg_pool") for k in keys))
        self.assertFalse(any(k.endswith(".0.bias") or k.endswith(".3.bias") for k in keys if k.startswith("block")),
                         "convolutions have no bias")

    def test_topology(self):
        m = CropShieldCNN()
        rates = []
        for i, (name, ch) in enumerate(zip(("block1", "block2", "block3", "block4"), (64, 128, 256, 512))):
            blk = getattr(m, name)
            self.assertIsInstance(blk, nn.Sequential)
            kinds = [type(x) for x in blk]
            self.assertEqual(kinds, [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU,
                                     nn.MaxPool2d, nn.Dropout2d])
            self.assertEqual(blk[0].out_channels, ch)
            self.assertEqual(blk[0].kernel_size, (3, 3))
            self.assertEqual(blk[0].padding, (1, 1))
            self.assertIsNone(blk[0].bias)
            rates.append(blk[7].p)
        self.assertEqual(rates, [0.25, 0.30, 0.35, 0.5])
        self.assertIsInstance(m.global_avg_pool, nn.AdaptiveAvgPool2d)
        self.assertIsInstance(m.classifier[0], nn.Dropout)
        self.assertEqual(m.classifier[0].p, 0.5)
        self.assertEqual((m.classifier[1].in_features, m.classifier[1].out_features), (512, 22))

    def test_shapes_and_split(self):
        m = CropShieldCNN(width=0.125).eval()
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            a = m.features(x)
            self.assertEqual(tuple(a.shape), (2, 64, 14, 14))
            self.assertTrue(torch.equal(m(x), m.head(a)))
            self.assertEqual(tuple(m(x).shape), (2, 22))

    def test_width(self):
        self.assertEqual(block_channels(1.0), [64, 128, 256, 512])
        self.assertEqual(block_channels(0.125), [8, 16, 32, 64])
        self.assertEqual(block_channels(0.001), [1, 1, 1, 1])
        for w in (1.0, 0.5, 0.25, 0.125, 0.0625, 0.1875):
            sd = CropShieldCNN(num_classes=5, width=w).state_dict()
            w2 = width_from_state_dict(sd)
            CropShieldCNN(num_classes=5, width=w2).load_state_dict(sd, strict=True)
        with self.assertRaises(ValueError):
            CropShieldCNN(width=0)


if __name__ == "__main__":
    unittest.main()
