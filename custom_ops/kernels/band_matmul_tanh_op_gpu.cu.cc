// BandMatmulTanh GPU functor: a thin adapter over kbr_band_matmul_tanh (cuda/).
#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include "cuda/band_kernels.h"
#include "kernels/band_matmul_tanh_op.h"
#include "kernels/gpu_launch_status.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {
namespace functor {

using GPUDevice = Eigen::GpuDevice;

template <typename T>
struct BandMatmulTanh<GPUDevice, T> {
  void operator()(const GPUDevice& d, const BandGeometry& g, const T* x, const T* diags,
                  const T* addend, T* y) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "element size");
    ReportLaunch(kbr_band_matmul_tanh(KbrDtype<T>::value, g.batch, g.n, g.lower, g.upper,
                                      g.cyclic, x, diags, addend, y, d.stream()),
                 "BandMatmulTanh");
  }
};

template struct BandMatmulTanh<GPUDevice, float>;
template struct BandMatmulTanh<GPUDevice, double>;
template struct BandMatmulTanh<GPUDevice, Eigen::bfloat16>;
template struct BandMatmulTanh<GPUDevice, Eigen::half>;

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
