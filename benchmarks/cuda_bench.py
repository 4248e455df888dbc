"""Benchmark of the CUDA launchers against cuBLAS dense and cuSPARSE (no TensorFlow).

    KBR_CUDA_LIB=build/gpu/libkbr_cuda.so python3 benchmarks/cuda_bench.py OUT.md

(`scripts/gpu_suite.sh` builds the library and runs this.) PyTorch provides
the device memory, the timers (CUDA events; median of repeated launches after
warm-up) and the baselines: torch.matmul (cuBLAS; TF32 off) and torch.sparse
(cuSPARSE SpMM for the band as a CSR matrix, SDDMM for the block mask).

Targets (issue 5), all on H100/H200 with batch >= 64 and n >= 8192:
- band_matmul forward and backward (transpose) rate on band FLOPs 2*B*n*k:
  >= 50% of cuBLAS fp32 and >= 30% of cuBLAS bf16 (same B, n dense product);
- block_sparse_matmul (block 64, density >= 0.25): time <= (density + 0.1) x
  the dense cuBLAS product.
Writes a Markdown section and a JSON file next to it. The GPU machine's copy of
the repository does not come back, so record the section here afterwards:

    python benchmarks/cuda_bench.py --record OUT/bench.md   # into BENCHMARKS.md
"""

import ctypes
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "gpu"))
import kbr_harness as H  # noqa: E402

