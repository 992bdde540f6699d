#!/usr/bin/env python3
"""Checks that validate_manifests.py reports broken manifests: each case copies deploy/k8s and
deploy/kserve (next to it, `{d}/../kserve`), breaks one thing and requires a problem naming it that
the unbroken copy does not have."""
import argparse
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import validate_manifests  # noqa: E402


def edit(path, old, new, count=1):
    with open(path) as f:
        text = f.read()
    if old not in text:
        raise AssertionError(f"selftest case out of date: {old!r} not in {path}")
    with open(path, "w") as f:
        f.write(text.replace(old, new, count))


def drop_lines(path, needle):
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if needle not in line]
    if len(kept) == len(lines):
        raise AssertionError(f"selftest case out of date: {needle!r} not in {path}")
    with open(path, "w") as f:
        f.writelines(kept)


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


# (name, mutation(k8s_dir), regex one new problem must match)
CASES = [
    ("unknown flag", lambda d: append(f"{d}/base/server.flags", "--no_such_flag=1\n"),
     r"^base: flag --no_such_flag .*not a flag of cropshield-server"),
    ("bad int value", lambda d: edit(f"{d}/base/server.flags", "--workers=2", "--workers=two"),
     r"^base: flag --workers=two: not a valid int"),
    ("binary rejects value", lambda d: edit(f"{d}/base/server.flags", "--workers=2", "--workers=two"),
     r"^base: cropshield-server rejects the flags: .*workers"),
    ("bad bool value", lambda d: append(f"{d}/overlays/gpu/server.flags", "--channels_last=perhaps\n"),
     r"^overlays/gpu: flag --channels_last=perhaps: not a valid bool"),
    ("not a flag line", lambda d: append(f"{d}/base/server.flags", "workers 3\n"),
     r"line 'workers 3' is not --flag=value"),
    ("grpc port vs --address", lambda d: edit(f"{d}/base/server.flags", "--address=0.0.0.0:50051",
                                              "--address=0.0.0.0:50099"),
     r"^base: container port grpc is 50051, but --address=0.0.0.0:50099"),
    ("metrics port vs --metrics_address", lambda d: edit(f"{d}/base/deployment.yaml",
                                                         "containerPort: 9464", "containerPort: 9465"),
     r"container port metrics is 9465, but --metrics_address"),
    ("probe port", lambda d: edit(f"{d}/base/deployment.yaml", "grpc:\n              port: 50051",
                                  "grpc:\n              port: 50052"),
     r"startupProbe: grpc probe on port 50052"),
    ("liveness path", lambda d: edit(f"{d}/base/deployment.yaml", "path: /healthz", "path: /livez"),
     r"livenessProbe: httpGet path /livez is not served"),
    ("grace too short", lambda d: edit(f"{d}/base/deployment.yaml", "terminationGracePeriodSeconds: 25",
                                       "terminationGracePeriodSeconds: 5"),
     r"^base: terminationGracePeriodSeconds 5 < preStop"),
    ("overlay grace too short", lambda d: edit(f"{d}/overlays/gpu/deployment-gpu.yaml",
                                               "terminationGracePeriodSeconds: 25",
                                               "terminationGracePeriodSeconds: 12"),
     r"^overlays/gpu: terminationGracePeriodSeconds 12 <"),
    ("image tag", lambda d: edit(f"{d}/overlays/gpu/kustomization.yaml", "newTag: 0.1.0-cuda",
                                 "newTag: 0.1.0-cpu"),
     r"^overlays/gpu: image 'cropshield-serve:0.1.0-cpu' is not 'cropshield-serve:0.1.0-cuda'"),
    ("gpu without resource", lambda d: drop_lines(f"{d}/overlays/gpu/deployment-gpu.yaml", "nvidia.com/gpu: 1"),
     r"^overlays/gpu: --device=cuda but the container has no nvidia.com/gpu limit"),
    ("command", lambda d: edit(f"{d}/base/deployment.yaml", "/opt/cropshield/bin/cropshield-server",
                               "/usr/bin/cropshield-server"),
     r"container command /usr/bin/cropshield-server is not the image's ENTRYPOINT"),
    ("Service selector", lambda d: edit(f"{d}/base/service-headless.yaml",
                                        "    app.kubernetes.io/component: server\n  ports",
                                        "    app.kubernetes.io/component: api\n  ports"),
     r"Service cropshield-headless: selector .* does not match the pod labels"),
    ("Service targetPort", lambda d: edit(f"{d}/base/service.yaml", "targetPort: metrics",
                                          "targetPort: prometheus"),
     r"Service cropshield: targetPort prometheus is not a container port"),
    ("ServiceMonitor port", lambda d: edit(f"{d}/base/servicemonitor.yaml", "- port: metrics",
                                           "- port: http-metrics"),
     r"ServiceMonitor cropshield: port 'http-metrics' is not a port name of Service cropshield"),
    ("ServiceMonitor selects both Services", lambda d: edit(f"{d}/base/servicemonitor.yaml",
                                                            '      cropshield.io/scrape: "true"\n', ""),
     r"ServiceMonitor cropshield: selects 2 Services"),
    ("ServiceMonitor job", lambda d: edit(f"{d}/base/servicemonitor.yaml", "jobLabel: app.kubernetes.io/name",
                                          "jobLabel: app.kubernetes.io/component"),
     r"job='server', but deploy/prometheus"),
    ("PrometheusRule out of date", lambda d: edit(f"{d}/base/prometheusrule.yaml",
                                                 "for: 10m", "for: 20m"),
     r"PrometheusRule cropshield: spec.groups differ"),
    ("plaintext grpc probe on a TLS port", lambda d: edit(f"{d}/overlays/tls/deployment-tls.yaml",
                                                         "          startupProbe:\n            grpc: null\n",
                                                         "          startupProbe:\n"),
     r"overlays/tls: startupProbe: grpc probes speak plaintext"),
    ("TLS probe without a client certificate", lambda d: drop_lines(f"{d}/overlays/tls/deployment-tls.yaml",
                                                                     "--tls_cert="),
     r"overlays/tls: startupProbe: the server requires client certificates"),
    ("certificate not from a Secret", lambda d: edit(f"{d}/overlays/tls/server.flags",
                                                     "--tls_key=/etc/cropshield-tls/tls.key",
                                                     "--tls_key=/etc/cropshield/tls.key"),
     r"overlays/tls: --tls_key=/etc/cropshield/tls.key: not in a Secret volume"),
    ("PDB selector", lambda d: edit(f"{d}/base/pdb.yaml", "app.kubernetes.io/name: cropshield\n      app",
                                    "app.kubernetes.io/name: other\n      app"),
     r"PodDisruptionBudget cropshield: selector does not match"),
    ("HPA target", lambda d: edit(f"{d}/base/hpa.yaml", "kind: Deployment\n    name: cropshield",
                                  "kind: StatefulSet\n    name: cropshield"),
     r"HPA cropshield: scaleTargetRef StatefulSet/cropshield"),
    ("HPA metric", lambda d: edit(f"{d}/overlays/gpu/hpa-inflight.yaml", "name: cropshield_requests_in_flight",
                                  "name: cropshield_calls_in_flight"),
     r"^overlays/gpu: HPA cropshield: metric 'cropshield_calls_in_flight' is not a metric family"),
    ("root user", lambda d: edit(f"{d}/base/deployment.yaml", "runAsUser: 10001", "runAsUser: 0"),
     r"runAsUser 0 is not the image's USER 10001"),
    ("writable root", lambda d: edit(f"{d}/base/deployment.yaml", "readOnlyRootFilesystem: true",
                                     "readOnlyRootFilesystem: false"),
     r"readOnlyRootFilesystem is not true"),
    ("token from the environment", lambda d: edit(f"{d}/base/deployment.yaml", "          ports:\n",
                                                  "          env:\n            - name: CROPSHIELD_ADMIN_TOKEN\n"
                                                  "              value: hunter2\n          ports:\n"),
     r"^base: CROPSHIELD_ADMIN_TOKEN is set in the environment"),
    ("token file not in a Secret", lambda d: edit(f"{d}/base/deployment.yaml",
                                                  "--admin_token_file=/etc/cropshield-admin/token",
                                                  "--admin_token_file=/etc/cropshield/token"),
     r"^base: --admin_token_file=/etc/cropshield/token is not in a mounted Secret"),
    ("no admin token", lambda d: drop_lines(f"{d}/base/deployment.yaml", "--admin_token_file="),
     r"^overlays/gpu: no admin token"),
    ("optional admin Secret", lambda d: edit(f"{d}/base/deployment.yaml", "secretName: cropshield-admin\n",
                                             "secretName: cropshield-admin\n            optional: true\n"),
     r"^base: admin token Secret cropshield-admin is optional"),
    ("admin Secret key", lambda d: edit(f"{d}/base/deployment.yaml", "path: token", "path: admin-token"),
     r"^base: --admin_token_file=/etc/cropshield-admin/token: Secret volume admin-token projects"),
    ("loopback admin trust", lambda d: append(f"{d}/base/server.flags", "--admin_trust_loopback=true\n"),
     r"^base: --admin_trust_loopback=true: admits admin RPCs"),
    ("loopback admin trust, bare flag", lambda d: append(f"{d}/overlays/tls/server.flags",
                                                         "--admin_trust_loopback\n"),
     r"^overlays/tls: --admin_trust_loopback=true: admits admin RPCs"),
    ("no NetworkPolicy", lambda d: drop_lines(f"{d}/base/kustomization.yaml", "networkpolicy.yaml"),
     r"^overlays/gpu: no NetworkPolicy selects the server pods"),
    ("NetworkPolicy selects other pods", lambda d: edit(f"{d}/base/networkpolicy.yaml",
                                                        "component: server\n  policyTypes",
                                                        "component: api\n  policyTypes"),
     r"^base: no NetworkPolicy selects the server pods"),
    ("NetworkPolicy without the gRPC port", lambda d: edit(f"{d}/base/networkpolicy.yaml", "port: grpc",
                                                           "port: 50052"),
     r"^base: NetworkPolicy: no ingress rule admits the gRPC port 50051"),
    ("metrics port open to all", lambda d: edit(f"{d}/base/networkpolicy.yaml",
                                                "    - ports:\n        - port: grpc\n          protocol: TCP\n"
                                                "        - port: http\n          protocol: TCP\n",
                                                "    - {}\n"),
     r"^base: NetworkPolicy cropshield: the metrics port 9464 is open to every source \(no `from`"),
    ("metrics port open to every namespace", lambda d: edit(
        f"{d}/base/networkpolicy.yaml",
        "        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n"
        "          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n",
        "        - namespaceSelector: {}\n"),
     r"^base: NetworkPolicy cropshield: the metrics port 9464 is open to every source \(peer"),
    ("metrics port not admitted", lambda d: edit(f"{d}/base/networkpolicy.yaml", "port: metrics",
                                                 "port: 9465"),
     r"^base: NetworkPolicy: no ingress rule admits the metrics port 9464"),
    # HTTP/REST port (--http_address).
    ("http port vs --http_address", lambda d: edit(f"{d}/base/server.flags", "--http_address=0.0.0.0:8000",
                                                   "--http_address=0.0.0.0:8080"),
     r"^base: container port http is 8000, but --http_address=0.0.0.0:8080 listens on 8080"),
    ("http port without --http_address", lambda d: edit(f"{d}/overlays/gpu/server.flags",
                                                        "--http_address=0.0.0.0:8000", "--http_address="),
     r"^overlays/gpu: container port http 8000 but --http_address is empty"),
    ("Service without the http port", lambda d: edit(f"{d}/base/service.yaml", "    - name: http\n",
                                                     "    - name: rest\n"),
     r"^base: Service cropshield: no port named http"),
    ("Service http targets another port", lambda d: edit(f"{d}/base/service.yaml",
                                                         "port: 8000\n      targetPort: http",
                                                         "port: 8000\n      targetPort: metrics"),
     r"^base: Service cropshield: port http targets metrics, not the HTTP/REST port 8000"),
    ("NetworkPolicy without the http port", lambda d: drop_lines(f"{d}/base/networkpolicy.yaml",
                                                                 "- port: http"),
     r"^base: NetworkPolicy: no ingress rule admits the HTTP/REST port 8000"),
    ("readiness back on grpc", lambda d: edit(f"{d}/base/deployment.yaml",
                                              "httpGet:\n              path: /v2/health/ready\n"
                                              "              port: http\n              scheme: HTTP\n",
                                              "grpc:\n              port: 50051\n"),
     r"^base: readinessProbe: the HTTP/REST port is plaintext, so readiness is httpGet /v2/health/ready"),
    ("readiness path", lambda d: edit(f"{d}/base/deployment.yaml", "path: /v2/health/ready",
                                      "path: /v2/health/readyz"),
     r"^base: readinessProbe: httpGet path /v2/health/readyz is not a GET route of the HTTP/REST port"),
    ("readiness on the metrics port", lambda d: edit(f"{d}/base/deployment.yaml",
                                                     "path: /v2/health/ready\n              port: http",
                                                     "path: /healthz\n              port: metrics"),
     r"^base: readinessProbe: the HTTP/REST port is plaintext, so readiness is httpGet /v2/health/ready "
     r"on the named port http"),
    ("readiness by number", lambda d: edit(f"{d}/base/deployment.yaml",
                                           "path: /v2/health/ready\n              port: http",
                                           "path: /v2/health/ready\n              port: 8000"),
     r"^base: readinessProbe: .*on the named port http"),
    ("readiness scheme", lambda d: edit(f"{d}/base/deployment.yaml", "scheme: HTTP\n", "scheme: HTTPS\n"),
     r"^base: readinessProbe: httpGet scheme HTTPS, but the HTTP/REST port speaks plain HTTP"),
    ("httpGet readiness with client certificates", lambda d: edit(f"{d}/overlays/tls/deployment-tls.yaml",
                                                                  "          readinessProbe:\n"
                                                                  "            httpGet: null\n",
                                                                  "          readinessProbe:\n"),
     r"^overlays/tls: readinessProbe: httpGet on the HTTP/REST port, which requires client certificates"),
    # KServe (deploy/kserve).
    ("KServe runtime apiVersion", lambda d: edit(f"{d}/../kserve/servingruntime.yaml",
                                                 "apiVersion: serving.kserve.io/v1alpha1",
                                                 "apiVersion: serving.kserve.io/v1beta1"),
     r"^kserve: servingruntime.yaml: ServingRuntime/cropshield-serve: apiVersion 'serving.kserve.io/v1beta1'"),
    ("KServe InferenceService apiVersion", lambda d: edit(f"{d}/../kserve/inferenceservice.yaml",
                                                          "apiVersion: serving.kserve.io/v1beta1",
                                                          "apiVersion: serving.kserve.io/v1alpha1"),
     r"^kserve: inferenceservice.yaml: InferenceService/cropshield: apiVersion 'serving.kserve.io/v1alpha1'"),
    ("KServe unknown kind", lambda d: edit(f"{d}/../kserve/servingruntime.yaml", "kind: ServingRuntime",
                                           "kind: ServingRuntimes"),
     r"^kserve: servingruntime.yaml: ServingRuntimes/cropshield-serve: kind 'ServingRuntimes' is not one of"),
    ("KServe runtime name", lambda d: edit(f"{d}/../kserve/inferenceservice-grpc.yaml",
                                           "runtime: cropshield-serve", "runtime: cropshield-server"),
     r"^kserve: inferenceservice-grpc.yaml: InferenceService/cropshield-grpc: runtime 'cropshield-server' "
     r"is not a ServingRuntime"),
    ("KServe h2c port vs --address", lambda d: edit(f"{d}/../kserve/inferenceservice-grpc.yaml",
                                                    "containerPort: 50051", "containerPort: 9000"),
     r"^kserve: inferenceservice-grpc.yaml: .*port h2c is 9000, but --address listens on 50051"),
    ("KServe --address vs h2c port", lambda d: edit(f"{d}/../kserve/servingruntime.yaml",
                                                    "--address=0.0.0.0:50051", "--address=0.0.0.0:9000"),
     r"^kserve: inferenceservice-grpc.yaml: .*port h2c is 50051, but --address listens on 9000"),
    ("KServe grpc port not named h2c", lambda d: edit(f"{d}/../kserve/inferenceservice-grpc.yaml",
                                                      "- name: h2c", "- name: grpc"),
     r"^kserve: inferenceservice-grpc.yaml: .*protocolVersion grpc-v2 but no port named h2c"),
    ("KServe http1 port vs --http_address", lambda d: edit(f"{d}/../kserve/servingruntime.yaml",
                                                           "--http_address=0.0.0.0:8000",
                                                           "--http_address=0.0.0.0:8080"),
     r"^kserve: inferenceservice.yaml: .*port http1 is 8000, but --http_address listens on 8080"),
    ("KServe protocolVersions", lambda d: drop_lines(f"{d}/../kserve/servingruntime.yaml", "- grpc-v2"),
     r"^kserve: servingruntime.yaml: .*protocolVersions \['v2'\] lack grpc-v2"),
    ("KServe model format", lambda d: edit(f"{d}/../kserve/inferenceservice.yaml", "name: cropshield\n        version",
                                           "name: pytorch\n        version"),
     r"^kserve: inferenceservice.yaml: .*modelFormat 'pytorch' is not in runtime cropshield-serve"),
    ("KServe unknown flag", lambda d: edit(f"{d}/../kserve/servingruntime.yaml", "- --workers=2",
                                           "- --worker_count=2"),
     r"^kserve: servingruntime.yaml: .*flag --worker_count .*not a flag of cropshield-server"),
    ("KServe model dir", lambda d: edit(f"{d}/../kserve/servingruntime.yaml", "--model=/mnt/models",
                                        "--model=/models"),
     r"^kserve: servingruntime.yaml: .*--model=/models: KServe's storage initializer"),
    ("KServe readiness path", lambda d: edit(f"{d}/../kserve/servingruntime.yaml", "path: /v2/health/ready",
                                             "path: /v2/health/live"),
     r"^kserve: servingruntime.yaml: .*readinessProbe: not httpGet /v2/health/ready"),
    ("KServe readiness port", lambda d: edit(f"{d}/../kserve/servingruntime.yaml",
                                             "path: /v2/health/ready\n          port: 8000",
                                             "path: /v2/health/ready\n          port: 9464"),
     r"^kserve: servingruntime.yaml: .*readinessProbe: httpGet on port 9464, the HTTP/REST port"),
    ("KServe two ports", lambda d: edit(f"{d}/../kserve/inferenceservice-grpc.yaml", "          protocol: TCP\n",
                                        "          protocol: TCP\n        - name: http1\n"
                                        "          containerPort: 8000\n"),
     r"^kserve: inferenceservice-grpc.yaml: .*2 container ports; KServe \(Knative\) exposes exactly one"),
    ("KServe image", lambda d: edit(f"{d}/../kserve/servingruntime.yaml", "image: cropshield-serve:0.1.0-cpu",
                                    "image: cropshield-serve:latest"),
     r"^kserve: servingruntime.yaml: .*image 'cropshield-serve:latest' is not 'cropshield-serve:0.1.0-cpu'"),
    ("unsupported kustomize field", lambda d: append(f"{d}/overlays/gpu/kustomization.yaml",
                                                     "commonLabels:\n  team: x\n"),
     r"^overlays/gpu: cannot render: .*commonLabels"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--root", default=validate_manifests.DEFAULT_ROOT)
    args = parser.parse_args()
    ctx = validate_manifests.context(args)
    source = os.path.join(args.root, "deploy", "k8s")
    kserve_source = os.path.join(args.root, "deploy", "kserve")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        def fresh():
            d = os.path.join(tmp, "k8s")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(source, d)
            args.kserve = os.path.join(tmp, "kserve")
            shutil.rmtree(args.kserve, ignore_errors=True)
            shutil.copytree(kserve_source, args.kserve)
            return d

        args.kubectl = False
        args.k8s = fresh()
        baseline, _ = validate_manifests.run(args, ctx)
        print(f"baseline: {len(baseline)} problems (flags not in the server yet show up here)")
        for name, mutate, pattern in CASES:
            args.k8s = fresh()
            mutate(args.k8s)
            errors, _ = validate_manifests.run(args, ctx)
            new = [e for e in errors if e not in baseline]
            hit = [e for e in new if re.search(pattern, e)]
            if hit:
                print(f"ok   {name}: {hit[0]}")
            else:
                failures += 1
                print(f"FAIL {name}: no new problem matches {pattern!r}; new problems: {new}")
    print(f"validate_manifests_selftest: {len(CASES) - failures}/{len(CASES)} cases reported")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
