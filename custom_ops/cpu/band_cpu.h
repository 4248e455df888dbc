// Framework-free CPU kernels for the band products (SPEC section 3).
//
// The kernels know nothing about TensorFlow: raw pointers, a BandGeometry, and
// a Schedule callback and thread count (cpu/parallel_for.h).
// custom_ops/kernels/band_*_op.cc adapt them.
//
// Every product is written on the *extended* input row of length n + k - 1,
// xe[c'] = x[c' - lower] (0 outside [0, n) for an open band, mod n for a
// cyclic one), so that y[i] = sum_j P[i, j] * xe[i + j], where P is the band
// (or, for the transposed product, the band of A^T) with padding zeroed.
//
// Large batches (the training case) follow the seed's GBMM idea in the
// caller's batch-major layout: the outputs are cut into tiles of one SIMD
// register of columns, the band block a tile needs is expanded once into a
// dense packed tile with zero corners, and a register-blocked micro-kernel
// broadcasts the input values of several batch rows against it, so the
// arithmetic runs on the FMA units at k / (k + tile - 1) efficiency with no
// transposes of x or y. Small batches (inference, batch 1) are memory bound;
// they stream the band once with dot products and need no packing.
#ifndef KERAS_BANDRNN_CPU_BAND_CPU_H_
#define KERAS_BANDRNN_CPU_BAND_CPU_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "cpu/acc_type.h"
#include "cpu/parallel_for.h"
#include "kernels/band_geometry.h"

