#!/usr/bin/env bash
# Builds and runs the CPU emulation check of the CUDA kernels (see main.cpp) twice, with the
# threads of each block in ascending and in descending order; needs g++ 12+.
set -euo pipefail
cd "$(dirname "$0")"
out="${TMPDIR:-/tmp}/longctx-cuda-emulate"
flags=(-std=c++20 -O1 -pthread -Wall -Wno-unused-function -Wno-sign-compare -Wno-unknown-pragmas)
# misaligned vector loads (which fault on a GPU) stop the run, where libubsan is present
g++ "${flags[@]}" -fsanitize=alignment -fno-sanitize-recover=alignment -o "$out" main.cpp ||
  g++ "${flags[@]}" -o "$out" main.cpp
"$out" | tee "$out.ascending"
# Again with each block's threads (and the blocks) in descending order: a race (a shared-memory
# read a barrier does not order after its write) makes some result depend on that order.
LONGCTX_EMULATE_REVERSE=1 "$out" > "$out.descending"
if ! cmp -s "$out.ascending" "$out.descending"; then
  echo "FAIL: results differ when the threads of a block run in descending order (a race):"
  diff "$out.ascending" "$out.descending" | head -20
  exit 1
fi
echo "same results with the threads of each block in descending order"
