"""Builds keras-bandrnn and compiles `custom_ops/` against the installed TensorFlow.

Install with `pip install --no-build-isolation -e .` so that the op library is
compiled against the TensorFlow that will load it (pip's build isolation could
pick another TF version, and the binary is tied to TF's minor version).

C++ sources (`custom_ops/**/*.cc`) are compiled with g++ using
`tf.sysconfig`'s flags. When a CUDA toolkit is found (`nvcc` and a complete
CUDA include directory), the CUDA sources (`*.cu.cc`, `*.cu`) are compiled too
and linked with the static CUDA runtime; otherwise, or if that compilation
fails, the library is built CPU-only with a warning. Environment:

- `KERAS_BANDRNN_CUDA=0` builds CPU-only even if CUDA is present.
- `CUDA_HOME` names the CUDA installation (default: found from the usual
  directories, then `nvcc`'s location).
- `KERAS_BANDRNN_MARCH` overrides `-march=native` for the CPU kernels.
- `KERAS_BANDRNN_JOBS` sets the number of parallel compile jobs.
"""

import json
import os
import sys

from setuptools import Extension
from setuptools import find_packages
from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "custom_ops"))
import build_config  # noqa: E402  (custom_ops/build_config.py)

BUILD_INFO = "_build_info.json"  # read by keras_bandrnn/_lib.py


class BuildOpLibrary(build_ext):
    """Compiles the TF op library instead of a Python extension module."""

    def build_extension(self, ext):
        out = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = os.path.join(self.build_temp, "custom_ops")
        info = build_config.build(
            source_dir=os.path.join(HERE, "custom_ops"),
            output=out,
            tmp_dir=tmp,
            jobs=int(os.environ.get("KERAS_BANDRNN_JOBS", os.cpu_count() or 1)),
            log=lambda msg: print(f"keras-bandrnn: {msg}", flush=True),
        )
        with open(os.path.join(os.path.dirname(out), BUILD_INFO), "w") as f:
            json.dump(info, f, indent=2)

    def copy_extensions_to_source(self):
        # Editable installs copy the library into the source tree; the build
        # info that the loader checks must travel with it.
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace, regular = self._get_inplace_equivalent(build_py, ext)
            self.copy_file(
                os.path.join(os.path.dirname(regular), BUILD_INFO),
                os.path.join(os.path.dirname(inplace), BUILD_INFO),
            )


setup(
    name="keras-bandrnn",
    version="0.1.0",
    description="Keras RNN cells with banded and block-sparse recurrent matrices, "
    "backed by compiled TensorFlow ops",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_bandrnn", "keras_bandrnn.*"]),
    ext_modules=[Extension("keras_bandrnn._bandrnn_ops", sources=[])],
    cmdclass={"build_ext": BuildOpLibrary},
    python_requires=">=3.10",
    install_requires=["tensorflow>=2.21,<2.22", "keras>=3.10", "numpy", "absl-py"],
    extras_require={
        "test": ["pytest", "hypothesis", "scipy"],
        "examples": ["tensorflow-datasets", "tf-keras-vis", "matplotlib", "tqdm"],
    },
    zip_safe=False,
)
