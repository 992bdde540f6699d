"""examples/python/classify.py (the example Python client) against the real server: the right
class for samples through Predict and Explain, the overlay file, dns:/// targets, and a failing
call's status and exit code."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import cropshield_testing as cst
from cropshield_testing import Server

EXAMPLE = os.path.join(cst.SOURCE_DIR, "examples", "python", "classify.py")
SAMPLES = os.path.join(cst.SOURCE_DIR, "models", "samples")


def run_example(*args):
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True,
                          timeout=300)


class ExampleClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--model=" + cst.DEMO_REPOSITORY, "--metrics_address=",
                            "--warmup_iterations=1")
        with open(os.path.join(SAMPLES, "labels.json")) as f:
            cls.labels = {name: entry["label"] for name, entry in json.load(f).items()}

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_predict_and_explain_give_the_sample_labels(self):
        names = ["potato_healthy_640x480.jpg", "sugarcane_rust_640x480.jpg"]
        with tempfile.TemporaryDirectory() as tmp:
            overlay = os.path.join(tmp, "overlay.jpg")
            result = run_example("--target", f"127.0.0.1:{self.server.port}", "--explain",
                                 "--overlay", overlay, os.path.join(SAMPLES, names[0]))
            self.assertEqual(result.returncode, 0, result.stderr)
            with open(overlay, "rb") as f:
                self.assertEqual(f.read(2), b"\xff\xd8", "overlay should be a JPEG")
        lines = result.stdout.splitlines()
        label = self.labels[names[0]]
        self.assertTrue(lines[0].startswith(f"{os.path.join(SAMPLES, names[0])}: {label} "), lines)
        self.assertEqual(sum(1 for line in lines if line.startswith("  ") and "%" in line), 3)
        explain = [line for line in lines if line.startswith("explain ")]
        self.assertEqual(len(explain), 1, lines)
        self.assertIn(f": {label} (class ", explain[0])
        self.assertIn("map 14x14", explain[0])

        # Several photos, a dns:/// target, top-k.
        result = run_example("--target", f"dns:///127.0.0.1:{self.server.port}", "--top-k", "5",
                             *[os.path.join(SAMPLES, n) for n in names])
        self.assertEqual(result.returncode, 0, result.stderr)
        tops = [line for line in result.stdout.splitlines() if not line.startswith("  ")]
        self.assertEqual(len(tops), 2, result.stdout)
        for name, line in zip(names, tops):
            self.assertTrue(line.startswith(f"{os.path.join(SAMPLES, name)}: {self.labels[name]} "),
                            line)

    def test_failed_call_prints_the_status_and_exits_1(self):
        with tempfile.NamedTemporaryFile(suffix=".jpg") as bad:
            bad.write(b"not an image")
            bad.flush()
            result = run_example("--target", f"127.0.0.1:{self.server.port}", bad.name)
        self.assertEqual(result.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
