"""The HTTP/REST front end against the real server: /v1 Predict and Explain answer what gRPC
answers for the same photos, the Open Inference Protocol's REST endpoints (JSON base64 BYTES and
Triton's binary data extension) agree with Predict to 1e-6, admin and readiness rules hold, and a
hostile-input corpus (truncated bodies, wrong types, bad JSON/base64, huge headers, slow clients,
1 GB Content-Length claims) gets 4xx while the server stays SERVING.

Run by CTest with /usr/bin/python3 (standard library HTTP client)."""

import base64
import http.client
import io
import json
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

import grpc

from PIL import Image

import cropshield_testing as t
from cropshield_testing import pb

sys.path.insert(0, os.path.join(t.SOURCE_DIR, "tests", "testing"))
import certs  # noqa: E402

SAMPLES = os.path.join(t.SOURCE_DIR, "models", "samples")
PHOTOS = ["tomato_early_blight_600x800.jpg", "potato_late_blight_800x600.jpg",
          "sugarcane_rust_640x480.jpg"]
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


def call(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers dict (lower-case names), body bytes) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def post_photo(port, path, photo, content_type="image/jpeg", headers=None):
    return call(port, "POST", path, photo, {"Content-Type": content_type, **(headers or {})})


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes, returns what the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    return b"".join(chunks)


def multipart(field, filename, payload):
    boundary = "cropshieldBoundary42"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + payload + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_predict_and_explain_match_grpc(server, port):
    for name in PHOTOS:
        photo = open(os.path.join(SAMPLES, name), "rb").read()
        expected = server.predict(photo, top_k=5)
        status, headers, body = post_photo(port, "/v1/predict?top_k=5", photo)
        answer = json.loads(body)
        same = status == 200 and [(p["class_index"], p["label"]) for p in answer["predictions"]] == \
            [(p.class_index, p.label) for p in expected.predictions] and all(
                abs(p["probability"] - e.probability) <= 1e-6
                for p, e in zip(answer["predictions"], expected.predictions))
        check(same, f"{name}: REST Predict = gRPC Predict (top-5 labels and probabilities)")
        check(headers.get("content-type") == "application/json" and
              isinstance(answer["timing"]["total_us"], int) and answer["image_width"] > 0,
              f"{name}: JSON numbers are numbers (total_us {answer['timing']['total_us']})")
    photo = open(os.path.join(SAMPLES, PHOTOS[0]), "rb").read()
    body, content_type = multipart("image", "leaf.jpg", photo)
    status, _, data = call(port, "POST", "/v1/predict?top_k=1", body, {"Content-Type": content_type})
    check(status == 200 and json.loads(data)["predictions"][0]["label"] ==
          server.predict(photo).predictions[0].label, "multipart upload (field 'image') predicts")
    grpc_explain = server.explain(photo, outputs=pb.ExplainOutputs(overlay=True))
    status, _, data = post_photo(port, "/v1/explain?colormap=turbo&alpha=0.4", photo)
    answer = json.loads(data)
    overlay = Image.open(io.BytesIO(base64.b64decode(answer["overlay"]["base64"])))
    check(status == 200 and answer["target"]["label"] == grpc_explain.target.label and
          overlay.size == (600, 800) and answer["overlay"]["content_type"] == "image/png",
          f"REST Explain: target {answer['target']['label']}, overlay {overlay.size} PNG")
    status, headers, data = post_photo(port, "/v1/explain?method=layer_cam", photo,
                                       headers={"Accept": "image/jpeg"})
    check(status == 200 and headers.get("content-type") == "image/jpeg" and
          Image.open(io.BytesIO(data)).format == "JPEG",
          "Explain with Accept: image/jpeg answers the overlay itself")
    _, _, data = post_photo(port, "/v1/explain?colormap=turbo&alpha=0.4", photo)
    check(json.loads(data)["cached"] is True, "the same Explain again comes from the cache")


def infer_body(photos, top_k=3, binary_output=False):
    document = {"id": "req-1", "parameters": {"top_k": top_k},
                "inputs": [{"name": "image", "shape": [len(photos)], "datatype": "BYTES",
                            "data": [base64.b64encode(p).decode() for p in photos]}]}
    if binary_output:
        document["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": True}},
                               {"name": "labels"}]
    return json.dumps(document).encode()


