// Elementwise CUDA kernels shared by the launchers of custom_ops/cuda/: the
// accurate activation functions in the compute type, and a grid-stride launch
// of a per-element functor.
//
// A problem type P for launch_elementwise has
//   KBR_HD void element(int64_t e) const;   // does element e, 0 <= e < total
// and is host-callable, so that the CPU emulation (tests/gpu/emulate.cu,
// -DKBR_EMULATE) runs the very same per-element code on the host.
// Framework-free: no TensorFlow header may be included here.
#ifndef KERAS_BANDRNN_CUDA_ELEMENTWISE_CUH_
#define KERAS_BANDRNN_CUDA_ELEMENTWISE_CUH_

#include <cmath>
#include <cstdint>

#include "cuda/tile_gemm.cuh"

namespace keras_bandrnn {
namespace cuda {

// Accurate transcendental functions (no fast-math intrinsics) in the compute
// type: float for the 16-bit types and float, double for double.
KBR_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
KBR_HD double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
KBR_HD float tanh_acc(float x) { return tanhf(x); }
KBR_HD double tanh_acc(double x) { return tanh(x); }

constexpr int kElementwiseThreads = 256;
// Grid cap: a few waves of blocks on any current GPU; larger problems loop.
constexpr int64_t kElementwiseMaxBlocks = 8192;

template <class P>
__global__ void __launch_bounds__(kElementwiseThreads)
    elementwise_kernel(const P p, int64_t total) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride)
    p.element(e);
}

// p.element(e) for every e in [0, total), one thread per element in a
// grid-stride loop with 64-bit indices, asynchronously on `stream`. Returns
// cudaSuccess (no launch when total is 0) or the launch error.
template <class P>
cudaError_t launch_elementwise(const P& p, int64_t total, cudaStream_t stream) {
  if (total <= 0) return cudaSuccess;
#ifdef KBR_EMULATE
  (void)stream;
  for (int64_t e = 0; e < total; ++e) p.element(e);
  return cudaSuccess;
#else
  const int64_t grid = min64(ceil_div(total, kElementwiseThreads), kElementwiseMaxBlocks);
  elementwise_kernel<P><<<unsigned(grid), kElementwiseThreads, 0, stream>>>(p, total);
  return cudaGetLastError();
#endif
}

}  // namespace cuda
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CUDA_ELEMENTWISE_CUH_
