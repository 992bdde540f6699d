#!/usr/bin/env bash
# Installs what is missing, builds the server and the CLI (only those: the test command builds the
# rest), starts the server on the bundled demo model, classifies the samples with the CLI and over
# HTTP, then stops the server. Run as root on Debian bookworm. DEMO_KEEP_RUNNING=1 keeps the server
# up afterwards for the web page at http://localhost:${HTTP_PORT:-8000}/ (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The default build type (RelWithDebInfo with line tables only, as fast to compile as Release), so
# that the test command's build afterwards reuses these objects.
BUILD_TARGETS="cropshield-server cropshield" scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
port_file=$(mktemp -u /tmp/cropshield_port_XXXXXX)
"$BUILD_DIR"/server/cropshield-server --model=models/repository --address=127.0.0.1:${PORT:-50051} \
  --http_address=127.0.0.1:${HTTP_PORT:-8000} --metrics_address=127.0.0.1:${METRICS_PORT:-0} \
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
curl -s -X POST --data-binary @models/samples/tomato_early_blight_600x800.jpg \
  -H 'Content-Type: image/jpeg' "http://127.0.0.1:${HTTP_PORT:-8000}/v1/predict?top_k=2"
echo
if [[ -n "${DEMO_KEEP_RUNNING:-}" ]]; then
  echo "web page: http://localhost:${HTTP_PORT:-8000}/ (Ctrl-C stops the server)"
  wait $server_pid
fi
