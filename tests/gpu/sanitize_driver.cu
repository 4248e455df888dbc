// Runs every launcher on small edge-case shapes with exactly sized device
// buffers, for compute-sanitizer (memcheck, racecheck, initcheck, synccheck).
// Values are irrelevant here (tests/gpu/test_cuda_kernels.py checks them);
// every input buffer is initialised. Exits nonzero on any CUDA error.
//   nvcc -std=c++17 -O2 -arch=sm_90 -Icustom_ops tests/gpu/sanitize_driver.cu \
//        custom_ops/cuda/band_kernels.cu custom_ops/cuda/block_sparse_kernels.cu \
//        custom_ops/cuda/block_gru_update_kernels.cu -o driver
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/band_kernels.h"
#include "cuda/block_gru_update_kernels.h"
#include "cuda/block_sparse_kernels.h"

static void check(int err, const char* what) {
  if (err == 0) err = cudaDeviceSynchronize();
  if (err != 0) {
    std::fprintf(stderr, "FAILED %s: %s\n", what, cudaGetErrorString(cudaError_t(err)));
    std::exit(1);
  }
}

struct Buf {
  void* p = nullptr;
  explicit Buf(size_t bytes) {
    if (bytes) {
      check(cudaMalloc(&p, bytes), "cudaMalloc");
      check(cudaMemset(p, 0x3c, bytes), "cudaMemset");  // finite in every dtype
    }
  }
  ~Buf() { cudaFree(p); }
};

static size_t esize(int dtype) { return dtype == KBR_FLOAT64 ? 8 : dtype == KBR_FLOAT32 ? 4 : 2; }

// Usage: sanitize_driver [DTYPES], DTYPES a string of kbr_dtype digits
// (default "0123": all four; "02" covers both engines, SIMT and tensor cores).
int main(int argc, char** argv) {
  std::vector<int> dtypes;
  for (const char* c = argc > 1 ? argv[1] : "0123"; *c; ++c)
    if (*c >= '0' && *c <= '3') dtypes.push_back(*c - '0');
  struct Band { long batch, n, lower, upper; int cyclic; };
  const Band bands[] = {{3, 1, 0, 0, 0},   {3, 1, 0, 0, 1},    {5, 7, 6, 0, 0},
                        {5, 7, 0, 6, 1},   {0, 8, 2, 1, 1},    {70, 130, 5, 9, 0},
                        {130, 65, 64, 0, 1}, {129, 200, 17, 40, 0}, {4, 9, 12, 3, 0},
                        {1, 9, 4, 4, 1}};
  struct Sparse { long batch, k, n, bs; };
  const Sparse sparse[] = {{1, 1, 1, 1},     {9, 17, 6, 3},    {130, 40, 192, 64},
                           {70, 33, 100, 25}, {300, 20, 128, 1}, {0, 8, 16, 4},
                           {7, 0, 16, 8},    {257, 129, 384, 128}};
  struct Gru { long batch, units, blocks; };
  const Gru grus[] = {{1, 1, 1}, {4, 6, 6}, {4, 7, 1}, {3, 12, 4}, {64, 1024, 32},
                      {0, 8, 2}, {5, 0, 1}};
  int launches = 0;
  for (int dt : dtypes) {
    const size_t es = esize(dt);
    for (const Band& b : bands) {
      const long k = b.lower + b.upper + 1;
      Buf x(es * b.batch * b.n), d(es * b.n * k), y(es * b.batch * b.n), g(es * b.n * k),
          addend(es * b.batch * b.n);
      for (int t = 0; t < 2; ++t, ++launches)
        check(kbr_band_matmul(dt, b.batch, b.n, b.lower, b.upper, b.cyclic, t, x.p, d.p, y.p, 0),
              "kbr_band_matmul");
      check(kbr_band_matmul_tanh(dt, b.batch, b.n, b.lower, b.upper, b.cyclic, x.p, d.p,
                                 addend.p, y.p, 0), "kbr_band_matmul_tanh");
      ++launches;
      check(kbr_band_outer(dt, b.batch, b.n, b.lower, b.upper, b.cyclic, x.p, x.p, g.p, 0),
            "kbr_band_outer");
      ++launches;
    }
    for (const Sparse& s : sparse) {
      const long nb = s.n / s.bs;
      Buf x(es * s.batch * s.k), w(es * s.k * s.n), y(es * s.batch * s.n),
          dx(es * s.batch * s.k), dw(es * s.k * s.n);
      std::vector<unsigned char> host(s.batch * nb);
      for (size_t i = 0; i < host.size(); ++i) host[i] = (i * 7 + i / 3) % 3 == 0;
      Buf m(host.size());
      if (!host.empty()) check(cudaMemcpy(m.p, host.data(), host.size(), cudaMemcpyHostToDevice),
                               "cudaMemcpy");
      const unsigned char* mp = static_cast<const unsigned char*>(m.p);
      size_t n0 = kbr_block_sparse_workspace_bytes(KBR_BLOCK_SPARSE_FORWARD, s.batch, s.k, s.n, s.bs);
      size_t n1 = kbr_block_sparse_workspace_bytes(KBR_BLOCK_SPARSE_GRAD_X, s.batch, s.k, s.n, s.bs);
      size_t n2 = kbr_block_sparse_workspace_bytes(KBR_BLOCK_SPARSE_GRAD_W, s.batch, s.k, s.n, s.bs);
      Buf w0(n0), w1(n1), w2(n2);
      check(kbr_block_sparse_matmul(dt, s.batch, s.k, s.n, s.bs, x.p, w.p, mp, y.p, w0.p, n0, 0),
            "kbr_block_sparse_matmul");
      check(kbr_block_sparse_matmul_grad_x(dt, s.batch, s.k, s.n, s.bs, y.p, w.p, mp, dx.p, w1.p,
                                           n1, 0), "kbr_block_sparse_matmul_grad_x");
      check(kbr_block_sparse_matmul_grad_w(dt, s.batch, s.k, s.n, s.bs, x.p, y.p, mp, dw.p, w2.p,
                                           n2, 0), "kbr_block_sparse_matmul_grad_w");
      launches += 3;
    }
    for (const Gru& g : grus) {
      // Gate bytes 0x3c..: positive in every dtype, so every unit is open (reads all
      // inputs); a second launch in place (out = h) with a gate of zeros (closed).
      Buf h(es * g.batch * g.units), xp(es * g.batch * 2 * g.units),
          hp(es * g.batch * 2 * g.units), gate(es * g.batch * g.blocks), bias(es * 2 * g.units),
          out(es * g.batch * g.units);
      check(kbr_block_gru_update(dt, g.batch, g.units, g.blocks, h.p, xp.p, hp.p, gate.p,
                                 bias.p, out.p, 0), "kbr_block_gru_update");
      if (gate.p) check(cudaMemset(gate.p, 0, es * g.batch * g.blocks), "cudaMemset");
      check(kbr_block_gru_update(dt, g.batch, g.units, g.blocks, h.p, xp.p, hp.p, gate.p,
                                 bias.p, h.p, 0), "kbr_block_gru_update (in place)");
      launches += 2;
    }
  }
  std::printf("sanitize_driver: %d launches OK\n", launches);
  return 0;
}
