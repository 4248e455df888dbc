"""Compiles the op library in `custom_ops/` (used by `setup.py` and the tests).

Kept free of setuptools so that it can also be run directly:

    python custom_ops/build_config.py OUTPUT.so
"""

import concurrent.futures
import glob
import os
import platform
import shutil
import subprocess
import sys

CPU_FLAGS = ["-O3", "-fPIC", "-Wall", "-Wno-sign-compare", "-DNDEBUG"]
# After -march on x86: TensorFlow's Eigen does not compile with GCC 12 where
# -march=native turns on AVX512-FP16 (Sapphire Rapids and newer Xeons:
# "PacketMathFP16.h: expected initializer before '<' token"); no kernel
# uses FP16 arithmetic (half is computed in float).
X86 = platform.machine().lower() in ("x86_64", "amd64")
MARCH_FLAGS = ["-mno-avx512fp16"] if X86 else []

# Architectures of the CUDA kernels: sm_80 (A100), sm_89 (L4/L40), sm_90
# (H100/H200) as SASS, plus compute_90 PTX that newer GPUs JIT-compile. The
# kernels need sm_80 or newer (bfloat16 tensor cores); CUDA 12 and 13 build
# them (13 is what CI and the GPU machines have). KERAS_BANDRNN_CUDA_ARCHS
# ("90" or "80,90") overrides the list, e.g. for a quicker local build.
CUDA_ARCHS = ["80", "89", "90"]


def cpu_flags(march):
    """g++ flags of the C++ sources for `-march=<march>` (before TensorFlow's)."""
    return [f"-march={march}"] + MARCH_FLAGS + CPU_FLAGS


def cuda_archs():
    env = os.environ.get("KERAS_BANDRNN_CUDA_ARCHS")
    return [a.strip() for a in env.split(",") if a.strip()] if env else list(CUDA_ARCHS)


def cuda_shim(tmp_dir, cuda_home):
    """An include directory in which `third_party/gpus/cuda/include/...` is `cuda_home`'s.

    TensorFlow's headers name CUDA headers by that path, and the pip wheel ships
    only part of that tree, from the CUDA it was built with (12.5). Searched
    before TensorFlow's include directory, the shim makes every such include
    resolve to the complete tree of the CUDA that compiles the kernels, so no
    CUDA header is seen in two versions.
    """
    base = os.path.join(tmp_dir, "cuda_shim")
    parent = os.path.join(base, "third_party", "gpus", "cuda")
    os.makedirs(parent, exist_ok=True)
    for name in ("include", "extras"):
        target = os.path.join(cuda_home, name)
        link = os.path.join(parent, name)
        if not os.path.exists(target):
            continue
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    return base


def tf_flags():
    import tensorflow as tf

    return tf.__version__, tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()


