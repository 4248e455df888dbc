// CUDA band kernels: band_matmul (both directions) and band_outer, open and
// cyclic, GBMM-style: the band is cut into dense tiles that are generated in
// shared memory from `diags` and multiplied by the tile engines of
// tile_gemm.cuh (register-blocked SIMT for float/double, tensor cores for
// bfloat16/float16).
//
// band_matmul. Output tile: BM batch rows x BN columns i in [i0, i0 + BN).
// Row i reads x columns m = i + j - L, j in [0, k) (L = lower; for the
// transposed product A^T is a band with lower/upper swapped), so the tile is
// the dense product  X[:, ms..me] (BM x (BN + k - 1))  *  T (.. x BN)  with
// T[m, i] = A[i, m] (0 outside the band): the reduction runs over the unwrapped
// column m, clipped to [0, n) for an open band (so padding never enters) and
// wrapped once for a cyclic one. Work done: 2 * batch * n * (k + BN - 1) FLOPs,
// within (1 + 63 / k) of the band's own.
//
// band_outer. Output tile: BM rows i x BN unwrapped columns m of the
// parallelogram m - i + lower in [0, k); the reduction runs over the batch.
// Every (i, j) of g lies in exactly one tile, so no atomics and the result is
// deterministic.
//
// band_matmul_tanh. band_matmul into y, then an elementwise pass
// (elementwise.cuh) y = tanh(addend + y) in the accumulation type. Not fused
// into the tile store (kept simple): the pass reads and writes y once more.
#include "cuda/band_kernels.h"
#include "cuda/elementwise.cuh"
#include "cuda/tile_gemm.cuh"

namespace keras_bandrnn {
namespace cuda {
namespace {

template <typename T_, bool kTranspose>
struct BandMatmulProblem {
  using T = T_;
  using Acc = typename Num<T>::Acc;
  const T* x;
  const T* d;
  T* y;
  int64_t batch, n, k, lower, upper;
  bool cyclic;

  static constexpr bool kAContigK = true;  // x rows run along m
  // diags rows run along m for A, along the output column for A^T.
  static constexpr bool kBContigK = !kTranspose;

  struct Tile {
    int64_t b0, i0, ms, me;
    int nk;
  };

  template <int BM, int BN, int BK>
  KBR_HD bool setup(Tile& t, unsigned bx, unsigned by) const {
    t.b0 = int64_t(bx) * BM;
    t.i0 = int64_t(by) * BN;
    const int64_t i_last = min64(t.i0 + BN, n) - 1;
    const int64_t L = kTranspose ? upper : lower;
    const int64_t U = kTranspose ? lower : upper;
    t.ms = t.i0 - L;
    t.me = i_last + U;
    if (!cyclic) {
      t.ms = max64(t.ms, int64_t(0));
      t.me = min64(t.me, n - 1);
    }
    t.nk = t.me >= t.ms ? int(ceil_div(t.me - t.ms + 1, BK)) : 0;
    return true;
  }
  KBR_HD int first_chunk(const Tile&) const { return 0; }
  KBR_HD int next_chunk(const Tile&, int kc) const { return kc + 1; }

  KBR_HD T a_at(const Tile& t, int64_t m, int r) const {
    const int64_t b = t.b0 + r;
    if (b >= batch || m > t.me) return zero<T>();
    return x[b * n + (cyclic ? wrap_once(m, n) : m)];
  }
  KBR_HD T b_at(const Tile& t, int64_t m, int c) const {
    const int64_t i = t.i0 + c;
    if (i >= n || m > t.me) return zero<T>();
    if (!kTranspose) {
      const int64_t j = m - i + lower;
      if (j < 0 || j >= k) return zero<T>();
      return d[i * k + j];
    } else {
      const int64_t j = i - m + lower;
      if (j < 0 || j >= k) return zero<T>();
      return d[(cyclic ? wrap_once(m, n) : m) * k + j];
    }
  }
  KBR_HD void store(const Tile& t, int r, int c, Acc v) const {
    const int64_t b = t.b0 + r, i = t.i0 + c;
    if (b < batch && i < n) y[b * n + i] = Num<T>::from_acc(v);
  }
};

// The engines call p.a(t, kc, r, kk) / p.b(t, kc, kk, c); this adapter turns
// (kc, kk) into the unwrapped column m for a fixed chunk size BK.
template <class Base, int BK>
struct Chunked : Base {
  using typename Base::T;
  using typename Base::Tile;
  KBR_HD T a(const Tile& t, int kc, int r, int kk) const {
    return this->a_at(t, t.ms + int64_t(kc) * BK + kk, r);
  }
  KBR_HD T b(const Tile& t, int kc, int kk, int c) const {
    return this->b_at(t, t.ms + int64_t(kc) * BK + kk, c);
  }
};

template <typename T_>
struct BandOuterProblem {
  using T = T_;
  using Acc = typename Num<T>::Acc;
  const T* a_;
  const T* b_;
  T* g;
  int64_t batch, n, k, lower, upper;
  bool cyclic;