def test_open_inference_protocol_rest(server, port):
    status, _, data = call(port, "GET", "/v2")
    check(status == 200 and json.loads(data)["name"] == "cropshield-serve", "GET /v2 metadata")
    check(call(port, "GET", "/v2/health/live")[0] == 200, "GET /v2/health/live is 200")
    check(call(port, "GET", "/v2/health/ready")[0] == 200, "GET /v2/health/ready is 200 (SERVING)")
    status, _, data = call(port, "GET", "/v2/models/cropshield-demo")
    meta = json.loads(data)
    check(status == 200 and meta["inputs"][0]["datatype"] == "BYTES" and meta["versions"] == ["1"],
          "model metadata: BYTES input, version 1")
    check(call(port, "GET", "/v2/models/cropshield-demo/versions/1/ready")[0] == 200,
          "model version ready")
    check(call(port, "GET", "/v2/models/nope/ready")[0] == 503, "unknown model not ready (503)")
    check(call(port, "GET", "/v2/models/nope")[0] == 404, "unknown model metadata 404")
    photos = [open(os.path.join(SAMPLES, n), "rb").read() for n in PHOTOS]
    status, _, data = call(port, "POST", "/v2/models/cropshield-demo/infer", infer_body(photos),
                           {"Content-Type": "application/json"})
    answer = json.loads(data)
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    probs = outputs.get("probabilities", {}).get("data", [])
    worst = 0.0
    for i, photo in enumerate(photos):
        expected = t.probabilities(server.predict(photo, top_k=22), 22)
        worst = max([worst] + [abs(probs[i * 22 + c] - expected[c]) for c in range(22)])
    check(status == 200 and answer["id"] == "req-1" and outputs["probabilities"]["shape"] == [3, 22]
          and worst <= 1e-6, f"infer (JSON, 3 photos): probabilities = Predict's, max diff {worst}")
    check(outputs["labels"]["shape"] == [3, 3] and outputs["labels"]["data"][0] ==
          server.predict(photos[0]).predictions[0].label, "infer labels: top_k 3 per photo")
    # Triton's binary data extension: raw BYTES elements in, raw FP32 out.
    raw = b"".join(struct.pack("<I", len(p)) + p for p in photos)
    header = json.dumps({"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "probabilities",
                                      "parameters": {"binary_data": True}}]}).encode()
    status, headers, data = call(port, "POST", "/v2/models/cropshield-demo/infer", header + raw,
                                 {"Content-Type": "application/octet-stream",
                                  "Inference-Header-Content-Length": str(len(header))})
    json_length = int(headers.get("inference-header-content-length", "0"))
    floats = struct.unpack("<66f", data[json_length:]) if len(data) - json_length == 264 else ()
    check(status == 200 and len(floats) == 66 and abs(sum(floats[:22]) - 1) < 1e-4 and
          abs(floats[0] - probs[0]) <= 1e-6, "binary data extension: 3x22 raw FP32 back")


def test_admin_and_stats(port, token):
    status, _, data = call(port, "POST", "/v1/cache:clear")
    check(status == 401 or status == 403, f"cache:clear without a token: {status}")
    status, _, data = call(port, "POST", "/v1/cache:clear",
                           headers={"Authorization": "Bearer wrong"})
    check(status in (401, 403) and json.loads(data)["code"] in ("UNAUTHENTICATED",
                                                                 "PERMISSION_DENIED"),
          f"cache:clear with a wrong token: {status}")
    status, _, data = call(port, "POST", "/v1/cache:clear",
                           headers={"Authorization": f"Bearer {token}"})
    check(status == 200 and json.loads(data)["explain_entries_freed"] >= 1,
          f"cache:clear with the token frees the Explain entries ({data[:80]!r})")
    status, _, data = call(port, "GET", "/v1/stats")
    stats = json.loads(data)
    rpcs = {r["rpc"]: r["total"] for r in stats["rpcs"]}
    check(status == 200 and rpcs.get("Predict", 0) >= 4 and rpcs.get("Explain", 0) >= 3,
          f"Stats counts REST calls with gRPC ones ({rpcs})")


HOSTILE = [
    ("truncated body", b"POST /v1/predict HTTP/1.1\r\nContent-Type: image/jpeg\r\n"
     b"Content-Length: 5000\r\n\r\n\xff\xd8\xff", (408,)),
    ("1 GB Content-Length claim", b"POST /v1/predict HTTP/1.1\r\nContent-Type: image/jpeg\r\n"
     b"Content-Length: 1000000000\r\n\r\n", (413,)),
    ("chunked body", b"POST /v1/predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", (411,)),
    ("huge headers", b"GET /v2 HTTP/1.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n", (431,)),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", (400,)),
    ("negative length", b"POST /v1/predict HTTP/1.1\r\nContent-Length: -1\r\n\r\n", (400,)),
    ("unknown method", b"BREW /v1/predict HTTP/1.1\r\n\r\n", (405,)),
]


