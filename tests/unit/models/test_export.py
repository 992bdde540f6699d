#!/usr/bin/env python3
"""export.py: round trips of CropShield checkpoints in both layouts, metadata, hashes, bad inputs."""
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

import _paths
import torch
import xxhash

import export
import leafgen
from cropshield_cnn import CropShieldCNN

EXPORT = os.path.join(_paths.MODELS, "export.py")
PARSE = _paths.metadata_parser()


def run_export(*args, timeout=300):
    """export.py as a separate process (the real CLI)."""
    return subprocess.run([sys.executable, EXPORT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def call_export(*args):
    """export.main in this process (saves a torch import per call); same exit codes and messages."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = export.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def read_json(path):
    with open(path) as f:
        return json.load(f)


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        torch.manual_seed(11)
        cls.model = CropShieldCNN()  # freshly initialised, full width
        # make BatchNorm statistics non-trivial so that eval-mode export is really exercised
        with torch.no_grad():
            for m in cls.model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
        cls.model.eval()
        cls.labels = list(leafgen.LABELS)
        cls.dict_ckpt = os.path.join(cls.dir, "best_model.pth")
        torch.save({"model_state_dict": cls.model.state_dict(), "class_names": cls.labels,
                    "num_classes": 22, "model_type": "custom", "epoch": 17,
                    "optimizer_state_dict": {"state": {}, "param_groups": []}, "scheduler_state_dict": {},
                    "best_val_acc": 0.93, "history": {"train_loss": [1.0, 0.5]}}, cls.dict_ckpt)
        os.makedirs(os.path.join(cls.dir, "old"))
        cls.bare_ckpt = os.path.join(cls.dir, "old", "model.pth")
        torch.save(cls.model.state_dict(), cls.bare_ckpt)
        with open(os.path.join(cls.dir, "old", "class_to_idx.json"), "w") as f:
            json.dump({name: i for i, name in enumerate(cls.labels)}, f)
        cls.x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            cls.ref_logits = cls.model(cls.x)
            cls.ref_act = cls.model.features(cls.x)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_package(self, version_dir, name, version, arch="cropshield_cnn", untrained=False):
        pt = os.path.join(version_dir, "model.pt")
        js = os.path.join(version_dir, "model.json")
        self.assertTrue(os.path.isfile(pt) and os.path.isfile(js))
        with open(js) as f:
            text = f.read()
        meta = json.loads(text)
        fields = _paths.proto_field_names()
        # `quantization` is written for INT8 packages only (test_export_int8.py).
        self.assertEqual(set(meta), set(fields["ModelMetadata"]) - {"quantization"},
                         "model.json has exactly the proto's fields")
        self.assertEqual(set(meta["preprocessing"]), set(fields["Preprocessing"]))
        self.assertEqual(set(meta["grad_cam"]), set(fields["GradCamSpec"]))
        self.assertEqual(meta["format_version"], 1)
        self.assertEqual(meta["name"], name)
        self.assertEqual(meta["version"], version)
        self.assertEqual(meta["architecture"], arch)
        self.assertEqual(meta["labels"], self.labels)
        self.assertEqual(meta["weights_file"], "model.pt")
        with open(pt, "rb") as f:
            self.assertEqual(meta["weights_xxh3_128"], xxhash.xxh3_128_hexdigest(f.read()))
        self.assertRegex(meta["weights_xxh3_128"], r"^[0-9a-f]{32}$")
        self.assertEqual(meta["preprocessing"], {
            "input_size": 224, "resize_shorter_side": 256, "interpolation": "bilinear", "crop": "center",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channel_order": "RGB"})
        self.assertEqual(meta["grad_cam"]["features_method"], "features")
        self.assertEqual(meta["grad_cam"]["head_method"], "head")
        self.assertIs(meta["untrained"], untrained)
        if PARSE is not None:  # the server's parser: protobuf JSON, unknown fields rejected
            msg = PARSE(text)
            self.assertEqual(msg.name, name)
            self.assertEqual(msg.version, version)
            self.assertEqual(len(msg.labels), len(self.labels))
            self.assertEqual(msg.grad_cam.target_layer, meta["grad_cam"]["target_layer"])
        return meta

    def check_cnn_module(self, version_dir):
        m = torch.jit.load(os.path.join(version_dir, "model.pt"))
        self.assertFalse(m.training, "saved in eval mode")
        with torch.no_grad():
            logits = m(self.x)
            act = m.features(self.x)
            split = m.head(act)
        self.assertEqual(tuple(act.shape), (1, 512, 14, 14))
        self.assertLessEqual((logits - self.ref_logits).abs().max().item(), 1e-5)
        self.assertLessEqual((act - self.ref_act).abs().max().item(), 1e-5)
        self.assertLessEqual((split - logits).abs().max().item(), 1e-5)
        # Grad-CAM needs gradients of the head with respect to the activation
        a = act.clone().requires_grad_(True)
        m.head(a)[0, 3].backward()
        self.assertEqual(tuple(a.grad.shape), tuple(act.shape))
        self.assertGreater(a.grad.abs().sum().item(), 0)

    def test_dict_checkpoint_into_repository(self):
        repo = os.path.join(self.dir, "repo_dict")
        r = run_export(self.dict_ckpt, repo, "--repository", "--name", "cropshield", "--version", 3)
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("cropshield", "version 3", "cropshield_cnn", "4,698,582", "classes 22"):
            self.assertIn(word, r.stdout)
        vdir = os.path.join(repo, "cropshield", "3")
        meta = self.check_package(vdir, "cropshield", 3)
        self.assertIn(meta["weights_xxh3_128"], r.stdout)
        self.assertEqual(meta["grad_cam"]["target_layer"], "block4")
        self.check_cnn_module(vdir)
        # an existing version is not overwritten (checked before any work)
        r = call_export(self.dict_ckpt, repo, "--repository", "--name", "cropshield", "--version", 3)
        self.assertEqual(r.returncode, 2)
        self.assertIn("already holds a package", r.stderr)
        self.assertEqual(os.listdir(os.path.join(repo, "cropshield")), ["3"], "no temporary directory left")

    def test_bare_state_dict_into_version_dir(self):
        vdir = os.path.join(self.dir, "repo_bare", "cropshield-old", "1")
        r = call_export(self.bare_ckpt, vdir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_package(vdir, "cropshield-old", 1)  # name and version from the directories
        self.check_cnn_module(vdir)

    def test_reduced_width_and_module_prefix(self):
        torch.manual_seed(5)
        small = CropShieldCNN(num_classes=4, width=0.25).eval()
        ckpt = os.path.join(self.dir, "small.pth")
        labels = ["a", "b", "c", "d"]
        torch.save({"model_state_dict": {"module." + k: v for k, v in small.state_dict().items()},
                    "class_names": labels, "num_classes": 4, "model_type": "custom"}, ckpt)
        vdir = os.path.join(self.dir, "small_out")
        r = call_export(ckpt, vdir, "--name", "small", "--version", 2)
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = read_json(os.path.join(vdir, "model.json"))
        self.assertEqual((meta["name"], meta["version"], meta["labels"]), ("small", 2, labels))
        # --repository without --version: version 1, then the next one
        repo = os.path.join(self.dir, "repo_small")
        for expected in ("1", "2"):
            r = call_export(ckpt, repo, "--repository", "--name", "small")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(read_json(os.path.join(repo, "small", expected, "model.json"))["version"], int(expected))
        self.assertEqual(sorted(os.listdir(os.path.join(repo, "small"))), ["1", "2"])
        m = torch.jit.load(os.path.join(vdir, "model.pt"))
        with torch.no_grad():
            self.assertLessEqual((m(self.x) - small(self.x)).abs().max().item(), 1e-5)
            self.assertEqual(tuple(m.features(self.x).shape), (1, 128, 14, 14))

    def test_random_weights_packages(self):
        repo = os.path.join(self.dir, "bench")
        r = call_export("--arch", "cropshield_cnn", "--random-weights", repo, "--repository", "--width", 0.25,
                       "--seed", 1)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("untrained", r.stdout)
        meta = self.check_package(os.path.join(repo, "cropshield-cnn-random", "1"), "cropshield-cnn-random", 1,
                                  untrained=True)
        self.assertEqual(meta["labels"], leafgen.LABELS)
        r = call_export("--arch", "resnet18", "--random-weights", repo, "--repository", "--name", "r18")
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = self.check_package(os.path.join(repo, "r18", "1"), "r18", 1, arch="resnet18", untrained=True)
        self.assertEqual(meta["grad_cam"]["target_layer"], "layer4")
        m = torch.jit.load(os.path.join(repo, "r18", "1", "model.pt"))
        with torch.no_grad():
            self.assertEqual(tuple(m.features(self.x).shape), (1, 512, 7, 7))
            self.assertLessEqual((m.head(m.features(self.x)) - m(self.x)).abs().max().item(), 1e-5)

    def test_torchvision_checkpoint(self):
        import torchvision
        torch.manual_seed(2)
        net = torchvision.models.efficientnet_b0(weights=None)
        net.classifier[1] = torch.nn.Linear(1280, 3)
        ckpt = os.path.join(self.dir, "eff.pth")
        torch.save({"model_state_dict": net.state_dict(), "class_names": ["x", "y", "z"], "num_classes": 3,
                    "model_type": "efficientnet"}, ckpt)
        vdir = os.path.join(self.dir, "eff_out")
        r = call_export(ckpt, vdir)
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = read_json(os.path.join(vdir, "model.json"))
        self.assertEqual((meta["architecture"], meta["grad_cam"]["target_layer"]), ("efficientnet_b0", "features"))
        net.eval()
        m = torch.jit.load(os.path.join(vdir, "model.pt"))
        with torch.no_grad():
            self.assertLessEqual((m(self.x) - net(self.x)).abs().max().item(), 1e-5)

    def test_bad_checkpoints(self):
        sd = self.model.state_dict()
        cases = {
            "missing_key.pth": ({"model_state_dict": {k: v for k, v in sd.items() if k != "block2.3.weight"},
                                 "class_names": self.labels, "num_classes": 22, "model_type": "custom"},
                                "missing keys"),
            "no_block1.pth": ({"model_state_dict": {k: v for k, v in sd.items() if k != "block1.0.weight"},
                               "class_names": self.labels, "model_type": "custom"}, "missing 'block1.0.weight'"),
            "count.pth": ({"model_state_dict": sd, "class_names": self.labels[:21], "num_classes": 21,
                           "model_type": "custom"}, "class count mismatch"),
            "count2.pth": ({"model_state_dict": sd, "class_names": self.labels, "num_classes": 20,
                            "model_type": "custom"}, "class count mismatch"),
            "type.pth": ({"model_state_dict": sd, "class_names": self.labels, "num_classes": 22,
                          "model_type": "vgg16"}, "unknown model_type"),
            "wrong_arch.pth": ({"model_state_dict": sd, "class_names": self.labels, "num_classes": 22,
                                "model_type": "resnet18"}, "missing key 'fc.weight'"),
            "no_state.pth": ({"state_dict": sd, "class_names": self.labels}, "missing key 'model_state_dict'"),
            "not_ckpt.pth": ([1, 2, 3], "not a CropShield checkpoint"),
        }
        for i, (fname, (obj, message)) in enumerate(cases.items()):
            path = os.path.join(self.dir, fname)
            torch.save(obj, path)
            # the first through the real CLI, the rest in-process
            r = (run_export if i == 0 else call_export)(path, os.path.join(self.dir, "bad_out", fname))
            self.assertEqual(r.returncode, 2, f"{fname}: {r.stdout} {r.stderr}")
            self.assertIn("export.py: error:", r.stderr)
            self.assertIn(message, r.stderr, fname)
            self.assertNotIn("Traceback", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "bad_out", fname)))
        # shape mismatch (reduced width classifier on a full-width body)
        bad = dict(sd)
        bad["block4.4.weight"] = torch.ones(100)
        path = os.path.join(self.dir, "shape.pth")
        torch.save({"model_state_dict": bad, "class_names": self.labels, "model_type": "custom"}, path)
        r = call_export(path, os.path.join(self.dir, "bad_out", "shape"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("size mismatch", r.stderr)
        # bare state_dict without class_to_idx.json; missing file; corrupt file
        os.makedirs(os.path.join(self.dir, "lonely"))
        path = os.path.join(self.dir, "lonely", "m.pth")
        torch.save(sd, path)
        r = call_export(path, os.path.join(self.dir, "bad_out", "lonely"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("class_to_idx.json", r.stderr)
        r = call_export(os.path.join(self.dir, "nope.pth"), os.path.join(self.dir, "bad_out", "nope"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("does not exist", r.stderr)
        path = os.path.join(self.dir, "corrupt.pth")
        with open(path, "wb") as f:
            f.write(b"not a pickle at all")
        r = call_export(path, os.path.join(self.dir, "bad_out", "corrupt"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read checkpoint", r.stderr)
        # version disagreeing with the version directory
        r = call_export(self.dict_ckpt, os.path.join(self.dir, "x", "m", "5"), "--version", 6)
        self.assertEqual(r.returncode, 2)
        self.assertIn("disagrees", r.stderr)

    def test_class_to_idx_validation(self):
        path = os.path.join(self.dir, "c2i.json")
        with open(path, "w") as f:
            json.dump({"b": 1, "a": 0, "c": 2}, f)
        self.assertEqual(export.read_class_to_idx(path), ["a", "b", "c"])
        with open(path, "w") as f:
            json.dump({"b": 1, "a": 3}, f)
        with self.assertRaises(export.ExportError):
            export.read_class_to_idx(path)


if __name__ == "__main__":
    unittest.main()
