// BandOuter GPU functor: a thin adapter over kbr_band_outer (cuda/).
#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include "cuda/band_kernels.h"
#include "kernels/band_outer_op.h"
#include "kernels/gpu_launch_status.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {
namespace functor {

using GPUDevice = Eigen::GpuDevice;

template <typename T>
struct BandOuter<GPUDevice, T> {
  void operator()(const GPUDevice& d, const BandGeometry& g, const T* a, const T* b, T* out) {
    ReportLaunch(kbr_band_outer(KbrDtype<T>::value, g.batch, g.n, g.lower, g.upper, g.cyclic, a,
                                b, out, d.stream()),
                 "BandOuter");
  }
};

template struct BandOuter<GPUDevice, float>;
template struct BandOuter<GPUDevice, double>;
template struct BandOuter<GPUDevice, Eigen::bfloat16>;
template struct BandOuter<GPUDevice, Eigen::half>;

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
