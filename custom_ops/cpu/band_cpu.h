// Framework-free CPU kernels for the band products (SPEC section 3).
//
// The kernels know nothing about TensorFlow: raw pointers, a BandGeometry, and
// a parallel-for callback. custom_ops/kernels/band_*_op.cc adapt them.
//
// Every product is written on the *extended* input row of length n + k - 1,
// xe[c'] = x[c' - lower] (0 outside [0, n) for an open band, mod n for a
// cyclic one), so that y[i] = sum_j P[i, j] * xe[i + j], where P is the band
// (or, for the transposed product, the band of A^T) with padding zeroed.
//
// Large batches (the training case) follow the seed's GBMM idea: the band is
// cut into blocks of kRows rows, each block is a dense (k + kRows - 1) x kRows
// tile with zero corners, and a register-blocked micro-kernel multiplies it
// with the batch held in SIMD vectors (batch-minor layout), so the arithmetic
// runs on the FMA units at k / (k + kRows - 1) efficiency. Small batches
// (inference, batch 1) are memory bound; they stream the band once with dot
// products and need no packing.
#ifndef KERAS_BANDRNN_CPU_BAND_CPU_H_
#define KERAS_BANDRNN_CPU_BAND_CPU_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/band_geometry.h"

namespace keras_bandrnn {
namespace cpu {

// Calls work(begin, end) on disjoint ranges covering [0, total), possibly in
// parallel; cost_per_unit is a rough cycle count used to size the shards.
using ParallelFor = std::function<void(
    int64_t total, int64_t cost_per_unit,
    const std::function<void(int64_t, int64_t)>& work)>;

// Half types accumulate in float32; double in double.
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

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

// Batches at least this large use the packed, register-blocked kernels.
constexpr int64_t kBlockedMinBatch = 8;

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

// ---------------------------------------------------------------------------
// band_matmul, small batches: y[b, i] = P[i, :] . xe_b[i : i + k].
template <typename T>
void BandMatmulSmallBatch(const BandGeometry& g, bool transpose, const T* x,
                          const T* diags, T* y, const ParallelFor& parallel) {
  using A = typename AccOf<T>::type;
  const BandGeometry pg = transpose ? g.Transposed() : g;
  const int64_t n = g.n, k = g.k(), ne = n + k - 1;
  std::vector<A> xe(g.batch * ne);
  parallel(g.batch, ne * 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) ExtendSlice(pg, x + b * n, 0, ne, &xe[b * ne]);
  });
  parallel(n, g.batch * k * 2 + k * 8, [&](int64_t i0, int64_t i1) {
    std::vector<A> row(k);
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
}

// ---------------------------------------------------------------------------
// band_matmul, large batches (batch-minor, register blocked).
constexpr int kRows = 6;         // output rows per micro-kernel
constexpr int kMicroBlocks = 32;  // micro blocks per parallel work unit

// acc[r][v] += sum_c panel[c][r] * xt[c][v-th vector of the chunk], for the
// kRows x (kVecs * width) output tile starting at xt (batch-minor rows).
template <typename A, int kVecs>
inline void MicroKernel(const A* panel, int64_t width, const A* xt,
                        int64_t stride, A* tile, int64_t tile_stride) {
  using S = Simd<A>;
  typename S::type acc[kRows][kVecs];
  #pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) acc[r][v] = S::Zero();
  for (int64_t c = 0; c < width; ++c) {
    typename S::type xv[kVecs];
    #pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) xv[v] = S::Load(xt + c * stride + v * S::kWidth);
    const A* p = panel + c * kRows;
    #pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const A s = p[r];
      #pragma GCC unroll 16
      for (int v = 0; v < kVecs; ++v) acc[r][v] += s * xv[v];
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) S::Store(tile + r * tile_stride + v * S::kWidth, acc[r][v]);
}

// panel[c][r] = P[i0 + r, c - r] for c < k + kRows - 1 (0 off the band).
template <typename T, typename A>
void PackPanel(const BandGeometry& pg, bool transpose, const T* diags,
               int64_t i0, A* panel) {
  const int64_t n = pg.n, k = pg.k(), width = k + kRows - 1;
  std::fill(panel, panel + width * kRows, A(0));
  for (int r = 0; r < kRows && i0 + r < n; ++r) {
    const int64_t i = i0 + r;
    A* dst = panel + r * kRows + r;  // slot j goes to column c = r + j
    if (i >= pg.lower && i + pg.upper < n) {  // interior row: no padding, no wrap
      // Forward: diags[i, j]. Transposed: diags[i + j - lower', k - 1 - j].
      const T* src = transpose ? diags + (i - pg.lower) * k + (k - 1) : diags + i * k;
      const int64_t step = transpose ? k - 1 : 1;
      for (int64_t j = 0; j < k; ++j) dst[j * kRows] = static_cast<A>(src[j * step]);
    } else {
      for (int64_t j = 0; j < k; ++j)
        dst[j * kRows] = Coefficient<T, A>(pg, transpose, diags, i, j);
    }
  }
}

// Transposes a full 16 x 16 float block in registers: four rounds that swap
// the off-diagonal d x d sub-blocks (d = 8, 4, 2, 1) with two-input shuffles.
inline void Transpose16x16(const float* src, int64_t src_stride, float* dst,
                           int64_t dst_stride) {
  using V = Simd<float>::type;
  typedef int32_t M __attribute__((vector_size(64)));
  V row[16];
  for (int r = 0; r < 16; ++r) row[r] = Simd<float>::Load(src + r * src_stride);
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

// Writes rows [c0, c0 + rows) of the transposed extended input into xt:
// xt[t][b] = xe_b[c0 + t], zero for the padded batch columns b >= batch.
// Reads each input row contiguously: the rows of x are n apart, often a power
// of two, and walking across them would thrash the cache sets.
template <typename T, typename A>
void GatherTransposed(const BandGeometry& pg, const T* x, int64_t c0,
                      int64_t rows, int64_t bp, A* xt) {
  const int64_t n = pg.n, batch = pg.batch;
  std::fill(xt, xt + rows * bp, A(0));
  int64_t t = 0;
  while (t < rows) {  // runs of rows whose sources are contiguous in x
    int64_t s = c0 + t - pg.lower;
    if (pg.cyclic) {
      s %= n;
      if (s < 0) s += n;
    } else if (s < 0) {
      t = std::min(rows, t - s);  // skip the zero rows before column 0
      continue;
    } else if (s >= n) {
      break;  // only zero rows remain
    }
    const int64_t len = std::min(rows - t, n - s);
    Transpose(x + s, n, batch, len, xt + t * bp, bp);
    t += len;
  }
}

template <typename T>
void BandMatmulBlocked(const BandGeometry& g, bool transpose, const T* x,
                       const T* diags, T* y, const ParallelFor& parallel) {
  using A = typename AccOf<T>::type;
  using S = Simd<A>;
  const BandGeometry pg = transpose ? g.Transposed() : g;
  const int64_t n = g.n, k = g.k(), batch = g.batch;
  const int64_t bp = (batch + S::kWidth - 1) / S::kWidth * S::kWidth;
  const int64_t unit_rows = kRows * kMicroBlocks;
  const int64_t units = (n + unit_rows - 1) / unit_rows;
  const int64_t width = k + kRows - 1;  // tile columns
  // Each work unit transposes the slice of the extended input it reads into
  // a small buffer (batch-minor, L2-resident): no large temporaries.
  const int64_t cost = unit_rows * width * bp * 2;
  parallel(units, cost, [&](int64_t u0, int64_t u1) {
    std::vector<A> panel(width * kRows);
    std::vector<A> tile(unit_rows * bp);
    std::vector<A> xt((unit_rows + width) * bp);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t base = u * unit_rows;
      const int64_t rows = std::min(unit_rows, n - base);
      const int64_t blocks = (rows + kRows - 1) / kRows;
      GatherTransposed(pg, x, base, blocks * kRows + width - 1, bp, xt.data());
      for (int64_t mb = 0; mb < blocks; ++mb) {
        PackPanel(pg, transpose, diags, base + mb * kRows, panel.data());
        const A* xrow = &xt[mb * kRows * bp];
        A* out = &tile[mb * kRows * bp];
        int64_t b = 0;
        for (; b + 4 * S::kWidth <= bp; b += 4 * S::kWidth)
          MicroKernel<A, 4>(panel.data(), width, xrow + b, bp, out + b, bp);
        switch ((bp - b) / S::kWidth) {
          case 3: MicroKernel<A, 3>(panel.data(), width, xrow + b, bp, out + b, bp); break;
          case 2: MicroKernel<A, 2>(panel.data(), width, xrow + b, bp, out + b, bp); break;
          case 1: MicroKernel<A, 1>(panel.data(), width, xrow + b, bp, out + b, bp); break;
          default: break;
        }
      }
      // Write the unit's rows back in the caller's (batch, n) layout.
      Transpose(tile.data(), bp, rows, batch, y + base, n);
    }
  });
}

template <typename T>
void BandMatmul(const BandGeometry& g, bool transpose, const T* x,
                const T* diags, T* y, const ParallelFor& parallel) {
  if (g.batch == 0 || g.n == 0) return;
  if (g.batch >= kBlockedMinBatch) {
    BandMatmulBlocked(g, transpose, x, diags, y, parallel);
  } else {
    BandMatmulSmallBatch(g, transpose, x, diags, y, parallel);
  }
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
               const ParallelFor& parallel) {
  using A = typename AccOf<T>::type;
  using S = Simd<A>;
  const int64_t n = g.n, k = g.k(), batch = g.batch;
  if (n == 0) return;
  const int64_t vecs = (k + kOuterRows - 1 + S::kWidth - 1) / S::kWidth;
  const int64_t tile_width = vecs * S::kWidth;
  const int64_t span = kOuterUnit + tile_width;       // extended columns a unit reads
  const int64_t stride = 2 * span + S::kWidth;        // a then b; not a power of two
  const int64_t units = (n + kOuterUnit - 1) / kOuterUnit;
  parallel(units, batch * kOuterUnit * tile_width * 2 + kOuterUnit * k * 4,
           [&](int64_t u0, int64_t u1) {
             std::vector<A> buf(std::max<int64_t>(1, batch) * stride);
             std::vector<A> tile(kOuterRows * tile_width);
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
