#!/usr/bin/env bash
# Builds and runs the CPU emulation check of the CUDA kernels (see main.cpp); needs g++ 12+.
set -euo pipefail
cd "$(dirname "$0")"
out="${TMPDIR:-/tmp}/longctx-cuda-emulate"
g++ -std=c++20 -O1 -pthread -Wall -Wno-unused-function -Wno-sign-compare -Wno-unknown-pragmas -o "$out" main.cpp
"$out"
