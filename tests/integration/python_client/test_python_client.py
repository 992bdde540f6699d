"""The cropshield-client wheel (clients/python) against a real cropshield-server.

Imports only the installed package (never the build tree's generated stubs), so it runs under any
protobuf / grpcio generation: Debian bookworm's (CTest, through run_test.sh) and current pip
releases (the GPU host). Environment: CROPSHIELD_SERVER (server binary), CROPSHIELD_SOURCE_DIR.
"""

import asyncio
import io
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc
import numpy as np
from google.protobuf import __version__ as protobuf_version
from PIL import Image

import cropshield
from cropshield import pb

SOURCE_DIR = os.environ["CROPSHIELD_SOURCE_DIR"]
SERVER = os.environ["CROPSHIELD_SERVER"]
SAMPLES = os.path.join(SOURCE_DIR, "models", "samples")
PHOTO = os.path.join(SAMPLES, "tomato_early_blight_600x800.jpg")  # 600 wide, 800 high
BIG_PHOTO = os.path.join(SAMPLES, "potato_early_blight_1600x1200.jpg")
TOKEN = secrets.token_hex(16)


class Server:
    """A cropshield-server child on 127.0.0.1:<free port>, SERVING when the constructor returns."""

    def __init__(self, *flags: str, env: dict = {}, timeout: float = 180) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="cropshield_pyclient_", suffix=".log")
        self.process = subprocess.Popen(
            [SERVER, f"--model={SOURCE_DIR}/models/repository", "--address=127.0.0.1:0",
             "--http_address=127.0.0.1:0", "--metrics_address=", *flags],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        deadline = time.monotonic() + timeout
        while "SERVING model=" not in self.read_log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("server did not start:\n" + self.read_log())
            time.sleep(0.05)
        self.port = int(re.search(r"listening on port (\d+)", self.read_log()).group(1))
        self.target = f"127.0.0.1:{self.port}"

    def read_log(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def rpc_errors(stats: pb.StatsResponse, rpc: str, code: str) -> int:
    return next((r.errors_by_code[code] for r in stats.rpcs if r.rpc == rpc and code in r.errors_by_code), 0)


class InstalledPackageTest(unittest.TestCase):
    def test_imported_from_the_installed_wheel(self) -> None:
        package_dir = os.path.dirname(cropshield.__file__)
        self.assertFalse(package_dir.startswith(os.path.join(SOURCE_DIR, "clients")), package_dir)
        for name in ("py.typed", "v1/cropshield_pb2.pyi", "v1/cropshield.binpb"):
            self.assertTrue(os.path.isfile(os.path.join(package_dir, name)), name)

    def test_messages_round_trip(self) -> None:
        stats = pb.StatsResponse(rpcs=[pb.RpcCounts(rpc="Predict", errors_by_code={"UNAVAILABLE": 2})])
        parsed = pb.StatsResponse.FromString(stats.SerializeToString())
        self.assertEqual(parsed.rpcs[0].errors_by_code["UNAVAILABLE"], 2)
        self.assertIs(type(pb.PredictRequest(image={"data": b"x"}).image), pb.Image)
        self.assertEqual(pb.ExplainMethod.Name(pb.EXPLAIN_METHOD_HIRES_CAM), "EXPLAIN_METHOD_HIRES_CAM")
        self.assertEqual(pb.ExplainRequest(class_label="a").WhichOneof("target"), "class_label")
        self.assertEqual(pb.PredictRequest.__module__, "cropshield.v1.cropshield_pb2")

    def test_bad_arguments_raise_before_any_call(self) -> None:
        client = cropshield.Client("127.0.0.1:1")
        with self.assertRaises(TypeError):
            client.predict(12345)
        with self.assertRaisesRegex(ValueError, "uint8"):
            client.predict(np.zeros((8, 8, 3), np.float32))
        with self.assertRaisesRegex(ValueError, "HxWx3"):
            client.predict(np.zeros((8, 8, 4), np.uint8))
        with self.assertRaisesRegex(ValueError, "unknown explain_method 'gradcam'"):
            client.explain(PHOTO, method="gradcam")
        with self.assertRaisesRegex(ValueError, "plaintext"):
            cropshield.Client("dns:///cropshield.example.com:50051", token="t")
        with self.assertRaisesRegex(ValueError, "1..5"):
            cropshield.Client("127.0.0.1:1", max_attempts=9)
        client.close()


class RealServerTest(unittest.TestCase):
    server: Server
    client: cropshield.Client

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = Server(env={"CROPSHIELD_ADMIN_TOKEN": TOKEN})
        cls.client = cropshield.Client(cls.server.target, token=TOKEN, timeout=60)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()
        cls.server.close()

    def test_predict_takes_paths_bytes_files_pil_and_numpy(self) -> None:
        by_path = self.client.predict(PHOTO, top_k=5)
        self.assertEqual(len(by_path.predictions), 5)
        self.assertEqual((by_path.image_width, by_path.image_height), (600, 800))
        label = by_path.predictions[0].label
        self.assertEqual(label, "Tomato__early_blight")
        with open(PHOTO, "rb") as f:
            data = f.read()
        self.assertEqual(self.client.predict(data).predictions,
                         self.client.predict(PHOTO, top_k=3).predictions)
        with open(PHOTO, "rb") as f:
            self.assertEqual(self.client.predict(f).predictions[0].label, label)
        pil = Image.open(PHOTO)
        as_pil = self.client.predict(pil)
        as_numpy = self.client.predict(np.asarray(pil.convert("RGB")))
        # The same pixels as PNG: Pillow's and the package's own encoder give the same answer.
        self.assertEqual(as_pil.predictions, as_numpy.predictions)
        self.assertEqual(as_pil.predictions[0].label, label)
        self.assertAlmostEqual(as_pil.predictions[0].probability, by_path.predictions[0].probability,
                               delta=0.02)  # JPEG decoded by Pillow vs by the server
        gray = self.client.predict(np.asarray(pil.convert("L")))
        self.assertEqual((gray.image_width, gray.image_height), (600, 800))
        cmyk = self.client.predict(pil.convert("CMYK"))  # converted to RGB before PNG
        self.assertEqual(cmyk.predictions[0].label, label)

    def test_predict_model_and_request_id(self) -> None:
        response = self.client.predict(PHOTO, model="cropshield-demo", model_version=1, request_id="r-1")
        self.assertEqual((response.model.name, response.model.version, response.request_id),
                         ("cropshield-demo", 1, "r-1"))
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.predict(PHOTO, model="no-such-model")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_explain_maps_as_numpy_and_overlay_as_pil(self) -> None:
        result = self.client.explain(PHOTO, image_map=True, overlay=True, heatmap=True,
                                     bypass_cache=True)
        self.assertIsInstance(result, cropshield.Explanation)
        self.assertEqual(result.target.label, "Tomato__early_blight")
        fmap = result.feature_map
        self.assertEqual((fmap.shape, fmap.dtype), ((14, 14), np.float32))
        self.assertTrue(0 <= fmap.min() and fmap.max() <= 1 and fmap.max() > 0.5)
        self.assertEqual((result.image_map.shape, result.image_map.dtype), ((800, 600), np.float32))
        self.assertIsInstance(result.overlay, Image.Image)
        self.assertEqual((result.overlay.size, result.overlay.mode), ((600, 800), "RGB"))
        self.assertEqual((result.heatmap.size, result.heatmap.mode), ((600, 800), "RGBA"))
        self.assertGreater(result.crop_box.width, 500)
        # Nothing asked beyond the default: the feature map only.
        plain = self.client.explain(PHOTO)
        self.assertIsNone(plain.image_map)
        self.assertIsNone(plain.overlay)
        self.assertTrue(self.client.explain(PHOTO).cached)

    def test_explain_target_method_and_jpeg_overlay(self) -> None:
        by_label = self.client.explain(PHOTO, target="Tomato__healthy", method="grad_cam_plus_plus",
                                       colormap="viridis", overlay=True, overlay_jpeg=True)
        self.assertEqual(by_label.target.label, "Tomato__healthy")
        self.assertEqual(by_label.response.method, pb.EXPLAIN_METHOD_GRAD_CAM_PLUS_PLUS)
        self.assertEqual(by_label.overlay.format, "JPEG")
        by_index = self.client.explain(PHOTO, target=by_label.target.class_index,
                                       method=pb.EXPLAIN_METHOD_LAYER_CAM)
        self.assertEqual(by_index.target.label, "Tomato__healthy")

    def test_stats(self) -> None:
        self.client.predict(PHOTO)
        stats = self.client.stats()
        self.assertEqual(stats.models[0].name, "cropshield-demo")
        self.assertEqual(len(stats.models[0].labels), 22)
        predict = next(r for r in stats.rpcs if r.rpc == "Predict")
        self.assertGreaterEqual(predict.total, 1)

    def test_clear_cache_with_the_token(self) -> None:
        self.client.explain(BIG_PHOTO, bypass_cache=True)
        freed = self.client.clear_cache(explain_cache=True)
        self.assertGreaterEqual(freed.explain_entries_freed, 1)
        self.assertGreater(freed.explain_bytes_freed, 0)
        self.assertEqual(self.client.clear_cache(model="cropshield-demo", model_version=1)
                         .explain_entries_freed, 0)
        for token in (None, "wrong"):
            with cropshield.Client(self.server.target, token=token) as anonymous:
                with self.assertRaises(grpc.RpcError) as caught:
                    anonymous.clear_cache()
                self.assertIn(caught.exception.code(),
                              (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))

    def test_reload_model_with_the_token(self) -> None:
        response = self.client.reload_model()  # the newest version is already serving
        self.assertFalse(response.reloaded)
        self.assertEqual((response.current.name, response.current.version), ("cropshield-demo", 1))

    def test_bad_photo_raises_invalid_argument_once(self) -> None:
        before = rpc_errors(self.client.stats(), "Predict", "INVALID_ARGUMENT")
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.predict(b"this is not a photo")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("image", caught.exception.details())
        # Not retryable: the server saw exactly one attempt.
        self.assertEqual(rpc_errors(self.client.stats(), "Predict", "INVALID_ARGUMENT"), before + 1)
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.predict(PHOTO, top_k=1000)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_deadline(self) -> None:
        for client_timeout, call_timeout in ((60, 0.001), (0.001, None)):
            with cropshield.Client(self.server.target, timeout=client_timeout) as client:
                with self.assertRaises(grpc.RpcError) as caught:
                    client.explain(BIG_PHOTO, image_map=True, bypass_cache=True, timeout=call_timeout)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_async_client(self) -> None:
        async def main() -> None:
            async with cropshield.AsyncClient(self.server.target, token=TOKEN) as client:
                predicted, explained, stats = await asyncio.gather(
                    client.predict(PHOTO), client.explain(PHOTO, overlay=True, image_map=True),
                    client.stats())
                self.assertEqual(predicted.predictions[0].label, "Tomato__early_blight")
                self.assertEqual(explained.image_map.shape, (800, 600))
                self.assertEqual(explained.overlay.size, (600, 800))
                self.assertEqual(len(stats.models[0].labels), 22)
                self.assertGreaterEqual((await client.clear_cache()).explain_entries_freed, 1)
                with self.assertRaises(grpc.aio.AioRpcError) as caught:
                    await client.predict(b"\x89PNG broken")
                self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                with self.assertRaises(grpc.RpcError) as caught:
                    await client.explain(BIG_PHOTO, image_map=True, bypass_cache=True, timeout=0.001)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        asyncio.run(main())


class TlsTest(unittest.TestCase):
    """Mutual TLS to a real server, certificates from tests/testing/certs.py (openssl)."""

    def test_mutual_tls(self) -> None:
        sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "testing"))
        import certs

        with tempfile.TemporaryDirectory() as tmp:
            ca = certs.make_ca(tmp)
            server_cert, server_key = certs.make_certificate(tmp, ca, "server.pem", "server.key",
                                                             "cropshield-server", "cropshield.test")
            client_cert, client_key = certs.make_certificate(tmp, ca, "client.pem", "client.key",
                                                             "cropshield-client")
            server = Server(f"--tls_cert={server_cert}", f"--tls_key={server_key}",
                            f"--tls_client_ca={ca[0]}")
            try:
                with cropshield.Client(server.target, root_certificates=ca[0], server_name="cropshield.test",
                                       certificate_chain=client_cert, private_key=client_key,
                                       timeout=30) as client:
                    self.assertEqual(client.predict(PHOTO).predictions[0].label, "Tomato__early_blight")
                with open(ca[0], "rb") as f:
                    ca_pem = f.read()
                with cropshield.Client(server.target, root_certificates=ca_pem, timeout=10,
                                       server_name="cropshield.test", max_attempts=1) as no_cert:
                    with self.assertRaises(grpc.RpcError) as caught:
                        no_cert.predict(PHOTO)
                    self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            finally:
                server.close()


