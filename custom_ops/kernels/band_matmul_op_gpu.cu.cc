// BandMatmul GPU functor: a thin adapter over kbr_band_matmul (cuda/).
#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include "cuda/band_kernels.h"
#include "kernels/band_matmul_op.h"
#include "kernels/gpu_launch_status.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {
namespace functor {

using GPUDevice = Eigen::GpuDevice;

template <typename T>
struct BandMatmul<GPUDevice, T> {
  void operator()(const GPUDevice& d, const BandGeometry& g, bool transpose, const T* x,
                  const T* diags, T* y) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "element size");
    ReportLaunch(kbr_band_matmul(KbrDtype<T>::value, g.batch, g.n, g.lower, g.upper, g.cyclic,
                                 transpose, x, diags, y, d.stream()),
                 "BandMatmul");
  }
};

template struct BandMatmul<GPUDevice, float>;
template struct BandMatmul<GPUDevice, double>;
template struct BandMatmul<GPUDevice, Eigen::bfloat16>;
template struct BandMatmul<GPUDevice, Eigen::half>;

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