if __name__ == "__main__" and "--record" not in sys.argv:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.set_float32_matmul_precision("highest")
    DEV = torch.device("cuda")
    TD = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def timeit(fn, iters=None, warmup=3):
    """Median milliseconds of `fn` (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    once = start.elapsed_time(end)
    iters = iters or int(min(50, max(5, 200.0 / max(once, 1e-3))))
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def rand(shape, dtype):
    return torch.randn(*shape, device=DEV, dtype=torch.float32).to(TD[dtype])


def bench_band(lib, rows, dtype, batch, n, lower, upper):
    k = lower + upper + 1
    x, d, y = rand((batch, n), dtype), rand((n, k), dtype), torch.empty(batch, n, device=DEV,
                                                                         dtype=TD[dtype])
    g = torch.empty(n, k, device=DEV, dtype=TD[dtype])
    dense = rand((n, n), dtype)
    s = torch.cuda.current_stream().cuda_stream
    e = H.DTYPE_ENUM[dtype]

    def run(transpose):
        def f():
            err = lib.kbr_band_matmul(e, batch, n, lower, upper, 1, transpose, x.data_ptr(),
                                      d.data_ptr(), y.data_ptr(), s)
            assert err == 0, err
        return f

    def outer():
        err = lib.kbr_band_outer(e, batch, n, lower, upper, 1, x.data_ptr(), x.data_ptr(),
                                 g.data_ptr(), s)
        assert err == 0, err

    t_dense = timeit(lambda: torch.matmul(x, dense))
    dense_rate = 2.0 * batch * n * n / t_dense / 1e9  # TFLOP/s
    band_flops = 2.0 * batch * n * k
    t_sparse = None
    if dtype == "float32":
        try:  # cuSPARSE SpMM: y^T = A (CSR, n*k nonzeros) x^T
            idx = torch.arange(n, device=DEV)
            cols = (idx[:, None] + torch.arange(k, device=DEV)[None, :] - lower) % n
            coo = torch.sparse_coo_tensor(torch.stack([idx[:, None].expand(n, k).reshape(-1),
                                                       cols.reshape(-1)]), d.reshape(-1), (n, n))
            csr = coo.coalesce().to_sparse_csr()
            xt = x.t().contiguous()
            t_sparse = timeit(lambda: torch.sparse.mm(csr, xt))
        except Exception as exc:  # keep the table going without the baseline
            print("cuSPARSE band baseline failed:", exc, file=sys.stderr)
    for name, fn in (("band_matmul fwd", run(0)), ("band_matmul bwd (transpose)", run(1)),
                     ("band_outer (d-gradient)", outer)):
        t = timeit(fn)
        rate = band_flops / t / 1e9
        rows.append({
            "op": name, "dtype": dtype, "shape": f"B={batch} n={n} k={k} cyclic",
            "ms": t, "tflops": rate, "cublas_dense_ms": t_dense, "cublas_tflops": dense_rate,
            "ratio": rate / dense_rate, "target": 0.5 if dtype == "float32" else 0.3,
            "cusparse_ms": t_sparse if name == "band_matmul fwd" else None,
        })


def bench_block_sparse(lib, rows, dtype, batch, kdim, n, bs, density):
    x, w = rand((batch, kdim), dtype), rand((kdim, n), dtype)
    dy = rand((batch, n), dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    mask_cpu = (torch.rand(batch, n // bs, generator=gen) < density).to(torch.uint8)
    mask = mask_cpu.to(DEV)
    y = torch.empty(batch, n, device=DEV, dtype=TD[dtype])
    dx = torch.empty(batch, kdim, device=DEV, dtype=TD[dtype])
    dw = torch.empty(kdim, n, device=DEV, dtype=TD[dtype])
    s = torch.cuda.current_stream().cuda_stream
    e = H.DTYPE_ENUM[dtype]
    fns = {}
    for op, name, p, q, out in ((H.BS_FORWARD, "kbr_block_sparse_matmul", x, w, y),
                                (H.BS_GRAD_X, "kbr_block_sparse_matmul_grad_x", dy, w, dx),
                                (H.BS_GRAD_W, "kbr_block_sparse_matmul_grad_w", x, dy, dw)):
        nbytes = lib.kbr_block_sparse_workspace_bytes(op, batch, kdim, n, bs)
        ws = torch.empty(max(nbytes, 1), device=DEV, dtype=torch.uint8)
        fn = getattr(lib, name)

        def f(fn=fn, p=p, q=q, out=out, ws=ws, nbytes=nbytes):
            err = fn(e, batch, kdim, n, bs, p.data_ptr(), q.data_ptr(), mask.data_ptr(),
                     out.data_ptr(), ws.data_ptr(), nbytes, s)
            assert err == 0, err
        fns[op] = f
    dense = {H.BS_FORWARD: lambda: torch.matmul(x, w), H.BS_GRAD_X: lambda: torch.matmul(dy, w.t()),
             H.BS_GRAD_W: lambda: torch.matmul(x.t(), dy)}
    t_sddmm = None
    if dtype == "float32":
        try:  # cuSPARSE SDDMM on the element-level mask
            em = mask_cpu.bool().repeat_interleave(bs, dim=1).to(DEV)
            pattern = em.to(torch.float32).to_sparse_csr()
            pattern = torch.sparse_csr_tensor(pattern.crow_indices(), pattern.col_indices(),
                                              torch.zeros_like(pattern.values()), (batch, n))
            if pattern.values().numel() == 0:
                raise RuntimeError("empty pattern")
            t_sddmm = timeit(lambda: torch.sparse.sampled_addmm(pattern, x, w))
        except Exception as exc:
            print("cuSPARSE SDDMM baseline failed:", exc, file=sys.stderr)
    actual = float(mask_cpu.float().mean())
    for op, name in ((H.BS_FORWARD, "block_sparse fwd"), (H.BS_GRAD_X, "block_sparse grad_x"),
                     (H.BS_GRAD_W, "block_sparse grad_w")):
        t = timeit(fns[op])
        td = timeit(dense[op])
        rows.append({
            "op": name, "dtype": dtype, "shape": f"B={batch} K={kdim} N={n} bs={bs} "
                                                 f"density={actual:.2f}",
            "ms": t, "cublas_dense_ms": td, "ratio": t / td,
            "target": (density + 0.1) if op == H.BS_FORWARD else None,
            "cusparse_ms": t_sddmm if op == H.BS_FORWARD else None,
        })


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def markdown(rows, device, cmd):
    lines = [f"## CUDA kernels (benchmarks/cuda_bench.py)", "",
             f"Device: {device}. Command: `{cmd}`. Medians of CUDA-event timings; cuBLAS via "
             "torch.matmul with TF32 off; cuSPARSE via torch.sparse.", "",
             "Band ops: `ratio` = effective rate on band FLOPs (2*B*n*k) / cuBLAS dense rate "
             "for (B x n) @ (n x n); target >= 0.5 (fp32), >= 0.3 (bf16).", "",
             "| op | dtype | shape | ms | TFLOP/s | cuBLAS dense TFLOP/s | ratio | target | "
             "met | cuSPARSE ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "tflops" in r:
            lines.append(f"| {r['op']} | {r['dtype']} | {r['shape']} | {r['ms']:.3f} | "
                         f"{r['tflops']:.1f} | {r['cublas_tflops']:.1f} | {r['ratio']:.2f} | "
                         f">= {r['target']} | {'yes' if r['ratio'] >= r['target'] else 'NO'} | "
                         f"{fmt(r['cusparse_ms'], '.3f')} |")
    lines += ["", "Block-sparse: `ratio` = time / dense cuBLAS time of the same product; "
              "forward target <= density + 0.1 (block 64).", "",
              "| op | dtype | shape | ms | cuBLAS dense ms | ratio | target | met | "
              "cuSPARSE SDDMM ms |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "tflops" not in r:
            tgt = r["target"]
            met = "" if tgt is None else ("yes" if r["ratio"] <= tgt else "NO")
            lines.append(f"| {r['op']} | {r['dtype']} | {r['shape']} | {r['ms']:.3f} | "
                         f"{r['cublas_dense_ms']:.3f} | {r['ratio']:.2f} | "
                         f"{'' if tgt is None else '<= %.2f' % tgt} | {met} | "
                         f"{fmt(r['cusparse_ms'], '.3f')} |")
    return "\n".join(lines) + "\n"


def record(path):
    """Writes the section made on the GPU machine into BENCHMARKS.md."""
    sys.path.insert(0, os.path.dirname(HERE))
    from benchmarks import report

    body = open(path).read()
    summary = os.path.join(os.path.dirname(path), "summary.txt")
    if os.path.exists(summary):  # the suite's build, test and sanitizer lines
        body += "\nThe same `scripts/gpu_suite.sh` run (`summary.txt`):\n\n```\n"
        body += open(summary).read().strip() + "\n```\n"
    with open(os.path.splitext(path)[0] + ".json") as f:
        device = json.load(f)["device"]
    report.write_section("cuda_kernels", body, "scripts/gpu_suite.sh on a GPU machine, then "
                         f"python benchmarks/cuda_bench.py --record $OUT/bench.md",
                         machine_name=f"the lent GPU machine, {device}")


def main(argv):
    if len(argv) > 2 and argv[1] == "--record":
        return record(argv[2])
    out = argv[1] if len(argv) > 1 else "cuda_bench.md"
    lib = H._declare(ctypes.CDLL(os.environ["KBR_CUDA_LIB"]))
    quick = os.environ.get("KBR_BENCH_QUICK") == "1"
    rows = []
    for dtype in ("float32", "bfloat16"):
        for batch, n, half in ((64, 8192, 32), (64, 8192, 128), (256, 8192, 128),
                               (64, 8192, 512)):
            if quick and (batch, half) != (64, 128):
                continue
            bench_band(lib, rows, dtype, batch, n, half, half)
            print(rows[-3]["op"], dtype, rows[-3]["shape"], f"ratio {rows[-3]['ratio']:.2f}",
                  flush=True)
        for density in (0.25, 0.5, 0.75):
            if quick and density != 0.25:
                continue
            bench_block_sparse(lib, rows, dtype, 4096, 4096, 4096, 64, density)
            print(rows[-3]["op"], dtype, rows[-3]["shape"], f"ratio {rows[-3]['ratio']:.2f}",
                  flush=True)
    device = f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    md = markdown(rows, device, "scripts/gpu_suite.sh (python3 benchmarks/cuda_bench.py)")
    with open(out, "w") as f:
        f.write(md)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"device": device, "rows": rows}, f, indent=1)
    print(md)


if __name__ == "__main__":
    main(sys.argv)