def hostile_requests(port):
    yield from ((name, lambda d=data: raw_exchange(port, d, timeout=15), want)
                for name, data, want in HOSTILE)
    jpeg = open(os.path.join(SAMPLES, PHOTOS[0]), "rb").read()
    cases = [
        ("wrong content type", "/v1/predict", jpeg, "text/plain", (415,)),
        ("not a photo", "/v1/predict", b"hello world", "image/jpeg", (400,)),
        ("truncated JPEG", "/v1/predict", jpeg[:2000], "image/jpeg", (400,)),
        ("empty body", "/v1/predict", b"", "image/jpeg", (400,)),
        ("bad JSON", "/v2/models/cropshield-demo/infer", b"{\"inputs\": [", "application/json",
         (400,)),
        ("bad base64", "/v2/models/cropshield-demo/infer",
         json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                 "data": ["%%% not base64 %%%"]}]}).encode(), "application/json",
         (400,)),
        ("wrong datatype", "/v2/models/cropshield-demo/infer",
         json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "FP32",
                                 "data": [1.5]}]}).encode(), "application/json", (400,)),
        ("binary size past the end", "/v2/models/cropshield-demo/infer",
         json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                 "parameters": {"binary_data_size": 99999}}]}).encode(),
         "application/json", (400,)),
        ("form-encoded JSON", "/v2/models/cropshield-demo/infer", b"a=" + b"b" * 20000,
         "application/x-www-form-urlencoded", (400, 413)),
        ("bad query value", "/v1/explain?alpha=7", jpeg, "image/jpeg", (400,)),
        ("bad method name", "/v1/explain?method=magic", jpeg, "image/jpeg", (400,)),
        ("unknown model", "/v1/predict?model=nope", jpeg, "image/jpeg", (404,)),
    ]
    for name, path, body, content_type, want in cases:
        yield (name, lambda p=path, b=body, c=content_type: call(port, "POST", p, b,
                                                                 {"Content-Type": c}), want)


def status_of(result):
    if isinstance(result, tuple):
        return result[0], result[2]
    line = result.split(b"\r\n", 1)[0].split(b" ")
    return (int(line[1]) if len(line) > 1 and line[1].isdigit() else 0), result


def test_hostile_corpus(server, port):
    for name, send, want in hostile_requests(port):
        status, body = status_of(send())
        check(status in want, f"hostile: {name} -> {status} (want {want})")
    # Slow clients: a head trickled one byte at a time, and bodies that never finish, do not stop
    # a well-behaved caller.
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
    for s in slow:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc")
    trickle = socket.create_connection(("127.0.0.1", port))
    trickle.sendall(b"G")
    start = time.time()
    status, _, _ = call(port, "GET", "/v2/health/ready", timeout=10)
    check(status == 200 and time.time() - start < 2,
          f"ready answered in {time.time() - start:.3f} s beside 12 stalled uploads and a trickle")
    for s in slow + [trickle]:
        s.close()
    jpeg = open(os.path.join(SAMPLES, PHOTOS[0]), "rb").read()
    check(post_photo(port, "/v1/predict", jpeg)[0] == 200 and server.process.poll() is None,
          "after the corpus the server is alive and predicts")
    check(call(port, "GET", "/v2/health/ready")[0] == 200, "and still SERVING")


def test_not_ready_while_draining():
    # Load balancers and httpGet probes read readiness over HTTP: 503 once the server drains.
    with t.Server("--model=" + t.DEMO_REPOSITORY, "--metrics_address=", "--warmup_iterations=1",
                  "--drain_delay_ms=3000") as server:
        port = server.http_port
        check(call(port, "GET", "/v2/health/ready")[0] == 200, "ready once SERVING")
        server.process.send_signal(15)
        deadline = time.time() + 5
        status = 200
        while time.time() < deadline and status == 200:
            try:
                status = call(port, "GET", "/v2/health/ready", timeout=2)[0]
            except OSError:
                status = 0  # the port is gone
            time.sleep(0.02)
        check(status == 503, f"503 from /v2/health/ready while draining ({status})")


def test_overload_answers_429_with_retry_after():
    """Admission limits answer as on gRPC: RESOURCE_EXHAUSTED becomes 429 with Retry-After."""
    import concurrent.futures
    with t.Server("--model=" + t.DEMO_REPOSITORY, "--metrics_address=", "--workers=1",
                  "--max_inflight_calls=1", "--retry_pushback_ms=1500") as server:
        port = server.http_port
        photo = open(os.path.join(SAMPLES, "potato_early_blight_1600x1200.jpg"), "rb").read()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: post_photo(port, "/v1/predict", photo), range(16)))
        refused = [(h, json.loads(b)) for status, h, b in results if status == 429]
        served = sum(1 for status, _, _ in results if status == 200)
        check(refused and served and served + len(refused) == 16,
              f"16 concurrent calls, one admitted at a time: {served} served, {len(refused)} 429")
        check(all(h.get("retry-after") == "2" and b["code"] == "RESOURCE_EXHAUSTED"
                  for h, b in refused), "each 429 says RESOURCE_EXHAUSTED and Retry-After: 2")


