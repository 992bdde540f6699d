#!/usr/bin/env python3
"""Checks deploy/docker/Dockerfile.* without a container engine.

For each Dockerfile it parses the instructions (line continuations, ARG defaults in FROM, exec-form
JSON) and checks that:
  * it is multi-stage and the last stage runs as a numeric non-root USER, the uid runtime.sh creates;
  * every RUN is made of scripts (deploy/docker/steps/*, scripts/*) plus trivial commands, every
    script it runs exists in the repository and is executable (a /tmp/steps/X path must have been
    COPYed from deploy/docker/steps/X in the same stage), and every --option passed to a step script
    is one the script parses;
  * every COPY source (not --from) exists in the repository (the build context);
  * ENTRYPOINT is the installed cropshield-server: a target with install(TARGETS ... DESTINATION bin)
    under the prefix build.sh installs into and the runtime stage copies, and each flag it (and CMD)
    passes exists in the real server's --helpfull;
  * HEALTHCHECK runs cropshield-healthcheck, which runtime.sh installs from healthcheck.sh, and the
    `cropshield health` flags that script uses exist in the real CLI's --helpfull;
  * EXPOSE lists the ports of the server's --address, --metrics_address and --http_address
    (ENTRYPOINT or defaults; an empty address listens on nothing);
  * LABEL org.opencontainers.image.ref.name is cropshield-serve:<project version>-<cpu|cuda>
    (the image names deploy/k8s uses; validate_manifests.py checks those against this label).
With --installed-root DIR (a `build.sh --destdir` + `runtime.sh` tree, see docker_steps_test.sh), the
ENTRYPOINT and HEALTHCHECK executables must also exist under DIR.

usage: check_dockerfiles.py --server BUILD/server/cropshield-server --cli BUILD/client/cropshield
                            [--root REPO] [--installed-root DIR]
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FLAVOURS = {"Dockerfile.cpu": "cpu", "Dockerfile.cuda": "cuda"}
IMAGE_REPOSITORY = "cropshield-serve"
TRIVIAL_COMMANDS = {"rm", "mkdir", "chmod", "chown", "ln", "true", "echo"}


class Instruction:
    def __init__(self, keyword, value, line):
        self.keyword, self.value, self.line = keyword, value, line

    def exec_form(self):
        """JSON array form of ENTRYPOINT/CMD (HEALTHCHECK: after its options and CMD)."""
        text = self.value
        if self.keyword == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(.*)$", text, re.S)
            if not m:
                return None
            text = m.group(1)
        text = text.strip()
        if not text.startswith("["):
            return None
        return json.loads(text)


class Stage:
    def __init__(self, base, name, line):
        self.base, self.name, self.line = base, name, line
        self.instructions = []


def parse_dockerfile(path):
    """Returns (global ARG defaults, [Stage])."""
    with open(path) as f:
        raw = f.read().split("\n")
    logical, buf, start = [], "", 0
    for number, line in enumerate(raw, 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        logical.append((start, buf.strip()))
        buf = ""
    args, stages = {}, []
    for number, text in logical:
        keyword, _, value = text.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "ARG" and not stages:
            name, _, default = value.partition("=")
            args[name] = default.strip('"')
            continue
        if keyword == "FROM":
            parts = value.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name, number))
            continue
        if not stages:
            raise ValueError(f"{path}:{number}: {keyword} before FROM")
        stages[-1].instructions.append(Instruction(keyword, value, number))
    return args, stages


def parse_labels(value):
    labels = {}
    for token in shlex.split(value):
        k, _, v = token.partition("=")
        labels[k] = v
    return labels


def helpfull_flags(binary):
    """{flag name: default text} from `binary --helpfull` (absl format: --name (help); default: X;)."""
    proc = subprocess.run([binary, "--helpfull"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    text = proc.stdout
    flags = {}
    for m in re.finditer(r"^\s+--(\w+) \((.*?)\);\s+default: (.*?);$", text, re.M | re.S):
        flags[m.group(1)] = m.group(3)
    if len(flags) < 5:
        raise RuntimeError(f"could not read flags from `{binary} --helpfull`:\n{text[:2000]}")
    return flags


def unquote_default(default):
    return default[1:-1] if len(default) >= 2 and default[0] == default[-1] == '"' else default


def flag_args(tokens):
    """{name: value} for --name=value / --name tokens."""
    out = {}
    for token in tokens:
        m = re.match(r"^--?([A-Za-z0-9_]+)(?:=(.*))?$", token)
        if m:
            out[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
    return out


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def installed_bin_targets(root):
    """Targets installed with install(TARGETS <t> ... DESTINATION bin) in the project's CMake files."""
    targets = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.startswith("build")]
        if "CMakeLists.txt" in filenames:
            with open(os.path.join(dirpath, "CMakeLists.txt")) as f:
                for m in re.finditer(r"install\(\s*TARGETS\s+([^)]*?)\bDESTINATION\s+bin\b", f.read()):
                    targets.update(t for t in m.group(1).split()
                                   if t not in ("RUNTIME", "LIBRARY", "ARCHIVE", "COMPONENT"))
    return targets


