// Framework-free CPU block-sparse matmul (SPEC section 3), used by the
// TensorFlow kernels in kernels/block_sparse_matmul_op.cc.
//
// Work is proportional to the active (b, blk) pairs. The forward product in
// float and double runs register-blocked micro-kernels over the active rows of
// each column block (or of two adjacent narrow blocks with few rows), reading
// w in place, in chunks of k that sweep all blocks, split over the threads in
// ranges of equal work (of blocks, or of rows when there are fewer blocks than
// ranges; see block_sparse_matmul.cc); columns short of a whole vector take
// dot products along k instead. The gradients, and Eigen::half /
// Eigen::bfloat16 (converted to float tiles, accumulating in float32), gather
// the active rows into dense tiles for Eigen's GEMM (built with -march=native)
// and scatter the results back.
#ifndef KERAS_BANDRNN_CPU_BLOCK_SPARSE_MATMUL_H_
#define KERAS_BANDRNN_CPU_BLOCK_SPARSE_MATMUL_H_

#include "cpu/parallel_for.h"
#include "kernels/block_sparse_geometry.h"

namespace keras_bandrnn {
namespace cpu {

// y (batch, n): y[b, blk] = x[b] @ w[:, blk] where mask[b, blk], else 0.
// `threads`: how many threads may share the work, the caller's included (the
// others through `schedule`).
template <typename T>
void BlockSparseMatmul(const BlockSparseGeometry& g, const T* x, const T* w,
                       const bool* mask, T* y, const Schedule& schedule,
                       int threads);

// dx (batch, k) = sum over active blk of dy[b, blk] @ w[:, blk]^T.
template <typename T>
void BlockSparseMatmulGradX(const BlockSparseGeometry& g, const T* dy,
                            const T* w, const bool* mask, T* dx,
                            const Schedule& schedule, int threads);

// dw (k, n): dw[:, blk] = sum over active b of x[b]^T dy[b, blk].
template <typename T>
void BlockSparseMatmulGradW(const BlockSparseGeometry& g, const T* x,
                            const T* dy, const bool* mask, T* dw,
                            const Schedule& schedule, int threads);

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_BLOCK_SPARSE_MATMUL_H_
