#!/usr/bin/env bash
# The installed C++ client package, used the way an outside project would: install the build's
# cropshield_dev component into a temporary prefix, configure and build examples/cpp-consumer
# against it with find_package(cropshield CONFIG), start the real server on a free port with the
# bundled demo model, and check that the consumer's top class for samples is the expected label.
#
# usage: client_package_test.sh BUILD_DIR SOURCE_DIR SERVER_BINARY CMAKE GENERATOR [COMPILE_FLAGS]
# COMPILE_FLAGS go to the consumer's compiler and linker (the sanitizer flags of sanitizer builds).
set -euo pipefail
build=$1 source=$2 server=$3 cmake=$4 generator=$5 flags=${6:-}
python=/usr/bin/python3
work=$(mktemp -d /tmp/cropshield_client_package_XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== install into $work/prefix"
"$cmake" --install "$build" --prefix "$work/prefix" --component cropshield_dev
for f in include/cropshield/client/client.h include/cropshield/v1/cropshield.grpc.pb.h \
    include/cropshield/v1/cropshield.pb.h share/cropshield/proto/cropshield/v1/cropshield.proto; do
  [[ -f $work/prefix/$f ]] || fail "not installed: $f"
done
config=$(find "$work/prefix" -name cropshieldConfig.cmake)
[[ -n $config ]] || fail "cropshieldConfig.cmake not installed"
[[ -f $(dirname "$config")/cropshieldConfigVersion.cmake ]] || fail "version file not installed"
[[ -f $(dirname "$config")/cropshieldTargets.cmake ]] || fail "targets file not installed"

echo "== configure and build examples/cpp-consumer against the package"
CXXFLAGS="$flags" LDFLAGS="$flags" "$cmake" -S "$source/examples/cpp-consumer" -B "$work/consumer" \
  -G "$generator" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
  > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "consumer configure"; }
grep -q "cropshield_DIR:PATH=$work/prefix" "$work/consumer/CMakeCache.txt" \
  || fail "the consumer did not find the package in the temporary prefix"
"$cmake" --build "$work/consumer" -j 2 > "$work/build.log" 2>&1 \
  || { cat "$work/build.log"; fail "consumer build"; }
consumer=$work/consumer/cropshield-classify
# Headers came from the prefix, not from the source tree.
if grep -rq -- "-I$source" "$work/consumer" --include=*.ninja --include=flags.make 2>/dev/null; then
  fail "consumer compiled against the source tree"
fi

echo "== start the server"
"$server" --model="$source/models/repository" --address=127.0.0.1:0 --port_file="$work/port" \
  --metrics_address= --http_address= --warmup_iterations=1 > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 1200); do
  [[ -s $work/port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; fail "server exited"; }
  sleep 0.1
done
[[ -s $work/port ]] || { cat "$work/server.log"; fail "server wrote no port file"; }
port=$(cat "$work/port")

echo "== classify samples on 127.0.0.1:$port"
for sample in tomato_early_blight_600x800.jpg potato_late_blight_800x600.jpg \
    wheat_yellow_rust_1600x1200.jpg; do
  expected=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["label"])' \
    "$source/models/samples/labels.json" "$sample")
  output=$("$consumer" "127.0.0.1:$port" "$source/models/samples/$sample" 5) \
    || { cat "$work/server.log"; fail "consumer failed on $sample"; }
  echo "$output"
  top=$(head -n1 <<<"$output" | awk '{print $2}')
  [[ $top == "$expected" ]] || fail "$sample: top class '$top', expected '$expected'"
  [[ $(grep -c '^  ' <<<"$output") == 5 ]] || fail "$sample: expected 5 ranked classes"
done
# A usage error and an unreachable server exit non-zero with a message.
if "$consumer" >/dev/null 2>&1; then fail "no arguments should fail"; fi
if "$consumer" "127.0.0.1:1" "$source/models/samples/tomato_early_blight_600x800.jpg" \
    > /dev/null 2> "$work/err"; then fail "unreachable server should fail"; fi
grep -q UNAVAILABLE "$work/err" || { cat "$work/err"; fail "expected UNAVAILABLE"; }
echo "PASS"
