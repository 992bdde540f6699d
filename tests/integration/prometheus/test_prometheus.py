#!/usr/bin/python3
"""Integration test: cropshield-server, a real Prometheus, and the deploy/ rules and dashboard.

Starts the real server (gRPC and metrics on ephemeral ports, read from its log) and a real
Prometheus (loopback, 1 s scrape and rule evaluation, temporary data directory, a generated config
that scrapes the server as job "cropshield" and loads deploy/prometheus/alerts.yml), drives traffic
with the `cropshield` CLI (Predict, Explain with a cache hit, Stats, ClearCache, and bad inputs so
that error series exist), waits until Prometheus has scraped the final counters, then asserts:

 1. /metrics (fetched directly) is the text format and lists every documented family; the GPU
    families are present exactly when a model is served on CUDA.
 2. Exact counts through PromQL: cropshield_requests_total and _request_duration_seconds_count per
    (rpc, code) equal the calls this test made (and their outcome as the CLI saw it);
    cropshield_request_errors_total equals the non-OK ones; cache hits/misses/inserts/entries,
    explain batch sizes and per-stage observation counts match what the responses reported.
 3. Every PromQL target of deploy/grafana/dashboards/cropshield.json, with $job, $instance and
    $model replaced by ".+" and $__rate_interval by 1m, evaluates without error and returns at
    least one series (values may be 0; the GPU memory panel must be empty on CPU and non-empty on
    CUDA). Every template variable query label_values(M, L) yields a series of M with label L.
 4. alerts.yml, as loaded by that Prometheus: every rule's health is "ok" with no evaluation
    error; every recording rule's output series is non-empty; every alert expression evaluates
    without error (it is empty unless the alert's condition holds, which is not asserted here:
    alerts_test.yml checks firing with promtool). Each alert expression is split at its top-level
    and/or/unless into operands, each operand loses its trailing "<op> <number>" comparison, and
    that left-hand side must return at least one series.
 5. Predict p50 from histogram_quantile over the cumulative buckets of
    cropshield_request_duration_seconds{rpc="Predict",code="OK"} (all calls since start) lies in
    [floor_bound(t_k), ceil_bound(c_k)] where k = ceil(0.5 n) for the n successful Predict calls,
    c_k is the k-th smallest client round trip (CLI --json round_trip_ms), t_k the k-th smallest
    server timing.total_us of the responses, ceil_bound(x) the smallest bucket bound >= x and
    floor_bound(x) the largest bound < x (0 if none). Why: the server observes each call from
    accepting it until just before sending the response, so each observation is <= that call's
    client round trip and >= the total_us the server put into the response (measured earlier on the
    same clock); order statistics keep those inequalities; histogram_quantile returns a value
    inside the bucket that holds the k-th observation. The dashboard's rate-based p50/p90/p99 of
    Predict (over a subset of the calls) must lie within [floor_bound(min t), ceil_bound(max c)].
 6. The server exits 0 on SIGTERM; both processes are gone when the test ends (also on failure).

Usage: test_prometheus.py --server BIN --cli BIN --source-dir DIR [--prometheus BIN] [--model DIR]
                          [--keep] [--dump-metrics FILE]
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

FAMILIES = [
    "cropshield_requests_total", "cropshield_request_errors_total",
    "cropshield_request_duration_seconds", "cropshield_stage_duration_seconds",
    "cropshield_batch_size", "cropshield_queue_rejected_total", "cropshield_requests_in_flight",
    "cropshield_queue_depth", "cropshield_queue_capacity", "cropshield_cache_hits_total",
    "cropshield_cache_misses_total", "cropshield_cache_evictions_total",
    "cropshield_cache_expirations_total", "cropshield_cache_inserts_total",
    "cropshield_cache_entries", "cropshield_cache_bytes", "cropshield_cache_capacity_bytes",
    "cropshield_model_info", "cropshield_model_load_seconds", "cropshield_model_warmup_seconds",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_threads",
]
GPU_FAMILIES = ["cropshield_gpu_memory_allocated_bytes", "cropshield_gpu_memory_reserved_bytes"]

# Loopback only: never let an http_proxy variable route these requests elsewhere.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message, flush=True)
    return condition


def log(*args):
    print(*args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with HTTP.open(url, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def kill_with_parent():
    """In the child: the kernel sends SIGKILL if the test process dies (CTest timeout, kill -9)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Processes:
    """Child processes, stopped (TERM, then KILL) by stop_all() even when the test fails, and
    killed by the kernel if the test process itself dies."""

    def __init__(self):
        self.children = []

    def start(self, argv, log_path):
        out = open(log_path, "wb")
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   preexec_fn=kill_with_parent)
        self.children.append((process, out))
        return process

    @staticmethod
    def stop(process, timeout=15):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait()

    def stop_all(self):
        for process, out in self.children:
            self.stop(process)
            out.close()


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with HTTP.open(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:  # 400/422 carry the PromQL error in JSON
            body = json.load(e)
        return body

    def query(self, expr):
        """(result list, error string or None) of an instant query at now."""
        body = self.api("/api/v1/query", query=expr)
        if body.get("status") != "success":
            return [], f"{body.get('errorType')}: {body.get('error')}"
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}], None
        return data["result"], None

    def value(self, expr):
        result, error = self.query(expr)
        if error or not result:
            return None
        return float(result[0]["value"][1])

    def by_labels(self, expr, *labels):
        result, error = self.query(expr)
        if error:
            raise RuntimeError(f"{expr}: {error}")
        return {tuple(r["metric"].get(l, "") for l in labels): float(r["value"][1]) for r in result}


