// What every GPU functor (kernels/*_op_gpu.cu.cc, compiled by nvcc) starts
// from: Eigen's GpuDevice as functor::GPUDevice, the launch-error reporting and
// dtype enum of gpu_launch_status.h, and the explicit instantiations for the
// four dtypes. Include it first: it defines EIGEN_USE_GPU.
#ifndef KERAS_BANDRNN_KERNELS_GPU_FUNCTOR_H_
#define KERAS_BANDRNN_KERNELS_GPU_FUNCTOR_H_

#if GOOGLE_CUDA

#ifndef EIGEN_USE_GPU
#define EIGEN_USE_GPU
#endif

#include "kernels/gpu_launch_status.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {
namespace functor {

using GPUDevice = Eigen::GpuDevice;

}  // namespace functor
}  // namespace keras_bandrnn

// F<GPUDevice, T> for float, double, bfloat16 and half; used inside namespace
// keras_bandrnn::functor, where the op's .cc declares them `extern template`.
#define KBR_INSTANTIATE_GPU_FUNCTOR(F)           \
  template struct F<GPUDevice, float>;           \
  template struct F<GPUDevice, double>;          \
  template struct F<GPUDevice, Eigen::bfloat16>; \
  template struct F<GPUDevice, Eigen::half>

#endif  // GOOGLE_CUDA
#endif  // KERAS_BANDRNN_KERNELS_GPU_FUNCTOR_H_
