#!/usr/bin/env python3
"""Renders deploy/k8s (base and every overlay) without kubectl and checks it, and deploy/kserve,
against the real server.

Rendering is the subset of kustomize the manifests use: resources (files and directories),
configMapGenerator (files, literals; behavior create/replace/merge), patches (strategic merge by
kind + name; lists of containers/volumes/env by name, ports by containerPort (a Service's by port),
volumeMounts by mountPath, other lists replaced; null deletes a key), images (newName/newTag/digest)
and namespace.
Any other kustomization field is an error, so the renderer cannot silently diverge from kustomize.

Checks on every rendered variant:
  * every manifest has apiVersion, kind and metadata.name; one Deployment; its selector matches
    its pod labels;
  * the server container's command is the image's ENTRYPOINT binary (deploy/docker/Dockerfile.*),
    its flags (args plus --flagfile, resolved through the volume mount to the generated ConfigMap)
    are all flags of the real `cropshield-server --helpfull`, and each value parses for the flag's
    type (inferred from its default) and is accepted by the real binary's flag parser;
  * container ports named grpc, metrics and http are the ports of --address, --metrics_address and
    --http_address (flag or default; no http port when --http_address is empty); probes use those
    ports (grpc probes on the gRPC port, httpGet on a GET route of the metrics port or of the
    HTTP/REST port with the scheme that port speaks, exec probes `cropshield health` with real CLI
    flags); where the HTTP/REST port is plaintext, readiness is httpGet /v2/health/ready on the
    named port http; no httpGet on an HTTP/REST port that requires client certificates;
  * terminationGracePeriodSeconds >= preStop sleep + --drain_delay_ms + --shutdown_grace_ms;
  * the image is the one the Dockerfile of that variant is tagged (ref.name label): cpu for base,
    cuda for overlays whose flags say --device=cuda, which must also request nvidia.com/gpu;
  * non-root: runAsNonRoot, runAsUser = the Dockerfile's USER, readOnlyRootFilesystem, no privilege
    escalation, a writable /tmp;
  * admin: --admin_token_file is a file of a mounted Secret that is required (not optional: true;
    not the CROPSHIELD_ADMIN_TOKEN environment variable); --admin_trust_loopback is not true;
  * a NetworkPolicy selects the pods for Ingress, admits the gRPC and HTTP/REST ports, and admits
    the metrics port only from selected sources (every rule that opens it has a `from` with label
    selectors);
  * every Service's selector matches the pod labels and its targetPorts exist on the container;
    a headless Service (clusterIP: None) exposes the gRPC port; a ClusterIP Service has a port
    named http that reaches the HTTP/REST port;
  * the ServiceMonitor selects exactly one Service, scrapes a port name of that Service at /metrics,
    and its jobLabel gives the job name deploy/prometheus uses;
  * the PrometheusRule's spec.groups are exactly deploy/prometheus/alerts.yml's groups;
  * TLS (--tls_cert): certificate files come from a mounted Secret; startup/readiness are exec
    probes `cropshield health` with --tls_ca (or --tls), presenting a client certificate when the
    server requires one (--tls_client_ca); no TLS probe against a plaintext port;
  * the PodDisruptionBudget selects the pods; the HPA targets the Deployment, and any Pods/Object
    metric it uses is a metric family the server exports (server/metrics sources).
Checks on deploy/kserve (every *.yaml):
  * kinds are ServingRuntime/ClusterServingRuntime (serving.kserve.io/v1alpha1) and
    InferenceService (serving.kserve.io/v1beta1);
  * the runtime's kserve-container: command = the image's ENTRYPOINT binary, image = the Dockerfile
    tag, args are --flag=value flags of the real server that its parser accepts, --model is
    /mnt/models (the storage initializer's directory), --http_address is on; protocolVersions hold
    v2 and grpc-v2; readiness is httpGet /v2/health/ready on the HTTP/REST port;
  * each InferenceService names a runtime of the directory, a modelFormat it supports and a
    protocolVersion it lists, has a storageUri, and exposes exactly one port (Knative): h2c = the
    port of --address for grpc-v2, http1 = the port of --http_address for REST.
With --kubectl, also renders with `kubectl kustomize` and compares (by hand only: CI has no kubectl).

usage: validate_manifests.py --server BUILD/server/cropshield-server --cli BUILD/client/cropshield
                             [--root REPO] [--k8s DIR] [--kserve DIR] [--kubectl]
"""
import argparse
import copy
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_dockerfiles  # noqa: E402

DEFAULT_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SUPPORTED_KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "configMapGenerator", "patches",
                                  "images", "namespace"}
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
              "envFrom": None, "ports": "containerPort", "volumeMounts": "mountPath",
              "imagePullSecrets": "name"}
SERVER_CONTAINER = "server"
READY_PATH = "/v2/health/ready"
# Services the server's grpc.health.v1 answers for ("" is the whole server).
GRPC_HEALTH_SERVICES = ("cropshield.v1.CropShieldService", "inference.GRPCInferenceService")
GPU_RESOURCE = "nvidia.com/gpu"


class RenderError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Rendering


