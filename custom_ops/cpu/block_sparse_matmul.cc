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
      const ConstMap<S> wb = Window<T, S>(w + col, N, K, bs, &wbuf);
      if constexpr (std::is_same<T, S>::value) {
        if (m == B) {  // every row: no gather, write in place
          MutableMap<S>(y + col, B, bs, Eigen::OuterStride<>(N)).noalias() =
              ConstMap<S>(x, B, K, Eigen::OuterStride<>(K)) * wb;
          continue;
        }
      }
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
