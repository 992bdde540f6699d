#!/usr/bin/env bash
# CUDA image build stage: downloads and unpacks the official libtorch (C++11 ABI, shared, with the
# CUDA libraries it needs) into DEST, checking SHA256 when given.
# usage: fetch-libtorch.sh URL DEST [SHA256]
set -euo pipefail
url=$1 dest=$2 sha=${3:-}
[[ -f $dest/share/cmake/Torch/TorchConfig.cmake ]] && { echo "fetch-libtorch: $dest already there"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/libtorch.zip" "$url"
if [[ -n $sha ]]; then echo "$sha  $tmp/libtorch.zip" | sha256sum -c -; fi
unzip -q "$tmp/libtorch.zip" -d "$tmp"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/libtorch" "$dest"
grep -q 'GLIBCXX_USE_CXX11_ABI=1' "$dest/share/cmake/Torch/TorchConfig.cmake" ||
  { echo "fetch-libtorch: $url is not a C++11-ABI libtorch" >&2; exit 1; }
echo "fetch-libtorch: $(cat "$dest/build-version" 2>/dev/null || echo libtorch) in $dest"
