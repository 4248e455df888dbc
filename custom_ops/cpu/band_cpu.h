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
constexpr int64_t kBlockedMinBatch = 16;

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

// Extended row: xe[c'] = x[c' - lower] (open: 0 outside; cyclic: mod n), for
// c' in [0, len).
template <typename T, typename A>
void ExtendRow(const BandGeometry& pg, const T* x, int64_t len, A* xe) {
  for (int64_t c = 0; c < len; ++c) {
    int64_t s = c - pg.lower;
    if (pg.cyclic) {
      s %= pg.n;
      if (s < 0) s += pg.n;
      xe[c] = static_cast<A>(x[s]);
    } else {
      xe[c] = (s >= 0 && s < pg.n) ? static_cast<A>(x[s]) : A(0);
    }
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
    for (int64_t b = b0; b < b1; ++b) ExtendRow(pg, x + b * n, ne, &xe[b * ne]);
  });
  parallel(n, g.batch * k * 2 + k * 8, [&](int64_t i0, int64_t i1) {
    std::vector<A> row(k);
    for (int64_t i = i0; i < i1; ++i) {
      if (!transpose && std::is_same<T, A>::value &&
          (pg.cyclic || (i >= pg.lower && i + pg.upper < n))) {
        std::memcpy(row.data(), diags + i * k, k * sizeof(A));  // interior row
      } else {
        for (int64_t j = 0; j < k; ++j) row[j] = Coefficient<T, A>(pg, transpose, diags, i, j);
      }
      for (int64_t b = 0; b < g.batch; ++b)
        y[b * n + i] = static_cast<T>(Dot(row.data(), &xe[b * ne + i], k));
    }
  });
}

// ---------------------------------------------------------------------------
// band_matmul, large batches (batch-minor, register blocked).
constexpr int kRows = 6;         // output rows per micro-kernel
constexpr int kMicroBlocks = 8;  // micro blocks per parallel work unit

