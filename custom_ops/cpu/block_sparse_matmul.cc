// Framework-free CPU block-sparse matmul; see block_sparse_matmul.h.

#include "cpu/block_sparse_matmul.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "Eigen/Core"

namespace keras_bandrnn {
namespace cpu {
namespace {

// The precision tiles are computed in: half types accumulate in float32.
template <typename T>
struct Compute {
  using type = float;
};
template <>
struct Compute<double> {
  using type = double;
};

template <typename S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using ConstMap = Eigen::Map<const Mat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using MutableMap = Eigen::Map<Mat<S>, 0, Eigen::OuterStride<>>;

// Rows b with mask[b, blk], in increasing order.
void ActiveRows(const BlockSparseGeometry& g, const bool* mask, int64_t blk,
                std::vector<int64_t>* rows) {
  rows->clear();
  const int64_t nb = g.num_blocks();
  for (int64_t b = 0; b < g.batch; ++b) {
    if (mask[b * nb + blk]) rows->push_back(b);
  }
}

int64_t CountActive(const BlockSparseGeometry& g, const bool* mask) {
  return std::count(mask, mask + g.batch * g.num_blocks(), true);
}

// dst (rows.size(), width) = src[rows, col:col + width] (leading dim ld).
template <typename T, typename S>
void GatherRows(const T* src, int64_t ld, int64_t col, int64_t width,
                const std::vector<int64_t>& rows, Mat<S>* dst) {
  dst->resize(static_cast<Eigen::Index>(rows.size()), width);
  for (size_t i = 0; i < rows.size(); ++i) {
    const T* s = src + rows[i] * ld + col;
    S* d = dst->data() + i * width;
    for (int64_t j = 0; j < width; ++j) d[j] = static_cast<S>(s[j]);
  }
}

// A (rows, cols) window of src (leading dim ld) as a map of S: the memory
// itself when T is S, else a converted copy held in `buffer`.
template <typename T, typename S>
ConstMap<S> Window(const T* src, int64_t ld, int64_t rows, int64_t cols,
                   Mat<S>* buffer) {
  if constexpr (std::is_same<T, S>::value) {
    return ConstMap<S>(src, rows, cols, Eigen::OuterStride<>(ld));
  } else {
    buffer->resize(rows, cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        (*buffer)(r, c) = static_cast<S>(src[r * ld + c]);
      }
    }
    return ConstMap<S>(buffer->data(), rows, cols, Eigen::OuterStride<>(cols));
  }
}

template <typename T>
void FillRow(T* dst, int64_t width) {
  std::fill(dst, dst + width, T(0));
}

// ---------------------------------------------------------------------------
// Register-blocked micro-kernel for float and double (GCC vector extensions;
// 64-byte vectors are AVX-512 registers with -march=native, pairs of AVX2
// registers otherwise). A tile is R active rows x NV vectors of columns:
// acc[r][v] += x[row r][k] * w[k, cols v] over k, with x broadcast from the
// row itself (no gather) and w read from the matrix or a packed panel.

template <typename S>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(64)));
};

template <typename S, int R, int NV>
void Tile(int64_t K, const S* const* xr, const S* wp, int64_t ldw,
          S* const* yr) {
  using V = typename VecOf<S>::type;
  constexpr int kLanes = sizeof(V) / sizeof(S);
  V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  }
  for (int64_t k = 0; k < K; ++k) {
    V wv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(&wv[v], wp + k * ldw + v * kLanes, sizeof(V));
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const S xv = xr[r][k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += xv * wv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(yr[r] + v * kLanes, &acc[r][v], sizeof(V));
    }
  }
}

// Columns that are not a whole vector (block sizes below or between
// multiples of the vector width): plain scalar loops.
template <typename S>
void ScalarTile(int64_t rows, int64_t K, int64_t width, const S* const* xr,
                const S* wp, int64_t ldw, S* const* yr) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) yr[r][c] = S(0);
    for (int64_t k = 0; k < K; ++k) {
      const S xv = xr[r][k];
      const S* wk = wp + k * ldw;
      for (int64_t c = 0; c < width; ++c) yr[r][c] += xv * wk[c];
    }
  }
}

template <typename S, int NV, int R>
void TileRows(int64_t rows, int64_t K, const S* const* xr, const S* wp,
              int64_t ldw, S* const* yr) {
  if constexpr (R > 0) {
    if (rows == R) return Tile<S, R, NV>(K, xr, wp, ldw, yr);
    return TileRows<S, NV, R - 1>(rows, K, xr, wp, ldw, yr);
  }
}

// Most rows per tile for NV vectors of columns: R * NV accumulators stay in
// the 32 vector registers with room for the w vectors.
template <int NV>
constexpr int MaxRows() {
  return NV >= 4 ? 6 : 12;
}

