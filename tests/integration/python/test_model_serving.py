"""Model packages through the running server: export round trip of freshly initialised full-width
CropShield CNN checkpoints in both layouts, and top-1 agreement between the server's C++
preprocessing and torchvision's on a held-out generated set."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

import cropshield_testing as cst
from cropshield_testing import Server, jpeg_bytes, png_bytes, probabilities

sys.path.insert(0, os.path.join(cst.SOURCE_DIR, "models"))
import leafgen  # noqa: E402
from cropshield_cnn import CropShieldCNN  # noqa: E402

EXPORT = os.path.join(cst.SOURCE_DIR, "models", "export.py")
HELD_OUT_SEED = 515151


def torchvision_probabilities(scripted, pil_image):
    from torchvision import transforms
    transform = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        return torch.softmax(scripted(transform(pil_image).unsqueeze(0)), 1)[0].numpy()


class ExportRoundTripTest(unittest.TestCase):
    def fresh_model(self, seed):
        torch.manual_seed(seed)
        net = CropShieldCNN(num_classes=22, width=1.0)
        # Non-trivial BatchNorm statistics and a sharper classifier, so the probabilities are far from
        # uniform and a 1e-4 comparison means something.
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        net.classifier[1].weight.data.mul_(40)
        return net.eval()

    def check_served(self, package_dir, net):
        rgb = leafgen.generate(13, HELD_OUT_SEED, 256, 256)[0]
        x = torch.from_numpy(rgb[16:240, 16:240].copy()).permute(2, 0, 1).float().div(255)
        x = (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]).view(3, 1, 1)
        with torch.no_grad():
            expected = torch.softmax(net(x.unsqueeze(0)), 1)[0].numpy()
        with Server(f"--model={package_dir}") as server:
            served = probabilities(server.predict(png_bytes(rgb)), 22)
        diff = float(np.abs(served - expected).max())
        print(f"{package_dir}: max |served - eager| = {diff:.2e}, eager max p = {expected.max():.3f}")
        self.assertLessEqual(diff, 1e-4)
        self.assertGreater(expected.max(), 2.0 / 22)  # well above uniform

    def test_dict_checkpoint(self):
        net = self.fresh_model(11)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = os.path.join(tmp, "best_model.pth")
            torch.save({"model_state_dict": net.state_dict(), "class_names": leafgen.LABELS,
                        "num_classes": 22, "model_type": "custom", "epoch": 3,
                        "best_val_acc": 0.5}, checkpoint)
            out = os.path.join(tmp, "repo")
            subprocess.run([sys.executable, EXPORT, checkpoint, out, "--repository",
                            "--name", "cropshield-cnn"], check=True, stdout=subprocess.DEVNULL)
            self.check_served(out, net)

    def test_bare_state_dict_with_class_to_idx(self):
        net = self.fresh_model(12)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = os.path.join(tmp, "model.pth")
            torch.save(net.state_dict(), checkpoint)
            with open(os.path.join(tmp, "class_to_idx.json"), "w") as f:
                json.dump({label: i for i, label in enumerate(leafgen.LABELS)}, f)
            out = os.path.join(tmp, "bare", "3")
            subprocess.run([sys.executable, EXPORT, checkpoint, out], check=True,
                           stdout=subprocess.DEVNULL)
            self.check_served(out, net)


class PreprocessingAgreementTest(unittest.TestCase):
    def test_server_and_torchvision_agree_on_top1(self):
        from PIL import Image
        import io
        scripted = torch.jit.load(
            os.path.join(cst.DEMO_REPOSITORY, "cropshield-demo", "1", "model.pt")).eval()
        sizes = [(640, 480), (480, 640), (1024, 768), (300, 400), (800, 800), (1600, 1200)]
        agree, total, correct_server, correct_torch = 0, 0, 0, 0
        with Server(f"--model={cst.DEMO_REPOSITORY}") as server:
            for c in range(22):
                for k in range(len(sizes)):
                    width, height = sizes[(c + k) % len(sizes)]
                    rgb = leafgen.generate(c, HELD_OUT_SEED + 31 * c + k, width, height)[0]
                    data = jpeg_bytes(rgb, quality=90)
                    served = server.predict(data, top_k=1).predictions[0].class_index
                    reference = int(np.argmax(torchvision_probabilities(
                        scripted, Image.open(io.BytesIO(data)).convert("RGB"))))
                    total += 1
                    agree += served == reference
                    correct_server += served == c
                    correct_torch += reference == c
        print(f"top-1 agreement server vs torchvision: {agree}/{total} = {agree / total:.1%}; "
              f"accuracy server {correct_server / total:.1%}, torchvision {correct_torch / total:.1%}")
        self.assertGreaterEqual(agree / total, 0.99)


if __name__ == "__main__":
    unittest.main(verbosity=2)
