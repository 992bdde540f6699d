#!/usr/bin/env bash
# Builds the cropshield-client wheel offline from clients/python, installs it where only it provides
# `cropshield`, and runs test_python_client.py with it against the real server.
# Usage: run_test.sh SOURCE_DIR SERVER_BINARY [PYTHON]
#   PYTHON (default python3): the interpreter whose grpcio and protobuf are tested. A system Python
#     (Debian's python3-grpcio / python3-protobuf) gets a fresh `venv --system-site-packages`; a
#     Python inside a venv (e.g. pip protobuf 7 / grpcio 1.84) gets the wheel installed into a
#     --target directory on PYTHONPATH, so that its own packages stay in use.
#   CROPSHIELD_CLIENT_WHEEL: use this wheel instead of building one (no setuptools or protoc needed).
#   PROTOC: the protoc that builds the wheel (default: protoc on PATH).
set -euo pipefail
src=$(cd "${1:?source dir}" && pwd)
server=$(readlink -f "${2:?server binary}")
python=${3:-python3}
[[ -x "$server" ]] || { echo "run_test.sh: no server binary at $server" >&2; exit 1; }
work=$(mktemp -d /tmp/cropshield_pyclient.XXXXXX)
trap 'rm -rf "$work"' EXIT

wheel=${CROPSHIELD_CLIENT_WHEEL:-}
if [[ -z "$wheel" ]]; then
  # A copy, so the in-tree build's build/ and *.egg-info stay out of the source tree.
  cp -r "$src/clients/python" "$work/pkg"
  rm -rf "$work/pkg/build" "$work/pkg"/src/*.egg-info
  CROPSHIELD_PROTO_DIR="$src/proto" "$python" -m pip wheel --quiet --no-deps --no-build-isolation \
    --no-index -w "$work/dist" "$work/pkg"
  wheel=$(ls "$work"/dist/cropshield_client-*.whl)
fi
echo "wheel: $wheel"
"$python" -m zipfile -l "$wheel" | grep -E 'cropshield_pb2\.pyi|cropshield\.binpb|py\.typed'

if "$python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  "$python" -m pip install --quiet --no-index --no-deps --target "$work/site" "$wheel"
  export PYTHONPATH="$work/site"
  test_python=$python
else
  "$python" -m venv --system-site-packages --without-pip "$work/venv"  # the system pip does the install
  "$work/venv/bin/python" -m pip install --quiet --no-index --no-deps "$wheel"
  unset PYTHONPATH
  test_python=$work/venv/bin/python
fi
cd "$work"  # nothing of the source tree on sys.path
CROPSHIELD_SOURCE_DIR=$src CROPSHIELD_SERVER=$server PYTHONDONTWRITEBYTECODE=1 \
  "$test_python" "$src/tests/integration/python_client/test_python_client.py"