def project_version(root):
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*\S+\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


def script_options(path):
    """The --options a step script's argument loop accepts (`--name)` case labels)."""
    with open(path) as f:
        return set(re.findall(r"^\s*(--[a-z][a-z-]*)\)", f.read(), re.M))


def check_dockerfile(path, root, server_flags, cli_flags, installed_root=None):
    errors = []
    name = os.path.basename(path)
    where = os.path.relpath(path, root)

    def err(line, message):
        errors.append(f"{where}:{line}: {message}")

    flavour = FLAVOURS.get(name)
    try:
        _, stages = parse_dockerfile(path)
    except (ValueError, json.JSONDecodeError) as e:
        return [f"{where}: cannot parse: {e}"]
    if len(stages) < 2:
        err(1, "not multi-stage (a build stage and a slim runtime stage expected)")
        return errors
    final = stages[-1]
    stage_names = {s.name for s in stages if s.name}
    targets = installed_bin_targets(root)
    steps_dir = os.path.join(root, "deploy", "docker", "steps")
    prefix = None  # build.sh --prefix in a build stage

    for stage in stages:
        copied_steps = {}  # container path -> repo path (files COPYed into this stage)
        workdir_is_repo = False
        for ins in stage.instructions:
            if ins.keyword == "COPY":
                tokens = shlex.split(ins.value)
                opts = [t for t in tokens if t.startswith("--")]
                rest = [t for t in tokens if not t.startswith("--")]
                srcs, dest = rest[:-1], rest[-1]
                from_stage = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
                if from_stage is not None:
                    if from_stage not in stage_names:
                        err(ins.line, f"COPY --from={from_stage}: no such stage")
                    continue
                for src in srcs:
                    if not os.path.exists(os.path.join(root, src)):
                        err(ins.line, f"COPY source {src} does not exist in the repository")
                    if src == ".":
                        workdir_is_repo = dest.rstrip("/") == "/src"
                    elif dest.endswith("/"):
                        copied_steps[dest + os.path.basename(src)] = src
                    else:
                        copied_steps[dest] = src
            if ins.keyword == "RUN":
                commands = re.split(r"&&|\|\||;", ins.value)
                for command in commands:
                    words = shlex.split(command)
                    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
                        words = words[1:]  # VAR=value prefix
                    if not words:
                        continue
                    exe = words[0]
                    if exe in TRIVIAL_COMMANDS:
                        continue
                    if exe in copied_steps:
                        repo_path = copied_steps[exe]
                    elif not exe.startswith("/") and workdir_is_repo:
                        repo_path = exe
                    else:
                        err(ins.line, f"RUN {exe}: not a step script (deploy/docker/steps/) copied into "
                                      "the stage; keep RUN steps in scripts that CI runs")
                        continue
                    full = os.path.join(root, repo_path)
                    if not os.path.isfile(full):
                        err(ins.line, f"RUN {exe}: script {repo_path} does not exist")
                        continue
                    if not os.access(full, os.X_OK):
                        err(ins.line, f"RUN {exe}: script {repo_path} is not executable")
                    if os.path.dirname(os.path.abspath(full)) == steps_dir:
                        accepted = script_options(full)
                        for word in words[1:]:
                            if word == "--":
                                break
                            if word.startswith("--") and accepted and word not in accepted:
                                err(ins.line, f"RUN {exe}: option {word} is not one {repo_path} accepts "
                                              f"({', '.join(sorted(accepted))})")
                    if os.path.basename(repo_path) == "build.sh" and "--prefix" in words:
                        prefix = words[words.index("--prefix") + 1]
                    if os.path.basename(repo_path) == "runtime.sh" and stage is final:
                        stage.runtime_words = words

    # Final stage: user, entrypoint, healthcheck, ports, labels.
    by_kw = {}
    for ins in final.instructions:
        by_kw.setdefault(ins.keyword, []).append(ins)
    runtime_words = getattr(final, "runtime_words", None)
    if runtime_words is None:
        err(final.line, "the runtime stage does not run deploy/docker/steps/runtime.sh")
    users = by_kw.get("USER", [])
    if not users:
        err(final.line, "the runtime stage has no USER (it would run as root)")
    else:
        user = users[-1].value.split(":")[0]
        if not user.isdigit() or int(user) == 0:
            err(users[-1].line, f"USER {users[-1].value}: use a numeric non-root uid "
                                "(Kubernetes runAsNonRoot can only verify numeric users)")
        elif runtime_words and "--uid" in runtime_words and runtime_words[runtime_words.index("--uid") + 1] != user:
            err(users[-1].line, f"USER {user} is not the uid runtime.sh creates "
                                f"({runtime_words[runtime_words.index('--uid') + 1]})")
    copies_prefix = any(i.keyword == "COPY" and prefix and re.search(
        rf"--from=\S+\s+{re.escape(prefix)}\s+{re.escape(prefix)}\b", i.value) for i in final.instructions)
    if prefix is None:
        err(1, "no build stage runs build.sh --prefix")
    elif not copies_prefix:
        err(final.line, f"the runtime stage does not COPY --from=<build> {prefix} {prefix}")

    entry = by_kw.get("ENTRYPOINT", [])
    entry_args = []
    if not entry:
        err(final.line, "no ENTRYPOINT")
    else:
        argv = entry[-1].exec_form()
        if not argv:
            err(entry[-1].line, "ENTRYPOINT must be in exec form (JSON array) so signals reach the server")
        else:
            binary = argv[0]
            if prefix and binary != f"{prefix}/bin/cropshield-server":
                err(entry[-1].line, f"ENTRYPOINT {binary} is not {prefix}/bin/cropshield-server")
            if os.path.basename(binary) not in targets:
                err(entry[-1].line, f"ENTRYPOINT {binary}: no install(TARGETS {os.path.basename(binary)} "
                                    "... DESTINATION bin) in the CMake files")
            if installed_root and not os.access(installed_root + binary, os.X_OK):
                err(entry[-1].line, f"ENTRYPOINT {binary} is not an executable in {installed_root}")
            entry_args = argv[1:]
    cmd = by_kw.get("CMD", [])
    if cmd:
        cmd_argv = cmd[-1].exec_form()
        if cmd_argv is None:
            err(cmd[-1].line, "CMD must be in exec form (JSON array)")
        else:
            entry_args = entry_args + cmd_argv
    given = flag_args(entry_args)
    for flag, value in given.items():
        if flag not in server_flags:
            err((entry or cmd)[-1].line, f"ENTRYPOINT/CMD flag --{flag} is not a cropshield-server flag")
    if given.get("device", "").startswith("cuda") and flavour != "cuda":
        err(entry[-1].line if entry else 1, "--device=cuda in a non-CUDA image")

    health = by_kw.get("HEALTHCHECK", [])
    if not health:
        err(final.line, "no HEALTHCHECK")
    else:
        argv = health[-1].exec_form()
        if not argv:
            err(health[-1].line, "HEALTHCHECK must be CMD in exec form (JSON array)")
        else:
            binary = argv[0]
            runtime_sh = os.path.join(steps_dir, "runtime.sh")
            with open(runtime_sh) as f:
                installs_healthcheck = re.search(r'healthcheck\.sh"\s+"\$prefix/bin/cropshield-healthcheck"', f.read())
            if not (prefix and binary == f"{prefix}/bin/cropshield-healthcheck" and installs_healthcheck):
                err(health[-1].line, f"HEALTHCHECK {binary}: not the cropshield-healthcheck runtime.sh "
                                     f"installs into {prefix}/bin")
            if installed_root and not os.access(installed_root + binary, os.X_OK):
                err(health[-1].line, f"HEALTHCHECK {binary} is not an executable in {installed_root}")
            with open(os.path.join(steps_dir, "healthcheck.sh")) as f:
                script = f.read()
            m = re.search(r'"\$cli" health (.*?)(?:\n\S|\Z)', script, re.S)
            if not m:
                err(health[-1].line, "healthcheck.sh does not run `cropshield health`")
            else:
                for flag in re.findall(r"--(\w+)=", m.group(1)):
                    if flag not in cli_flags:
                        err(health[-1].line, f"healthcheck.sh: `cropshield health --{flag}`: no such CLI flag")
                target_default = re.search(r"CROPSHIELD_HEALTH_TARGET:-([^}]+)\}", script)
                address = given.get("address", unquote_default(server_flags.get("address", '""')))
                if target_default and port_of(target_default.group(1)) != port_of(address):
                    err(health[-1].line, f"healthcheck.sh's default target {target_default.group(1)} is not "
                                         f"the server's gRPC port ({address})")

    exposed = set()
    for ins in by_kw.get("EXPOSE", []):
        exposed.update(int(p.split("/")[0]) for p in ins.value.split())
    for flag in ("address", "metrics_address", "http_address"):
        address = given.get(flag, unquote_default(server_flags.get(flag, '""')))
        if address and port_of(address) not in exposed:
            err(final.line, f"EXPOSE does not list port {port_of(address)} of --{flag}={address}")

    labels = {}
    for ins in by_kw.get("LABEL", []):
        labels.update(parse_labels(ins.value))
    ref = labels.get("org.opencontainers.image.ref.name")
    expected = f"{IMAGE_REPOSITORY}:{project_version(root)}-{flavour}"
    if ref != expected:
        err(final.line, f"LABEL org.opencontainers.image.ref.name={ref!r}, expected {expected!r} "
                        "(repository cropshield-serve, tag <project VERSION>-<flavour>)")
    return errors


