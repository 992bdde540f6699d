"""Build step of cropshield-client: runs protoc on proto/cropshield/v1/cropshield.proto and puts the
serialized FileDescriptorSet (read at import time by cropshield.v1.cropshield_pb2) and the generated
type stub (cropshield_pb2.pyi) into the wheel. Metadata lives in pyproject.toml.

protoc: $PROTOC, else `protoc` on PATH. Protos: $CROPSHIELD_PROTO_DIR (an absolute path), else ./proto (an unpacked
sdist), else ../../proto (this directory inside the CropShield Serve tree)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO = "cropshield/v1/cropshield.proto"


def proto_dir() -> Path:
    candidates = [os.environ.get("CROPSHIELD_PROTO_DIR"), HERE / "proto", HERE.parent.parent / "proto"]
    for candidate in candidates:
        if candidate and (Path(candidate) / PROTO).is_file():
            return Path(candidate)
    raise SystemExit(f"cropshield-client: {PROTO} not found (set CROPSHIELD_PROTO_DIR)")


def protoc() -> str:
    found = os.environ.get("PROTOC") or shutil.which("protoc")
    if not found:
        raise SystemExit("cropshield-client: protoc not found (Debian: protobuf-compiler; or set PROTOC)")
    return found


def generate(out_dir: Path) -> None:
    """Writes cropshield.binpb and cropshield_pb2.pyi into out_dir (the package's cropshield/v1)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([protoc(), f"--proto_path={proto_dir()}", f"--pyi_out={tmp}",
                        f"--descriptor_set_out={out_dir / 'cropshield.binpb'}", PROTO], check=True)
        shutil.copyfile(Path(tmp) / "cropshield/v1/cropshield_pb2.pyi", out_dir / "cropshield_pb2.pyi")


class BuildPyWithDescriptors(build_py):
    def run(self) -> None:
        super().run()
        generate(Path(self.build_lib) / "cropshield" / "v1")


setup(cmdclass={"build_py": BuildPyWithDescriptors})
