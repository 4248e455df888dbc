// BandOuter functor: declared here, specialised for CPU in band_outer_op.cc
// and for GPU in band_outer_op_gpu.cu.cc.
#ifndef KERAS_BANDRNN_KERNELS_BAND_OUTER_OP_H_
#define KERAS_BANDRNN_KERNELS_BAND_OUTER_OP_H_

#include "kernels/band_geometry.h"

namespace tensorflow {
class OpKernelContext;
}  // namespace tensorflow

namespace keras_bandrnn {
namespace functor {

// g (n, k): g[i, j] = sum_b a[b, i] * b[b, c(i, j)], 0 at padding entries.
// All pointers are on `Device`; inputs were validated.
template <typename Device, typename T>
struct BandOuter {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BandGeometry& g, const T* a,
                  const T* b, T* out);
};

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BAND_OUTER_OP_H_
