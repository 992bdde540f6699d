#!/usr/bin/env bash
# Image build step (both Dockerfiles' build stage, and tests/deploy/docker_steps_test.sh in CI):
# installs the build dependencies (optional), configures and builds CropShield Serve, installs it with
# `cmake --install` into PREFIX (under DESTDIR when given) and records the shared libraries the
# installed binaries need (share/cropshield/runtime-packages.txt: the Debian/Ubuntu packages owning
# them, read by runtime.sh; share/cropshield/runtime-libs-unpackaged.txt: libraries no package owns,
# e.g. the official libtorch, which the runtime stage must copy).
#
# usage: build.sh [options] [-- extra cmake args]
#   --src DIR         source tree (default: this repository)
#   --build-dir DIR   build directory (default: /tmp/cropshield-build); an existing configured one
#                     is reused: not reconfigured (unless --reconfigure) and only rebuilt if stale
#   --prefix DIR      install prefix (default: /opt/cropshield)
#   --destdir DIR     stage the install under DIR (DESTDIR); PREFIX stays the run-time path
#   --deps debian|none   run scripts/install-deps.sh first (default) or not (CUDA image, CI, GPU host)
#   --targets "T ..." build only these targets (default: all)
#   --no-build        do not build: install what the build directory has (it must be complete)
#   --with-client-package  also install the C++ client package (headers, static libraries, CMake
#                     config: component cropshield_dev); by default only the server, the CLI and
#                     the demo model (component cropshield_runtime) are installed
#   --reconfigure     run the CMake configure step even if the build directory is configured
# environment: JOBS (default nproc), BUILD_TYPE (default Release), and the usual CMake variables:
#   Torch_DIR or CMAKE_PREFIX_PATH select another libtorch / dependency prefix (official libtorch,
#   a pip torch's torch.utils.cmake_prefix_path, the GPU host's /opt/dep prefix), e.g.
#   CMAKE_PREFIX_PATH="/opt/dep;$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
#     deploy/docker/steps/build.sh --deps none --build-dir /tmp/b -- -DCMAKE_CUDA_ARCHITECTURES=90
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
build_dir=/tmp/cropshield-build
prefix=/opt/cropshield
destdir=
deps=debian
targets=
do_build=1
reconfigure=0
components=(cropshield_runtime)
while (($#)); do
  case $1 in
    --src) src=$(cd "$2" && pwd); shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    --deps) deps=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --reconfigure) reconfigure=1; shift ;;
    --with-client-package) components+=(cropshield_dev); shift ;;
    --) shift; break ;;
    *) echo "build.sh: unknown argument $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
case $deps in
  debian) "$src/scripts/install-deps.sh" ;;
  none) ;;
  *) echo "build.sh: --deps must be debian or none" >&2; exit 2 ;;
esac

cmake_args=(-DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" -DCMAKE_INSTALL_PREFIX="$prefix"
  # Keep RPATHs to non-system link directories (official libtorch, a dependency prefix) at install.
  -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON)
[[ -n ${Torch_DIR:-} ]] && cmake_args+=(-DTorch_DIR="$Torch_DIR")
[[ -n ${CMAKE_PREFIX_PATH:-} ]] && cmake_args+=(-DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH")
if [[ ! -f $build_dir/CMakeCache.txt || $reconfigure == 1 || $# -gt 0 ]]; then
  cmake -S "$src" -B "$build_dir" -G Ninja "${cmake_args[@]}" "$@"
fi
if ((do_build)); then
  # shellcheck disable=SC2086
  cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" ${targets:+--target $targets}
fi

for component in "${components[@]}"; do
  DESTDIR=$destdir cmake --install "$build_dir" --prefix "$prefix" --component "$component"
done
root=$destdir$prefix
"$here/runtime-deps.sh" "$root/bin/cropshield-server" "$root/bin/cropshield" \
  >"$root/share/cropshield/runtime-packages.txt" 3>"$root/share/cropshield/runtime-libs-unpackaged.txt"
echo "build.sh: installed into $root; runtime packages: $(tr '\n' ' ' <"$root/share/cropshield/runtime-packages.txt")"
if [[ -s $root/share/cropshield/runtime-libs-unpackaged.txt ]]; then
  echo "build.sh: libraries no package owns (copy them into the runtime image):" \
    "$(tr '\n' ' ' <"$root/share/cropshield/runtime-libs-unpackaged.txt")"
fi
