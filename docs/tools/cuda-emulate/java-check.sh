#!/usr/bin/env bash
# Runs the CUDA backend's Java GPU tests (CudaOpsTest, CudaModelTest, LaunchGraphTest,
# KernelProfileTest, CudaKvRangeTest, CudaSelectorTest, BackendTest, then the worker's GpuShardsTest and the CLI's GPU
# tests) on a machine without a GPU, against fake_driver.cpp built as libcuda.so.1: the whole Java
# side (launch marshalling, copies, page tables, graphs, the model's forward pass and its greedy
# tokens against the CPU backend) with the kernels run by the CPU emulation. cuBLAS is absent, so its test skips and
# prefill takes the matvec path. Needs g++ 12+ and the CUDA 13 runtime (libcudart.so.13).
set -euo pipefail
cd "$(dirname "$0")"
lib="${TMPDIR:-/tmp}/longctx-fake-cuda"
mkdir -p "$lib"
flags=(-std=c++20 -O2 -shared -fPIC -Wall -Wno-unused-function -Wno-sign-compare -Wno-unknown-pragmas -Wno-strict-aliasing)
# A misaligned vector load (uint4, float4, uint2: aligned as on the device, emulate.h) faults on a
# GPU; here the alignment sanitizer stops the test JVM with the kernel's line. Without libubsan the
# driver builds unchecked.
if ! g++ "${flags[@]}" -fsanitize=alignment -fno-sanitize-recover=alignment -o "$lib/libcuda.so.1" fake_driver.cpp; then
  echo "java-check: building the fake driver without -fsanitize=alignment (no libubsan?)" >&2
  g++ "${flags[@]}" -o "$lib/libcuda.so.1" fake_driver.cpp
fi
cd ../../..
JAVA_HOME="$(./longctx jdk)"
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
./mvnw -o -pl engine test \
  -Dtest='CudaOpsTest,CudaModelTest,LaunchGraphTest,KernelProfileTest,CudaKvRangeTest,CudaSelectorTest,BackendTest' \
  -Dsurefire.failIfNoSpecifiedTests=false "$@"
# The worker resolves the engine (and its test jar) from the local repository.
./mvnw -o -q -pl proto,engine install -DskipTests
./mvnw -o -pl worker test -Dtest='GpuShardsTest,CliTest#aTopKMethodOnCuda*+anInProcessGpuServer*+benchReplicatesADepthOnTheGpu+cudaGraphs*+int8Activations*' \
  -Dsurefire.failIfNoSpecifiedTests=false "$@"
