"""examples/python/classify.py (the example Python client) against the real server: the right
class for samples through Predict and Explain, the overlay file, dns:/// targets, a failing
call's status and exit code, and its TLS options against a server with mutual TLS."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import grpc

import cropshield_testing as cst
from cropshield_testing import Server

sys.path.insert(0, os.path.join(cst.SOURCE_DIR, "tests", "testing"))
import certs  # noqa: E402

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


def make_certificates(directory):
    """A CA, a server certificate for the name cropshield.test only (so connecting to 127.0.0.1
    needs --tls-server-name) and a client certificate, all signed by the CA."""
    ca = certs.make_ca(directory)
    certs.make_certificate(directory, ca, "server.pem", "server.key", "server", "cropshield.test")
    certs.make_certificate(directory, ca, "client.pem", "client.key", "client")
    return {name: os.path.join(directory, name) for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class ExampleClientTlsTest(unittest.TestCase):
    """The example's --tls-ca / --tls-cert / --tls-key / --tls-server-name against a server run
    with --tls_cert, --tls_key and --tls_client_ca (mutual TLS)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pem = make_certificates(cls.tmp.name)

        def read(name):
            with open(cls.pem[name], "rb") as f:
                return f.read()

        credentials = grpc.ssl_channel_credentials(read("ca.pem"), read("client.key"),
                                                   read("client.pem"))
        cls.server = Server("--model=" + cst.DEMO_REPOSITORY, "--metrics_address=",
                            "--warmup_iterations=1", "--tls_cert=" + cls.pem["server.pem"],
                            "--tls_key=" + cls.pem["server.key"],
                            "--tls_client_ca=" + cls.pem["ca.pem"], credentials=credentials,
                            channel_options=[("grpc.ssl_target_name_override", "cropshield.test")])
        cls.sample = os.path.join(SAMPLES, "wheat_yellow_rust_1600x1200.jpg")
        with open(os.path.join(SAMPLES, "labels.json")) as f:
            cls.label = json.load(f)[os.path.basename(cls.sample)]["label"]

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.tmp.cleanup()

    def example(self, *tls_args):
        return run_example("--target", f"127.0.0.1:{self.server.port}", "--timeout", "20",
                           *tls_args, self.sample)

    def test_mutual_tls_with_the_server_name(self):
        result = self.example("--tls-ca", self.pem["ca.pem"], "--tls-cert", self.pem["client.pem"],
                              "--tls-key", self.pem["client.key"], "--tls-server-name",
                              "cropshield.test")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(f"{self.sample}: {self.label} "), result.stdout)

    def test_refused_without_the_server_name_a_client_certificate_or_tls(self):
        attempts = {
            "certificate names cropshield.test, not 127.0.0.1":
                ("--tls-ca", self.pem["ca.pem"], "--tls-cert", self.pem["client.pem"],
                 "--tls-key", self.pem["client.key"]),
            "no client certificate": ("--tls-ca", self.pem["ca.pem"], "--tls-server-name",
                                      "cropshield.test"),
            "plaintext": (),
        }
        for what, args in attempts.items():
            with self.subTest(what):
                result = self.example(*args)
                self.assertEqual(result.returncode, 1, result.stdout)
                self.assertIn("UNAVAILABLE", result.stderr)

    def test_a_key_without_a_certificate_is_a_usage_error(self):
        result = self.example("--tls-ca", self.pem["ca.pem"], "--tls-key", self.pem["client.key"])
        self.assertEqual(result.returncode, 2)
        self.assertIn("--tls-cert and --tls-key go together", result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