class FakeService:
    """An in-process CropShieldService whose Predict fails with `code` for its first `failures`
    calls, then answers; counts calls per port. Written with the package's own messages."""

    def __init__(self, failures: int = 0, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures, self.code = failures, code
        self.calls: list = []
        self.lock = threading.Lock()
        self.servers = []

    def start(self, count: int = 1) -> str:
        ports = []
        for _ in range(count):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            port = server.add_insecure_port("127.0.0.1:0")
            handler = grpc.method_handlers_generic_handler("cropshield.v1.CropShieldService", {
                "Predict": grpc.unary_unary_rpc_method_handler(
                    self._predict(port), request_deserializer=pb.PredictRequest.FromString,
                    response_serializer=pb.PredictResponse.SerializeToString)})
            server.add_generic_rpc_handlers((handler,))
            server.start()
            self.servers.append(server)
            ports.append(port)
        return "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)

    def _predict(self, port: int):
        def predict(request, context):
            with self.lock:
                self.calls.append(port)
                failing = len(self.calls) <= self.failures
            if failing:
                context.abort(self.code, "try again")
            return pb.PredictResponse(predictions=[pb.Prediction(label="fake", probability=1.0)],
                                      request_id=request.request_id)
        return predict

    def stop(self) -> None:
        for server in self.servers:
            server.stop(None)


class ServiceConfigTest(unittest.TestCase):
    """Retries and round_robin come from the channel's service config: measured on fake servers,
    whose failures the real one cannot be made to produce on demand."""

    def attempts(self, max_attempts: int, failures: int, code: grpc.StatusCode) -> tuple:
        fake = FakeService(failures, code)
        target = fake.start()
        try:
            with cropshield.Client(target, max_attempts=max_attempts, initial_backoff=0.01,
                                   timeout=10) as client:
                try:
                    result = client.predict(b"x", request_id="r").predictions[0].label
                except grpc.RpcError as e:
                    result = e.code()
            return result, len(fake.calls)
        finally:
            fake.stop()

    def test_unavailable_and_resource_exhausted_are_retried(self) -> None:
        for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
            self.assertEqual(self.attempts(3, 2, code), ("fake", 3))
            self.assertEqual(self.attempts(3, 5, code), (code, 3))
            self.assertEqual(self.attempts(1, 1, code), (code, 1))

    def test_other_codes_are_not_retried(self) -> None:
        self.assertEqual(self.attempts(5, 1, grpc.StatusCode.INTERNAL), (grpc.StatusCode.INTERNAL, 1))

    def test_round_robin_spreads_calls(self) -> None:
        fake = FakeService()
        target = fake.start(count=3)
        try:
            with cropshield.Client(target) as client:
                client.wait_ready(10)
                for _ in range(30):
                    client.predict(b"x")
            self.assertEqual(len(set(fake.calls)), 3, fake.calls)
            with cropshield.Client(target, lb_policy="pick_first") as client:
                fake.calls.clear()
                for _ in range(10):
                    client.predict(b"x")
            self.assertEqual(len(set(fake.calls)), 1, fake.calls)
        finally:
            fake.stop()


if __name__ == "__main__":
    from google.protobuf.internal import api_implementation

    print(f"cropshield-client {cropshield.__version__} from {os.path.dirname(cropshield.__file__)}; "
          f"Python {sys.version.split()[0]}, protobuf {protobuf_version} ({api_implementation.Type()}), "
          f"grpcio {grpc.__version__}", flush=True)
    unittest.main(verbosity=2)
