#!/usr/bin/python3
"""Baseline: the CropShield service written the way a typical Python team would.

grpcio server with a thread pool, PIL decoding + torchvision transforms, the eager PyTorch model,
hook-based Grad-CAM (full-network backward), no caching, no batching. Same proto and model package
as the C++ server, so the benchmark compares the two side by side.

Usage: server.py --model PACKAGE_VERSION_DIR [--port 0] [--workers 4] [--device cpu|cuda]
Prints "listening on port N" once ready. Needs the generated Python stubs on PYTHONPATH
(build/python) and models/ for the CropShield CNN definition.
"""

import argparse
import io
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from cropshield.v1 import cropshield_pb2 as pb
from cropshield.v1 import cropshield_pb2_grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../models"))
from cropshield_cnn import CropShieldCNN, width_from_state_dict  # noqa: E402


def load_model(package_dir, device):
    with open(os.path.join(package_dir, "model.json")) as f:
        meta = json.load(f)
    scripted = torch.jit.load(os.path.join(package_dir, meta["weights_file"]), map_location="cpu")
    state = {k[len("model."):]: v for k, v in scripted.state_dict().items() if k.startswith("model.")}
    model = CropShieldCNN(num_classes=len(meta["labels"]), width=width_from_state_dict(state))
    model.load_state_dict(state)
    return model.eval().to(device), meta


class Servicer(cropshield_pb2_grpc.CropShieldServiceServicer):
    def __init__(self, model, meta, device):
        self.model, self.meta, self.device = model, meta, device
        self._explain_lock = threading.Lock()
        self.transform = transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

    def _load(self, data, context):
        try:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as e:  # what a typical service does
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad image: {e}")
        return self.transform(image).unsqueeze(0).to(self.device)

    def _ranked(self, probs, k):
        top = torch.topk(probs, k)
        return [pb.Prediction(class_index=int(i), label=self.meta["labels"][int(i)],
                              probability=float(p)) for p, i in zip(top.values, top.indices)]

    def Predict(self, request, context):
        start = time.perf_counter()
        x = self._load(request.image.data, context)
        with torch.no_grad():
            probs = torch.softmax(self.model(x), 1)[0].cpu()
        k = request.top_k or 3
        return pb.PredictResponse(predictions=self._ranked(probs, k), request_id=request.request_id,
                                  model=pb.ModelRef(name=self.meta["name"], version=self.meta["version"]),
                                  timing=pb.Timing(total_us=int((time.perf_counter() - start) * 1e6)))

    def Explain(self, request, context):
        start = time.perf_counter()
        x = self._load(request.image.data, context)
        store = {}
        layer = self.model.block4
        # Hooks and .grad live on the shared module: concurrent Explains would mix each other's
        # activations (and crashed the process under 64 clients on the H200), so one at a time.
        self._explain_lock.acquire()

        def hook(_m, _i, output):
            store["a"] = output
            output.register_hook(lambda g: store.__setitem__("g", g))

        handle = layer.register_forward_hook(hook)
        try:
            logits = self.model(x)
            probs = torch.softmax(logits, 1)[0].detach().cpu()
            target = request.class_index if request.WhichOneof("target") == "class_index" else int(probs.argmax())
            self.model.zero_grad()
            logits[0, target].backward()
        finally:
            handle.remove()
            self._explain_lock.release()
        a, g = store["a"][0].detach(), store["g"][0]
        cam = torch.relu((g.mean(dim=(1, 2), keepdim=True) * a).sum(0))
        cam = ((cam - cam.min()) / torch.clamp_min(cam.max() - cam.min(), 1e-12)).cpu().numpy()
        return pb.ExplainResponse(
            target=pb.Prediction(class_index=target, label=self.meta["labels"][target],
                                 probability=float(probs[target])),
            predictions=self._ranked(probs, request.top_k or 3),
            method=pb.EXPLAIN_METHOD_GRAD_CAM,
            feature_map=pb.FloatMap(width=cam.shape[1], height=cam.shape[0],
                                    data=cam.astype("<f4").tobytes()),
            model=pb.ModelRef(name=self.meta["name"], version=self.meta["version"]),
            timing=pb.Timing(total_us=int((time.perf_counter() - start) * 1e6)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="package version directory")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, meta = load_model(args.model, args.device)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=[("grpc.max_receive_message_length", 16 << 20)])
    cropshield_pb2_grpc.add_CropShieldServiceServicer_to_server(Servicer(model, meta, args.device), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening on port {port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=5).wait()


if __name__ == "__main__":
    main()
