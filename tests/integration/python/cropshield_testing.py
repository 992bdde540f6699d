"""Helpers for Python integration tests: start the real cropshield-server, call it through the
generated Python stubs.

Environment (set by CTest): CROPSHIELD_SERVER (server binary), CROPSHIELD_SOURCE_DIR, and PYTHONPATH
holding the generated stubs (build/python) and models/.
"""

import io
import os
import re
import signal
import subprocess
import tempfile
import time

import grpc
import numpy as np

from cropshield.v1 import cropshield_pb2, cropshield_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SOURCE_DIR = os.environ.get("CROPSHIELD_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
SERVER = os.environ.get("CROPSHIELD_SERVER", os.path.join(SOURCE_DIR, "build/server/cropshield-server"))
DEMO_REPOSITORY = os.path.join(SOURCE_DIR, "models", "repository")
pb = cropshield_pb2


class Server:
    """A cropshield-server child process on 127.0.0.1:<free port>."""

    def __init__(self, *args, timeout=120, credentials=None, channel_options=()):
        """args: server flags. credentials (grpc.ChannelCredentials) and channel_options: for the
        helper's own channel, when the flags make the server speak TLS."""
        self.log = tempfile.NamedTemporaryFile(prefix="cropshield_server_", suffix=".log", delete=False)
        # Free HTTP and metrics ports unless the test names them: the defaults (8000, 9464) would
        # collide, and a port in use makes the server refuse to start.
        ports = [f"{flag}=127.0.0.1:0" for flag in ("--http_address", "--metrics_address")
                 if not any(a.startswith(flag) for a in args)]
        self.process = subprocess.Popen([SERVER, "--address=127.0.0.1:0", *ports, *args],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        self.port = None
        while time.time() < deadline and self.port is None:
            match = re.search(r"listening on port (\d+)", self.read_log())
            if match:
                self.port = int(match.group(1))
            elif self.process.poll() is not None:
                raise RuntimeError("server exited early:\n" + self.read_log())
            else:
                time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("server did not log its port:\n" + self.read_log())
        options = [("grpc.max_receive_message_length", 256 << 20),
                   ("grpc.max_send_message_length", 64 << 20), *channel_options]
        target = f"127.0.0.1:{self.port}"
        self.channel = (grpc.secure_channel(target, credentials, options=options) if credentials
                        else grpc.insecure_channel(target, options=options))
        self.stub = cropshield_pb2_grpc.CropShieldServiceStub(self.channel)
        health = health_pb2_grpc.HealthStub(self.channel)
        while time.time() < deadline:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + self.read_log())
            time.sleep(0.05)
        raise RuntimeError("server not SERVING in time:\n" + self.read_log())

    @property
    def http_port(self):
        """The HTTP/REST port (from the log line 'http listening on port N')."""
        match = re.search(r"http listening on port (\d+)", self.read_log())
        if not match:
            raise RuntimeError("no HTTP port in the log:\n" + self.read_log())
        return int(match.group(1))

    def read_log(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def predict(self, image_bytes, top_k=22, timeout=60):
        return self.stub.Predict(pb.PredictRequest(image=pb.Image(data=image_bytes), top_k=top_k),
                                 timeout=timeout)

    def explain(self, image_bytes, timeout=120, **kwargs):
        return self.stub.Explain(pb.ExplainRequest(image=pb.Image(data=image_bytes), **kwargs),
                                 timeout=timeout)

    def close(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.log.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def probabilities(response, classes):
    """Probability vector (by class index) from a Predict response holding all classes."""
    p = np.zeros(classes)
    for pred in response.predictions:
        p[pred.class_index] = pred.probability
    return p


def float_map(fmap):
    return np.frombuffer(fmap.data, dtype="<f4").reshape(fmap.height, fmap.width)


def png_bytes(rgb):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(rgb, quality=90):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
