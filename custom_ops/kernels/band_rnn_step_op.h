// BandRnnStep / BandRnnStepGrad functors: declared here, specialised for CPU
// in band_rnn_step_op.cc (TensorFlow's kernel convention). There is no GPU
// specialisation: the cells use the unfused ops when a GPU is present.
#ifndef KERAS_BANDRNN_KERNELS_BAND_RNN_STEP_OP_H_
#define KERAS_BANDRNN_KERNELS_BAND_RNN_STEP_OP_H_

#include "cpu/band_rnn_step.h"
#include "kernels/band_geometry.h"

namespace keras_bandrnn {
namespace functor {

using cpu::StepActivation;

// out (batch, n) = act(z + h A^T), A the band held by diags (n, k).
template <typename Device, typename T>
struct BandRnnStep {
  void operator()(const Device& d, const BandGeometry& g, StepActivation act,
                  const T* z, const T* h, const T* diags, T* out);
};

// dz = dout * act'(out), dh = dz A, ddiags = band_outer(dz, h).
template <typename Device, typename T>
struct BandRnnStepGrad {
  void operator()(const Device& d, const BandGeometry& g, StepActivation act,
                  const T* dout, const T* out, const T* h, const T* diags,
                  T* dz, T* dh, T* ddiags);
};

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BAND_RNN_STEP_OP_H_