# ---- PromQL helpers for the alert expressions --------------------------------------------------

def top_level_split(expr, words):
    """Splits `expr` at the given binary keywords outside (), [], {} and strings."""
    parts, depth, start, i, quote = [], 0, 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for word in words:
                if (expr.startswith(word, i) and (i == 0 or not expr[i - 1].isalnum())
                        and (i + len(word) == len(expr) or not expr[i + len(word)].isalnum())):
                    parts.append(expr[start:i])
                    start = i + len(word)
                    i = start - 1
                    break
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


def strip_parens(expr):
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, c in enumerate(expr):
            depth += c == "("
            depth -= c == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr
        expr = expr[1:-1].strip()
    return expr


COMPARISON = re.compile(
    r"^(?P<lhs>.*?)\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?[0-9.]+(?:e[-+]?\d+)?$", re.S)


def comparison_lhs(operand):
    """The operand without a trailing top-level '<op> <number>' (itself if it has none)."""
    operand = strip_parens(operand)
    match = COMPARISON.match(operand)
    if match:
        lhs = match.group("lhs")
        # The comparison must be at depth 0: then the left side has balanced brackets.
        if lhs.count("(") == lhs.count(")") and lhs.count("{") == lhs.count("}"):
            return strip_parens(lhs)
    return operand


def substitute_grafana(expr):
    expr = expr.replace("$__rate_interval", "1m")
    for name in ("job", "instance", "model"):
        expr = expr.replace("${" + name + "}", ".+").replace("$" + name, ".+")
    return expr


def bucket_bounds(metrics_text, family, labels):
    bounds = set()
    pattern = re.compile(r"^" + re.escape(family) + r"_bucket\{(.*)\} ")
    for line in metrics_text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(pairs.get(k) == v for k, v in labels.items()) and pairs["le"] != "+Inf":
            bounds.add(float(pairs["le"]))
    return sorted(bounds)


def ceil_bound(bounds, x):
    above = [b for b in bounds if b >= x]
    return above[0] if above else math.inf


def floor_bound(bounds, x):
    below = [b for b in bounds if b < x]
    return below[-1] if below else 0.0


# ---- the test ----------------------------------------------------------------------------------

def make_images(directory):
    from PIL import Image
    import numpy as np
    paths = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        pixels = np.zeros((360 + 40 * seed, 480, 3), np.uint8)
        pixels[..., 1] = 120 + 20 * seed
        pixels += rng.integers(0, 60, pixels.shape, dtype=np.uint8)
        path = os.path.join(directory, f"leaf{seed}.jpg")
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    bad = os.path.join(directory, "not_an_image.jpg")
    with open(bad, "w") as f:
        f.write("this is not an image\n")
    return paths, bad