def find_cuda():
    """CUDA installation directory with a complete include tree, or None."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True) + ["/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for home in candidates:
        if (
            home
            and os.path.exists(os.path.join(home, "bin", "nvcc"))
            and os.path.exists(os.path.join(home, "include", "cuda_runtime.h"))
        ):
            return home
    return None


def cuda_version(home):
    out = subprocess.run(
        [os.path.join(home, "bin", "nvcc"), "--version"], capture_output=True, text=True
    ).stdout
    for token in out.replace(",", " ").split():
        if token.startswith("V") and token[1:2].isdigit():
            return token[1:]
    return "unknown"


def _run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")


def _sources(source_dir, suffixes, exclude=()):
    files = []
    for root, _, names in os.walk(source_dir):
        for name in names:
            if name.endswith(suffixes) and not name.endswith(exclude):
                files.append(os.path.join(root, name))
    return sorted(files)


def _object(tmp_dir, source_dir, src):
    rel = os.path.relpath(src, source_dir).replace(os.sep, "__")
    return os.path.join(tmp_dir, rel + ".o")


def build(source_dir, output, tmp_dir, jobs=1, log=print, use_cuda=None):
    """Builds `output` from `source_dir`; returns the build-info dict."""
    os.makedirs(tmp_dir, exist_ok=True)
    tf_version, compile_flags, link_flags = tf_flags()
    march = os.environ.get("KERAS_BANDRNN_MARCH", "native")
    include = ["-I" + source_dir]
    if use_cuda is None:
        use_cuda = os.environ.get("KERAS_BANDRNN_CUDA", "1") != "0"
    cuda_home = find_cuda() if use_cuda else None

    cc_sources = _sources(source_dir, (".cc",), exclude=(".cu.cc",))
    cu_sources = _sources(source_dir, (".cu.cc", ".cu"))

    archs = cuda_archs()

    # The shim first, so that it wins over TensorFlow's partial CUDA tree.
    cuda_inc = (["-I" + cuda_shim(tmp_dir, cuda_home), "-I" + os.path.join(cuda_home, "include")]
                if cuda_home else [])

    def cc_cmd(src, cuda):
        defines = ["-DGOOGLE_CUDA=1"] if cuda else []
        return (
            ["g++", "-c", src, "-o", _object(tmp_dir, source_dir, src)]
            + cpu_flags(march) + (cuda_inc if cuda else []) + compile_flags + include + defines
        )

    def cu_cmd(src):
        gencode = []
        for arch in archs:
            gencode += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
        gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
        flags = [f for f in compile_flags if not f.startswith("--std")]
        return (
            [os.path.join(cuda_home, "bin", "nvcc"), "-c", "-x", "cu", src,
             "-o", _object(tmp_dir, source_dir, src), "-std=c++17", "-O3",
             "-Xcompiler", "-fPIC", "-DGOOGLE_CUDA=1", "-DNDEBUG", "--expt-relaxed-constexpr",
             # TensorFlow's and Abseil's headers warn a lot under nvcc; keep logs readable.
             "-diag-suppress=68,186,970,20012,20208,177",
             "-Xcompiler", "-Wno-deprecated-declarations"]
            + cuda_inc + gencode + flags + include
        )

    def compile_all(cmds):
        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            list(pool.map(_run, cmds))

    info = {"tensorflow": tf_version, "cuda": None, "cuda_archs": [], "march": march}
    if cuda_home and cu_sources:
        log(f"compiling {len(cu_sources)} CUDA sources with {cuda_home} (sm_{', sm_'.join(archs)})")
        try:
            compile_all([cu_cmd(s) for s in cu_sources] + [cc_cmd(s, True) for s in cc_sources])
            info.update(cuda=cuda_version(cuda_home), cuda_archs=archs)
        except RuntimeError as e:
            log(f"WARNING: CUDA compilation failed, building CPU-only:\n{e}")
            cuda_home = None
    elif use_cuda:
        log("no CUDA toolkit found (nvcc and cuda_runtime.h): building CPU-only")
    if info["cuda"] is None:
        log(f"compiling {len(cc_sources)} C++ sources (-march={march})")
        compile_all([cc_cmd(s, False) for s in cc_sources])
        sources = cc_sources
    else:
        sources = cc_sources + cu_sources
    objects = [_object(tmp_dir, source_dir, s) for s in sources]
    libs = []
    if info["cuda"] is not None:
        libs = ["-L" + os.path.join(cuda_home, "lib64"), "-l:libcudart_static.a", "-ldl", "-lrt", "-lpthread"]
    _run(["g++", "-shared", "-o", output] + objects + link_flags + libs)
    log(f"built {output}")
    return info


def main(argv):
    """`python custom_ops/build_config.py [OUTPUT]`: builds in place (no pip)."""
    import argparse
    import json

    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Builds the keras-bandrnn op library in place.")
    parser.add_argument(
        "output", nargs="?",
        default=os.path.join(here, "..", "keras_bandrnn", "_bandrnn_ops.so"),
        help="path of the library (default: keras_bandrnn/_bandrnn_ops.so); "
        "_build_info.json is written beside it",
    )
    out = os.path.abspath(parser.parse_args(argv[1:]).output)
    info = build(here, out, os.path.join(os.path.dirname(here), "build", "custom_ops"),
                 jobs=int(os.environ.get("KERAS_BANDRNN_JOBS", os.cpu_count() or 1)))
    with open(os.path.join(os.path.dirname(out), "_build_info.json"), "w") as f:
        json.dump(info, f, indent=2)


if __name__ == "__main__":
    main(sys.argv)
