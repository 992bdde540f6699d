#!/usr/bin/env bash
# Installs what is missing, builds, starts the server on the bundled demo model and classifies a
# sample image with the CLI, then stops the server. Run as root on Debian bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
port_file=$(mktemp -u /tmp/cropshield_port_XXXXXX)
"$BUILD_DIR"/server/cropshield-server --model=models/repository --address=127.0.0.1:${PORT:-50051} \
  --port_file="$port_file" &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true; rm -f "$port_file"' EXIT
for _ in $(seq 1 300); do
  [[ -s "$port_file" ]] && break
  kill -0 $server_pid 2>/dev/null || { echo "server exited; see its log above" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$port_file" ]] || { echo "server did not become SERVING within 30 s" >&2; exit 1; }
target=127.0.0.1:$(cat "$port_file")
"$BUILD_DIR"/client/cropshield health --target="$target"
"$BUILD_DIR"/client/cropshield predict models/samples/*.jpg --target="$target"