class Traffic:
    """Runs the CLI and keeps what the server should have counted."""

    def __init__(self, cli, target, work):
        self.cli, self.target, self.work = cli, target, work
        self.calls = {}  # (rpc, code) -> count
        self.round_trips = []  # seconds, successful Predict calls
        self.server_totals = []  # seconds, timing.total_us of those responses
        self.stage_counts = {}  # stage -> observations expected
        self.explain_hits = self.explain_misses = 0
        self.explain_keys_since_clear = set()
        self.explain_inserts = 0

    def count(self, rpc, code):
        self.calls[(rpc, code)] = self.calls.get((rpc, code), 0) + 1

    def run(self, *args):
        result = subprocess.run([self.cli, *args, f"--target={self.target}"], capture_output=True,
                                text=True, timeout=60)
        return result

    def errors(self, stderr, rpc):
        for code in re.findall(r"^error: .*?: ([A-Z_]+): ", stderr, re.M):
            self.count(rpc, code)

    def stages(self, timing):
        for field, stage in (("decode_us", "decode"), ("preprocess_us", "preprocess"),
                             ("queue_us", "queue"), ("inference_us", "inference"),
                             ("explain_us", "explain"), ("encode_us", "encode")):
            if int(timing.get(field, 0)) > 0:
                self.stage_counts[stage] = self.stage_counts.get(stage, 0) + 1

    def predict(self, images):
        result = self.run("predict", *images, "--json")
        for line in result.stdout.splitlines():
            row = json.loads(line)
            self.count("Predict", "OK")
            self.round_trips.append(row["round_trip_ms"] / 1000.0)
            timing = row["response"]["timing"]
            self.server_totals.append(int(timing["total_us"]) / 1e6)
            self.stages(timing)
        self.errors(result.stderr, "Predict")
        return result

    def explain(self, image, *flags):
        heatmap = os.path.join(self.work, "heatmap.png")
        result = self.run("explain", image, "--json", f"--out={heatmap}", *flags)
        if result.returncode == 0:
            response = json.loads(result.stdout.splitlines()[-1])
            self.count("Explain", "OK")
            if response.get("cached"):
                self.explain_hits += 1
            else:
                self.explain_misses += 1
                self.explain_inserts += 1
                self.explain_keys_since_clear.add((image, flags))
                self.stages(response["timing"])
        self.errors(result.stderr, "Explain")
        return result

    def stats(self):
        result = self.run("stats", "--json")
        check(result.returncode == 0, f"stats failed: {result.stderr}")
        self.count("Stats", "OK")

    def clear_cache(self):
        result = self.run("clear-cache")
        check(result.returncode == 0, f"clear-cache failed: {result.stderr}")
        self.count("ClearCache", "OK")
        self.explain_keys_since_clear.clear()


def start_server(args, procs, work, model):
    server_log = os.path.join(work, "server.log")
    server = procs.start([args.server, f"--model={model}", "--address=127.0.0.1:0",
                          "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                          "--workers=1", "--threads=1",
                          "--warmup_iterations=1", "--admin_trust_loopback"], server_log)

    def ports():
        text = read(server_log)
        if server.poll() is not None:
            raise RuntimeError(f"server exited early:\n{text}")
        grpc_port = re.search(r"^\S+ I listening on port (\d+)", text, re.M)
        metrics_port = re.search(r"^\S+ I metrics listening on port (\d+)", text, re.M)
        if grpc_port and metrics_port and re.search(r"^\S+ I SERVING ", text, re.M):
            return int(grpc_port.group(1)), int(metrics_port.group(1))
        return None

    grpc_port, metrics_port = wait_for(ports, 120, "the server to log its ports and SERVING")
    return server, server_log, grpc_port, metrics_port


