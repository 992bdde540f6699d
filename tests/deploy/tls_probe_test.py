#!/usr/bin/env python3
"""The TLS overlay's probes against the real server: renders deploy/k8s/overlays/tls, makes the
Secret's files (tls.crt, tls.key, ca.crt) with openssl, starts cropshield-server with the overlay's
flags (the Secret's mount path pointing at those files; model, ports and device set for the test
machine) and runs the overlay's exec probe command with the built CLI:
  * the probe fails while the server has not started, passes once it is SERVING;
  * a plaintext `cropshield health` (what a kubelet grpc probe does) and the probe without its client
    certificate are refused;
  * after SIGTERM the readiness probe fails during --drain_delay_ms (the pod leaves the Services).

usage: tls_probe_test.py --server BUILD/server/cropshield-server --cli BUILD/client/cropshield
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "testing"))
import certs  # noqa: E402
import validate_manifests  # noqa: E402


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def make_secret_files(directory, server_name):
    """cert-manager's layout: a CA (ca.crt) and a certificate for server_name signed by it, used as
    server and client certificate alike."""
    ca = certs.make_ca(directory, "ca.crt", "ca.key")
    certs.make_certificate(directory, ca, "tls.crt", "tls.key", server_name, server_name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    args = parser.parse_args()

    resources = validate_manifests.render(os.path.join(ROOT, "deploy", "k8s", "overlays", "tls"))
    deployment = next(r for r in resources if r["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                     if c["name"] == validate_manifests.SERVER_CONTAINER)
    tls_mount = next(vm["mountPath"] for vm in container["volumeMounts"] if vm["name"] == "tls")
    flags_cm = next(r for r in resources if r["kind"] == "ConfigMap")
    flags, bad = validate_manifests.parse_flag_lines(flags_cm["data"]["server.flags"])
    if bad:
        fail(f"flag lines: {bad}")
    readiness = container["readinessProbe"]["exec"]["command"]
    if container["startupProbe"]["exec"]["command"] != readiness:
        fail("startup and readiness probes differ; this test runs one command")
    server_name = next(a.split("=", 1)[1] for a in readiness if a.startswith("--tls_server_name="))

    with tempfile.TemporaryDirectory() as tmp:
        secret = os.path.join(tmp, "secret")
        os.mkdir(secret)
        make_secret_files(secret, server_name)

        def local(value, port):
            return value.replace(tls_mount, secret).replace(":50051", f":{port}")

        # The overlay's flags, with what differs on a test machine replaced (port 0: a free one,
        # read back from the log).
        flags.update(model=os.path.join(ROOT, "models", "repository"), address="127.0.0.1:0",
                     metrics_address="", http_address="", device="cpu", workers="1", threads="1",
                     warmup_iterations="1", drain_delay_ms="4000")
        server_argv = [args.server] + [f"--{k}={local(v, 0)}" for k, v in flags.items()]
        if not os.path.basename(readiness[0]) == "cropshield":
            fail(f"probe command {readiness[0]} is not the cropshield CLI")

        def probe_on(port):
            return [args.cli] + [local(a, port) for a in readiness[1:]]

        def run_probe(argv):
            return subprocess.run(argv, capture_output=True, text=True, timeout=30)

        if run_probe(probe_on(free_port())).returncode == 0:
            fail("the probe passed with no server running")
        log_path = os.path.join(tmp, "server.log")
        log = open(log_path, "w")
        server = subprocess.Popen(server_argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            port = None
            while port is None:
                match = re.search(r" I listening on port (\d+) ", open(log_path).read())
                if match:
                    port = int(match.group(1))
                elif server.poll() is not None or time.time() > deadline:
                    fail("server did not start:\n" + open(log_path).read())
                else:
                    time.sleep(0.05)
            probe = probe_on(port)
            while True:
                result = run_probe(probe)
                if result.returncode == 0:
                    break
                if server.poll() is not None or time.time() > deadline:
                    fail(f"probe never passed: {result.stdout}{result.stderr}\n"
                         + open(log_path).read())
                time.sleep(0.2)
            print(f"probe passed: {result.stdout.strip()}")

            plaintext = run_probe([args.cli, "health", f"--target=127.0.0.1:{port}",
                                   "--deadline_ms=2000", "--max_attempts=1"])
            if plaintext.returncode == 0:
                fail("a plaintext health check (a kubelet grpc probe) passed on the TLS port")
            without_cert = run_probe([a for a in probe
                                      if not a.startswith(("--tls_cert=", "--tls_key="))])
            if without_cert.returncode == 0:
                fail("the probe passed without a client certificate: the server does not require one")
            print("plaintext and certificate-less health checks refused")

            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            draining = run_probe(probe)
            if draining.returncode == 0 or "NOT_SERVING" not in draining.stdout + draining.stderr:
                fail(f"during the drain the probe gave {draining.returncode}: "
                     f"{draining.stdout}{draining.stderr}")
            print("during --drain_delay_ms: probe fails with NOT_SERVING")
            if server.wait(timeout=60) != 0:
                fail(f"server exited with {server.returncode}")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    print("PASS: TLS overlay probes")


if __name__ == "__main__":
    main()
