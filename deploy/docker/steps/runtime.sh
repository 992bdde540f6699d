#!/usr/bin/env bash
# Image runtime step (both Dockerfiles' runtime stage, and tests/deploy/docker_steps_test.sh in CI),
# run as root after the build stage's install tree was copied to PREFIX:
#  1. installs the runtime packages build.sh recorded (PREFIX/share/cropshield/runtime-packages.txt),
#     only those missing, and removes apt's lists afterwards when it had to fetch them;
#  2. creates the unprivileged system user and group (idempotent; an existing one is kept);
#  3. installs healthcheck.sh as PREFIX/bin/cropshield-healthcheck;
#  4. lays out the model directory: the baked model (PREFIX/share/cropshield/models) is copied to
#     MODELS_DIR unless that already holds something (mount a repository there to override it);
#  5. checks that every shared library of the installed binaries resolves and that the server starts
#     far enough to print its flags.
# usage: runtime.sh [--prefix /opt/cropshield] [--models-dir /models] [--user cropshield]
#                   [--uid 10001] [--no-apt] [--no-user]
#   --no-apt   fail instead of installing missing packages (CI: the build machine has them all)
#   --no-user  skip step 2 (when not run as root, e.g. a developer running the CI test)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/cropshield
models_dir=/models
user=cropshield
uid=10001
apt=1
make_user=1
while (($#)); do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --models-dir) models_dir=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --uid) uid=$2; shift 2 ;;
    --no-apt) apt=0; shift ;;
    --no-user) make_user=0; shift ;;
    *) echo "runtime.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
share=$prefix/share/cropshield
[[ -x $prefix/bin/cropshield-server && -x $prefix/bin/cropshield ]] ||
  { echo "runtime.sh: $prefix/bin has no cropshield-server / cropshield (run build.sh first)" >&2; exit 1; }

# 1. Runtime packages.
missing=()
while read -r pkg; do
  [[ -z $pkg ]] && continue
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done < <(cat "$share/runtime-packages.txt" 2>/dev/null || true)
if ((${#missing[@]})); then
  ((apt)) || { echo "runtime.sh: missing runtime packages: ${missing[*]}" >&2; exit 1; }
  echo "runtime.sh: installing ${#missing[@]} runtime packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

# 2. The service user: a system account without a login shell or home directory contents.
if ((make_user)) && ! getent group "$user" >/dev/null; then
  if getent group "$uid" >/dev/null; then groupadd --system "$user"; else groupadd --system --gid "$uid" "$user"; fi
fi
if ((make_user)) && ! getent passwd "$user" >/dev/null; then
  uid_arg=(--uid "$uid")
  getent passwd "$uid" >/dev/null && uid_arg=()  # uid taken: let useradd pick one
  useradd --system "${uid_arg[@]}" --gid "$user" --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$user"
fi
((make_user)) && echo "runtime.sh: user $user is $(id "$user")"

# 3. Health check command for the image's HEALTHCHECK.
install -m 0755 "$here/healthcheck.sh" "$prefix/bin/cropshield-healthcheck"

# 4. Model directory: readable by the service user, owned by root (the server never writes there).
mkdir -p "$models_dir"
if [[ -z $(ls -A "$models_dir") && -d $share/models ]]; then
  cp -a "$share/models/." "$models_dir/"
fi
chmod -R a+rX "$models_dir" "$prefix"

# 5. Check: libraries resolve and the binary runs.
for bin in "$prefix/bin/cropshield-server" "$prefix/bin/cropshield"; do
  if ldd "$bin" | grep 'not found'; then echo "runtime.sh: $bin: libraries not found (above)" >&2; exit 1; fi
done
"$prefix/bin/cropshield-server" --helpfull >/dev/null 2>&1 || [[ $? == 1 ]]  # absl exits 1 after help
echo "runtime.sh: runtime layout ready (prefix $prefix, models $models_dir, user $user)"
