#!/usr/bin/python3
"""Example Python client of CropShield Serve: classify photos and explain the top class.

The stubs are generated from proto/ by the build (target cropshield_python_stubs, Debian's
python3-grpc-tools) into <build>/python; put that folder on PYTHONPATH:

  PYTHONPATH=build/python examples/python/classify.py --target localhost:50051 leaf.jpg
  PYTHONPATH=build/python examples/python/classify.py --target dns:///cropshield-headless:50051 \\
      --explain --overlay overlay.jpg leaf.jpg
  PYTHONPATH=build/python examples/python/classify.py --target cropshield.example.com:443 \\
      --tls-ca ca.pem [--tls-cert client.pem --tls-key client.key] leaf.jpg

Prints one line per photo, "<path>: <label> <probability%>", followed by the ranking, and with
--explain one more line per photo, "explain <path>: <label> (class N, p%) by grad_cam, ...".
Exit status 0 on success, 1 when a call fails (the gRPC status is printed).

Retries (UNAVAILABLE, with the server's grpc-retry-pushback-ms honoured) and round_robin
load balancing are configured through the channel's service config, so gRPC itself applies them.
"""

import argparse
import json
import sys

import grpc

try:
    from cropshield.v1 import cropshield_pb2 as pb
    from cropshield.v1 import cropshield_pb2_grpc
except ImportError:
    sys.exit("cannot import the cropshield.v1 stubs: put <build>/python on PYTHONPATH "
             "(built by the cropshield_python_stubs target)")

SERVICE_CONFIG = {
    # Every address a dns:/// name resolves to gets calls in turn.
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "cropshield.v1.CropShieldService"}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.1s",
            "maxBackoff": "5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def make_channel(args):
    options = [
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", 64 << 20),
    ]
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    if args.tls or args.tls_ca or args.tls_cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(args.tls_ca) if args.tls_ca else None,
            private_key=read(args.tls_key) if args.tls_key else None,
            certificate_chain=read(args.tls_cert) if args.tls_cert else None)
        return grpc.secure_channel(args.target, credentials, options=options)
    return grpc.insecure_channel(args.target, options=options)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", help="JPEG, PNG or WebP photos")
    parser.add_argument("--target", default="localhost:50051",
                        help="host:port or dns:///host:port (default %(default)s)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30, help="deadline per call, seconds")
    parser.add_argument("--explain", action="store_true", help="also explain the top class")
    parser.add_argument("--method", default="grad_cam",
                        choices=["grad_cam", "grad_cam_plus_plus", "hires_cam", "layer_cam"])
    parser.add_argument("--overlay", help="with --explain and one photo: write the JPEG overlay here")
    parser.add_argument("--tls", action="store_true", help="TLS with the system roots")
    parser.add_argument("--tls-ca", help="PEM CA certificates that sign the server certificate")
    parser.add_argument("--tls-cert", help="PEM client certificate chain (mutual TLS)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-server-name", help="name to check the server certificate against")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.overlay and (not args.explain or len(args.images) != 1):
        parser.error("--overlay needs --explain and exactly one photo")

    failures = 0
    with make_channel(args) as channel:
        stub = cropshield_pb2_grpc.CropShieldServiceStub(channel)
        for path in args.images:
            image = pb.Image(data=read(path))
            try:
                response = stub.Predict(pb.PredictRequest(image=image, top_k=args.top_k),
                                        timeout=args.timeout)
                top = response.predictions[0]
                print(f"{path}: {top.label} {100 * top.probability:.2f}%  "
                      f"({response.model.name} v{response.model.version}, "
                      f"server {response.timing.total_us / 1000:.1f} ms)")
                for rank, p in enumerate(response.predictions, 1):
                    print(f"  {rank}. {p.label:<45} {100 * p.probability:6.2f}%")
                if args.explain:
                    method = pb.ExplainMethod.Value("EXPLAIN_METHOD_" + args.method.upper())
                    outputs = pb.ExplainOutputs(
                        overlay=bool(args.overlay), overlay_encoding=pb.IMAGE_ENCODING_JPEG,
                        feature_map=True)
                    explained = stub.Explain(
                        pb.ExplainRequest(image=image, method=method, outputs=outputs),
                        timeout=args.timeout)
                    box = explained.crop_box
                    print(f"explain {path}: {explained.target.label} "
                          f"(class {explained.target.class_index}, "
                          f"{100 * explained.target.probability:.2f}%) by {args.method}, "
                          f"{'cache hit' if explained.cached else 'computed'}, "
                          f"map {explained.feature_map.width}x{explained.feature_map.height}, "
                          f"crop x={box.x:.0f} y={box.y:.0f} w={box.width:.0f} h={box.height:.0f}")
                    if args.overlay:
                        with open(args.overlay, "wb") as f:
                            f.write(explained.overlay)
                        print(f"  wrote {args.overlay}")
            except grpc.RpcError as error:
                print(f"error: {path}: {error.code().name}: {error.details()}", file=sys.stderr)
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