// y[rows, col:col+width] = x[rows] @ w[:, col:col+width] for one column tile
// of NV vectors, packing the w panel when more than one row tile reuses it.
template <typename S, int NV>
void ColumnTile(const BlockSparseGeometry& g, const S* x, const S* w,
                int64_t col, const std::vector<int64_t>& rows, S* y,
                std::vector<S>* panel) {
  using V = typename VecOf<S>::type;
  constexpr int64_t kWidth = NV * int64_t(sizeof(V) / sizeof(S));
  constexpr int kRows = MaxRows<NV>();
  const int64_t K = g.k, N = g.n, m = rows.size();
  const S* wp = w + col;
  int64_t ldw = N;
  if (m > kRows) {  // reused by several row tiles: make it contiguous
    panel->resize(K * kWidth);
    for (int64_t k = 0; k < K; ++k) {
      std::copy(w + k * N + col, w + k * N + col + kWidth,
                panel->data() + k * kWidth);
    }
    wp = panel->data();
    ldw = kWidth;
  }
  const S* xr[kRows];
  S* yr[kRows];
  // Row tiles of balanced sizes (13 rows: 7 + 6, not 12 + 1).
  const int64_t tiles = (m + kRows - 1) / kRows;
  for (int64_t t = 0, i0 = 0; t < tiles; ++t) {
    const int64_t r = (m - i0) / (tiles - t);
    for (int64_t i = 0; i < r; ++i) {
      xr[i] = x + rows[i0 + i] * K;
      yr[i] = y + rows[i0 + i] * N + col;
    }
    TileRows<S, NV, kRows>(r, K, xr, wp, ldw, yr);
    i0 += r;
  }
}

// The active rows of one column block, through the widest tiles that fit.
template <typename S>
void ForwardBlock(const BlockSparseGeometry& g, const S* x, const S* w,
                  int64_t blk, const std::vector<int64_t>& rows, S* y,
                  std::vector<S>* panel) {
  using V = typename VecOf<S>::type;
  constexpr int64_t kLanes = sizeof(V) / sizeof(S);
  const int64_t bs = g.block_size;
  int64_t col = blk * bs;
  const int64_t end = col + bs;
  // Few rows: 2-vector tiles take up to 12 rows at once, unpacked.
  const bool few = static_cast<int64_t>(rows.size()) <= MaxRows<2>();
  for (; !few && end - col >= 4 * kLanes; col += 4 * kLanes) {
    ColumnTile<S, 4>(g, x, w, col, rows, y, panel);
  }
  for (; end - col >= 2 * kLanes; col += 2 * kLanes) {
    ColumnTile<S, 2>(g, x, w, col, rows, y, panel);
  }
  for (; end - col >= kLanes; col += kLanes) {
    ColumnTile<S, 1>(g, x, w, col, rows, y, panel);
  }
  if (col < end) {
    std::vector<const S*> xr(rows.size());
    std::vector<S*> yr(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      xr[i] = x + rows[i] * g.k;
      yr[i] = y + rows[i] * g.n + col;
    }
    ScalarTile<S>(rows.size(), g.k, end - col, xr.data(), w + col, g.n,
                  yr.data());
  }
}

}  // namespace

template <typename T>
void BlockSparseMatmul(const BlockSparseGeometry& g, const T* x, const T* w,
                       const bool* mask, T* y, const ParallelFor& parallel_for) {
  using S = typename Compute<T>::type;
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (B == 0 || nb == 0) return;
  const double pairs_per_block = double(CountActive(g, mask)) / nb;
  const double cost = pairs_per_block * (2.0 * K * bs + K) + B * bs + K * bs;
  parallel_for(nb, cost, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    std::vector<S> panel;
    Mat<S> xg, wbuf, yg;
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t col = blk * bs;
      ActiveRows(g, mask, blk, &rows);
      const int64_t m = rows.size();
      if (m < B) {  // inactive rows are 0
        size_t next = 0;
        for (int64_t b = 0; b < B; ++b) {
          if (next < rows.size() && rows[next] == b) {
            ++next;
          } else {
            FillRow(y + b * N + col, bs);
          }
        }
      }
      if (m == 0) continue;
      if constexpr (std::is_same<T, S>::value) {  // float, double
        ForwardBlock<S>(g, x, w, blk, rows, y, &panel);
        continue;
      }
      const ConstMap<S> wb = Window<T, S>(w + col, N, K, bs, &wbuf);
      GatherRows<T, S>(x, K, 0, K, rows, &xg);
      yg.resize(m, bs);
      yg.noalias() = xg * wb;
      for (int64_t i = 0; i < m; ++i) {
        T* out = y + rows[i] * N + col;
        const S* in = yg.data() + i * bs;
        for (int64_t j = 0; j < bs; ++j) out[j] = static_cast<T>(in[j]);
      }
    }
  });
}

