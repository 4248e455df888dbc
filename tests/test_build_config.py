"""The C++ flags of custom_ops/build_config.py on CPUs other than this one.

`-march=native` means a different instruction set on every machine the
library is built on. These tests compile, with the flags `build()` uses for
a given `-march`, a source that includes TensorFlow's Eigen the way the
kernels do, for CPUs that CI's machine may not be: Sapphire Rapids, whose
AVX512-FP16 TensorFlow 2.21's Eigen does not compile with under GCC 12.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "custom_ops"))
import build_config  # noqa: E402

# Eigen's vectorised half and float paths, as the kernels instantiate them.
SOURCE = r"""
#include "Eigen/Core"
float f(const Eigen::half* a, const float* b, int n) {
  Eigen::Map<const Eigen::Matrix<Eigen::half, Eigen::Dynamic, 1>> x(a, n);
  Eigen::Map<const Eigen::VectorXf> y(b, n);
  return x.cast<float>().dot(y) + static_cast<float>(x.sum());
}
"""


def compile_source(tmp_path, flags):
    src = tmp_path / "eigen.cc"
    src.write_text(SOURCE)
    cmd = ["g++", "-c", str(src), "-o", str(tmp_path / "eigen.o")]
    cmd += flags + build_config.tf_flags()[1]  # as build() passes them
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.skipif(not build_config.X86, reason="x86 -march values")
@pytest.mark.parametrize("march", ["x86-64-v3", "skylake-avx512", "znver3", "sapphirerapids"])
def test_eigen_compiles_for(tmp_path, march):
    proc = compile_source(tmp_path, build_config.cpu_flags(march))
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(not build_config.X86, reason="x86 -march values")
def test_march_flags_are_still_needed(tmp_path):
    """Without MARCH_FLAGS the Sapphire Rapids build fails; when it no longer
    does (a TensorFlow or GCC that fixes it), MARCH_FLAGS can go."""
    flags = [f for f in build_config.cpu_flags("sapphirerapids") if f not in build_config.MARCH_FLAGS]
    proc = compile_source(tmp_path, flags)
    assert proc.returncode != 0, "Eigen now compiles with AVX512-FP16: drop build_config.MARCH_FLAGS"
    assert "PacketMathFP16.h" in proc.stderr
