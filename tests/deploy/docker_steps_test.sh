#!/usr/bin/env bash
# CI test of the container image steps (deploy/docker/steps/), run without a container engine:
#  1. build.sh installs the existing build directory (no second compile) into a staging root
#     (DESTDIR) at the images' prefix /opt/cropshield, with the baked model and the runtime package
#     list, which must be non-empty and hold no -dev packages;
#  2. runtime.sh (twice: it must be idempotent) checks the runtime packages are there, creates the
#     system user (as root), installs the health check and lays out the baked model directory;
#  3. check_dockerfiles.py checks both Dockerfiles against this installed tree;
#  4. the installed server is started as that non-root user (setpriv) on the baked model layout, the
#     image's HEALTHCHECK script must report SERVING, the liveness path /healthz must answer and the
#     readiness path of deploy/k8s (GET /v2/health/ready on the HTTP/REST port) must answer 200; after
#     SIGTERM it must report NOT_SERVING (readiness 503) during --drain_delay_ms and then exit with
#     status 0.
# usage: docker_steps_test.sh BUILD_DIR [PYTHON]
set -euo pipefail
build_dir=$(cd "$1" && pwd)
python=${2:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/../.." && pwd)
steps=$src/deploy/docker/steps
prefix=/opt/cropshield
user=cropshield-ci
uid=10001

work=$(mktemp -d /tmp/cropshield-docker-steps.XXXXXX)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
root=$work/root
fail() { echo "FAIL: $*" >&2; [[ -f $work/run/server.log ]] && tail -30 "$work/run/server.log" >&2; exit 1; }

echo "== build.sh (install only, from $build_dir)"
"$steps/build.sh" --deps none --build-dir "$build_dir" --prefix "$prefix" --destdir "$root" --no-build
for f in bin/cropshield-server bin/cropshield share/cropshield/models/cropshield-demo/1/model.json; do
  [[ -e $root$prefix/$f ]] || fail "build.sh did not install $prefix/$f"
done
for d in include lib; do
  [[ ! -e $root$prefix/$d ]] || fail "build.sh installed $prefix/$d (the client package) without --with-client-package"
done
packages=$root$prefix/share/cropshield/runtime-packages.txt
[[ -s $packages ]] || fail "runtime-packages.txt is empty"
if grep -E -- '-dev$' "$packages"; then fail "runtime packages include -dev packages (above)"; fi
grep -qx 'libc6' "$packages" || fail "runtime-packages.txt lacks libc6: $(cat "$packages")"
# A library no package owns (as the official libtorch in the CUDA image) is listed apart, not fatal.
# libm's copy names the dynamic loader among its needs, as libtorch does (a need without a path,
# which once failed the step on the GPU host).
mkdir -p "$work/unowned"
cp "$(ldd "$build_dir/server/cropshield-server" | awk '$1 == "libm.so.6" {print $3}')" "$work/unowned/"
LD_LIBRARY_PATH=$work/unowned "$steps/runtime-deps.sh" "$build_dir/server/cropshield-server" \
  >"$work/owned.txt" 3>"$work/unowned.txt" || fail "runtime-deps.sh failed on an unowned library"
grep -qx "$work/unowned/libm.so.6" "$work/unowned.txt" || fail "unowned libm.so.6 not listed"
grep -qx libc6 "$work/owned.txt" || fail "with an unowned libm, libc6 (its need) is not listed"

echo "== runtime.sh (twice)"
runtime_args=(--prefix "$root$prefix" --models-dir "$root/models" --user "$user" --uid "$uid" --no-apt)
if [[ $(id -u) == 0 ]]; then as_user=(setpriv --reuid="$user" --regid="$user" --clear-groups --)
else runtime_args+=(--no-user); as_user=(); fi
"$steps/runtime.sh" "${runtime_args[@]}"
"$steps/runtime.sh" "${runtime_args[@]}" >/dev/null
[[ -f $root/models/cropshield-demo/1/model.pt ]] || fail "runtime.sh did not lay out the baked model"
[[ -x $root$prefix/bin/cropshield-healthcheck ]] || fail "runtime.sh did not install cropshield-healthcheck"

echo "== check_dockerfiles.py against the installed tree"
"$python" "$src/tests/deploy/check_dockerfiles.py" --root "$src" --installed-root "$root" \
  --server "$root$prefix/bin/cropshield-server" --cli "$root$prefix/bin/cropshield"

echo "== installed server as $([[ $(id -u) == 0 ]] && echo "$user" || id -un)"
mkdir -p "$work/run"
[[ $(id -u) == 0 ]] && chown "$user:$user" "$work/run"
# The image's ENTRYPOINT flags, with the staging root's paths and free ports.
env -i PATH=/usr/bin:/bin HOME=/nonexistent "${as_user[@]}" "$root$prefix/bin/cropshield-server" \
  --model="$root/models" --address=127.0.0.1:0 --metrics_address=127.0.0.1:0 --http_address=127.0.0.1:0 \
  --port_file="$work/run/port" --threads=1 --warmup_iterations=1 --drain_delay_ms=3000 \
  >"$work/run/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 1200); do
  [[ -s $work/run/port ]] && break
  kill -0 "$server_pid" 2>/dev/null || fail "server exited before SERVING"
  sleep 0.1
done
[[ -s $work/run/port ]] || fail "server not SERVING within 120 s"
port=$(cat "$work/run/port")
server_uid=$(ps -o uid= -p "$server_pid" | tr -d ' ')
[[ $(id -u) != 0 || $server_uid == "$(id -u "$user")" ]] || fail "server runs as uid $server_uid, not $user"
out=$(CROPSHIELD_HEALTH_TARGET=127.0.0.1:$port "${as_user[@]}" "$root$prefix/bin/cropshield-healthcheck") ||
  fail "healthcheck failed: $out"
[[ $out == SERVING ]] || fail "healthcheck printed '$out', expected SERVING"
metrics_port=$(sed -n 's/.*metrics listening on port \([0-9]*\).*/\1/p' "$work/run/server.log" | head -1)
[[ -n $metrics_port ]] || fail "no 'metrics listening on port' in the log"
[[ $(curl -fsS "http://127.0.0.1:$metrics_port/healthz") == ok ]] || fail "/healthz did not answer ok"
http_port=$(sed -n 's/.*http listening on port \([0-9]*\).*/\1/p' "$work/run/server.log" | head -1)
[[ -n $http_port ]] || fail "no 'http listening on port' in the log"
ready() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/v2/health/ready"; }
[[ $(ready) == 200 ]] || fail "GET /v2/health/ready (the k8s readiness probe) answered $(ready), not 200"
echo "healthcheck: $out; /healthz ok; /v2/health/ready 200; server uid $server_uid"

echo "== SIGTERM: drain (health NOT_SERVING while still answering), then exit 0"
kill -TERM "$server_pid"
sleep 0.5
out=$(CROPSHIELD_HEALTH_TARGET=127.0.0.1:$port "$root$prefix/bin/cropshield-healthcheck" 2>&1) &&
  fail "healthcheck passed during the drain: $out"
[[ $out == NOT_SERVING ]] || fail "during the drain the healthcheck printed '$out', expected NOT_SERVING"
code=$(ready)
[[ $code == 503 ]] || fail "during the drain GET /v2/health/ready answered $code, expected 503"
echo "during --drain_delay_ms: $out, /v2/health/ready $code"
status=0
wait "$server_pid" || status=$?
server_pid=
[[ $status == 0 ]] || fail "server exited with $status after SIGTERM"
if CROPSHIELD_HEALTH_TARGET=127.0.0.1:$port CROPSHIELD_HEALTH_DEADLINE_MS=500 \
    "$root$prefix/bin/cropshield-healthcheck" >/dev/null 2>&1; then
  fail "healthcheck still passes after the server stopped"
fi
echo "PASS: docker steps"
