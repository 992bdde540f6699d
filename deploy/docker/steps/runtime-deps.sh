#!/usr/bin/env bash
# Lists what the given binaries need at run time: on stdout the Debian/Ubuntu packages that own their
# shared libraries (one per line, sorted), on file descriptor 3 (if open) the libraries no package
# owns (e.g. the official libtorch). Fails if a library cannot be found at all.
# usage: runtime-deps.sh BINARY... [3>unpackaged.txt]
set -euo pipefail
{ true >&3; } 2>/dev/null || exec 3>/dev/null
libs=$(for bin in "$@"; do
  out=$(ldd "$bin") || { echo "runtime-deps: ldd $bin failed" >&2; exit 1; }
  if grep -q 'not found' <<<"$out"; then
    echo "runtime-deps: $bin: unresolved libraries:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$out"
done | sort -u)
packages=()
for lib in $libs; do
  real=$(readlink -f "$lib")
  owner=
  if command -v dpkg-query >/dev/null; then
    for path in "$lib" "$real" "${lib#/usr}" "/usr$lib" "${real#/usr}" "/usr$real"; do
      owner=$(dpkg-query -S "$path" 2>/dev/null | head -1 | cut -d: -f1) && [[ -n $owner ]] && break
    done
  fi
  if [[ -n $owner ]]; then packages+=("$owner"); else echo "$real" >&3; fi
done
((${#packages[@]})) && printf '%s\n' "${packages[@]}" | sort -u
exit 0
