// BandMatmul functor: declared here, specialised for CPU in band_matmul_op.cc
// and for GPU in band_matmul_op_gpu.cu.cc (TensorFlow's kernel convention).
#ifndef KERAS_BANDRNN_KERNELS_BAND_MATMUL_OP_H_
#define KERAS_BANDRNN_KERNELS_BAND_MATMUL_OP_H_

#include "kernels/band_geometry.h"

namespace tensorflow {
class OpKernelContext;
}  // namespace tensorflow

namespace keras_bandrnn {
namespace functor {

// y (batch, n) = x (batch, n) A^T, or x A when `transpose`; A is the band held
// by diags (n, k). All pointers are on `Device`; inputs were validated.
template <typename Device, typename T>
struct BandMatmul {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BandGeometry& g, bool transpose,
                  const T* x, const T* diags, T* y);
};

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BAND_MATMUL_OP_H_
