// BlockGruUpdate functor: declared here, specialised for CPU in
// block_gru_update_op.cc and for GPU in block_gru_update_op_gpu.cu.cc
// (TensorFlow's kernel convention).
//
// The state update of ConditionalGRUCell's block-gated inference, on the open
// (sample, gate block) pairs only (SPEC section 4). With L = g.block(), gate
// block i of a row holds units [i L, (i + 1) L), and xp, hp and bias hold
// that block's reset-gate columns at [2 i L, 2 i L + L) and its candidate
// columns at [2 i L + L, 2 (i + 1) L) (the cell's interleaved layout). For
// unit u = i L + j of row b, with v = gate[b, i], cr = 2 i L + j, ch = cr + L:
//   open (v > 0):  z   = tanh(v)  (gate holds the gate's pre-activations:
//                                    the gate is cliptanh(v) = tanh(max(v, 0)))
//                  r   = sigmoid((xp[b, cr] + bias[cr]) + hp[b, cr])
//                  hc  = tanh((xp[b, ch] + bias[ch]) + r * hp[b, ch])
//                  out = (1 - z) * h[b, u] + z * hc
//   closed (else, NaN included): out = h[b, u], copied exactly.
// All pointers are on `Device`; inputs were validated. T in {float, double,
// Eigen::bfloat16, Eigen::half}; half types compute in float32.
#ifndef KERAS_BANDRNN_KERNELS_BLOCK_GRU_UPDATE_OP_H_
#define KERAS_BANDRNN_KERNELS_BLOCK_GRU_UPDATE_OP_H_

#include "kernels/block_gru_geometry.h"

namespace tensorflow {
class OpKernelContext;
}  // namespace tensorflow

namespace keras_bandrnn {
namespace functor {

template <typename Device, typename T>
struct BlockGruUpdate {
  void operator()(tensorflow::OpKernelContext* ctx, const Device& d,
                  const BlockGruGeometry& g, const T* h,
                  const T* xp, const T* hp, const T* gate, const T* bias,
                  T* out);
};

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BLOCK_GRU_UPDATE_OP_H_