namespace keras_bandrnn {
namespace cpu {

// One 64-byte SIMD register of A (GCC vector extension: AVX-512 when the
// target has it, pairs of AVX2 registers otherwise).
template <typename A>
struct Simd {
  typedef A type __attribute__((vector_size(64)));
  static constexpr int kWidth = 64 / sizeof(A);
  static type Load(const A* p) {
    type v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void Store(A* p, type v) { std::memcpy(p, &v, sizeof(v)); }
  static type Zero() { return type{}; }
};

// Scratch memory of the calling thread for one kernel call: `count` values
// of A, aligned to a cache line (the kernels load whole 64-byte vectors from
// it), in one of kScratchSlots slots. Buffers of up to kKeptScratchBytes stay
// with the thread for its next call: a fresh buffer of a few hundred KB per
// call comes from mmap and page-faults on first touch, which made the forward
// at n = 896 (batch 64, k = 65, one core) take 150 us instead of 64 us.
// Larger ones (very wide bands, small batches of huge n) are freed when the
// call ends, so that no thread keeps them.
constexpr int kScratchSlots = 3;
constexpr size_t kKeptScratchBytes = size_t{4} << 20;

using ScratchBytes = std::vector<char, Eigen::aligned_allocator<char>>;

inline ScratchBytes& ScratchSlot(int slot) {
  static_assert(EIGEN_MAX_ALIGN_BYTES >= 64, "scratch must be cache-line aligned");
  thread_local ScratchBytes slots[kScratchSlots];
  return slots[slot];
}

template <typename A>
class Scratch {
 public:
  Scratch(int slot, int64_t count) : bytes_(ScratchSlot(slot)) {
    const size_t size = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(A);
    if (bytes_.size() < size) {
      Release();
      bytes_.resize(size);
    }
  }
  ~Scratch() {
    if (bytes_.size() > kKeptScratchBytes) Release();
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  A* data() const { return reinterpret_cast<A*>(bytes_.data()); }
  A& operator[](int64_t i) const { return data()[i]; }

 private:
  void Release() {
    bytes_.clear();
    bytes_.shrink_to_fit();
  }
  ScratchBytes& bytes_;
};

// Batches at least this large use the packed, register-blocked kernels.
constexpr int64_t kBlockedMinBatch = 8;

// Vector FMAs (about 20 us on one core) each thread must get for a split to
// be tried. A pool thread that starts late costs the caller nothing (see
// DynamicFor), so this only keeps tiny products from paying for the hand-off.
// Measured on the 2-core machine of BENCHMARKS.md, batch 64, k = 65: n = 896
// (287K FMAs) went from 79 us on one thread to 50-63 us split.
constexpr int64_t kMinParallelFmas = 100000;

// Column of entry (i, j) of the band `g`; *valid is false for open padding.
inline int64_t Column(const BandGeometry& g, int64_t i, int64_t j, bool* valid) {
  int64_t c = i + j - g.lower;
  if (g.cyclic) {
    c %= g.n;
    if (c < 0) c += g.n;
    *valid = true;
  } else {
    *valid = c >= 0 && c < g.n;
  }
  return c;
}

// Calls f(j0, j1, c0) for each run of valid slots j in [j0, j1) of row i whose
// columns are contiguous, c0 being the column of slot j0.
template <typename F>
inline void ForEachRun(const BandGeometry& g, int64_t i, F&& f) {
  const int64_t k = g.k();
  if (!g.cyclic) {
    const int64_t j0 = std::max<int64_t>(0, g.lower - i);
    const int64_t j1 = std::min<int64_t>(k, g.n + g.lower - i);
    if (j0 < j1) f(j0, j1, i + j0 - g.lower);
    return;
  }
  bool valid;
  const int64_t c0 = Column(g, i, 0, &valid);
  const int64_t first = std::min<int64_t>(k, g.n - c0);  // slots before the wrap
  f(0, first, c0);
  if (first < k) f(first, k, 0);
}

// Coefficient of slot j of row i of the band P used by the product: the band
// itself, or for the transposed product the band of A^T (lower and upper
// swapped): P[c, j'] = A[r, c] with r = c + j' - upper, stored at
// diags[r, k - 1 - j']. Padding reads as 0.
template <typename T, typename A>
inline A Coefficient(const BandGeometry& pg, bool transpose, const T* diags,
                     int64_t i, int64_t j) {
  bool valid;
  const int64_t c = Column(pg, i, j, &valid);
  if (!valid) return A(0);
  const int64_t k = pg.k();
  return static_cast<A>(transpose ? diags[c * k + (k - 1 - j)] : diags[i * k + j]);
}

template <typename A>
inline A Dot(const A* p, const A* q, int64_t len) {
  using S = Simd<A>;
  typename S::type acc = S::Zero();
  int64_t t = 0;
  for (; t + S::kWidth <= len; t += S::kWidth) acc += S::Load(p + t) * S::Load(q + t);
  A sum = 0;
  for (int l = 0; l < S::kWidth; ++l) sum += acc[l];
  for (; t < len; ++t) sum += p[t] * q[t];
  return sum;
}

// Copies n values of type T into A (a no-op cast for float and double).
template <typename T, typename A>
inline void Convert(const T* src, int64_t n, A* dst) {
  for (int64_t t = 0; t < n; ++t) dst[t] = static_cast<A>(src[t]);
}

// Extended row slice: dst[t] = xe[c0 + t] for t < len, where xe[c'] =
// x[c' - lower] (open: 0 outside [0, n); cyclic: mod n).
template <typename T, typename A>
void ExtendSlice(const BandGeometry& pg, const T* x, int64_t c0, int64_t len, A* dst) {
  int64_t t = 0;
  while (t < len) {
    int64_t s = c0 + t - pg.lower;
    if (pg.cyclic) {
      s %= pg.n;
      if (s < 0) s += pg.n;
    } else if (s < 0 || s >= pg.n) {
      const int64_t zeros = s < 0 ? std::min(len - t, -s) : len - t;
      std::fill(dst + t, dst + t + zeros, A(0));
      t += zeros;
      continue;
    }
    const int64_t run = std::min(len - t, pg.n - s);
    Convert(x + s, run, dst + t);
    t += run;
  }
}

// dst[t] = tanh(addend[t] + src[t]) for t < count, computed in A: the
// epilogue of band_matmul_tanh. dst may be src. Whole 64-byte chunks of float
// or double go straight through Eigen's vectorized tanh (fixed-size, so it
// stays vectorized at any alignment); the rest through a small buffer.
template <typename T>
void AddTanh(const T* addend, const T* src, int64_t count, T* dst) {
  using A = typename AccOf<T>::type;
  constexpr int64_t C = 64 / sizeof(A);
  using Chunk = Eigen::Array<A, C, 1>;
  int64_t t = 0;
  if constexpr (std::is_same<T, A>::value) {
    for (; t + C <= count; t += C)
      Eigen::Map<Chunk>(dst + t) =
          (Eigen::Map<const Chunk>(addend + t) + Eigen::Map<const Chunk>(src + t)).tanh();
  }
  for (; t < count; t += C) {
    const int64_t m = std::min(C, count - t);
    Chunk a = Chunk::Zero(), b = Chunk::Zero();
    for (int64_t e = 0; e < m; ++e) {
      a[e] = static_cast<A>(addend[t + e]);
      b[e] = static_cast<A>(src[t + e]);
    }
    const Chunk r = (a + b).tanh();
    for (int64_t e = 0; e < m; ++e) dst[t + e] = static_cast<T>(r[e]);
  }
}

// ---------------------------------------------------------------------------
// band_matmul, small batches: y[b, i] = P[i, :] . xe_b[i : i + k].
template <typename T>
void BandMatmulSmallBatch(const BandGeometry& g, bool transpose, const T* x,
                          const T* diags, const T* addend, T* y,
                          const Schedule& schedule, int threads) {
  using A = typename AccOf<T>::type;
  const BandGeometry pg = transpose ? g.Transposed() : g;
  const int64_t n = g.n, k = g.k(), ne = n + k - 1;
  Scratch<A> xe(0, g.batch * ne);
  for (int64_t b = 0; b < g.batch; ++b) ExtendSlice(pg, x + b * n, 0, ne, &xe[b * ne]);
  const double ops = static_cast<double>(n) * (g.batch * (k / 8 + 4) + k / 4);
  ShardedFor(schedule, threads, n, ops, kMinParallelFmas, [&](int64_t i0, int64_t i1) {
    Scratch<A> row(1, k);
    for (int64_t i = i0; i < i1; ++i) {
      const A* coef = row.data();
      if constexpr (std::is_same<T, A>::value) {
        if (!transpose && (pg.cyclic || (i >= pg.lower && i + pg.upper < n)))
          coef = diags + i * k;  // a row without padding: use it in place
      }
      if (coef == row.data())
        for (int64_t j = 0; j < k; ++j) row[j] = Coefficient<T, A>(pg, transpose, diags, i, j);
      for (int64_t b = 0; b < g.batch; ++b)
        y[b * n + i] = static_cast<T>(Dot(coef, &xe[b * ne + i], k));
    }
  });
  if (addend == nullptr) return;
  // The rows are written column by column above; the epilogue is a pass.
  const int64_t total = g.batch * n;
  ShardedFor(schedule, threads, total, 16.0 * total, kMinParallelFmas,
             [&](int64_t t0, int64_t t1) { AddTanh(addend + t0, y + t0, t1 - t0, y + t0); });
}

// Transposes 16 registers of 16 floats in place: four rounds that swap
// the off-diagonal d x d sub-blocks (d = 8, 4, 2, 1) with two-input shuffles.
inline void Transpose16x16(Simd<float>::type* row) {
  using V = Simd<float>::type;
  typedef int32_t M __attribute__((vector_size(64)));
#define KERAS_BANDRNN_SWAP_ROUND(d, lo_mask, hi_mask)                       \
  for (int r = 0; r < 16; ++r) {                                            \
    if (r & (d)) continue;                                                  \
    const V a = row[r], b = row[r + (d)];                                   \
    row[r] = __builtin_shuffle(a, b, lo_mask);                              \
    row[r + (d)] = __builtin_shuffle(a, b, hi_mask);                        \
  }
  // lo[c] = c & d ? b[c - d] : a[c];  hi[c] = c & d ? b[c] : a[c + d].
  KERAS_BANDRNN_SWAP_ROUND(8, (M{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}),
                           (M{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}))
  KERAS_BANDRNN_SWAP_ROUND(4, (M{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}),
                           (M{4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}))
  KERAS_BANDRNN_SWAP_ROUND(2, (M{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}),
                           (M{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}))
  KERAS_BANDRNN_SWAP_ROUND(1, (M{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}),
                           (M{1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}))
#undef KERAS_BANDRNN_SWAP_ROUND
}

inline void Transpose16x16(const float* src, int64_t src_stride, float* dst,
                           int64_t dst_stride) {
  Simd<float>::type row[16];
  for (int r = 0; r < 16; ++r) row[r] = Simd<float>::Load(src + r * src_stride);
  Transpose16x16(row);
  for (int r = 0; r < 16; ++r) Simd<float>::Store(dst + r * dst_stride, row[r]);
}

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols.
// Works in 16 x 16 blocks so that both sides are read and written along their
// rows: the strides are often powers of two, and walking down a column would
// map every access to the same cache set.
template <typename From, typename To>
void Transpose(const From* src, int64_t src_stride, int64_t rows, int64_t cols,
               To* dst, int64_t dst_stride) {
  constexpr int64_t kB = 16;
  To block[kB][kB];
  for (int64_t r0 = 0; r0 < rows; r0 += kB) {
    const int64_t nr = std::min(rows - r0, kB);
    for (int64_t c0 = 0; c0 < cols; c0 += kB) {
      const int64_t nc = std::min(cols - c0, kB);
      if constexpr (std::is_same<From, float>::value && std::is_same<To, float>::value) {
        if (nr == kB && nc == kB) {
          Transpose16x16(src + r0 * src_stride + c0, src_stride,
                         dst + c0 * dst_stride + r0, dst_stride);
          continue;
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        const From* in = src + (r0 + r) * src_stride + c0;
        for (int64_t c = 0; c < nc; ++c) block[c][r] = static_cast<To>(in[c]);
      }
      for (int64_t c = 0; c < nc; ++c) {
        To* out = dst + (c0 + c) * dst_stride + r0;
        for (int64_t r = 0; r < nr; ++r) out[r] = block[c][r];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// band_matmul, large batches: a GEMM-style product in the caller's
// (batch-major) layout, following the seed's GBMM idea.
//
// The output columns are cut into tiles of kTile = one SIMD register of
// columns i0 .. i0 + kTile - 1. Those rows of the band P read only the window
// xe[i0 .. i0 + kTile + k - 2] of each extended input row, so the band block
// is expanded once into a dense packed tile wt[w][r] = P[i0 + r, w - r]
// (window position w, zero corners), which every batch row reuses. The
// micro-kernel keeps kBatchRows output registers (one per batch row) and, for
// each window position, broadcasts xe_b[i0 + w] against the tile row:
// FMA-bound at k / (k + kTile - 1) efficiency, with no transposes of x or y.
// The window rows come from a small buffer of extended rows (zero padded or
// wrapped, converted to the accumulation type) whose stride is an odd number
// of cache lines, so that the rows of a batch block never compete for the
// same cache sets (the rows of x are n apart, often a power of two).
constexpr int kBatchRows = 8;          // batch rows per micro-kernel call
constexpr int64_t kBatchBlock = 64;     // batch rows per buffer fill
constexpr int64_t kChunkTiles = 32;    // column tiles per buffer fill

template <typename T, typename A>
inline void StoreRow(typename Simd<A>::type v, T* dst) {
  if constexpr (std::is_same<T, A>::value) {
    std::memcpy(dst, &v, sizeof(v));
  } else {
    for (int c = 0; c < Simd<A>::kWidth; ++c) dst[c] = static_cast<T>(v[c]);
  }
}

// y[r, 0:kTile] = sum_w xw[r * xs + w] * wt[w, :] for r < R: one register of
// outputs per batch row; each window value of x is broadcast straight from
// its row.
template <typename T, typename A, int R>
inline void TileKernel(const A* wt, int64_t len, const A* xw, int64_t xs, T* y,
                       int64_t ys) {
  using S = Simd<A>;
  typename S::type acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = S::Zero();
  for (int64_t w = 0; w < len; ++w) {
    const typename S::type wv = S::Load(wt + w * S::kWidth);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] += xw[r * xs + w] * wv;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) StoreRow<T, A>(acc[r], y + r * ys);
}

// Two neighbouring tiles at once: tile a (packed wa) reads the window
// xw[w], w < len, and tile b (packed wb) the window xw[kTile + w]; where the
// windows overlap each broadcast value feeds both, and the 2 R accumulators
// hide the FMA latency better than R alone.
template <typename T, typename A, int R>
inline void TilePairKernel(const A* wa, const A* wb, int64_t len, const A* xw,
                           int64_t xs, T* y, int64_t ys) {
  using S = Simd<A>;
  constexpr int64_t kTile = S::kWidth;
  typename S::type acc[2][R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[0][r] = acc[1][r] = S::Zero();
  for (int64_t w = 0; w < kTile; ++w) {  // tile a alone
    const typename S::type va = S::Load(wa + w * kTile);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[0][r] += xw[r * xs + w] * va;
  }
  for (int64_t w = kTile; w < len; ++w) {  // both
    const typename S::type va = S::Load(wa + w * kTile);
    const typename S::type vb = S::Load(wb + (w - kTile) * kTile);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const A v = xw[r * xs + w];
      acc[0][r] += v * va;
      acc[1][r] += v * vb;
    }
  }
  for (int64_t w = len; w < len + kTile; ++w) {  // tile b alone
    const typename S::type vb = S::Load(wb + (w - kTile) * kTile);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[1][r] += xw[r * xs + w] * vb;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    StoreRow<T, A>(acc[0][r], y + r * ys);
    StoreRow<T, A>(acc[1][r], y + r * ys + kTile);
  }
}

// The kernels over `rows` batch rows: whole groups of kBatchRows, then the
// remainder (rows % kBatchRows) in one call of that size. `wb` null: one
// tile; else a pair.
template <typename T, typename A, int R = kBatchRows>
inline void TileKernelRows(int rows, const A* wa, const A* wb, int64_t len,
                           const A* xw, int64_t xs, T* y, int64_t ys) {
  if constexpr (R > 0) {
    if (rows != R) return TileKernelRows<T, A, R - 1>(rows, wa, wb, len, xw, xs, y, ys);
    if (wb == nullptr) return TileKernel<T, A, R>(wa, len, xw, xs, y, ys);
    TilePairKernel<T, A, R>(wa, wb, len, xw, xs, y, ys);
  }
}

template <typename T, typename A>
inline void RunTile(const A* wa, const A* wb, int64_t len, const A* xw, int64_t xs,
                    int64_t rows, T* y, int64_t ys) {
  int64_t r = 0;
  for (; r + kBatchRows <= rows; r += kBatchRows)
    TileKernelRows<T, A>(kBatchRows, wa, wb, len, xw + r * xs, xs, y + r * ys, ys);
  if (r < rows)
    TileKernelRows<T, A>(static_cast<int>(rows - r), wa, wb, len, xw + r * xs, xs,
                         y + r * ys, ys);
}

// Forward product, output rows i0 .. i0 + kTile - 1 of the band of A:
// wt[w * kTile + r] = diags[i0 + r, w - r] for window position
// w < kTile + k - 1; zero off the band, on padding and for rows >= n. Row r of
// diags lands on a diagonal of wt, kTile + 1 values apart.
template <typename T, typename A>
void PackForwardTile(const BandGeometry& g, const T* diags, int64_t i0, A* wt) {
  constexpr int64_t kTile = Simd<A>::kWidth;
  const int64_t n = g.n, k = g.k(), len = kTile + k - 1;
  if constexpr (std::is_same<T, float>::value) {
    // Interior tile (rows inside the band's padding-free part, every read
    // inside diags): for each block of 16 window positions, load the 16
    // shifted rows diags[i0 + r, w0 - r : w0 - r + 16], mask the slots off
    // the band, and transpose in registers.
    if (i0 >= g.lower && i0 + kTile + g.upper <= n && i0 * k >= kTile) {
      using V = Simd<float>::type;
      typedef int32_t I __attribute__((vector_size(64)));
      I lane;
      for (int l = 0; l < 16; ++l) lane[l] = l;
      const int64_t padded = (len + 15) / 16 * 16;
      for (int64_t w0 = 0; w0 < padded; w0 += 16) {
        V row[16];
        for (int r = 0; r < 16; ++r) {
          // Slot j = w0 + lane - r must lie in [0, k) (and w < len).
          const int64_t j0 = w0 - r;
          const T* src = diags + (i0 + r) * k + j0;
          if (j0 >= 0 && j0 + 16 <= k) {
            row[r] = Simd<float>::Load(src);
          } else {
            const int64_t l0 = std::max<int64_t>(0, -j0), l1 = std::min<int64_t>(16, k - j0);
            if ((i0 + r) * k + j0 + 16 <= n * k) {  // one read, lanes off the band masked
              const I keep = (lane >= static_cast<int32_t>(l0)) & (lane < static_cast<int32_t>(l1));
              I bits;
              std::memcpy(&bits, src, sizeof(bits));
              bits &= keep;
              std::memcpy(&row[r], &bits, sizeof(bits));
            } else {  // the last rows of diags: read only the slots
              row[r] = V{};
              for (int64_t l = l0; l < l1; ++l) row[r][l] = src[l];
            }
          }
        }
        Transpose16x16(row);
        const int64_t rows = std::min<int64_t>(16, len - w0);
        for (int64_t w = 0; w < rows; ++w) Simd<float>::Store(wt + (w0 + w) * 16, row[w]);
      }
      return;
    }
  }
  std::fill(wt, wt + len * kTile, A(0));
  for (int64_t r = 0; r < kTile && i0 + r < n; ++r) {
    const int64_t i = i0 + r;
    int64_t j0 = 0, j1 = k;
    if (!g.cyclic) {  // slots whose column lies in [0, n)
      j0 = std::max<int64_t>(0, g.lower - i);
      j1 = std::min<int64_t>(k, n + g.lower - i);
    }
    const T* src = diags + i * k;
    A* dst = wt + r * (kTile + 1);
    for (int64_t j = j0; j < j1; ++j) dst[j * kTile] = static_cast<A>(src[j]);
  }
}

// Transposed product (P the band of A^T), output rows i0 .. i0 + kTile - 1:
// wt[w * kTile + r] = P[i0 + r, w - r] = A[m, i0 + r] for window position
// w < kTile + k - 1, m = i0 + w - upper (mod n if cyclic): a contiguous slice
// diags[m, k - 1 - w + r] of one row of diags, zero where that slot does not
// exist, m is outside [0, n) (open) or i0 + r >= n.
template <typename T, typename A>
void PackRowTile(const BandGeometry& g, const T* diags, int64_t i0, A* wt) {
  constexpr int64_t kTile = Simd<A>::kWidth;
  const int64_t n = g.n, k = g.k(), len = kTile + k - 1;
  const int64_t m0 = i0 - g.upper;  // row of diags for w = 0
  if constexpr (std::is_same<T, A>::value) {
    // Interior tile: every m in [0, n) without wrapping, every output row
    // below n, and each kTile-wide read inside diags (lanes outside the
    // slot range, which read a neighbouring row, are masked to zero).
    if (m0 >= 1 && m0 + len < n && i0 + kTile <= n && m0 * k >= kTile) {
      using S = Simd<A>;
      for (int64_t w = 0; w < len; ++w) {
        const A* src = diags + (m0 + w) * k + (k - 1 - w);
        typename S::type v = S::Load(src);
        if (w < kTile - 1 || w >= k) {  // a corner row of the tile
          const int32_t r0 = static_cast<int32_t>(std::max<int64_t>(0, w - (k - 1)));
          const int32_t r1 = static_cast<int32_t>(std::min<int64_t>(kTile, w + 1));
          for (int64_t r = 0; r < kTile; ++r)
            if (r < r0 || r >= r1) v[r] = A(0);
        }
        S::Store(wt + w * kTile, v);
      }
      return;
    }
  }
  for (int64_t w = 0; w < len; ++w) {
    A* dst = wt + w * kTile;
    int64_t m = i0 + w - g.upper;
    if (g.cyclic) {
      m %= n;
      if (m < 0) m += n;
    } else if (m < 0 || m >= n) {
      std::fill(dst, dst + kTile, A(0));
      continue;
    }
    const int64_t r0 = std::max<int64_t>(0, w - (k - 1));
    const int64_t r1 = std::min<int64_t>({kTile, w + 1, n - i0});
    const T* src = diags + m * k + (k - 1 - w);
    if (r0 == 0 && r1 == kTile) {
      Convert(src, kTile, dst);
    } else {
      std::fill(dst, dst + kTile, A(0));
      for (int64_t r = r0; r < r1; ++r) dst[r] = static_cast<A>(src[r]);
    }
  }
}

// Asks for the values [begin, end) of `p` (clipped to [0, size)) to be
// brought into the cache ahead of use.
template <typename T>
inline void Prefetch(const T* p, int64_t begin, int64_t end, int64_t size) {
  begin = std::max<int64_t>(begin, 0);
  end = std::min(end, size);
  const int64_t step = std::max<int64_t>(1, 64 / sizeof(T));
  for (int64_t t = begin; t < end; t += step) __builtin_prefetch(p + t);
}

template <typename T>
void BandMatmulBlocked(const BandGeometry& g, bool transpose, const T* x,
                       const T* diags, const T* addend, T* y,
                       const Schedule& schedule, int threads) {
  using A = typename AccOf<T>::type;
  constexpr int64_t kTile = Simd<A>::kWidth;
  const BandGeometry pg = transpose ? g.Transposed() : g;
  const int64_t n = g.n, k = g.k(), batch = g.batch;
  const int64_t len = kTile + k - 1;  // window of one tile
  const int64_t tiles = (n + kTile - 1) / kTile;
  // Contiguous runs of tiles, at most one per thread (the work is uniform).
  const double fmas = static_cast<double>(tiles) * batch * len;
  const int64_t shards = std::max<int64_t>(
      1, std::min<int64_t>({threads, tiles, static_cast<int64_t>(fmas / kMinParallelFmas)}));
  const int64_t chunk_tiles = std::min(kChunkTiles, (tiles + shards - 1) / shards);
  // Buffer rows: the extended input columns a chunk reads, and the chunk's
  // output columns; strides of an odd number of cache lines.
  const auto odd_lines = [](int64_t values, int64_t size) {
    const int64_t line = 64 / size;
    return (((values + line - 1) / line) | 1) * line;
  };
  const int64_t stride = odd_lines(chunk_tiles * kTile + k - 1, sizeof(A));
  const int64_t ystride = odd_lines(chunk_tiles * kTile, sizeof(T));
  const int64_t rows_per_fill = std::min(batch, kBatchBlock);
  ShardedFor(schedule, static_cast<int>(shards), tiles, fmas, 0, [&](int64_t t_begin, int64_t t_end) {
    Scratch<A> buf(0, rows_per_fill * stride);
    Scratch<T> ybuf(1, rows_per_fill * ystride);
    Scratch<A> tiles_buf(2, 2 * len * kTile);
    for (int64_t c0 = t_begin; c0 < t_end; c0 += chunk_tiles) {
      const int64_t c1 = std::min(t_end, c0 + chunk_tiles);
      const int64_t col0 = c0 * kTile;
      const int64_t fill = (c1 - c0) * kTile + k - 1;
      const int64_t out_cols = std::min(n, c1 * kTile) - col0;
      for (int64_t b0 = 0; b0 < batch; b0 += kBatchBlock) {
        const int64_t rows = std::min(kBatchBlock, batch - b0);
        for (int64_t r = 0; r < rows; ++r)
          ExtendSlice(pg, x + (b0 + r) * n, col0, fill, &buf[r * stride]);
        for (int64_t t = c0; t < c1; t += 2) {  // pairs of tiles, a last one alone
          const bool pair = t + 1 < c1;
          // The packed tiles do not depend on the batch block; repacking
          // them per block keeps them in L1 (batch > kBatchBlock is rare).
          // The rows of diags the next tiles add are fetched meanwhile.
          for (int64_t q = 0; q < (pair ? 2 : 1); ++q) {
            const int64_t i0 = (t + q) * kTile;
            A* wt = &tiles_buf[q * len * kTile];
            if (transpose) {
              const int64_t m_next = i0 + len - g.upper;
              Prefetch(diags, m_next * k, (m_next + 2 * kTile) * k, n * k);
              PackRowTile(g, diags, i0, wt);
            } else {
              Prefetch(diags, (i0 + 2 * kTile) * k, (i0 + 3 * kTile) * k, n * k);
              PackForwardTile(g, diags, i0, wt);
            }
          }
          const int64_t off = t * kTile - col0;
          RunTile(tiles_buf.data(), pair ? &tiles_buf[len * kTile] : nullptr, len,
                  &buf[off], stride, rows, &ybuf[off], ystride);
        }
        // Long contiguous runs: many short row writes of y, n apart, would
        // each wait for their cache line.
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t at = (b0 + r) * n + col0;
          if (addend == nullptr) {
            std::memcpy(y + at, &ybuf[r * ystride], out_cols * sizeof(T));
          } else {
            AddTanh(addend + at, &ybuf[r * ystride], out_cols, y + at);
          }
        }
      }
    }
  });
}

// y = tanh(addend + band(x)) with addend null: y = band(x).
template <typename T>
void BandProduct(const BandGeometry& g, bool transpose, const T* x,
                 const T* diags, const T* addend, T* y, const Schedule& schedule,
                 int threads) {
  if (g.batch == 0 || g.n == 0) return;
  if (g.batch >= kBlockedMinBatch) {
    BandMatmulBlocked(g, transpose, x, diags, addend, y, schedule, threads);
  } else {
    BandMatmulSmallBatch(g, transpose, x, diags, addend, y, schedule, threads);
  }
}

// band_matmul: y = x A^T (x A when transpose), x and y of shape (batch, n).
template <typename T>
void BandMatmul(const BandGeometry& g, bool transpose, const T* x,
                const T* diags, T* y, const Schedule& schedule, int threads = 1) {
  BandProduct<T>(g, transpose, x, diags, nullptr, y, schedule, threads);
}

// band_matmul_tanh: y = tanh(addend + x A^T), the band cells' step with the
// activation applied as the product's rows are written out.
template <typename T>
void BandMatmulTanh(const BandGeometry& g, const T* x, const T* diags,
                    const T* addend, T* y, const Schedule& schedule, int threads = 1) {
  BandProduct<T>(g, false, x, diags, addend, y, schedule, threads);
}

// ---------------------------------------------------------------------------
// band_outer: g[i, j] = sum_b a[b, i] * xe_b[i + j], xe_b the extended b row.
//
// Per block of kOuterRows rows, the dense tile G[r][c] = sum_b a[b, i0 + r] *
// xe_b[i0 + c] (c < k + kOuterRows - 1, rounded up to whole vectors) is
// accumulated in registers with the batch as the reduction loop; row r of g
// is the slice G[r][r : r + k]. The rows of a and b a work unit reads are
// first copied into small buffers whose stride is not a power of two.
constexpr int kOuterRows = 8;
constexpr int64_t kOuterUnit = 64;  // rows per parallel work unit

template <typename A, int kVecs>
inline void OuterKernel(const A* a, const A* be, int64_t stride, int64_t batch,
                        A* tile, int64_t tile_stride) {
  using S = Simd<A>;
  typename S::type acc[kOuterRows][kVecs];
#pragma GCC unroll 16
  for (int r = 0; r < kOuterRows; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) acc[r][v] = S::Zero();
  for (int64_t b = 0; b < batch; ++b) {
    typename S::type bv[kVecs];
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) bv[v] = S::Load(be + b * stride + v * S::kWidth);
    const A* ar = a + b * stride;
#pragma GCC unroll 16
    for (int r = 0; r < kOuterRows; ++r) {
      const A s = ar[r];
#pragma GCC unroll 16
      for (int v = 0; v < kVecs; ++v) acc[r][v] += s * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < kOuterRows; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) S::Store(tile + r * tile_stride + v * S::kWidth, acc[r][v]);
}

template <typename T>
void BandOuter(const BandGeometry& g, const T* a, const T* b, T* out,
               const Schedule& schedule, int threads = 1) {
  using A = typename AccOf<T>::type;
  using S = Simd<A>;
  const int64_t n = g.n, k = g.k(), batch = g.batch;
  if (n == 0) return;
  const int64_t vecs = (k + kOuterRows - 1 + S::kWidth - 1) / S::kWidth;
  const int64_t tile_width = vecs * S::kWidth;
  const int64_t span = kOuterUnit + tile_width;       // extended columns a unit reads
  const int64_t stride = 2 * span + S::kWidth;        // a then b; not a power of two
  const int64_t units = (n + kOuterUnit - 1) / kOuterUnit;
  const double fmas = static_cast<double>(units) * batch * kOuterRows * vecs * (kOuterUnit / kOuterRows);
  ShardedFor(schedule, threads, units, fmas, kMinParallelFmas,
           [&](int64_t u0, int64_t u1) {
             Scratch<A> buf(0, batch * stride);
             Scratch<A> tile(1, kOuterRows * tile_width);
             for (int64_t u = u0; u < u1; ++u) {
               const int64_t base = u * kOuterUnit;
               const int64_t rows = std::min(kOuterUnit, n - base);
               for (int64_t r = 0; r < batch; ++r) {  // buf row r: a[r, base:], then xe_r[base:]
                 A* dst = &buf[r * stride];
                 const int64_t len = std::min(span, n - base);
                 Convert(a + r * n + base, len, dst);
                 std::fill(dst + len, dst + span, A(0));
                 ExtendSlice(g, b + r * n, base, span, dst + span);
               }
               for (int64_t i0 = base; i0 < base + rows; i0 += kOuterRows) {
                 const A* ap = &buf[i0 - base];
                 int64_t v = 0;
                 for (; v + 3 <= vecs; v += 3)
                   OuterKernel<A, 3>(ap, ap + span + v * S::kWidth, stride, batch,
                                     &tile[v * S::kWidth], tile_width);
                 const A* bp = ap + span + v * S::kWidth;
                 A* tp = &tile[v * S::kWidth];
                 switch (vecs - v) {
                   case 2: OuterKernel<A, 2>(ap, bp, stride, batch, tp, tile_width); break;
                   case 1: OuterKernel<A, 1>(ap, bp, stride, batch, tp, tile_width); break;
                   default: break;
                 }
                 for (int r = 0; r < kOuterRows && i0 + r < n; ++r) {
                   const int64_t i = i0 + r;
                   T* dst = out + i * k;
                   const A* src = &tile[r * tile_width + r];
                   for (int64_t j = 0; j < k; ++j) dst[j] = static_cast<T>(src[j]);
                   if (!g.cyclic) {  // padding slots read zeros of xe; make them exact 0
                     for (int64_t j = 0; j < std::min<int64_t>(k, g.lower - i); ++j) dst[j] = T(0);
                     for (int64_t j = std::max<int64_t>(0, n + g.lower - i); j < k; ++j) dst[j] = T(0);
                   }
                 }
               }
             }
           });
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_BAND_CPU_H_
