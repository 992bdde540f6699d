#!/usr/bin/env python3
"""The committed demo package (models/repository/cropshield-demo/1) and the samples.

- the package is valid (metadata as the server parses it, hash, names) and small;
- the scripted model.pt scores at least 95% top-1 on a held-out set generated here, with leafgen seeds
  that neither training (10M + ...) nor the model card's evaluation (50M + ...) used, through
  torchvision's validation transform;
- the sample photos in models/samples/ are classified as labelled.
"""
import json
import os
import unittest

import _paths
import numpy as np
import torch
import xxhash
from PIL import Image
from torchvision import transforms

import leafgen
from cropshield_cnn import CropShieldCNN, width_from_state_dict

MODEL_DIR = os.path.join(_paths.MODELS, "repository", "cropshield-demo")
VERSION_DIR = os.path.join(MODEL_DIR, "1")
SAMPLES = os.path.join(_paths.MODELS, "samples")
TEST_SEED_BASE = 90_000_000
PER_CLASS = 20


def validation_transform():
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


class DemoModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.model = torch.jit.load(os.path.join(VERSION_DIR, "model.pt"), map_location="cpu")
        cls.model.eval()
        with open(os.path.join(VERSION_DIR, "model.json")) as f:
            cls.meta_text = f.read()
        cls.meta = json.loads(cls.meta_text)
        cls.tf = validation_transform()

    def predict(self, images):
        x = torch.stack([self.tf(im) for im in images])
        with torch.no_grad():
            return self.model(x).argmax(1).tolist()

    def test_package(self):
        m = self.meta
        self.assertEqual(m["name"], "cropshield-demo")
        self.assertEqual(m["version"], 1)
        self.assertEqual(m["architecture"], "cropshield_cnn")
        self.assertFalse(m["untrained"])
        self.assertEqual(m["labels"], leafgen.LABELS)
        self.assertEqual(m["grad_cam"], {"features_method": "features", "head_method": "head",
                                         "target_layer": "block4"})
        pt = os.path.join(VERSION_DIR, m["weights_file"])
        with open(pt, "rb") as f:
            self.assertEqual(xxhash.xxh3_128_hexdigest(f.read()), m["weights_xxh3_128"])
        self.assertLess(os.path.getsize(pt) + len(self.meta_text), 5_000_000)
        parse = _paths.metadata_parser()
        if parse is not None:
            self.assertEqual(parse(self.meta_text).name, "cropshield-demo")
        self.assertTrue(os.path.isfile(os.path.join(MODEL_DIR, "MODEL_CARD.md")))
        # Grad-CAM split and eval mode
        self.assertFalse(self.model.training)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            act = self.model.features(x)
            self.assertEqual(act.dim(), 4)
            self.assertEqual(tuple(act.shape[2:]), (14, 14))
            self.assertLessEqual((self.model.head(act) - self.model(x)).abs().max().item(), 1e-5)

    def test_eager_weights_match(self):
        sd = {k[len("model."):]: v for k, v in self.model.state_dict().items() if k.startswith("model.")}
        eager = CropShieldCNN(num_classes=22, width=width_from_state_dict(sd))
        eager.load_state_dict(sd, strict=True)
        eager.eval()
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            self.assertLessEqual((eager(x) - self.model(x)).abs().max().item(), 1e-5)

    def test_heldout_accuracy(self):
        rng = np.random.default_rng(2024)
        correct = 0
        total = 0
        misses = {}
        for c in range(leafgen.NUM_CLASSES):
            images = []
            for k in range(PER_CLASS):
                short = int(rng.integers(224, 289))
                long_ = int(round(short * rng.uniform(1.0, 1.4)))
                w, h = (long_, short) if rng.random() < 0.5 else (short, long_)
                rgb, _ = leafgen.generate(c, TEST_SEED_BASE + k, w, h)
                images.append(Image.fromarray(rgb))
            preds = self.predict(images)
            for p in preds:
                total += 1
                if p == c:
                    correct += 1
                else:
                    key = f"{leafgen.LABELS[c]} -> {leafgen.LABELS[p]}"
                    misses[key] = misses.get(key, 0) + 1
        acc = correct / total
        print(f"\nheld-out top-1 accuracy: {acc * 100:.2f}% ({correct}/{total}); misses: {misses}")
        self.assertGreaterEqual(acc, 0.95, f"misses: {misses}")

    def test_samples(self):
        with open(os.path.join(SAMPLES, "labels.json")) as f:
            labels = json.load(f)
        self.assertGreater(len(labels), 0)
        crops = set()
        large_non_square = 0
        total_bytes = 0
        for name, info in sorted(labels.items()):
            self.assertEqual(set(info), {"class_index", "label"})
            self.assertEqual(leafgen.LABELS[info["class_index"]], info["label"])
            crops.add(info["label"].split("__")[0])
            path = os.path.join(SAMPLES, name)
            total_bytes += os.path.getsize(path)
            with Image.open(path) as im:
                self.assertEqual(im.format, "JPEG")
                w, h = im.size
                large_non_square += w != h and max(w, h) > 1000
                pred = self.predict([im.convert("RGB")])[0]
            self.assertEqual(leafgen.LABELS[pred], info["label"], name)
            mask = path[:-4] + "_mask.png"
            if os.path.exists(mask):
                total_bytes += os.path.getsize(mask)
                with Image.open(mask) as m:
                    self.assertEqual(m.size, (w, h))
                    self.assertEqual(bool(np.asarray(m).any()), not info["label"].endswith("__healthy"))
        self.assertEqual(crops, {"Potato", "Sugarcane", "Tomato", "Wheat"})
        self.assertGreaterEqual(large_non_square, 2)
        self.assertLess(total_bytes, 1_500_000)


if __name__ == "__main__":
    unittest.main()
