"""Shared test helpers: puts models/ on sys.path and names the repository paths."""
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(REPO, "models")
PROTO = os.path.join(REPO, "proto")
if MODELS not in sys.path:
    sys.path.insert(0, MODELS)


def metadata_parser():
    """A function json_text -> ModelMetadata using protobuf's JSON parser (unknown fields rejected), as the
    C++ server does; None if protoc or the protobuf Python package is unavailable."""
    import shutil
    import subprocess
    import tempfile
    try:
        from google.protobuf import json_format
    except ImportError:
        return None
    protoc = shutil.which("protoc")
    if protoc is None:
        return None
    out = tempfile.mkdtemp(prefix="cropshield_pb_")
    subprocess.run([protoc, f"-I{PROTO}", f"--python_out={out}",
                    os.path.join(PROTO, "cropshield", "v1", "model_metadata.proto")], check=True)
    sys.path.insert(0, out)
    try:
        from cropshield.v1 import model_metadata_pb2  # noqa: WPS433
    except Exception:  # noqa: BLE001 - generated code incompatible with the runtime
        return None

    def parse(text):
        return json_format.Parse(text, model_metadata_pb2.ModelMetadata(), ignore_unknown_fields=False)

    return parse


def proto_field_names():
    """snake_case field names of ModelMetadata and its nested messages, read from the .proto file."""
    import re
    path = os.path.join(PROTO, "cropshield", "v1", "model_metadata.proto")
    fields = {}
    current = None
    with open(path) as f:
        for line in f:
            line = line.split("//", 1)[0].strip()
            m = re.match(r"message\s+(\w+)\s*\{", line)
            if m:
                current = m.group(1)
                fields[current] = []
                continue
            m = re.match(r"(?:repeated\s+)?\w+\s+(\w+)\s*=\s*\d+\s*;", line)
            if m and current:
                fields[current].append(m.group(1))
    return fields