def load_yaml_docs(path):
    with open(path) as f:
        try:
            return [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            raise RenderError(f"{path}: not valid YAML: {e}")


def strategic_merge(base, patch, key=None):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if k.startswith("$patch") or k.startswith("$setElementOrder"):
                raise RenderError(f"unsupported strategic merge directive {k}")
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and MERGE_KEYS.get(key):
        merge_key = MERGE_KEYS[key]
        if key == "ports" and not any(isinstance(i, dict) and "containerPort" in i for i in base + patch):
            merge_key = "port"  # a Service's ports (ServicePort's patch merge key)
        out = [copy.deepcopy(item) for item in base]
        added = []  # items only the patch has go first, as kustomize orders them
        for item in patch:
            match = next((i for i, b in enumerate(out) if isinstance(b, dict) and isinstance(item, dict)
                          and b.get(merge_key) == item.get(merge_key)), None)
            if match is None:
                added.append(copy.deepcopy(item))
            else:
                out[match] = strategic_merge(out[match], item, None)
        return added + out
    return copy.deepcopy(patch)


def generate_configmap(directory, spec):
    data = {}
    for entry in spec.get("files", []):
        key, _, rel = entry.partition("=") if "=" in entry else (os.path.basename(entry), "", entry)
        with open(os.path.join(directory, rel)) as f:
            data[key] = f.read()
    for literal in spec.get("literals", []):
        k, _, v = literal.partition("=")
        data[k] = v
    unsupported = set(spec) - {"name", "files", "literals", "behavior"}
    if unsupported:
        raise RenderError(f"{directory}: configMapGenerator fields not supported: {sorted(unsupported)}")
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": spec["name"]}, "data": data}


def find(resources, kind, name):
    return next((r for r in resources if r.get("kind") == kind and r.get("metadata", {}).get("name") == name), None)


def set_images(resources, images):
    for res in resources:
        spec = res.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            image = container.get("image", "")
            name = re.split(r"[@]", image)[0]
            name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
            for rule in images:
                if rule["name"] != name:
                    continue
                new_name = rule.get("newName", name)
                if "digest" in rule:
                    container["image"] = f"{new_name}@{rule['digest']}"
                else:
                    tag = rule.get("newTag")
                    old_tag = image[len(name) + 1:] if image.startswith(name + ":") else None
                    tag = tag or old_tag
                    container["image"] = f"{new_name}:{tag}" if tag else new_name


def render(directory):
    """Renders a kustomization directory to a list of resource dicts."""
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.exists(path):
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = load_yaml_docs(path)[0]
    unsupported = set(k) - SUPPORTED_KUSTOMIZATION_FIELDS
    if unsupported:
        raise RenderError(f"{path}: fields this renderer does not support: {sorted(unsupported)}")
    resources = []
    for entry in k.get("resources", []):
        target = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(target):
            resources += render(target)
        else:
            resources += load_yaml_docs(target)
    for spec in k.get("configMapGenerator", []):
        generated = generate_configmap(directory, spec)
        behavior = spec.get("behavior", "create")
        existing = find(resources, "ConfigMap", spec["name"])
        if behavior == "create":
            if existing:
                raise RenderError(f"{path}: ConfigMap {spec['name']} exists already (use behavior)")
            resources.append(generated)
        elif existing is None:
            raise RenderError(f"{path}: behavior {behavior} but no ConfigMap {spec['name']} to change")
        elif behavior == "replace":
            existing["data"] = generated["data"]
        elif behavior == "merge":
            existing["data"] = {**existing.get("data", {}), **generated["data"]}
        else:
            raise RenderError(f"{path}: unknown configMapGenerator behavior {behavior}")
    for patch_spec in k.get("patches", []):
        if set(patch_spec) - {"path", "patch"}:
            raise RenderError(f"{path}: patches entries with {sorted(set(patch_spec) - {'path', 'patch'})} "
                              "are not supported (strategic merge by kind and name only)")
        docs = (load_yaml_docs(os.path.join(directory, patch_spec["path"])) if "path" in patch_spec
                else [d for d in yaml.safe_load_all(patch_spec["patch"]) if d])
        for patch in docs:
            kind, name = patch.get("kind"), patch.get("metadata", {}).get("name")
            target = find(resources, kind, name)
            if target is None:
                raise RenderError(f"{path}: patch for {kind}/{name} matches no resource")
            merged = strategic_merge(target, patch)
            resources[resources.index(target)] = merged
    set_images(resources, k.get("images", []))
    if "namespace" in k:
        for res in resources:
            res.setdefault("metadata", {})["namespace"] = k["namespace"]
    return resources


def variants(k8s_dir):
    """{variant name: directory}: base and each overlays/<name>."""
    out = {"base": os.path.join(k8s_dir, "base")}
    overlays = os.path.join(k8s_dir, "overlays")
    if os.path.isdir(overlays):
        for name in sorted(os.listdir(overlays)):
            if os.path.exists(os.path.join(overlays, name, "kustomization.yaml")):
                out[f"overlays/{name}"] = os.path.join(overlays, name)
    return out


# ---------------------------------------------------------------------------------------------
# Server knowledge


def flag_type(default):
    """Type of an absl flag inferred from its --helpfull default text."""
    if len(default) >= 2 and default[0] == default[-1] == '"':
        return "string"
    if default in ("true", "false"):
        return "bool"
    if re.fullmatch(r"-?\d+", default):
        return "int"
    if re.fullmatch(r"-?(\d+\.\d*|\d*\.\d+|\d+)([eE][-+]?\d+)?|-?inf|nan", default):
        return "double"
    return "string"


def value_parses(kind, value):
    if kind == "bool":
        return value.lower() in ("true", "false", "t", "f", "yes", "no", "y", "n", "1", "0")
    if kind == "int":
        return re.fullmatch(r"[-+]?(\d+|0[xX][0-9a-fA-F]+)", value) is not None
    if kind == "double":
        try:
            float(value)
            return True
        except ValueError:
            return False
    return True


def binary_rejects(server, flags):
    """Flag errors the real binary's parser reports for these flags (absl parses all flags before
    acting on --helpshort, so nothing starts)."""
    with tempfile.NamedTemporaryFile("w", suffix=".flags", delete=False) as f:
        for name, value in flags.items():
            f.write(f"--{name}={value}\n")
        path = f.name
    try:
        proc = subprocess.run([server, f"--flagfile={path}", "--helpshort"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120)
    finally:
        os.unlink(path)
    return [line.strip() for line in proc.stdout.splitlines() if line.startswith("ERROR:")]


def server_metric_families(root):
    names = set()
    metrics_dir = os.path.join(root, "server", "metrics")
    for name in os.listdir(metrics_dir):
        if name.endswith((".cc", ".h")):
            with open(os.path.join(metrics_dir, name)) as f:
                names.update(re.findall(r'"(cropshield_[a-z0-9_]+)"', f.read()))
    return names


GET_ROUTE = re.compile(r'routes\.Get\(\s*"(/[A-Za-z0-9_/.:-]*)"')


def get_routes(files):
    """Literal GET routes (cpp-httplib `routes.Get("/path", ...)`) of these sources: the paths an
    httpGet probe can ask for."""
    paths = set()
    for path in files:
        with open(path) as f:
            paths.update(GET_ROUTE.findall(f.read()))
    return paths


def rest_probe_paths(root):
    """GET routes of the HTTP/REST port (server/rest/*_routes.cc)."""
    rest_dir = os.path.join(root, "server", "rest")
    return get_routes(os.path.join(rest_dir, n) for n in sorted(os.listdir(rest_dir)) if n.endswith("_routes.cc"))


def prometheus_job_name(root):
    with open(os.path.join(root, "deploy", "prometheus", "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    return config["scrape_configs"][0]["job_name"]


def prometheus_rule_groups(root):
    with open(os.path.join(root, "deploy", "prometheus", "alerts.yml")) as f:
        return yaml.safe_load(f)["groups"]


# ---------------------------------------------------------------------------------------------
# Checks


def parse_flag_lines(text):
    """Flags of an absl flagfile: one --name=value per line; blank lines and # comments ignored."""
    flags, bad = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"--?([A-Za-z0-9_]+)(?:=(.*))?", line)
        if not m:
            bad.append(line)
            continue
        flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
    return flags, bad


def mounted_volume(container, pod_spec, path):
    """(volumeMount, volume) through which `path` reaches the container; (None, None) if none does."""
    mount = next((vm for vm in container.get("volumeMounts", [])
                  if path.startswith(vm["mountPath"].rstrip("/") + "/")), None)
    volume = mount and next((v for v in pod_spec.get("volumes", []) if v["name"] == mount["name"]), None)
    return mount, volume


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_port(container, port):
    """Container port number for a probe/Service port (number or name)."""
    for p in container.get("ports", []):
        if port == p.get("name") or port == p.get("containerPort"):
            return p["containerPort"]
    return port if isinstance(port, int) else None


def sleep_seconds(handler):
    if not handler:
        return 0
    if "sleep" in handler:
        return int(handler["sleep"].get("seconds", 0))
    command = handler.get("exec", {}).get("command", [])
    if command and os.path.basename(command[0]) == "sleep" and len(command) == 2:
        return float(command[1])
    if command[:1] in (["/bin/sh"], ["sh"]) and len(command) == 3:
        m = re.search(r"\bsleep\s+(\d+(\.\d+)?)", command[2])
        return float(m.group(1)) if m else 0
    return 0


TRUE_BOOLS = ("true", "t", "yes", "y", "1")


def admin_problems(container, pod_spec, flag_value):
    """The admin token is a file of a required, mounted Secret; no loopback trust."""
    problems = []
    token_env = next((e for e in container.get("env", []) if e["name"] == "CROPSHIELD_ADMIN_TOKEN"), None)
    if token_env is not None:
        problems.append("CROPSHIELD_ADMIN_TOKEN is set in the environment: mount the Secret as a file "
                        "and point --admin_token_file at it (an optional Secret there starts the "
                        "server without a token)")
    token_file = flag_value("admin_token_file")
    if not token_file:
        problems.append("no admin token: no --admin_token_file in a mounted Secret")
    else:
        mount, volume = mounted_volume(container, pod_spec, token_file)
        secret = volume.get("secret") if volume else None
        if secret is None:
            problems.append(f"--admin_token_file={token_file} is not in a mounted Secret")
        else:
            name = secret.get("secretName")
            if secret.get("optional"):
                problems.append(f"admin token Secret {name} is optional: the pod would start without "
                                "the token; it must be required (no optional: true)")
            key = token_file[len(mount["mountPath"].rstrip("/")) + 1:]
            paths = [item.get("path") for item in secret.get("items", [])]
            if paths and key not in paths:
                problems.append(f"--admin_token_file={token_file}: Secret volume {volume['name']} "
                                f"projects {paths}, not {key}")
    trust = flag_value("admin_trust_loopback") or "false"
    if trust.lower() in TRUE_BOOLS:
        problems.append(f"--admin_trust_loopback={trust}: admits admin RPCs from any loopback peer "
                        "without credentials (a sidecar, kubectl port-forward); never in manifests")
    return problems


def selector_matches(selector, labels):
    """A LabelSelector (matchLabels, matchExpressions) against labels; {} matches everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if ((op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values)
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels)):
            return False
    return True


def rule_allows_port(rule, number, container):
    """Whether a NetworkPolicy ingress rule admits TCP `number` (no ports: every port)."""
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if p.get("port") is None:
            return True
        start = resolve_port(container, p["port"])
        if start is not None and start <= number <= p.get("endPort", start):
            return True
    return False


def open_peers(rule):
    """Descriptions of a rule's sources that admit anyone: no `from`, a peer without any label
    selector (every pod of a namespace-wide or cluster-wide selector), or an ipBlock of /0."""
    peers = rule.get("from")
    if not peers:
        return ["no `from`: every source"]
    out = []
    for peer in peers:
        if "ipBlock" in peer:
            if peer["ipBlock"].get("cidr", "").endswith("/0"):
                out.append(f"ipBlock {peer['ipBlock'].get('cidr')}")
            continue
        selectors = [peer.get("namespaceSelector") or {}, peer.get("podSelector") or {}]
        if not any(s.get("matchLabels") or s.get("matchExpressions") for s in selectors):
            out.append(f"peer {peer} selects every pod")
    return out


def network_policy_problems(resources, container, pod_labels, grpc_port, metrics_port, http_port=None):
    """Ingress NetworkPolicies that select the server pods (their rules add up) must admit the gRPC
    port (and the HTTP/REST port when it is on) and admit the metrics port only from selected
    sources (monitoring)."""
    policies = [r for r in resources if r.get("kind") == "NetworkPolicy"
                and selector_matches(r.get("spec", {}).get("podSelector") or {}, pod_labels)
                and "Ingress" in r["spec"].get("policyTypes", ["Ingress"])]
    if not policies:
        return [f"no NetworkPolicy selects the server pods for Ingress: anyone who reaches a pod "
                f"reaches the metrics port {metrics_port} (liveness /healthz)"]
    rules = [(p["metadata"]["name"], rule) for p in policies for rule in p["spec"].get("ingress") or []]
    problems = []
    if grpc_port is not None and not any(rule_allows_port(r, grpc_port, container) for _, r in rules):
        problems.append(f"NetworkPolicy: no ingress rule admits the gRPC port {grpc_port}")
    if http_port is not None and not any(rule_allows_port(r, http_port, container) for _, r in rules):
        problems.append(f"NetworkPolicy: no ingress rule admits the HTTP/REST port {http_port} "
                        "(REST clients and the readiness probe)")
    if metrics_port is None:
        return problems
    metrics_rules = [(n, r) for n, r in rules if rule_allows_port(r, metrics_port, container)]
    if not metrics_rules:
        problems.append(f"NetworkPolicy: no ingress rule admits the metrics port {metrics_port} "
                        "(Prometheus cannot scrape)")
    for name, rule in metrics_rules:
        for peer in open_peers(rule):
            problems.append(f"NetworkPolicy {name}: the metrics port {metrics_port} is open to every "
                            f"source ({peer}); admit it from monitoring only (namespaceSelector and "
                            "podSelector of Prometheus)")
    return problems


def validate(variant, resources, ctx):
    errors = []

    def err(message):
        errors.append(f"{variant}: {message}")

    for res in resources:
        if not res.get("apiVersion") or not res.get("kind") or not res.get("metadata", {}).get("name"):
            err(f"manifest without apiVersion/kind/metadata.name: {str(res)[:120]}")
    deployments = [r for r in resources if r.get("kind") == "Deployment"]
    if len(deployments) != 1:
        err(f"{len(deployments)} Deployments, expected 1")
        return errors
    deployment = deployments[0]
    dname = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]
    pod_labels = pod.get("metadata", {}).get("labels", {})
    pod_spec = pod["spec"]
    if not labels_match(deployment["spec"].get("selector", {}).get("matchLabels"), pod_labels):
        err(f"Deployment {dname}: selector does not match the pod template labels {pod_labels}")
    containers = {c["name"]: c for c in pod_spec.get("containers", [])}
    container = containers.get(SERVER_CONTAINER)
    if container is None:
        err(f"Deployment {dname}: no container named {SERVER_CONTAINER}")
        return errors

    # Flags: args + flagfile(s) resolved through mounts to ConfigMaps.
    flags = {}
    args = container.get("args", [])
    command = container.get("command")
    cuda = False
    for arg in args:
        m = re.fullmatch(r"--?flagfile=(.*)", arg)
        if m:
            path = m.group(1)
            mount, volume = mounted_volume(container, pod_spec, path)
            if mount is None:
                err(f"--flagfile={path}: no volumeMount provides {os.path.dirname(path)}")
                continue
            if volume is None or "configMap" not in volume:
                err(f"--flagfile={path}: volume {mount['name']} is not a ConfigMap volume")
                continue
            cm = find(resources, "ConfigMap", volume["configMap"]["name"])
            key = path[len(mount["mountPath"].rstrip("/")) + 1:]
            if cm is None or key not in cm.get("data", {}):
                err(f"--flagfile={path}: ConfigMap {volume['configMap']['name']} has no key {key}")
                continue
            file_flags, bad = parse_flag_lines(cm["data"][key])
            for line in bad:
                err(f"ConfigMap {cm['metadata']['name']}/{key}: line {line!r} is not --flag=value")
            flags.update(file_flags)
        else:
            flags.update(check_dockerfiles.flag_args([arg]))
            if not arg.startswith("-"):
                err(f"container {SERVER_CONTAINER}: argument {arg!r} is not a flag")
    server_flags = ctx["server_flags"]
    for name, value in flags.items():
        if name not in server_flags:
            err(f"flag --{name} (value {value!r}) is not a flag of cropshield-server "
                "(not in `cropshield-server --helpfull`)")
            continue
        kind = flag_type(server_flags[name])
        if not value_parses(kind, value):
            err(f"flag --{name}={value}: not a valid {kind}")
    known = {n: v for n, v in flags.items() if n in server_flags}
    memo_key = tuple(sorted(known.items()))
    if memo_key not in ctx.setdefault("rejects_memo", {}):
        ctx["rejects_memo"][memo_key] = binary_rejects(ctx["server"], known) if known else []
    for line in ctx["rejects_memo"][memo_key]:
        err(f"cropshield-server rejects the flags: {line}")

    def flag_value(name):
        if name in flags:
            return flags[name]
        default = server_flags.get(name)
        return check_dockerfiles.unquote_default(default) if default is not None else None

    cuda = (flag_value("device") or "").startswith("cuda")
    flavour = "cuda" if cuda else "cpu"

    # Command and image vs the Dockerfile.
    entry = check_dockerfiles.entrypoint(ctx["root"], flavour)
    if command and entry and command[0] != entry[0]:
        err(f"container command {command[0]} is not the image's ENTRYPOINT binary {entry[0]}")
    if not command and entry is None:
        err("no container command and no ENTRYPOINT in the Dockerfile")
    image = container.get("image", "")
    expected_image = ctx["image_refs"].get(flavour)
    if image.rsplit("/", 1)[-1] != expected_image:
        err(f"image {image!r} is not {expected_image!r}, the tag of deploy/docker/Dockerfile.{flavour} "
            f"(--device={flag_value('device')})")
    resources_spec = container.get("resources", {})
    gpu_limit = resources_spec.get("limits", {}).get(GPU_RESOURCE)
    if cuda and not gpu_limit:
        err(f"--device={flag_value('device')} but the container has no {GPU_RESOURCE} limit")
    if gpu_limit and not cuda:
        err(f"{GPU_RESOURCE} requested but --device={flag_value('device')}")
    if gpu_limit and str(resources_spec.get("requests", {}).get(GPU_RESOURCE, gpu_limit)) != str(gpu_limit):
        err(f"{GPU_RESOURCE} request differs from its limit")
    if cuda and not any(t.get("key") == GPU_RESOURCE for t in pod_spec.get("tolerations", [])):
        err(f"GPU pods without a toleration for the {GPU_RESOURCE} taint")

    # Ports and probes.
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    grpc_port = metrics_port = http_port = None
    for flag, port_name in (("address", "grpc"), ("metrics_address", "metrics")):
        address = flag_value(flag)
        if not address:
            err(f"--{flag} is empty or unknown")
            continue
        want = check_dockerfiles.port_of(address)
        if ports.get(port_name) != want:
            err(f"container port {port_name} is {ports.get(port_name)}, but --{flag}={address} listens on {want}")
        if port_name == "grpc":
            grpc_port = want
        else:
            metrics_port = want
    # The HTTP/REST port: on by default (--http_address 0.0.0.0:8000); empty disables it.
    http_address = flag_value("http_address")
    if http_address:
        http_port = check_dockerfiles.port_of(http_address)
        if ports.get("http") != http_port:
            err(f"container port http is {ports.get('http')}, but --http_address={http_address} "
                f"listens on {http_port}")
    elif "http" in ports:
        err(f"container port http {ports['http']} but --http_address is empty (the HTTP/REST port is off)")
    # The HTTP/REST port speaks TLS with --tls_cert unless --http_plaintext_with_tls.
    http_tls = bool(flag_value("tls_cert")) and (flag_value("http_plaintext_with_tls") or "false").lower() \
        not in TRUE_BOOLS
    http_mutual_tls = http_tls and bool(flag_value("tls_client_ca"))
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            if probe_name != "startupProbe":
                err(f"no {probe_name}")
            continue
        if "grpc" in probe:
            if resolve_port(container, probe["grpc"].get("port")) != grpc_port:
                err(f"{probe_name}: grpc probe on port {probe['grpc'].get('port')}, the gRPC port is {grpc_port}")
            if probe["grpc"].get("service") not in (None, "", *GRPC_HEALTH_SERVICES):
                err(f"{probe_name}: grpc health service {probe['grpc']['service']!r} is not registered by the server")
        elif "httpGet" in probe:
            get = probe["httpGet"]
            target = resolve_port(container, get.get("port"))
            scheme = get.get("scheme", "HTTP")
            if target == metrics_port:
                if get.get("path") not in ctx["http_paths"]:
                    err(f"{probe_name}: httpGet path {get.get('path')} is not served by the metrics endpoint")
                if scheme != "HTTP":
                    err(f"{probe_name}: httpGet scheme {scheme} on the metrics port (plain HTTP)")
            elif http_port is not None and target == http_port:
                if get.get("path") not in ctx["rest_probe_paths"]:
                    err(f"{probe_name}: httpGet path {get.get('path')} is not a GET route of the HTTP/REST "
                        f"port ({sorted(ctx['rest_probe_paths'])})")
                if http_mutual_tls:
                    err(f"{probe_name}: httpGet on the HTTP/REST port, which requires client certificates "
                        "(--tls_cert with --tls_client_ca): kubelet httpGet probes present none; use an "
                        "exec probe `cropshield health` with TLS flags")
                elif scheme != ("HTTPS" if http_tls else "HTTP"):
                    err(f"{probe_name}: httpGet scheme {scheme}, but the HTTP/REST port speaks "
                        f"{'HTTPS (--tls_cert)' if http_tls else 'plain HTTP'}")
            else:
                err(f"{probe_name}: httpGet on port {get.get('port')}, neither the metrics port {metrics_port} "
                    f"nor the HTTP/REST port {http_port}")
        elif "exec" in probe:
            argv = probe["exec"].get("command", [])
            if not argv or os.path.basename(argv[0]) not in ("cropshield", "cropshield-healthcheck"):
                err(f"{probe_name}: exec probe {argv} is not `cropshield health` or cropshield-healthcheck")
            elif os.path.basename(argv[0]) == "cropshield":
                if argv[1:2] != ["health"]:
                    err(f"{probe_name}: exec probe {argv} is not `cropshield health`")
                for name, value in check_dockerfiles.flag_args(argv[2:]).items():
                    if name not in ctx["cli_flags"]:
                        err(f"{probe_name}: `cropshield health --{name}`: no such CLI flag")
                    elif name == "target" and check_dockerfiles.port_of(value) != grpc_port:
                        err(f"{probe_name}: --target={value} is not the gRPC port {grpc_port}")
        else:
            err(f"{probe_name}: neither grpc, httpGet nor exec")
    # Readiness where the HTTP/REST port is plaintext: GET /v2/health/ready on the named port `http`
    # (200 only while SERVING), the endpoint HTTP load balancers and KServe read as well.
    readiness = container.get("readinessProbe") or {}
    if http_port is not None and not http_tls:
        get = readiness.get("httpGet")
        if not get or get.get("port") != "http" or get.get("path") != READY_PATH:
            err(f"readinessProbe: the HTTP/REST port is plaintext, so readiness is httpGet {READY_PATH} "
                f"on the named port http (got {readiness})")

    # TLS: with --tls_cert the gRPC port is TLS-only, and kubelet's grpc probes speak plaintext.
    def secret_volume_holding(path):
        volume = mounted_volume(container, pod_spec, path)[1]
        return volume if volume and "secret" in volume else None

    tls_server = bool(flag_value("tls_cert") or flag_value("tls_key"))
    mutual_tls = bool(flag_value("tls_client_ca"))
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        path = flag_value(name)
        if path and not secret_volume_holding(path):
            err(f"--{name}={path}: not in a Secret volume mounted in container {SERVER_CONTAINER}")
    for probe_name in ("startupProbe", "readinessProbe"):
        probe = container.get(probe_name) or {}
        argv = probe.get("exec", {}).get("command", [])
        probe_flags = check_dockerfiles.flag_args(argv[2:]) if argv[1:2] == ["health"] else {}
        probe_tls = {"tls", "tls_ca", "tls_cert", "tls_key"} & set(probe_flags)
        if tls_server and "grpc" in probe:
            err(f"{probe_name}: grpc probes speak plaintext, but --tls_cert makes the gRPC port "
                "TLS-only: use an exec probe, `cropshield health` with TLS flags")
        if tls_server and probe_flags and not {"tls", "tls_ca"} & probe_tls:
            err(f"{probe_name}: `cropshield health` without --tls or --tls_ca against a TLS-only port")
        if tls_server and mutual_tls and probe_flags and not {"tls_cert", "tls_key"} <= probe_tls:
            err(f"{probe_name}: the server requires client certificates (--tls_client_ca), but the "
                "probe presents none (--tls_cert, --tls_key)")
        if not tls_server and probe_tls:
            err(f"{probe_name}: the probe speaks TLS, but the server has no --tls_cert (plaintext)")
        for name in ("tls_ca", "tls_cert", "tls_key"):
            if name in probe_flags and not secret_volume_holding(probe_flags[name]):
                err(f"{probe_name}: --{name}={probe_flags[name]} is not in a Secret volume mounted "
                    f"in container {SERVER_CONTAINER}")

    # Drain timing.
    grace = pod_spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = sleep_seconds(container.get("lifecycle", {}).get("preStop"))
    drain_ms = int(flag_value("drain_delay_ms") or 0) if value_parses("int", flag_value("drain_delay_ms") or "0") else 0
    shutdown_ms = int(flag_value("shutdown_grace_ms") or 0)
    needed = pre_stop + (drain_ms + shutdown_ms) / 1000.0
    if grace < needed:
        err(f"terminationGracePeriodSeconds {grace} < preStop {pre_stop:g} s + --drain_delay_ms {drain_ms} "
            f"+ --shutdown_grace_ms {shutdown_ms} = {needed:g} s: the kubelet would SIGKILL during the drain")
    if "lifecycle" not in container or "preStop" not in container["lifecycle"]:
        err("no preStop hook")

    # Security.
    pod_sc = pod_spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))):
        err("runAsNonRoot is not set")
    image_uid = check_dockerfiles.user_id(ctx["root"], flavour)
    if uid != image_uid:
        err(f"runAsUser {uid} is not the image's USER {image_uid}")
    if not sc.get("readOnlyRootFilesystem"):
        err("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation", True):
        err("allowPrivilegeEscalation is not false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        err("capabilities are not dropped (drop: [ALL])")
    if not any(vm["mountPath"] == "/tmp" for vm in container.get("volumeMounts", [])):
        err("no writable /tmp volume with a read-only root filesystem")
    errors += [f"{variant}: {e}" for e in admin_problems(container, pod_spec, flag_value)]

    # NetworkPolicy: gRPC open to clients, metrics only to monitoring.
    errors += [f"{variant}: {e}" for e in network_policy_problems(resources, container, pod_labels,
                                                                  grpc_port, metrics_port, http_port)]

    # Services.
    services = [r for r in resources if r.get("kind") == "Service"]
    if not any(s["spec"].get("clusterIP") == "None" for s in services):
        err("no headless Service (clusterIP: None) for client-side load balancing")
    if not any(s["spec"].get("clusterIP") != "None" for s in services):
        err("no ClusterIP Service")
    for svc in services:
        sname = svc["metadata"]["name"]
        if not labels_match(svc["spec"].get("selector"), pod_labels):
            err(f"Service {sname}: selector {svc['spec'].get('selector')} does not match the pod labels {pod_labels}")
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port.get("port"))
            if target not in ports and target not in ports.values():
                err(f"Service {sname}: targetPort {target} is not a container port {ports}")
        if svc["spec"].get("clusterIP") == "None":
            if not any(resolve_port(container, p.get("targetPort", p.get("port"))) == grpc_port
                       for p in svc["spec"].get("ports", [])):
                err(f"headless Service {sname} does not expose the gRPC port {grpc_port}")
        elif http_port is not None:
            # The ClusterIP Service carries HTTP/REST: a port named http that reaches --http_address.
            http_sp = next((p for p in svc["spec"].get("ports", []) if p.get("name") == "http"), None)
            if http_sp is None:
                err(f"Service {sname}: no port named http for the HTTP/REST port {http_port}")
            elif resolve_port(container, http_sp.get("targetPort", http_sp.get("port"))) != http_port:
                err(f"Service {sname}: port http targets {http_sp.get('targetPort', http_sp.get('port'))}, "
                    f"not the HTTP/REST port {http_port} (--http_address={http_address})")

    # ServiceMonitor.
    monitors = [r for r in resources if r.get("kind") == "ServiceMonitor"]
    if not monitors:
        err("no ServiceMonitor")
    for sm in monitors:
        mname = sm["metadata"]["name"]
        selector = sm["spec"].get("selector", {}).get("matchLabels", {})
        selected = [s for s in services if labels_match(selector, s["metadata"].get("labels", {}))]
        if len(selected) != 1:
            err(f"ServiceMonitor {mname}: selects {len(selected)} Services "
                f"({[s['metadata']['name'] for s in selected]}); exactly one, or pods are scraped twice")
            continue
        svc = selected[0]
        port_names = {p.get("name") for p in svc["spec"].get("ports", [])}
        for endpoint in sm["spec"].get("endpoints", []):
            if endpoint.get("port") not in port_names:
                err(f"ServiceMonitor {mname}: port {endpoint.get('port')!r} is not a port name of "
                    f"Service {svc['metadata']['name']} ({sorted(n for n in port_names if n)})")
            else:
                sp = next(p for p in svc["spec"]["ports"] if p.get("name") == endpoint["port"])
                if resolve_port(container, sp.get("targetPort", sp.get("port"))) != metrics_port:
                    err(f"ServiceMonitor {mname}: port {endpoint['port']} does not reach the metrics port {metrics_port}")
            if endpoint.get("path", "/metrics") != "/metrics":
                err(f"ServiceMonitor {mname}: path {endpoint.get('path')} is not /metrics")
        job_label = sm["spec"].get("jobLabel")
        job = svc["metadata"].get("labels", {}).get(job_label) if job_label else svc["metadata"]["name"]
        if job != ctx["job_name"]:
            err(f"ServiceMonitor {mname}: scraped series get job={job!r}, but deploy/prometheus alerts "
                f"and the Grafana dashboard select job={ctx['job_name']!r}")

    # PrometheusRule: the shipped rules, unchanged.
    rules = [r for r in resources if r.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        err(f"{len(rules)} PrometheusRules; one, holding deploy/prometheus/alerts.yml")
    for rule in rules:
        if rule.get("spec", {}).get("groups") != ctx["rule_groups"]:
            ours = {r.get("alert") or r.get("record") for g in rule.get("spec", {}).get("groups") or []
                    for r in g.get("rules", [])}
            theirs = {r.get("alert") or r.get("record") for g in ctx["rule_groups"] for r in g["rules"]}
            err(f"PrometheusRule {rule['metadata']['name']}: spec.groups differ from "
                f"deploy/prometheus/alerts.yml (only here: {sorted(ours - theirs)}, only there: "
                f"{sorted(theirs - ours)}, else an expression, label or duration); regenerate it "
                "as its header says")

    # PDB and HPA.
    pdbs = [r for r in resources if r.get("kind") == "PodDisruptionBudget"]
    if not pdbs:
        err("no PodDisruptionBudget")
    for pdb in pdbs:
        if not labels_match(pdb["spec"].get("selector", {}).get("matchLabels"), pod_labels):
            err(f"PodDisruptionBudget {pdb['metadata']['name']}: selector does not match the Deployment's pods")
    hpas = [r for r in resources if r.get("kind") == "HorizontalPodAutoscaler"]
    if not hpas:
        err("no HorizontalPodAutoscaler")
    for hpa in hpas:
        hname = hpa["metadata"]["name"]
        ref = hpa["spec"].get("scaleTargetRef", {})
        if ref.get("kind") != "Deployment" or ref.get("name") != dname:
            err(f"HPA {hname}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not Deployment/{dname}")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"].get("maxReplicas", 0):
            err(f"HPA {hname}: minReplicas > maxReplicas")
        for metric in hpa["spec"].get("metrics", []):
            body = metric.get(metric.get("type", "").lower() if metric.get("type") != "ContainerResource"
                              else "containerResource", {})
            if metric.get("type") in ("Pods", "Object"):
                mname = body.get("metric", {}).get("name")
                if mname not in ctx["metric_families"]:
                    err(f"HPA {hname}: metric {mname!r} is not a metric family the server exports")
            elif metric.get("type") == "Resource" and body.get("name") == "cpu":
                if "cpu" not in resources_spec.get("requests", {}):
                    err(f"HPA {hname}: CPU utilization target but the container requests no CPU")
    return errors


# ---------------------------------------------------------------------------------------------
# KServe (deploy/kserve)

KSERVE_API_VERSIONS = {"ServingRuntime": "serving.kserve.io/v1alpha1",
                       "ClusterServingRuntime": "serving.kserve.io/v1alpha1",
                       "InferenceService": "serving.kserve.io/v1beta1"}
KSERVE_PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
KSERVE_CONTAINER = "kserve-container"
KSERVE_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts storageUri
# Knative's port names: h2c (HTTP/2 cleartext: gRPC) and http1.
KNATIVE_PORT_FLAGS = {"h2c": "address", "http1": "http_address"}


def kserve_problems(kserve_dir, ctx):
    """ServingRuntime(s) and InferenceService(s) of deploy/kserve against the real server."""
    problems = []
    docs = []
    for name in sorted(os.listdir(kserve_dir)):
        if name.endswith((".yaml", ".yml")):
            try:
                docs += [(name, d) for d in load_yaml_docs(os.path.join(kserve_dir, name))]
            except RenderError as e:
                problems.append(str(e))
    runtimes, services = {}, []
    for fname, doc in docs:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        where = f"{fname}: {kind}/{name}"
        if kind not in KSERVE_API_VERSIONS:
            problems.append(f"{where}: kind {kind!r} is not one of {sorted(KSERVE_API_VERSIONS)}")
            continue
        if doc.get("apiVersion") != KSERVE_API_VERSIONS[kind]:
            problems.append(f"{where}: apiVersion {doc.get('apiVersion')!r}, {kind} is "
                            f"{KSERVE_API_VERSIONS[kind]}")
        if not name:
            problems.append(f"{fname}: {kind} without metadata.name")
            continue
        if kind == "InferenceService":
            services.append((where, doc))
        else:
            runtimes[name] = (where, doc)
    if not runtimes:
        problems.append("no ServingRuntime or ClusterServingRuntime")
    if not services:
        problems.append("no InferenceService")

    runtime_info = {}
    for name, (where, rt) in runtimes.items():
        def err(message):
            problems.append(f"{where}: {message}")
        spec = rt.get("spec") or {}
        protocols = spec.get("protocolVersions") or []
        for protocol in protocols:
            if protocol not in KSERVE_PROTOCOLS:
                err(f"protocolVersions: {protocol!r} is not one of {sorted(KSERVE_PROTOCOLS)}")
        for needed in ("v2", "grpc-v2"):
            if needed not in protocols:
                err(f"protocolVersions {protocols} lack {needed} (the server speaks the Open Inference "
                    "Protocol over REST and gRPC)")
        formats = {f.get("name") for f in spec.get("supportedModelFormats") or []}
        if not formats or None in formats:
            err("supportedModelFormats: none, or one without a name")
        containers = spec.get("containers") or []
        container = next((c for c in containers if c.get("name") == KSERVE_CONTAINER), None)
        if container is None:
            err(f"no container named {KSERVE_CONTAINER} (KServe merges the predictor into it)")
            continue
        flags = {}
        for arg in container.get("args") or []:
            if not re.fullmatch(r"--[A-Za-z0-9_]+=.*", str(arg)):
                err(f"argument {arg!r} is not --flag=value")
                continue
            flags.update(check_dockerfiles.flag_args([arg]))
        server_flags = ctx["server_flags"]
        for flag, value in flags.items():
            if flag not in server_flags:
                err(f"flag --{flag} (value {value!r}) is not a flag of cropshield-server")
            elif not value_parses(flag_type(server_flags[flag]), value):
                err(f"flag --{flag}={value}: not a valid {flag_type(server_flags[flag])}")
        known = {n: v for n, v in flags.items() if n in server_flags}
        memo_key = tuple(sorted(known.items()))
        if memo_key not in ctx.setdefault("rejects_memo", {}):
            ctx["rejects_memo"][memo_key] = binary_rejects(ctx["server"], known) if known else []
        for line in ctx["rejects_memo"][memo_key]:
            err(f"cropshield-server rejects the flags: {line}")

        def flag_value(flag):
            if flag in flags:
                return flags[flag]
            default = server_flags.get(flag)
            return check_dockerfiles.unquote_default(default) if default is not None else None

        if (flag_value("model") or "").rstrip("/") != KSERVE_MODEL_DIR:
            err(f"--model={flag_value('model')}: KServe's storage initializer puts the storageUri at "
                f"{KSERVE_MODEL_DIR}")
        flavour = "cuda" if (flag_value("device") or "").startswith("cuda") else "cpu"
        entry = check_dockerfiles.entrypoint(ctx["root"], flavour)
        command = container.get("command")
        if command and entry and command[0] != entry[0]:
            err(f"container command {command[0]} is not the image's ENTRYPOINT binary {entry[0]}")
        expected_image = ctx["image_refs"].get(flavour)
        if (container.get("image") or "").rsplit("/", 1)[-1] != expected_image:
            err(f"image {container.get('image')!r} is not {expected_image!r} (--device={flag_value('device')})")
        uid = (container.get("securityContext") or {}).get("runAsUser")
        if uid is not None and uid != check_dockerfiles.user_id(ctx["root"], flavour):
            err(f"runAsUser {uid} is not the image's USER")
        wanted = {}
        for port_name, flag in KNATIVE_PORT_FLAGS.items():
            address = flag_value(flag)
            wanted[port_name] = check_dockerfiles.port_of(address) if address else None
        if wanted["http1"] is None:
            err("--http_address is empty: no REST port for KServe's v2 protocol and readiness probe")
        # Probes: readiness is GET /v2/health/ready on the HTTP/REST port (numeric or a port name).
        for probe_name in ("readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            if probe is None:
                if probe_name == "readinessProbe":
                    err("no readinessProbe (GET /v2/health/ready on the HTTP/REST port)")
                continue
            get = probe.get("httpGet")
            if probe_name == "readinessProbe" and (not get or get.get("path") != READY_PATH):
                err(f"readinessProbe: not httpGet {READY_PATH} ({probe})")
                continue
            if get:
                port = resolve_port(container, get.get("port"))
                if port != wanted["http1"]:
                    err(f"{probe_name}: httpGet on port {get.get('port')}, the HTTP/REST port "
                        f"(--http_address) is {wanted['http1']}")
                elif get.get("path") not in ctx["rest_probe_paths"]:
                    err(f"{probe_name}: httpGet path {get.get('path')} is not a GET route of the HTTP/REST port")
        runtime_info[name] = {"protocols": protocols, "formats": formats, "ports": container.get("ports") or [],
                              "wanted": wanted}

    for where, isvc in services:
        def err(message):
            problems.append(f"{where}: {message}")
        model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model")
        if not model:
            err("no spec.predictor.model")
            continue
        runtime = model.get("runtime")
        info = runtime_info.get(runtime)
        if runtime not in runtimes:
            err(f"runtime {runtime!r} is not a ServingRuntime/ClusterServingRuntime of {kserve_dir} "
                f"({sorted(runtimes)})")
            continue
        if info is None:
            continue  # the runtime's own problems are reported above
        model_format = (model.get("modelFormat") or {}).get("name")
        if model_format not in info["formats"]:
            err(f"modelFormat {model_format!r} is not in runtime {runtime}'s supportedModelFormats "
                f"{sorted(f for f in info['formats'] if f)}")
        protocol = model.get("protocolVersion", "v1")
        if protocol not in info["protocols"]:
            err(f"protocolVersion {protocol!r} is not in runtime {runtime}'s protocolVersions {info['protocols']}")
        if not model.get("storageUri"):
            err("no storageUri (the model repository KServe copies to /mnt/models)")
        # The predictor's ports replace the runtime's; Knative routes exactly one.
        ports = model.get("ports") or info["ports"]
        if len(ports) != 1:
            err(f"{len(ports)} container ports; KServe (Knative) exposes exactly one: h2c for "
                "grpc-v2, http1 for v2")
        for port in ports:
            pname, number = port.get("name"), port.get("containerPort")
            if pname not in KNATIVE_PORT_FLAGS:
                err(f"port {pname!r} ({number}): Knative port names are {sorted(KNATIVE_PORT_FLAGS)}")
            elif number != info["wanted"][pname]:
                err(f"port {pname} is {number}, but --{KNATIVE_PORT_FLAGS[pname]} listens on "
                    f"{info['wanted'][pname]}")
        names = {p.get("name") for p in ports}
        if protocol.startswith("grpc") and "h2c" not in names:
            err(f"protocolVersion {protocol} but no port named h2c (the gRPC port, --address)")
        if not protocol.startswith("grpc") and "h2c" in names:
            err(f"protocolVersion {protocol} (REST) but the exposed port is h2c (gRPC)")
    return [f"kserve: {p}" for p in problems]



def kubectl_compare(directory, resources):
    """Differences between `kubectl kustomize` and this renderer (ConfigMap hash suffixes ignored)."""
    out = subprocess.run(["kubectl", "kustomize", directory], stdout=subprocess.PIPE, text=True, check=True).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]

    def strip(obj):
        text = yaml.safe_dump(obj, sort_keys=True)
        return re.sub(r"(cropshield-server-flags)-[a-z0-9]{10}", r"\1", text)

    ours = sorted(strip(r) for r in resources)
    theirs = sorted(strip(r) for r in theirs)
    return [] if ours == theirs else ["kubectl kustomize renders differently:\n" + "\n".join(
        l for l in __import__("difflib").unified_diff("\n".join(ours).splitlines(),
                                                      "\n".join(theirs).splitlines(), "python", "kubectl",
                                                      lineterm=""))]


def context(args):
    root = args.root
    http_paths = get_routes([os.path.join(root, "server", "metrics", "metrics_endpoint.cc")])
    return {
        "root": root,
        "server": args.server,
        "server_flags": check_dockerfiles.helpfull_flags(args.server),
        "cli_flags": check_dockerfiles.helpfull_flags(args.cli),
        "image_refs": check_dockerfiles.image_refs(root),
        "metric_families": server_metric_families(root),
        "job_name": prometheus_job_name(root),
        "rule_groups": prometheus_rule_groups(root),
        "http_paths": http_paths,
        "rest_probe_paths": rest_probe_paths(root),
    }


def run(args, ctx=None):
    ctx = ctx or context(args)
    k8s_dir = args.k8s or os.path.join(args.root, "deploy", "k8s")
    errors, count = [], 0
    for name, directory in variants(k8s_dir).items():
        try:
            resources = render(directory)
        except (RenderError, OSError, KeyError) as e:
            errors.append(f"{name}: cannot render: {e}")
            continue
        count += len(resources)
        errors += validate(name, resources, ctx)
        if args.kubectl:
            errors += [f"{name}: {e}" for e in kubectl_compare(directory, resources)]
    kserve_dir = getattr(args, "kserve", None) or os.path.join(args.root, "deploy", "kserve")
    if os.path.isdir(kserve_dir):
        errors += kserve_problems(kserve_dir, ctx)
    return errors, count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--root", default=DEFAULT_ROOT)
    parser.add_argument("--k8s", help="deploy/k8s directory (default: <root>/deploy/k8s)")
    parser.add_argument("--kserve", help="deploy/kserve directory (default: <root>/deploy/kserve)")
    parser.add_argument("--kubectl", action="store_true", help="also compare with `kubectl kustomize`")
    args = parser.parse_args()
    errors, count = run(args)
    for e in errors:
        print("ERROR:", e)
    print(f"validate_manifests: {count} manifests rendered, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