  static constexpr bool kAContigK = false;  // a rows run along i (M)
  static constexpr bool kBContigK = false;  // b rows run along m (N)

  struct Tile {
    int64_t i0, m0, mlo, mhi;  // mlo..mhi: columns any row of the tile reads
    int nk;
  };

  template <int BM, int BN, int BK>
  KBR_HD bool setup(Tile& t, unsigned bx, unsigned by) const {
    t.i0 = int64_t(bx) * BM;
    t.m0 = t.i0 - lower + int64_t(by) * BN;
    t.mlo = t.i0 - lower;
    t.mhi = min64(t.i0 + BM, n) - 1 + upper;
    t.nk = int(ceil_div(batch, BK));
    return true;
  }
  KBR_HD int first_chunk(const Tile&) const { return 0; }
  KBR_HD int next_chunk(const Tile&, int kc) const { return kc + 1; }

  KBR_HD T a_at(const Tile& t, int64_t bb, int r) const {
    const int64_t i = t.i0 + r;
    if (i >= n || bb >= batch) return zero<T>();
    return a_[bb * n + i];
  }
  KBR_HD T b_at(const Tile& t, int64_t bb, int c) const {
    const int64_t m = t.m0 + c;
    if (bb >= batch || m < t.mlo || m > t.mhi) return zero<T>();
    if (!cyclic && (m < 0 || m >= n)) return zero<T>();
    return b_[bb * n + (cyclic ? wrap_once(m, n) : m)];
  }
  KBR_HD void store(const Tile& t, int r, int c, Acc v) const {
    const int64_t i = t.i0 + r, m = t.m0 + c;
    const int64_t j = m - i + lower;
    if (i >= n || j < 0 || j >= k) return;
    const bool padding = !cyclic && (m < 0 || m >= n);
    g[i * k + j] = padding ? zero<T>() : Num<T>::from_acc(v);
  }
};

template <class Base, int BK>
struct ChunkedOuter : Base {
  using typename Base::T;
  using typename Base::Tile;
  KBR_HD T a(const Tile& t, int kc, int r, int kk) const {
    return this->a_at(t, int64_t(kc) * BK + kk, r);
  }
  KBR_HD T b(const Tile& t, int kc, int kk, int c) const {
    return this->b_at(t, int64_t(kc) * BK + kk, c);
  }
};

bool valid_geometry(int64_t batch, int64_t n, int64_t lower, int64_t upper, int cyclic) {
  if (batch < 0 || n < 0 || lower < 0 || upper < 0) return false;
  if (lower > (int64_t(1) << 40) || upper > (int64_t(1) << 40)) return false;
  if (cyclic && lower + upper + 1 > n && n > 0) return false;
  return true;
}

template <typename T>
cudaError_t band_matmul_t(int64_t batch, int64_t n, int64_t lower, int64_t upper, bool cyclic,
                          bool transpose, const void* x, const void* d, void* y,
                          cudaStream_t stream) {
  if (batch == 0 || n == 0) return cudaSuccess;
  constexpr int BK = chunk_k<T>();
  const int64_t row_tiles = ceil_div(n, kTileN);
  auto fill = [&](auto& p) {
    p.x = static_cast<const T*>(x);
    p.d = static_cast<const T*>(d);
    p.y = static_cast<T*>(y);
    p.batch = batch;
    p.n = n;
    p.k = lower + upper + 1;
    p.lower = lower;
    p.upper = upper;
    p.cyclic = cyclic;
  };
  if (row_tiles > 65535) return cudaErrorInvalidConfiguration;
  // Small batches take the 64-row tile so that fewer rows are wasted.
  const bool small = batch <= kTileMSmall;
  const int bm = small ? kTileMSmall : kTileM;
  const int64_t batch_tiles = ceil_div(batch, bm);
  if (batch_tiles > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const dim3 grid{unsigned(batch_tiles), unsigned(row_tiles), 1u};
  if (transpose) {
    Chunked<BandMatmulProblem<T, true>, BK> p;
    fill(p);
    return small ? launch_tile_gemm<decltype(p), kTileMSmall>(p, grid, stream)
                 : launch_tile_gemm<decltype(p), kTileM>(p, grid, stream);
  }
  Chunked<BandMatmulProblem<T, false>, BK> p;
  fill(p);
  return small ? launch_tile_gemm<decltype(p), kTileMSmall>(p, grid, stream)
               : launch_tile_gemm<decltype(p), kTileM>(p, grid, stream);
}

// The epilogue of band_matmul_tanh: y[e] = tanh(addend[e] + y[e]), from the
// product as rounded to T, in the accumulation type.
template <typename T>
struct AddTanh {
  const T* addend;
  T* y;
  KBR_HD void element(int64_t e) const {
    y[e] = Num<T>::from_acc(tanh_acc(Num<T>::to_acc(addend[e]) + Num<T>::to_acc(y[e])));
  }
};

template <typename T>
cudaError_t band_matmul_tanh_t(int64_t batch, int64_t n, int64_t lower, int64_t upper,
                               bool cyclic, const void* x, const void* d, const void* addend,
                               void* y, cudaStream_t stream) {
  const cudaError_t err =
      band_matmul_t<T>(batch, n, lower, upper, cyclic, false, x, d, y, stream);
  if (err != cudaSuccess) return err;  // the grid limits included: y untouched
  AddTanh<T> p;
  p.addend = static_cast<const T*>(addend);
  p.y = static_cast<T*>(y);
  return launch_elementwise(p, batch * n, stream);  // < 2^63: batch, n within the grid limits
}

template <typename T>
cudaError_t band_outer_t(int64_t batch, int64_t n, int64_t lower, int64_t upper, bool cyclic,
                         const void* a, const void* b, void* g, cudaStream_t stream) {
  const int64_t k = lower + upper + 1;
  if (n == 0) return cudaSuccess;
  constexpr int BK = chunk_k<T>();
  ChunkedOuter<BandOuterProblem<T>, BK> p;
  p.a_ = static_cast<const T*>(a);
  p.b_ = static_cast<const T*>(b);
  p.g = static_cast<T*>(g);
  p.batch = batch;
  p.n = n;
  p.k = k;
  p.lower = lower;
  p.upper = upper;
  p.cyclic = cyclic;
  const int64_t row_tiles = ceil_div(n, kTileM);
  const int64_t col_tiles = ceil_div(kTileM + k - 1, kTileN);
  if (row_tiles > 0x7fffffff || col_tiles > 65535) return cudaErrorInvalidConfiguration;
  if (ceil_div(batch, BK) > 0x7fffffff) return cudaErrorInvalidConfiguration;
  return launch_tile_gemm<decltype(p), kTileM>(p, dim3(unsigned(row_tiles), unsigned(col_tiles)),
                                               stream);
}

}  // namespace
}  // namespace cuda
}  // namespace keras_bandrnn

using namespace keras_bandrnn::cuda;

extern "C" int kbr_band_matmul(int dtype, int64_t batch, int64_t n, int64_t lower, int64_t upper,
                               int cyclic, int transpose, const void* x, const void* diags,
                               void* y, cudaStream_t stream) {
  if (!valid_geometry(batch, n, lower, upper, cyclic)) return cudaErrorInvalidValue;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return band_matmul_t<T>(batch, n, lower, upper, cyclic, transpose, x, diags, y, stream);
  });
}

extern "C" int kbr_band_matmul_tanh(int dtype, int64_t batch, int64_t n, int64_t lower,
                                    int64_t upper, int cyclic, const void* x, const void* diags,
                                    const void* addend, void* y, cudaStream_t stream) {
  if (!valid_geometry(batch, n, lower, upper, cyclic)) return cudaErrorInvalidValue;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return band_matmul_tanh_t<T>(batch, n, lower, upper, cyclic, x, diags, addend, y, stream);
  });
}

extern "C" int kbr_band_outer(int dtype, int64_t batch, int64_t n, int64_t lower, int64_t upper,
                              int cyclic, const void* a, const void* b, void* g,
                              cudaStream_t stream) {
  if (!valid_geometry(batch, n, lower, upper, cyclic)) return cudaErrorInvalidValue;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return band_outer_t<T>(batch, n, lower, upper, cyclic, a, b, g, stream);
  });
}
