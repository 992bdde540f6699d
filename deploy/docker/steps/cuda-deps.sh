#!/usr/bin/env bash
# CUDA image build stage: the build dependencies of scripts/install-deps.sh minus libtorch and the
# Python/test tooling, from the Ubuntu 24.04 archive the NVIDIA CUDA images are based on (gRPC 1.51,
# Protobuf 3.21, Abseil 20220623, as on Debian bookworm), plus curl/unzip for fetch-libtorch.sh.
# libtorch is the official CUDA build (fetch-libtorch.sh). Idempotent; needs root.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl unzip python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libopencv-core-dev libopencv-imgproc-dev libturbojpeg0-dev libpng-dev
  libwebp-dev libxxhash-dev
)
missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
rm -rf /var/lib/apt/lists/*
echo "cuda-deps: installed ${missing[*]}"
