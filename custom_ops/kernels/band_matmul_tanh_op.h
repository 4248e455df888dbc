// BandMatmulTanh functor: declared here, specialised for CPU in
// band_matmul_tanh_op.cc and for GPU in band_matmul_tanh_op_gpu.cu.cc.
#ifndef KERAS_BANDRNN_KERNELS_BAND_MATMUL_TANH_OP_H_
#define KERAS_BANDRNN_KERNELS_BAND_MATMUL_TANH_OP_H_

#include "kernels/band_geometry.h"

namespace tensorflow {
class OpKernelContext;
}  // namespace tensorflow

namespace keras_bandrnn {
namespace functor {

// y (batch, n) = tanh(addend + x A^T), A the band held by diags (n, k); x,
// addend and y of shape (batch, n). All pointers are on `Device`; inputs were
// validated.
template <typename Device, typename T>
struct BandMatmulTanh {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BandGeometry& g, const T* x,
                  const T* diags, const T* addend, T* y);
};

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BAND_MATMUL_TANH_OP_H_
