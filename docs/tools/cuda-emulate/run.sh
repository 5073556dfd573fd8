#!/usr/bin/env bash
# Builds and runs the CPU emulation check of the CUDA kernels (see main.cpp); needs g++ 12+.
set -euo pipefail
cd "$(dirname "$0")"
out="${TMPDIR:-/tmp}/longctx-cuda-emulate"
flags=(-std=c++20 -O1 -pthread -Wall -Wno-unused-function -Wno-sign-compare -Wno-unknown-pragmas)
# misaligned vector loads (which fault on a GPU) stop the run, where libubsan is present
g++ "${flags[@]}" -fsanitize=alignment -fno-sanitize-recover=alignment -o "$out" main.cpp ||
  g++ "${flags[@]}" -o "$out" main.cpp
"$out"