template <typename T>
void BlockSparseMatmulGradX(const BlockSparseGeometry& g, const T* dy,
                            const T* w, const bool* mask, T* dx,
                            const ParallelFor& parallel_for) {
  using S = typename Compute<T>::type;
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (B == 0 || K == 0) return;
  // Columns of dx are split into chunks; each chunk sums over all blocks.
  constexpr int64_t kChunk = 256;
  const int64_t chunks = (K + kChunk - 1) / kChunk;
  const double active = nb > 0 ? double(CountActive(g, mask)) : 0.0;
  const double cost = active * (2.0 * bs * kChunk + kChunk + bs) + B * kChunk;
  parallel_for(chunks, cost, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    Mat<S> acc, dyg, wbuf, tmp;
    for (int64_t c = begin; c < end; ++c) {
      const int64_t k0 = c * kChunk, kc = std::min(kChunk, K - k0);
      acc.setZero(B, kc);
      for (int64_t blk = 0; blk < nb; ++blk) {
        ActiveRows(g, mask, blk, &rows);
        const int64_t m = rows.size();
        if (m == 0) continue;
        const int64_t col = blk * bs;
        GatherRows<T, S>(dy, N, col, bs, rows, &dyg);
        const ConstMap<S> wb = Window<T, S>(w + k0 * N + col, N, kc, bs, &wbuf);
        tmp.resize(m, kc);
        tmp.noalias() = dyg * wb.transpose();
        for (int64_t i = 0; i < m; ++i) acc.row(rows[i]) += tmp.row(i);
      }
      for (int64_t b = 0; b < B; ++b) {
        T* out = dx + b * K + k0;
        const S* in = acc.data() + b * kc;
        for (int64_t j = 0; j < kc; ++j) out[j] = static_cast<T>(in[j]);
      }
    }
  });
}

template <typename T>
void BlockSparseMatmulGradW(const BlockSparseGeometry& g, const T* x,
                            const T* dy, const bool* mask, T* dw,
                            const ParallelFor& parallel_for) {
  using S = typename Compute<T>::type;
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (K == 0 || nb == 0) return;
  const double pairs_per_block =
      B > 0 ? double(CountActive(g, mask)) / nb : 0.0;
  const double cost = pairs_per_block * (2.0 * K * bs + K + bs) + K * bs;
  parallel_for(nb, cost, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    Mat<S> xg, dyg, res;
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t col = blk * bs;
      ActiveRows(g, mask, blk, &rows);
      const int64_t m = rows.size();
      if (m == 0) {
        for (int64_t k = 0; k < K; ++k) FillRow(dw + k * N + col, bs);
        continue;
      }
      GatherRows<T, S>(dy, N, col, bs, rows, &dyg);
      if constexpr (std::is_same<T, S>::value) {
        MutableMap<S> out(dw + col, K, bs, Eigen::OuterStride<>(N));
        if (m == B) {
          out.noalias() =
              ConstMap<S>(x, B, K, Eigen::OuterStride<>(K)).transpose() * dyg;
        } else {
          GatherRows<T, S>(x, K, 0, K, rows, &xg);
          out.noalias() = xg.transpose() * dyg;
        }
      } else {
        GatherRows<T, S>(x, K, 0, K, rows, &xg);
        res.resize(K, bs);
        res.noalias() = xg.transpose() * dyg;
        for (int64_t k = 0; k < K; ++k) {
          T* out = dw + k * N + col;
          const S* in = res.data() + k * bs;
          for (int64_t j = 0; j < bs; ++j) out[j] = static_cast<T>(in[j]);
        }
      }
    }
  });
}

#define KERAS_BANDRNN_INSTANTIATE(T)                                        \
  template void BlockSparseMatmul<T>(const BlockSparseGeometry&, const T*,  \
                                     const T*, const bool*, T*,             \
                                     const ParallelFor&);                   \
  template void BlockSparseMatmulGradX<T>(const BlockSparseGeometry&,       \
                                          const T*, const T*, const bool*,  \
                                          T*, const ParallelFor&);          \
  template void BlockSparseMatmulGradW<T>(const BlockSparseGeometry&,       \
                                          const T*, const T*, const bool*,  \
                                          T*, const ParallelFor&);
KERAS_BANDRNN_INSTANTIATE(float)
KERAS_BANDRNN_INSTANTIATE(double)
KERAS_BANDRNN_INSTANTIATE(Eigen::half)
KERAS_BANDRNN_INSTANTIATE(Eigen::bfloat16)
#undef KERAS_BANDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace keras_bandrnn
