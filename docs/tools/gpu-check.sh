#!/usr/bin/env bash
# GPU checks of the CUDA backend (issue 6): the cross-backend op suite, the whole-model greedy
# test and the GPU benchmark tables (dev.longctx.engine.cuda.CudaBench), on a machine that has
# an NVIDIA GPU but no Maven, JDK or network.
#
#   docs/tools/gpu-check.sh prepare        # on the build machine: build the engine, jlink a JDK 25
#                                          # runtime, stage it with the jars, test classes and
#                                          # the two real models under target/gpu-check (< 64 MiB)
#   docs/tools/gpu-check.sh run [--quick]  # on the GPU machine, with target/gpu-check carried:
#                                          # runs the tests, then the benchmark (--quick: 2 layers,
#                                          # contexts up to 32K; --tiny: toy shapes)
#
# Environment of run: SKIP_SDPA=1 skips PyTorch's baseline; GPU_CHECK_TESTS="Class Class#method"
# narrows the tests (docs/tools/GpuCheck.java); SDPA_TIMEOUT, TEST_TIMEOUT, BENCH_TIMEOUT (seconds);
# LOG_DIR keeps sdpa.log, tests.log and cudabench.log. CI runs the bundle on the CPU emulation
# (docs/tools/cuda-emulate/java-check.sh), so a bundle that lacks a module, a jar or a model fails
# there and not in a lent device's minutes.
#
# The CUDA libraries come from the GPU machine (libcuda from the driver; libcudart 13, libcublas
# and libnvrtc from its CUDA toolkit, found through ldconfig or /usr/local/cuda/lib64); this
# machine's libcudart.so.13 is carried as a fallback. Without cuBLAS, prefill uses the matvec
# kernel; without NVRTC, the build's PTX is used (it is, whenever nvcc built the jar).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=target/gpu-check

prepare() {
  export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
  export PATH="$JAVA_HOME/bin:$PATH"
  ./mvnw -B -q -pl engine install -DskipTests
  rm -rf "$OUT"
  mkdir -p "$OUT/lib" "$OUT/classes" "$OUT/data/models"
  ./mvnw -B -q -pl engine dependency:build-classpath -Dmdep.includeScope=test \
    -Dmdep.outputFile="$PWD/$OUT/classpath.txt"
  tr ':' '\n' < "$OUT/classpath.txt" | grep -v -e archunit -e slf4j -e byte-buddy | while read -r jar; do
    cp "$jar" "$OUT/lib/"
  done
  ./mvnw -B -q -N dependency:copy -Dartifact=org.junit.platform:junit-platform-launcher:1.13.4 \
    -DoutputDirectory="$PWD/$OUT/lib"
  cp engine/target/longctx-engine-*-SNAPSHOT.jar engine/target/longctx-engine-*-tests.jar "$OUT/lib/"
  javac -d "$OUT/classes" -cp "$OUT/lib/*" docs/tools/GpuCheck.java
  cp -r ../shared/data/models/stories260K ../shared/data/models/tinystories-656k "$OUT/data/models/"
  # The JDK's own classes without their debug attributes (ours keep line numbers for a device
  # failure's stack trace); no java.management (only MatmulBench, a CPU benchmark, uses it).
  jlink --add-modules java.base,java.logging,jdk.unsupported,jdk.incubator.vector \
    --strip-native-debug-symbols=exclude-debuginfo-files --strip-java-debug-attributes \
    --no-man-pages --no-header-files --compress=zip-9 --output "$OUT/jre"
  # jlink's stripping keeps libjvm's symbol table (29.8 MB); without it, 24.8 MB. The dynamic
  # symbols stay, so an hs_err file still names the JVM's frames.
  if command -v strip > /dev/null; then
    strip --strip-unneeded "$OUT/jre/lib/server/libjvm.so"
  fi
  # The CUDA 13 runtime of this machine, as a fallback for a device machine with only a driver
  # (looked up after the device machine's own libraries).
  mkdir -p "$OUT/native"
  if [ -e /usr/local/cuda/lib64/libcudart.so.13 ]; then
    cp -L /usr/local/cuda/lib64/libcudart.so.13 "$OUT/native/"
  fi
  rm "$OUT/classpath.txt"
  du -sh "$OUT/jre" "$OUT/lib" "$OUT/data"
  du -sh "$OUT"
  # The device tool carries at most 64 MiB, this bundle and the working tree together.
  local bytes tree
  bytes=$(du -sb "$OUT" | cut -f1)
  tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
  echo "bundle $bytes bytes + working tree $tree bytes (limit $((64 * 1024 * 1024)))"
  if [ $((bytes + tree)) -gt $((64 * 1024 * 1024)) ]; then
    echo "gpu-check: bundle and working tree over the 64 MiB the device machine accepts" >&2
    exit 1
  fi
}

run() {
  local java=(
    "$OUT/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED
    -Xmx48g -cp "$OUT/lib/*:$OUT/classes")
  local path="" d
  # The toolkit's libraries, then those of the NVIDIA Python wheels (PyTorch's cuBLAS and NVRTC),
  # then the carried runtime.
  local wheels
  wheels=$(python3 -c 'import glob, site
for s in site.getsitepackages(): print("\n".join(sorted(glob.glob(s + "/nvidia/*/lib"))))' 2>/dev/null || true)
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $wheels "$PWD/$OUT/native"; do
    if [ -d "$d" ]; then path="$path:$d"; fi
  done
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}$path"
  local log="${LOG_DIR:-/tmp}"
  (nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 || true) | head -3
  (nvcc --version 2>&1 | tail -1; ldconfig -p | grep -E 'libcublas|libnvrtc|libcudart' | head -6) || true
  echo
  local rc=0
  if [ -z "${SKIP_SDPA:-}" ]; then
    echo "## PyTorch scaled_dot_product_attention"
    PYTHONUNBUFFERED=1 timeout "${SDPA_TIMEOUT:-120}" python3 docs/tools/sdpa-bench.py 2>&1 | tee "$log/sdpa.log" || rc=1
  fi
  echo
  echo "## CUDA tests"
  # shellcheck disable=SC2086 # GPU_CHECK_TESTS is a list of words
  LONGCTX_DATA="$OUT/data" timeout "${TEST_TIMEOUT:-240}" "${java[@]}" GpuCheck ${GPU_CHECK_TESTS:-} 2>&1 |
    tee "$log/tests.log" || rc=1
  echo
  echo "## CudaBench $*"
  timeout "${BENCH_TIMEOUT:-300}" "${java[@]}" dev.longctx.engine.cuda.CudaBench "$@" 2>&1 | tee "$log/cudabench.log" || rc=1
  echo
  return $rc
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run [--quick]" >&2; exit 64 ;;
esac
