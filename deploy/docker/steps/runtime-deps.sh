#!/usr/bin/env bash
# Lists what the given binaries need at run time: on stdout the Debian/Ubuntu packages that own the
# libraries they link directly (DT_NEEDED; apt pulls the rest through package dependencies), on file
# descriptor 3 (if open) the libraries no package owns (e.g. the official libtorch and the CUDA
# libraries it bundles: copy those into the image). The direct needs of such unpackaged libraries
# count as direct needs. Fails if a library cannot be found at all.
# usage: runtime-deps.sh BINARY... [3>unpackaged.txt]
set -euo pipefail
{ true >&3; } 2>/dev/null || exec 3>/dev/null
declare -A path_of owner_of
for bin in "$@"; do
  out=$(ldd "$bin") || { echo "runtime-deps: ldd $bin failed" >&2; exit 1; }
  if grep -q 'not found' <<<"$out"; then
    echo "runtime-deps: $bin: unresolved libraries:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
  fi
  while read -r soname path; do path_of[$soname]=$path; done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$out")
done
# One dpkg-query for every candidate spelling of every path (merged /usr: /lib vs /usr/lib).
candidates=()
for soname in "${!path_of[@]}"; do
  p=${path_of[$soname]} r=$(readlink -f "${path_of[$soname]}")
  candidates+=("$p" "$r" "${p#/usr}" "/usr$p" "${r#/usr}" "/usr$r")
done
if command -v dpkg-query >/dev/null && ((${#candidates[@]})); then
  while IFS= read -r line; do
    pkg=${line%%: *} file=${line#*: }
    pkg=${pkg%%:*}  # drop :amd64
    owner_of[$file]=$pkg
  done < <(dpkg-query -S "${candidates[@]}" 2>/dev/null | grep -v '^diversion' || true)
fi
owner() {
  local p=$1 r
  r=$(readlink -f "$p")
  for c in "$p" "$r" "${p#/usr}" "/usr$p" "${r#/usr}" "/usr$r"; do
    [[ -n ${owner_of[$c]:-} ]] && { echo "${owner_of[$c]}"; return 0; }
  done
  return 0  # unowned: prints nothing (and must not fail the pipelines below under pipefail)
}
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
direct=()
for bin in "$@"; do mapfile -t -O "${#direct[@]}" direct < <(needed "$bin"); done
unpackaged=()
for soname in "${!path_of[@]}"; do
  if [[ -z $(owner "${path_of[$soname]}") ]]; then
    unpackaged+=("$(readlink -f "${path_of[$soname]}")")
    mapfile -t -O "${#direct[@]}" direct < <(needed "${path_of[$soname]}")
  fi
done
((${#unpackaged[@]})) && printf '%s\n' "${unpackaged[@]}" | sort -u >&3
# An `if`, not `&&`: a last soname without a path (the dynamic loader, which unpackaged libraries
# such as libm or libtorch name) must not become the loop's failing status under pipefail.
for soname in "${direct[@]}"; do
  if [[ -n ${path_of[$soname]:-} ]]; then owner "${path_of[$soname]}"; fi
done | sort -u
exit 0
