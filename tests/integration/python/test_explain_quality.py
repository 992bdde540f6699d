"""Grad-CAM quality through the running server: agreement with an independent hook-based Python
implementation, localization on generated leaves with lesion masks (pointing game), and the
model-randomization sanity check of Adebayo et al. (2018)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

import cropshield_testing as cst
from cropshield_testing import Server, float_map, pb, png_bytes

sys.path.insert(0, os.path.join(cst.SOURCE_DIR, "models"))
import leafgen  # noqa: E402
from cropshield_cnn import CropShieldCNN, width_from_state_dict  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
DEMO_PACKAGE = os.path.join(cst.DEMO_REPOSITORY, "cropshield-demo", "1")
HELD_OUT_SEED = 909090  # not the training seed


def eager_from_package(package_dir):
    """The eager CropShield CNN holding a package's weights (independent of the scripted wrapper)."""
    scripted = torch.jit.load(os.path.join(package_dir, "model.pt"), map_location="cpu")
    state = {k[len("model."):]: v for k, v in scripted.state_dict().items() if k.startswith("model.")}
    net = CropShieldCNN(num_classes=22, width=width_from_state_dict(state))
    net.load_state_dict(state, strict=True)
    return net.eval()


def hook_grad_cam(net, layer, x, target):
    """Textbook hook-based Grad-CAM: full-network backward, hooks on the target layer."""
    captured = {}

    def forward_hook(_module, _inputs, output):
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = layer.register_forward_hook(forward_hook)
    try:
        logits = net(x)
        net.zero_grad()
        logits[0, target].backward()
    finally:
        handle.remove()
    a = captured["activation"].detach()[0].double()
    g = captured["gradient"].detach()[0].double()
    cam = torch.relu((g.mean(dim=(1, 2), keepdim=True) * a).sum(0))
    cam = (cam - cam.min()) / torch.clamp_min(cam.max() - cam.min(), 1e-12)
    return cam.numpy(), int(logits.argmax())


def model_input(rgb256):
    """The exact tensor the server builds from a 256x256 photo: center crop 224, normalise."""
    x = torch.from_numpy(rgb256[16:240, 16:240].copy()).permute(2, 0, 1).float().div(255.0)
    return ((x.unsqueeze(0) - MEAN) / STD).requires_grad_(False)