def image_refs(root):
    """{flavour: image ref} from the Dockerfiles' ref.name labels."""
    refs = {}
    for name, flavour in FLAVOURS.items():
        path = os.path.join(root, "deploy", "docker", name)
        _, stages = parse_dockerfile(path)
        for ins in stages[-1].instructions:
            if ins.keyword == "LABEL":
                ref = parse_labels(ins.value).get("org.opencontainers.image.ref.name")
                if ref:
                    refs[flavour] = ref
    return refs


def entrypoint(root, flavour):
    path = os.path.join(root, "deploy", "docker", [n for n, f in FLAVOURS.items() if f == flavour][0])
    _, stages = parse_dockerfile(path)
    argv = None
    for ins in stages[-1].instructions:
        if ins.keyword == "ENTRYPOINT":
            argv = ins.exec_form()
    return argv


def user_id(root, flavour):
    path = os.path.join(root, "deploy", "docker", [n for n, f in FLAVOURS.items() if f == flavour][0])
    _, stages = parse_dockerfile(path)
    uid = None
    for ins in stages[-1].instructions:
        if ins.keyword == "USER":
            uid = ins.value.split(":")[0]
    return int(uid) if uid and uid.isdigit() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--root", default=DEFAULT_ROOT)
    parser.add_argument("--installed-root")
    parser.add_argument("dockerfiles", nargs="*")
    args = parser.parse_args()
    server_flags = helpfull_flags(args.server)
    cli_flags = helpfull_flags(args.cli)
    files = args.dockerfiles or [os.path.join(args.root, "deploy", "docker", n) for n in FLAVOURS]
    errors = []
    for path in files:
        errors += check_dockerfile(path, args.root, server_flags, cli_flags, args.installed_root)
    for e in errors:
        print("ERROR:", e)
    print(f"check_dockerfiles: {len(files)} Dockerfiles, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
