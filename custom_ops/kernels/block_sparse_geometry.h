// Sizes of the block-sparse matmul op family (SPEC section 3).
// Framework-free: included by the CPU, CUDA and TensorFlow code alike.
#ifndef KERAS_BANDRNN_KERNELS_BLOCK_SPARSE_GEOMETRY_H_
#define KERAS_BANDRNN_KERNELS_BLOCK_SPARSE_GEOMETRY_H_

#include <cstdint>

namespace keras_bandrnn {

// x (batch, k) times w (k, n), output columns cut into n / block_size blocks;
// mask (batch, num_blocks()) says which (row, block) pairs are computed.
// All tensors are dense and row-major. The kernels validated that
// block_size >= 1 and n % block_size == 0 before a functor sees these sizes.
struct BlockSparseGeometry {
  int64_t batch;
  int64_t k;
  int64_t n;
  int64_t block_size;
  int64_t num_blocks() const { return n / block_size; }
};

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BLOCK_SPARSE_GEOMETRY_H_