def spearman(a, b):
    def ranks(v):
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        # average the ranks of ties (ReLU maps have many zeros)
        for value in np.unique(v):
            tie = v == value
            if tie.sum() > 1:
                r[tie] = r[tie].mean()
        return r
    ra, rb = ranks(np.ravel(a)), ranks(np.ravel(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


class ExplainAgreementTest(unittest.TestCase):
    def check_agreement(self, package_dir, images):
        net = eager_from_package(package_dir)
        worst = 0.0
        with Server(f"--model={package_dir}", "--explain_cache_bytes=0") as server:
            for rgb in images:
                with torch.no_grad():
                    top1 = int(net(model_input(rgb)).argmax())
                cam, _ = hook_grad_cam(net, net.block4, model_input(rgb), target=top1)
                response = server.explain(png_bytes(rgb), class_index=top1)
                served = float_map(response.feature_map)
                self.assertEqual(served.shape, cam.shape)
                worst = max(worst, float(np.abs(served - cam).max()))
        return worst

    def test_demo_model_matches_hook_based_grad_cam(self):
        images = [leafgen.generate(c, HELD_OUT_SEED + c, 256, 256)[0] for c in range(0, 22, 3)]
        worst = self.check_agreement(DEMO_PACKAGE, images)
        print(f"demo model: max |server - hook Grad-CAM| = {worst:.2e}")
        self.assertLessEqual(worst, 1e-3)

    def test_random_full_width_cnn_matches_hook_based_grad_cam(self):
        with tempfile.TemporaryDirectory() as tmp:
            package = os.path.join(tmp, "random-cnn", "1")
            subprocess.run([sys.executable, os.path.join(cst.SOURCE_DIR, "models", "export.py"),
                            "--arch", "cropshield_cnn", "--random-weights", "--seed", "5", package],
                           check=True, stdout=subprocess.DEVNULL)
            images = [leafgen.generate(c, HELD_OUT_SEED + c, 256, 256)[0] for c in (1, 9, 20)]
            worst = self.check_agreement(package, images)
        print(f"random full-width CNN: max |server - hook Grad-CAM| = {worst:.2e}")
        self.assertLessEqual(worst, 1e-3)


class ExplainLocalizationTest(unittest.TestCase):
    # The pointing game of Zhang et al. (2016, "Top-down neural attention by excitation backprop"):
    # a hit when the map's peak lies within 15 pixels of the ground-truth region. The map has 14x14
    # cells of 18-23 photo pixels here, so the tolerance is below one cell.
    TOLERANCE_PX = 15

    def test_peak_falls_inside_a_lesion(self):
        distances, misses = [], []
        with Server(f"--model={cst.DEMO_REPOSITORY}") as server:
            for c in range(22):
                if leafgen.is_healthy(c):
                    continue
                for k in range(5):
                    seed = HELD_OUT_SEED + 100 * c + k
                    width, height = (320, 256) if k % 2 else (256, 320)
                    rgb, mask = leafgen.generate(c, seed, width, height)
                    response = server.explain(
                        png_bytes(rgb), class_index=c,
                        outputs=pb.ExplainOutputs(image_map=True))
                    photo_map = float_map(response.image_map)
                    self.assertEqual(photo_map.shape, mask.shape)
                    y, x = np.unravel_index(np.argmax(photo_map), photo_map.shape)
                    ys, xs = np.nonzero(mask)
                    self.assertGreater(len(ys), 0, "diseased leaves have lesions")
                    distance = float(np.sqrt((ys - y) ** 2 + (xs - x) ** 2).min())
                    distances.append(distance)
                    if distance > self.TOLERANCE_PX:
                        misses.append((leafgen.LABELS[c], round(distance, 1)))
        distances = np.array(distances)
        strict = float((distances == 0).mean())
        hits = float((distances <= self.TOLERANCE_PX).mean())
        print(f"pointing game over {len(distances)} diseased leaves: peak inside a lesion "
              f"{strict:.1%}, within {self.TOLERANCE_PX} px {hits:.1%}, within 5 px "
              f"{float((distances <= 5).mean()):.1%}; misses {misses}")
        self.assertGreaterEqual(hits, 0.90)


class ExplainSanityTest(unittest.TestCase):
    def test_randomizing_head_and_last_block_destroys_the_map(self):
        net = eager_from_package(DEMO_PACKAGE)
        torch.manual_seed(1234)
        for module in list(net.block4.modules()) + list(net.classifier.modules()):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        images = [(c, leafgen.generate(c, HELD_OUT_SEED + 7 * c, 256, 256)[0])
                  for c in range(22) if not leafgen.is_healthy(c)]
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = os.path.join(tmp, "randomized.pth")
            torch.save({"model_state_dict": net.state_dict(), "class_names": leafgen.LABELS,
                        "num_classes": 22, "model_type": "custom"}, checkpoint)
            package = os.path.join(tmp, "randomized", "1")
            subprocess.run([sys.executable, os.path.join(cst.SOURCE_DIR, "models", "export.py"),
                            checkpoint, package], check=True, stdout=subprocess.DEVNULL)
            maps = {}
            for name, model in (("original", DEMO_PACKAGE), ("randomized", package)):
                with Server(f"--model={model}") as server:
                    maps[name] = [float_map(server.explain(png_bytes(rgb), class_index=c).feature_map)
                                  for c, rgb in images]
        correlations = [spearman(a, b) for a, b in zip(maps["original"], maps["randomized"])]
        mean = float(np.mean(correlations))
        print(f"Spearman rank correlation original vs randomized: mean {mean:.3f}, "
              f"max {max(correlations):.3f} over {len(correlations)} images")
        self.assertLess(mean, 0.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
