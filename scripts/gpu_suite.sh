#!/usr/bin/env bash
# The whole GPU suite of the CUDA kernels in one call, no TensorFlow needed:
#   1. builds the launchers (custom_ops/cuda/*.cu) into a plain shared library
#      and the compute-sanitizer driver with nvcc (sm_90 by default);
#   2. runs tests/gpu/test_cuda_kernels.py (PyTorch + ctypes, NumPy float64
#      references) and tests/gpu/test_emulation.py;
#   3. runs benchmarks/cuda_bench.py (cuBLAS / cuSPARSE baselines);
#   4. runs the driver under compute-sanitizer memcheck, racecheck, initcheck
#      and synccheck.
# Results go to $OUT (default build/gpu_suite): build.log, pytest.log,
# sanitizer.log, bench.md, bench.json, summary.txt. Each step has its own time
# limit; the whole suite took 84 s on an H200. Usage, from the repository root:
#   OUT=/tmp/out scripts/gpu_suite.sh            # KBR_CUDA_ARCH=90 by default
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_suite}
ARCH=${KBR_CUDA_ARCH:-90}
BUILD=build/gpu
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$BUILD"
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
export PYTHONUNBUFFERED=1
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/summary.txt"
nvcc --version | tail -2 | tee -a "$OUT/summary.txt"

# 1. build (both in parallel)
SRC="custom_ops/cuda/band_kernels.cu custom_ops/cuda/block_sparse_kernels.cu custom_ops/cuda/block_gru_update_kernels.cu"
FLAGS="-std=c++17 -O3 -Icustom_ops -gencode arch=compute_${ARCH},code=sm_${ARCH} -lineinfo"
t0=$(date +%s)
( nvcc $FLAGS -shared -Xcompiler -fPIC $SRC -o $BUILD/libkbr_cuda.so -Xptxas -v > "$OUT/build.log" 2>&1 ) &
p1=$!
( nvcc $FLAGS tests/gpu/sanitize_driver.cu $SRC -o $BUILD/sanitize_driver > "$OUT/build_driver.log" 2>&1 ) &
p2=$!
wait $p1 && wait $p2 || { summary "BUILD FAILED"; tail -50 "$OUT/build.log" "$OUT/build_driver.log"; exit 1; }
summary "build: OK in $(( $(date +%s) - t0 )) s (sm_${ARCH})"
grep -E "spill (stores|loads)" "$OUT/build.log" | grep -v " 0 bytes spill" | sort | uniq -c | head -5 | tee -a "$OUT/summary.txt"

# 2. correctness
export KBR_CUDA_LIB=$PWD/$BUILD/libkbr_cuda.so
t0=$(date +%s)
# Every failure is reported (no -x); xdist and pytest-timeout where installed.
PLUGINS=""
$PY -c "import xdist" 2>/dev/null && PLUGINS="$PLUGINS -n 8"
$PY -c "import pytest_timeout" 2>/dev/null && PLUGINS="$PLUGINS --timeout 120"
timeout 200 $PY -m pytest -q -p no:cacheprovider --confcutdir=tests/gpu --rootdir=tests/gpu \
    tests/gpu/test_cuda_kernels.py tests/gpu/test_emulation.py -rs --durations 5 $PLUGINS \
    > "$OUT/pytest.log" 2>&1
rc=$?
summary "pytest: rc=$rc in $(( $(date +%s) - t0 )) s: $(tail -1 "$OUT/pytest.log")"
[ $rc -eq 0 ] || { status=1; grep -E "^(FAILED|E )" "$OUT/pytest.log" | head -20; }

# 3. benchmark (before the sanitizer, so that its results come back even if
#    the sanitizer runs long)
t0=$(date +%s)
timeout 150 $PY benchmarks/cuda_bench.py "$OUT/bench.md" > "$OUT/bench.log" 2>&1
rc=$?
summary "benchmark: rc=$rc in $(( $(date +%s) - t0 )) s"
[ $rc -eq 0 ] && cat "$OUT/bench.md" || { status=1; tail -30 "$OUT/bench.log"; }

# 4. compute-sanitizer (on the PATH, or beside nvcc / in the CUDA tree)
: > "$OUT/sanitizer.log"
CS=$(command -v compute-sanitizer || ls -d /usr/local/cuda*/bin/compute-sanitizer \
     /usr/local/cuda*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
[ -n "$CS" ] || { summary "compute-sanitizer: NOT FOUND"; CS=false; }
for tool in memcheck racecheck initcheck synccheck; do
  t0=$(date +%s)
  extra=""; dtypes=0123
  [ $tool = memcheck ] && extra="--leak-check full"
  # racecheck / synccheck look at shared memory and barriers: one dtype per engine.
  [ $tool = racecheck ] && { extra="--racecheck-report all"; dtypes=02; }
  [ $tool = synccheck ] && dtypes=02
  timeout 50 $CS --tool $tool $extra --error-exitcode 3 $BUILD/sanitize_driver $dtypes \
      >> "$OUT/sanitizer.log" 2>&1
  rc=$?
  summary "compute-sanitizer $tool: rc=$rc in $(( $(date +%s) - t0 )) s"
  [ $rc -eq 0 ] || status=1
done
grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$OUT/sanitizer.log" | tee -a "$OUT/summary.txt"

summary "gpu_suite: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