// acc[r][v] += sum_c panel[c][r] * xt[c][v-th vector of the chunk], for the
// kRows x (kVecs * width) output tile starting at xt (batch-minor rows).
template <typename A, int kVecs>
inline void MicroKernel(const A* panel, int64_t width, const A* xt,
                        int64_t stride, A* tile, int64_t tile_stride) {
  using S = Simd<A>;
  typename S::type acc[kRows][kVecs];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVecs; ++v) acc[r][v] = S::Zero();
  for (int64_t c = 0; c < width; ++c) {
    typename S::type xv[kVecs];
    for (int v = 0; v < kVecs; ++v) xv[v] = S::Load(xt + c * stride + v * S::kWidth);
    const A* p = panel + c * kRows;
    for (int r = 0; r < kRows; ++r) {
      const A s = p[r];
      for (int v = 0; v < kVecs; ++v) acc[r][v] += s * xv[v];
    }
  }
  for (int r = 0; r < kRows; ++r)
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
  const int64_t width = k + kRows - 1;               // tile columns
  const int64_t xt_rows = units * unit_rows + k + kRows;

  // Transposed, extended input: xt[c'][b] = xe_b[c'], zero in padded columns.
  std::unique_ptr<A[]> xt(new A[xt_rows * bp]);
  const int64_t row_block = 64;
  parallel((xt_rows + row_block - 1) / row_block, row_block * batch * 4,
           [&](int64_t q0, int64_t q1) {
             std::vector<A> xe(row_block);
             for (int64_t q = q0; q < q1; ++q) {
               const int64_t c0 = q * row_block;
               const int64_t len = std::min(row_block, xt_rows - c0);
               for (int64_t b = 0; b < batch; ++b) {
                 // Extended entries of row b for columns [c0, c0 + len).
                 for (int64_t t = 0; t < len; ++t) {
                   int64_t s = c0 + t - pg.lower;
                   if (pg.cyclic) {
                     s %= n;
                     if (s < 0) s += n;
                     xe[t] = static_cast<A>(x[b * n + s]);
                   } else {
                     xe[t] = (s >= 0 && s < n) ? static_cast<A>(x[b * n + s]) : A(0);
                   }
                 }
                 for (int64_t t = 0; t < len; ++t) xt[(c0 + t) * bp + b] = xe[t];
               }
               for (int64_t t = 0; t < len; ++t)
                 std::fill(&xt[(c0 + t) * bp + batch], &xt[(c0 + t) * bp + bp], A(0));
             }
           });

  const int64_t cost = unit_rows * width * bp * 2;
  parallel(units, cost, [&](int64_t u0, int64_t u1) {
    std::vector<A> panel(width * kRows);
    std::vector<A> tile(unit_rows * bp);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t base = u * unit_rows;
      for (int mb = 0; mb < kMicroBlocks; ++mb) {
        const int64_t i0 = base + mb * kRows;
        PackPanel(pg, transpose, diags, i0, panel.data());
        const A* xrow = &xt[i0 * bp];
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
      const int64_t rows = std::min(unit_rows, n - base);
      for (int64_t bb = 0; bb < batch; ++bb) {
        T* dst = y + bb * n + base;
        for (int64_t r = 0; r < rows; ++r) dst[r] = static_cast<T>(tile[r * bp + bb]);
      }
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
// is the slice G[r][r : r + k].
constexpr int kOuterRows = 4;

template <typename A, int kVecs>
inline void OuterKernel(const A* a, int64_t a_stride, const A* be,
                        int64_t be_stride, int64_t batch, A* tile,
                        int64_t tile_stride) {
  using S = Simd<A>;
  typename S::type acc[kOuterRows][kVecs];
  for (int r = 0; r < kOuterRows; ++r)
    for (int v = 0; v < kVecs; ++v) acc[r][v] = S::Zero();
  for (int64_t b = 0; b < batch; ++b) {
    typename S::type bv[kVecs];
    for (int v = 0; v < kVecs; ++v) bv[v] = S::Load(be + b * be_stride + v * S::kWidth);
    const A* ar = a + b * a_stride;
    for (int r = 0; r < kOuterRows; ++r) {
      const A s = ar[r];
      for (int v = 0; v < kVecs; ++v) acc[r][v] += s * bv[v];
    }
  }
  for (int r = 0; r < kOuterRows; ++r)
    for (int v = 0; v < kVecs; ++v) S::Store(tile + r * tile_stride + v * S::kWidth, acc[r][v]);
}

template <typename T>
void BandOuter(const BandGeometry& g, const T* a, const T* b, T* out,
               const ParallelFor& parallel) {
  using A = typename AccOf<T>::type;
  using S = Simd<A>;
  const int64_t n = g.n, k = g.k(), batch = g.batch;
  if (n == 0) return;
  const int64_t blocks = (n + kOuterRows - 1) / kOuterRows;
  const int64_t vecs = (k + kOuterRows - 1 + S::kWidth - 1) / S::kWidth;
  const int64_t tile_width = vecs * S::kWidth;
  // Row stride of the extended b rows; a rows are padded to whole blocks.
  const int64_t ne = blocks * kOuterRows + tile_width;
  const int64_t na = blocks * kOuterRows;
  std::unique_ptr<A[]> be(new A[std::max<int64_t>(1, batch * ne)]);
  std::unique_ptr<A[]> ac(new A[std::max<int64_t>(1, batch * na)]);
  parallel(batch, ne * 4, [&](int64_t b0, int64_t b1) {
    for (int64_t r = b0; r < b1; ++r) {
      ExtendRow(g, b + r * n, ne, &be[r * ne]);
      Convert(a + r * n, n, &ac[r * na]);
      std::fill(&ac[r * na + n], &ac[r * na + na], A(0));
    }
  });
  parallel(blocks, batch * kOuterRows * tile_width * 2 + k * kOuterRows * 4,
           [&](int64_t q0, int64_t q1) {
             std::vector<A> tile(kOuterRows * tile_width);
             for (int64_t q = q0; q < q1; ++q) {
               const int64_t i0 = q * kOuterRows;
               int64_t v = 0;
               for (; v + 4 <= vecs; v += 4)
                 OuterKernel<A, 4>(&ac[i0], na, &be[i0 + v * S::kWidth], ne, batch,
                                   &tile[v * S::kWidth], tile_width);
               const A* ap = &ac[i0];
               const A* bp = &be[i0 + v * S::kWidth];
               A* tp = &tile[v * S::kWidth];
               switch (vecs - v) {
                 case 3: OuterKernel<A, 3>(ap, na, bp, ne, batch, tp, tile_width); break;
                 case 2: OuterKernel<A, 2>(ap, na, bp, ne, batch, tp, tile_width); break;
                 case 1: OuterKernel<A, 1>(ap, na, bp, ne, batch, tp, tile_width); break;
                 default: break;
               }
               for (int r = 0; r < kOuterRows && i0 + r < n; ++r) {
                 const int64_t i = i0 + r;
                 T* dst = out + i * k;
                 for (int64_t j = 0; j < k; ++j) {
                   bool valid;
                   Column(g, i, j, &valid);
                   dst[j] = valid ? static_cast<T>(tile[r * tile_width + r + j]) : T(0);
                 }
               }
             }
           });
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_BAND_CPU_H_
