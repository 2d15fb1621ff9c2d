#!/usr/bin/env bash
# Compile every kernels/*.cu to a cubin for sm_90 (H100) and sm_80 (A100) with nvcc, so
# syntax errors and register spills show up without a GPU. Exits non-zero, with the
# compiler's output, on any error; skips (exit 0) where nvcc is not installed.
set -euo pipefail

cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
    echo "compile_kernels: nvcc not found on PATH; skipped"
    exit 0
fi

out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
status=0
for source in kernels/*.cu; do
    name="$(basename "$source" .cu)"
    for arch in sm_90 sm_80; do
        if log="$(nvcc -cubin -arch="$arch" -Xptxas -v -o "$out_dir/$name.$arch.cubin" "$source" 2>&1)"; then
            spills="$(grep -E '[1-9][0-9]* bytes spill (stores|loads)' <<<"$log" || true)"
            echo "compile_kernels: $source for $arch: ok${spills:+ (register spills: see below)}"
            [[ -n "$spills" ]] && echo "$spills"
        else
            echo "compile_kernels: $source for $arch: FAILED"
            echo "$log"
            status=1
        fi
    done
done
exit "$status"
