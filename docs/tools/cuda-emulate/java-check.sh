#!/usr/bin/env bash
# Runs the CUDA backend's Java GPU tests (CudaOpsTest, CudaModelTest, LaunchGraphTest,
# KernelProfileTest, CudaKvRangeTest, CudaSelectorTest, BackendTest, CudaBenchTest, then the
# worker's GpuShardsTest and the CLI's GPU tests, then the device bundle of
# docs/tools/gpu-check.sh) on a machine without a GPU, against
# fake_driver.cpp built as libcuda.so.1: the whole Java side (launch marshalling, copies, page
# tables, graphs, the model's forward pass and its greedy tokens against the CPU backend, the
# benchmark's code) with the kernels run by the CPU emulation, and fake_cublas.cpp as
# libcublas.so.13 for the prefill's GEMMs. Needs g++ 12+ and the CUDA 13 runtime
# (libcudart.so.13); with nvcc, launches are also held to the kernels' register counts as a
# device holds them.
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
# cuBLAS's GEMM on the CPU; the JavaCPP binding also links libcublasLt, which nothing calls.
g++ "${flags[@]}" -Wl,-soname,libcublas.so.13 -o "$lib/libcublas.so.13" fake_cublas.cpp
g++ -shared -fPIC -Wl,-soname,libcublasLt.so.13 -o "$lib/libcublasLt.so.13" -x c++ /dev/null
# Registers a thread of each kernel as ptxas gives them for sm_90 (the device the fake driver
# reports), so a launch whose block needs more than an SM's 65536 fails here as on a device.
if command -v nvcc > /dev/null; then
  nvcc -cubin -O3 -arch=sm_90 -Xptxas -v -o "$lib/longctx.cubin" ../../../engine/src/main/cuda/longctx.cu 2>&1 |
    awk "/Compiling entry function/ { split(\$0, a, \"'\"); name = a[2] } /Used [0-9]+ registers/ { sub(/.*Used /, \"\"); print name, \$1 }" \
    > "$lib/registers.txt"
  export LONGCTX_FAKE_CUDA_REGISTERS="$lib/registers.txt"
else
  echo "java-check: no nvcc, launches are not checked against the kernels' register counts" >&2
fi
cd ../../..
JAVA_HOME="$(./longctx jdk)"
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
./mvnw -o -pl engine test \
  -Dtest='CudaOpsTest,CudaModelTest,LaunchGraphTest,KernelProfileTest,CudaKvRangeTest,CudaSelectorTest,BackendTest,CudaBenchTest' \
  -Dsurefire.failIfNoSpecifiedTests=false "$@"
# The ops again with each block's threads in descending order between barriers (emulate.h): a
# race between a block's threads (a barrier missing) makes some result depend on that order.
LONGCTX_EMULATE_REVERSE=1 ./mvnw -o -pl engine surefire:test -Dtest='CudaOpsTest' \
  -Dsurefire.failIfNoSpecifiedTests=false "$@"
# The worker resolves the engine (and its test jar) from the local repository.
./mvnw -o -q -pl proto,engine install -DskipTests
./mvnw -o -pl worker test -Dtest='GpuShardsTest,CliTest#aTopKMethodOnCuda*+anInProcessGpuServer*+benchReplicatesADepthOnTheGpu+cudaGraphs*+int8Activations*' \
  -Dsurefire.failIfNoSpecifiedTests=false "$@"
# The device bundle (docs/tools/gpu-check.sh) as a lent GPU machine gets it: the jlink'd runtime,
# the jars, the real models and GpuCheck, here on the emulation. A bundle that lacks a module, a
# jar or a model would otherwise first fail in a device's few minutes. A few tests (the real
# models' greedy tokens among them) and the toy bench; the full suite ran above.
if [ ! -d ../shared/data/models ] && [ "${CI:-}" != true ]; then
  echo "java-check: no ../shared/data/models, so no device bundle to check" >&2
  exit 0
fi
docs/tools/gpu-check.sh prepare > /dev/null
bundle_log="$(mktemp -d)"
SKIP_SDPA=1 LOG_DIR="$bundle_log" TEST_TIMEOUT=900 BENCH_TIMEOUT=900 \
  GPU_CHECK_TESTS="BackendTest KernelResourcesTest CudaModelTest#greedyTokensEqualTheCpuBackend" \
  docs/tools/gpu-check.sh run --tiny > "$bundle_log/run.log" 2>&1 || {
  cat "$bundle_log/run.log"
  echo "java-check: the device bundle failed on the emulation (log above)" >&2
  exit 1
}
if grep -E ' failed: |NaN' "$bundle_log/cudabench.log"; then
  echo "java-check: the bundle's CudaBench --tiny has a failed section or a NaN (above)" >&2
  exit 1
fi
grep -E '^passed ' "$bundle_log/tests.log"
