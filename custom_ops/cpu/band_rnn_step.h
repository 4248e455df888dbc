// Framework-free CPU code of the fused band-RNN step (the band cells' inner
// loop), built on the band products of cpu/band_cpu.h:
//
//   forward:   out = act(z + h A^T)            (band_matmul, then one pass)
//   backward:  dz  = dout * act'(out)           (from the saved output)
//              dh  = dz A                       (band_matmul, transpose)
//              dD  = band_outer(dz, h)
//
// One call replaces the four to six TensorFlow ops of the unfused step (the
// band product, the adds, the activation and their gradients), each of which
// allocates a (batch, n) result and may be split across threads on its own.
#ifndef KERAS_BANDRNN_CPU_BAND_RNN_STEP_H_
#define KERAS_BANDRNN_CPU_BAND_RNN_STEP_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cpu/acc_type.h"
#include "cpu/band_cpu.h"
#include "cpu/parallel_for.h"
#include "kernels/band_geometry.h"

namespace keras_bandrnn {
namespace cpu {

// The activations the fused step supports (the others use unfused ops).
enum class StepActivation { kTanh, kSigmoid, kRelu, kLinear };

// tanh in float: the rational approximation TensorFlow's own Tanh kernel uses
// (Eigen's ptanh_float, a [9/8] minimax fit, clamped where it reaches +-1),
// so fused and unfused cells agree to rounding. Branch-free: it vectorizes.
inline float FastTanh(float x) {
  const float c = 8.01773357391357422f;
  const float xc = std::min(c, std::max(-c, x));
  const float x2 = xc * xc;
  float p = 1.394553628e-8f;
  p = p * x2 + 2.102733560e-5f;
  p = p * x2 + 3.520756727e-3f;
  p = p * x2 + 1.340216100e-1f;
  p = (x2 * xc) * p + xc;
  float q = 8.015776984e-7f;
  q = q * x2 + 3.326951409e-4f;
  q = q * x2 + 2.597254514e-2f;
  q = q * x2 + 4.673548340e-1f;
  q = q * x2 + 1.0f;
  return p / q;
}
inline double FastTanh(double x) { return std::tanh(x); }

// act(pre) and act'(pre) written with out = act(pre), per activation; the
// activation is a template argument so that each pass is one vectorized loop.
template <StepActivation kAct, typename A>
inline A Activate(A v) {
  if constexpr (kAct == StepActivation::kTanh) return FastTanh(v);
  if constexpr (kAct == StepActivation::kSigmoid) return A(0.5) + A(0.5) * FastTanh(A(0.5) * v);
  if constexpr (kAct == StepActivation::kRelu) return v > A(0) ? v : A(0);
  return v;
}

template <StepActivation kAct, typename A>
inline A Derivative(A out) {
  if constexpr (kAct == StepActivation::kTanh) return A(1) - out * out;
  if constexpr (kAct == StepActivation::kSigmoid) return out * (A(1) - out);
  if constexpr (kAct == StepActivation::kRelu) return out > A(0) ? A(1) : A(0);
  return A(1);
}

// Calls f(std::integral_constant<StepActivation, act>) for the runtime `act`.
template <typename F>
inline void WithActivation(StepActivation act, F&& f) {
  switch (act) {
    case StepActivation::kTanh:
      return f(std::integral_constant<StepActivation, StepActivation::kTanh>());
    case StepActivation::kSigmoid:
      return f(std::integral_constant<StepActivation, StepActivation::kSigmoid>());
    case StepActivation::kRelu:
      return f(std::integral_constant<StepActivation, StepActivation::kRelu>());
    case StepActivation::kLinear:
      return f(std::integral_constant<StepActivation, StepActivation::kLinear>());
  }
}

// Elementwise pass over `count` values in chunks (converted to the
// accumulation type A for half types); f(a, b) -> A, with a, b in A.
template <typename T, typename F>
void Elementwise(int64_t count, const T* a, const T* b, T* out, F f) {
  using A = typename AccOf<T>::type;
  if constexpr (std::is_same<T, A>::value) {
    for (int64_t t = 0; t < count; ++t) out[t] = f(a[t], b[t]);
  } else {
    constexpr int64_t kChunk = 512;
    A va[kChunk], vb[kChunk];
    for (int64_t t0 = 0; t0 < count; t0 += kChunk) {
      const int64_t len = std::min(kChunk, count - t0);
      for (int64_t t = 0; t < len; ++t) va[t] = static_cast<A>(a[t0 + t]);
      for (int64_t t = 0; t < len; ++t) vb[t] = static_cast<A>(b[t0 + t]);
      for (int64_t t = 0; t < len; ++t) out[t0 + t] = static_cast<T>(f(va[t], vb[t]));
    }
  }
}

// Runs the elementwise pass over (batch, n) through `parallel`, in rows.
template <typename T, typename F>
void ElementwiseRows(const BandGeometry& g, const T* a, const T* b, T* out,
                     const ParallelFor& parallel, F f) {
  const int64_t n = g.n;
  parallel(g.batch, n * 8, [&](int64_t r0, int64_t r1) {
    Elementwise(n * (r1 - r0), a + r0 * n, b + r0 * n, out + r0 * n, f);
  });
}

// out = act(z + h A^T); z, h, out: (batch, n); diags: (n, k). `out` is a
// separate buffer (the product is written there first).
template <typename T>
void BandRnnStep(const BandGeometry& g, StepActivation act, const T* z,
                 const T* h, const T* diags, T* out, const ParallelFor& parallel) {
  using A = typename AccOf<T>::type;
  if (g.batch == 0 || g.n == 0) return;
  BandMatmul(g, /*transpose=*/false, h, diags, out, parallel);
  WithActivation(act, [&](auto kAct) {
    ElementwiseRows(g, z, out, out, parallel,
                    [](A zv, A yv) { return Activate<decltype(kAct)::value, A>(zv + yv); });
  });
}

// dz = dout * act'(out), dh = dz A, ddiags = band_outer(dz, h). `dz` may
// alias `dout`; dh and ddiags are separate buffers.
template <typename T>
void BandRnnStepGrad(const BandGeometry& g, StepActivation act, const T* dout,
                     const T* out, const T* h, const T* diags, T* dz, T* dh,
                     T* ddiags, const ParallelFor& parallel) {
  using A = typename AccOf<T>::type;
  if (g.n == 0) return;
  if (g.batch == 0) {  // an empty sum
    std::fill(ddiags, ddiags + g.n * g.k(), T(0));
    return;
  }
  WithActivation(act, [&](auto kAct) {
    ElementwiseRows(g, dout, out, dz, parallel,
                    [](A d, A o) { return d * Derivative<decltype(kAct)::value, A>(o); });
  });
  BandMatmul(g, /*transpose=*/true, dz, diags, dh, parallel);
  BandOuter(g, dz, h, ddiags, parallel);
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_BAND_RNN_STEP_H_