class LoopbackHttps(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that checks the certificate for "localhost" (no name lookup needed)."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname="localhost")


def https_call(port, context, method, path, body=None, headers=None):
    conn = LoopbackHttps("127.0.0.1", port, timeout=30, context=context)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def test_https_with_client_certificates():
    """With --tls_cert the HTTP port speaks TLS with the same certificate; with --tls_client_ca
    clients need a certificate from that CA, whose identity admin calls accept."""
    directory = tempfile.mkdtemp(prefix="cropshield_rest_tls_")
    ca = certs.make_ca(directory)
    server_cert = certs.make_certificate(directory, ca, "server.pem", "server.key", "localhost",
                                         "localhost")
    admin = certs.make_certificate(directory, ca, "admin.pem", "admin.key", "rest-admin")
    outsider_ca = certs.make_ca(directory, "other-ca.pem", "other-ca.key")
    outsider = certs.make_certificate(directory, outsider_ca, "out.pem", "out.key", "rest-admin")
    credentials = grpc.ssl_channel_credentials(
        open(ca[0], "rb").read(), open(admin[1], "rb").read(), open(admin[0], "rb").read())
    with t.Server("--model=" + t.DEMO_REPOSITORY, "--metrics_address=", "--workers=1",
                  f"--tls_cert={server_cert[0]}", f"--tls_key={server_cert[1]}",
                  f"--tls_client_ca={ca[0]}", "--admin_client_identities=rest-admin",
                  credentials=credentials,
                  channel_options=[("grpc.ssl_target_name_override", "localhost")]) as server:
        port = server.http_port
        check("; TLS)" in server.read_log(), "the log says the HTTP port serves TLS")
        context = ssl.create_default_context(cafile=ca[0])
        context.load_cert_chain(admin[0], admin[1])
        photo = open(os.path.join(SAMPLES, PHOTOS[0]), "rb").read()
        status, data = https_call(port, context, "POST", "/v1/predict", photo,
                                  {"Content-Type": "image/jpeg"})
        check(status == 200 and json.loads(data)["predictions"][0]["label"] ==
              server.predict(photo).predictions[0].label, "HTTPS Predict with a client certificate")
        status, data = https_call(port, context, "POST", "/v1/cache:clear")
        check(status == 200, f"cache:clear admitted by the client certificate's identity ({status})")
        for name, chain in [("no client certificate", None),
                            ("a certificate from another CA", outsider)]:
            refused = ssl.create_default_context(cafile=ca[0])
            if chain:
                refused.load_cert_chain(chain[0], chain[1])
            try:
                https_call(port, refused, "GET", "/v2/health/ready")
                check(False, f"HTTPS with {name} refused")
            except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError) as e:
                check(True, f"HTTPS with {name} refused ({type(e).__name__})")
        reply = raw_exchange(port, b"GET /v2/health/ready HTTP/1.1\r\n\r\n", timeout=5)
        check(not reply.startswith(b"HTTP/1.1 200"), "plaintext HTTP on the TLS port gets no answer")
        status, _ = https_call(port, context, "GET", "/v2/health/ready")
        check(status == 200, "and the TLS port still serves")


def main():
    token = "rest-test-token-0123456789"
    env_token = os.environ.get("CROPSHIELD_ADMIN_TOKEN")
    os.environ["CROPSHIELD_ADMIN_TOKEN"] = token
    try:
        with t.Server("--model=" + t.DEMO_REPOSITORY, "--metrics_address=", "--workers=1",
                      "--http_body_timeout_ms=2000") as server:
            port = server.http_port
            for test in (test_predict_and_explain_match_grpc, test_open_inference_protocol_rest):
                print("==", test.__name__, flush=True)
                test(server, port)
            print("== test_admin_and_stats", flush=True)
            test_admin_and_stats(port, token)
            print("== test_hostile_corpus", flush=True)
            test_hostile_corpus(server, port)
    finally:
        if env_token is None:
            os.environ.pop("CROPSHIELD_ADMIN_TOKEN", None)
        else:
            os.environ["CROPSHIELD_ADMIN_TOKEN"] = env_token
    print("== test_overload_answers_429_with_retry_after", flush=True)
    test_overload_answers_429_with_retry_after()
    print("== test_https_with_client_certificates", flush=True)
    test_https_with_client_certificates()
    print("== test_not_ready_while_draining", flush=True)
    test_not_ready_while_draining()
    if failures:
        print(f"{len(failures)} check(s) failed:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