def start_prometheus(args, procs, work, metrics_port, job):
    alerts = os.path.join(args.source_dir, "deploy", "prometheus", "alerts.yml")
    for attempt in range(3):
        port = free_port()
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {json.dumps(alerts)}
scrape_configs:
  - job_name: {json.dumps(job)}
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
""")
        data = os.path.join(work, f"data{attempt}")
        prom_log = os.path.join(work, f"prometheus{attempt}.log")
        process = procs.start([args.prometheus, f"--config.file={config}",
                               f"--storage.tsdb.path={data}",
                               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                              prom_log)
        prometheus = Prometheus(port)

        def ready():
            if process.poll() is not None:
                return "exited"
            try:
                return http_get(f"{prometheus.base}/-/ready", timeout=1)[0] == 200
            except OSError:
                return False

        state = wait_for(ready, 60, "Prometheus to be ready")
        if state is True:
            return process, prometheus
        log(f"prometheus exited (attempt {attempt}):\n{read(prom_log)}")
    raise RuntimeError("Prometheus did not start")


def job_name(source_dir):
    """The job name the deployed config scrapes (alerts and dashboard select on it)."""
    text = read(os.path.join(source_dir, "deploy", "prometheus", "prometheus.yml"))
    return re.search(r"job_name:\s*(\S+)", text).group(1).strip("\"'")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    parser.add_argument("--model", default="", help="model package; default: make test packages")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--dump-metrics", default="", help="also write the final /metrics here")
    args = parser.parse_args()

    started = time.time()
    work = tempfile.mkdtemp(prefix="cropshield_prometheus_test_")
    procs = Processes()
    try:
        model = args.model
        if not model:
            make_packages = os.path.join(args.source_dir, "tests", "testing",
                                         "make_test_packages.py")
            subprocess.run([sys.executable, make_packages, os.path.join(work, "packages")],
                           check=True, capture_output=True)
            model = os.path.join(work, "packages", "repo")
        images, bad = make_images(work)
        job = job_name(args.source_dir)

        server, server_log, grpc_port, metrics_port = start_server(args, procs, work, model)
        log(f"server: gRPC port {grpc_port}, metrics port {metrics_port}")
        prom_process, prom = start_prometheus(args, procs, work, metrics_port, job)
        log(f"prometheus: {prom.base}")
        wait_for(lambda: prom.value(f'up{{job="{job}"}}') == 1, 30, "the first successful scrape")

        # Traffic in two phases a few scrapes apart, so that rates over 1m have increases to see.
        traffic = Traffic(args.cli, f"127.0.0.1:{grpc_port}", work)
        check(traffic.predict(images * 5).returncode == 0, "predict phase 1 failed")
        traffic.explain(images[0])
        traffic.explain(images[0])  # cache hit
        traffic.explain(images[1], "--method=grad_cam_plus_plus")
        check(traffic.predict([bad, bad]).returncode == 1, "bad predict input did not fail")
        check(traffic.explain(images[0], "--class=999").returncode == 1, "bad class did not fail")
        check(traffic.explain(images[0], "--model_name=no_such_model").returncode == 1,
              "unknown model did not fail")
        traffic.stats()
        traffic.clear_cache()
        time.sleep(2.5)
        check(traffic.predict(images * 5).returncode == 0, "predict phase 2 failed")
        traffic.explain(images[2])
        traffic.explain(images[2])  # cache hit
        total_calls = sum(traffic.calls.values())
        log("calls made:", dict(sorted(traffic.calls.items())))

        total_expr = f'sum(cropshield_requests_total{{job="{job}"}})'
        wait_for(lambda: prom.value(total_expr) == total_calls, 30,
                 f"Prometheus to see all {total_calls} calls")
        time.sleep(2.5)  # a further scrape and rule evaluation on the final counters

        # 1. /metrics directly.
        status, content_type, text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        if args.dump_metrics:
            with open(args.dump_metrics, "w") as f:
                f.write(text)
        check(status == 200 and content_type.startswith("text/plain; version=0.0.4"),
              f"/metrics answered {status} {content_type}")
        for family in FAMILIES:
            check(f"# TYPE {family} " in text, f"/metrics lacks family {family}")
        cuda_models = f'count(cropshield_model_info{{job="{job}", device=~"cuda.*"}})'
        on_cuda = prom.value(cuda_models) is not None
        for family in GPU_FAMILIES:
            check((f"# TYPE {family} " in text) == on_cuda,
                  f"{family} {'missing on CUDA' if on_cuda else 'present on CPU'}")
        check(http_get(f"http://127.0.0.1:{metrics_port}/healthz")[2] == "ok\n", "/healthz")
        try:
            http_get(f"http://127.0.0.1:{metrics_port}/nope")
            check(False, "/nope did not answer 404")
        except urllib.error.HTTPError as e:
            check(e.code == 404, f"/nope answered {e.code}")

        # 2. Exact counts.
        sel = f'job="{job}"'
        requests = {k: v for k, v in prom.by_labels(f"cropshield_requests_total{{{sel}}}", "rpc",
                                                    "code").items() if v > 0}
        check(requests == {k: float(v) for k, v in traffic.calls.items()},
              f"requests_total {requests} != calls made {traffic.calls}")
        counts = {k: v for k, v in prom.by_labels(
            f"cropshield_request_duration_seconds_count{{{sel}}}", "rpc", "code").items() if v > 0}
        check(counts == requests, f"duration _count {counts} != requests_total {requests}")
        errors = prom.by_labels(f"cropshield_request_errors_total{{{sel}}}", "rpc", "code")
        expected_errors = {k: float(v) for k, v in traffic.calls.items() if k[1] != "OK"}
        check(errors == expected_errors, f"errors_total {errors} != {expected_errors}")
        check(len(expected_errors) >= 2, f"too few error codes produced: {expected_errors}")
        cache = {name: prom.value(f'cropshield_cache_{name}{{{sel}, cache="explain"}}')
                 for name in ("hits_total", "misses_total", "inserts_total", "entries", "bytes",
                              "evictions_total")}
        check(cache["hits_total"] == traffic.explain_hits, f"cache hits {cache}")
        check(cache["misses_total"] == traffic.explain_misses, f"cache misses {cache}")
        check(cache["inserts_total"] == traffic.explain_inserts, f"cache inserts {cache}")
        check(cache["entries"] == len(traffic.explain_keys_since_clear), f"cache entries {cache}")
        check(cache["bytes"] > 0 and cache["evictions_total"] == 0,
              f"cache bytes/evictions {cache}")
        batches = prom.by_labels(f"cropshield_batch_size_sum{{{sel}}}", "batcher")
        # Every computed Explain and every successful Predict went through its batcher exactly once.
        predicted = traffic.calls.get(("Predict", "OK"), 0)
        check(batches == {("explain",): float(traffic.explain_misses), ("predict",): float(predicted)},
              f"batch size sum {batches} != computed explains {traffic.explain_misses} and "
              f"predicts {predicted}")
        stage_counts = {k[0]: v for k, v in prom.by_labels(
            f"sum by (stage) (cropshield_stage_duration_seconds_count{{{sel}}})", "stage").items()
            if v > 0}
        check(stage_counts == {k: float(v) for k, v in traffic.stage_counts.items()},
              f"stage counts {stage_counts} != {traffic.stage_counts}")
        all_stages = {"decode", "preprocess", "queue", "inference", "explain", "encode"}
        check(set(traffic.stage_counts) == all_stages,
              f"not every stage ran: {traffic.stage_counts}")
        info = prom.by_labels(f"cropshield_model_info{{{sel}}}", "model", "version", "device",
                              "precision")
        check(len(info) == 1 and list(info.values()) == [1.0], f"model_info {info}")
        start_time = prom.value(f"process_start_time_seconds{{{sel}}}")
        check(start_time is not None and started - 5 <= start_time <= time.time(),
              f"process start time {start_time} not within the test")
        for expr in (f"process_resident_memory_bytes{{{sel}}} > 10e6",
                     f"process_open_fds{{{sel}}} > 3", f"process_cpu_seconds_total{{{sel}}} > 0",
                     f"cropshield_requests_in_flight{{{sel}}} == 0",
                     f'cropshield_queue_depth{{{sel}, queue="executor"}} == 0'):
            check(prom.query(expr)[0], f"{expr} is not true")

        # 3. The dashboard.
        dashboard_path = os.path.join(args.source_dir, "deploy", "grafana", "dashboards",
                                      "cropshield.json")
        with open(dashboard_path) as f:
            dashboard = json.load(f)
        targets = []
        for panel in dashboard["panels"]:
            for nested in [panel] + panel.get("panels", []):
                for target in nested.get("targets", []):
                    targets.append((nested["title"], target["expr"]))
        check(len(targets) >= 25, f"only {len(targets)} dashboard targets")
        for title, expr in targets:
            result, error = prom.query(substitute_grafana(expr))
            gpu = "cropshield_gpu_" in expr
            if error:
                check(False, f"dashboard '{title}': {error}: {expr}")
            elif gpu and not on_cuda:
                check(not result, f"dashboard '{title}' has GPU series on CPU: {expr}")
            else:
                check(bool(result), f"dashboard '{title}' returned no series: {expr}")
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["definition"].strip())
            check(m is not None, f"variable {variable['name']}: unexpected query")
            if m:
                result, error = prom.query(substitute_grafana(m.group(1)))
                check(not error and any(m.group(2) in r["metric"] for r in result),
                      f"variable {variable['name']}: no series with label {m.group(2)} ({error})")

        # 4. The rules as Prometheus loaded them.
        rules = prom.api("/api/v1/rules")["data"]["groups"]
        recorded, alerts = [], []
        for group in rules:
            for rule in group["rules"]:
                check(rule["health"] == "ok" and not rule.get("lastError"),
                      f"rule {rule['name']}: health {rule['health']} {rule.get('lastError')}")
                (alerts if rule["type"] == "alerting" else recorded).append(rule)
        check(len(recorded) >= 6 and len(alerts) >= 6,
              f"{len(recorded)} recording, {len(alerts)} alerting rules loaded")
        for rule in recorded:
            result, error = prom.query(rule["name"])
            check(not error and result, f"recorded series {rule['name']} is empty ({error})")
        lhs_checked = 0
        for rule in alerts:
            result, error = prom.query(rule["query"])
            check(error is None, f"alert {rule['name']}: {error}")
            firing = [a for a in rule.get("alerts", []) if a["state"] == "firing"]
            log(f"alert {rule['name']}: {len(result)} series now, {len(firing)} firing")
            for operand in top_level_split(rule["query"], ["and", "or", "unless"]):
                lhs = comparison_lhs(operand)
                result, error = prom.query(lhs)
                check(not error and result, f"alert {rule['name']}: '{lhs}' is empty ({error})")
                lhs_checked += 1
        log(f"checked {len(targets)} dashboard targets, {len(recorded)} recording rules, "
            f"{lhs_checked} alert operands")

        # 5. The Predict p50 against what the client measured.
        predict = {"rpc": "Predict", "code": "OK"}
        bounds = bucket_bounds(text, "cropshield_request_duration_seconds", predict)
        check(len(bounds) == 16 and bounds[0] == 0.0001 and bounds[-1] == 10,
              f"request duration buckets {bounds}")
        n = len(traffic.round_trips)
        k = math.ceil(0.5 * n)
        c_k = sorted(traffic.round_trips)[k - 1]
        t_k = sorted(traffic.server_totals)[k - 1]
        p50 = prom.value(f'histogram_quantile(0.5, sum by (le) ('
                         f'cropshield_request_duration_seconds_bucket'
                         f'{{{sel}, rpc="Predict", code="OK"}}))')
        low, high = floor_bound(bounds, t_k), ceil_bound(bounds, c_k + 1e-6)
        log(f"Predict p50 {p50} s: n={n}, client k-th round trip {c_k:.6f} s, server k-th "
            f"total {t_k:.6f} s, allowed [{low}, {high}], "
            f"client max {max(traffic.round_trips):.6f} s")
        check(p50 is not None and low <= p50 <= high, f"p50 {p50} outside [{low}, {high}]")
        check(p50 is not None and p50 <= ceil_bound(bounds, max(traffic.round_trips) + 1e-6),
              "p50 above the bucket of the largest client round trip")
        loose_low = floor_bound(bounds, min(traffic.server_totals))
        loose_high = ceil_bound(bounds, max(traffic.round_trips) + 1e-6)
        for q in ("0.5", "0.9", "0.99"):
            value = prom.value(f'histogram_quantile({q}, sum by (le, rpc) (rate('
                               f'cropshield_request_duration_seconds_bucket{{{sel}, rpc="Predict", '
                               f'code="OK"}}[1m])))')
            check(value is not None and loose_low <= value <= loose_high,
                  f"rate-based Predict p{q}: {value} outside [{loose_low}, {loose_high}]")

        # 6. Clean shutdown.
        exit_code = Processes.stop(server)
        check(exit_code == 0, f"server exited {exit_code} on SIGTERM:\n{read(server_log)[-3000:]}")
        Processes.stop(prom_process)
        check(not re.search(r"^\S+ E ", read(server_log), re.M),
              f"server logged errors:\n{read(server_log)[-3000:]}")
    finally:
        procs.stop_all()
        if failures or args.keep:
            log(f"work directory kept: {work}")
            for name in sorted(os.listdir(work)):
                if name.endswith(".log"):
                    log(f"--- {name} (tail)\n{read(os.path.join(work, name))[-2000:]}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"{len(failures)} failure(s) in {time.time() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
