// Block-sparse matmul functors: declared here, specialised for CPU in
// block_sparse_matmul_op.cc and for GPU in block_sparse_matmul_op_gpu.cu.cc
// (TensorFlow's kernel convention).
//
// Shapes (g: BlockSparseGeometry, nb = g.num_blocks(), bs = g.block_size):
//   x (batch, k), w (k, n), dy / y (batch, n), mask (batch, nb), dx (batch, k),
//   dw (k, n). Column block `blk` is columns [blk * bs, (blk + 1) * bs).
// Every functor writes its whole output (zeros where nothing is active), and
// its work is proportional to the number of active (b, blk) pairs.
// All pointers are on `Device`; inputs were validated. T in {float, double,
// Eigen::bfloat16, Eigen::half}; half types accumulate in float32.
#ifndef KERAS_BANDRNN_KERNELS_BLOCK_SPARSE_MATMUL_OP_H_
#define KERAS_BANDRNN_KERNELS_BLOCK_SPARSE_MATMUL_OP_H_

#include "kernels/block_sparse_geometry.h"

namespace tensorflow {
class OpKernelContext;
}  // namespace tensorflow

namespace keras_bandrnn {
namespace functor {

// y[b, blk] = x[b] @ w[:, blk] where mask[b, blk], else 0.
template <typename Device, typename T>
struct BlockSparseMatmul {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BlockSparseGeometry& g, const T* x,
                  const T* w, const bool* mask, T* y);
};

// dx[b] = sum over blk with mask[b, blk] of dy[b, blk] @ w[:, blk]^T.
template <typename Device, typename T>
struct BlockSparseMatmulGradX {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BlockSparseGeometry& g, const T* dy,
                  const T* w, const bool* mask, T* dx);
};

// dw[:, blk] = sum over b with mask[b, blk] of x[b]^T dy[b, blk].
template <typename Device, typename T>
struct BlockSparseMatmulGradW {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BlockSparseGeometry& g, const T* x,
                  const T* dy, const bool* mask, T* dw);
};

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BLOCK_SPARSE_MATMUL_OP_H_
