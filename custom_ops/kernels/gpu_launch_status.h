// Error reporting of the GPU functors (thin adapters over custom_ops/cuda/).
// The functor interfaces return void, so a failed launch is logged with the
// op's name and the CUDA error; the op's inputs were validated before, so this
// only fires for device-side problems (no kernel image for the GPU, launch
// resources, a sticky error from an earlier kernel).
#ifndef KERAS_BANDRNN_KERNELS_GPU_LAUNCH_STATUS_H_
#define KERAS_BANDRNN_KERNELS_GPU_LAUNCH_STATUS_H_

#if GOOGLE_CUDA

#include <cuda_runtime_api.h>

#include "tensorflow/core/platform/logging.h"

namespace keras_bandrnn {

inline void ReportLaunch(int err, const char* op) {
  if (err != 0) {
    LOG(ERROR) << op << ": CUDA launch failed: "
               << cudaGetErrorString(static_cast<cudaError_t>(err));
  }
}

// kbr_dtype of each TF element type (cuda/kbr_cuda.h).
template <typename T>
struct KbrDtype;
template <>
struct KbrDtype<float> { static constexpr int value = 0; };
template <>
struct KbrDtype<double> { static constexpr int value = 1; };
template <>
struct KbrDtype<Eigen::bfloat16> { static constexpr int value = 2; };
template <>
struct KbrDtype<Eigen::half> { static constexpr int value = 3; };

}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
#endif  // KERAS_BANDRNN_KERNELS_GPU_LAUNCH_STATUS_H_
