// BandOuter GPU functor: a thin adapter over kbr_band_outer (cuda/).
#if GOOGLE_CUDA

#include "kernels/gpu_functor.h"  // first: it defines EIGEN_USE_GPU

#include "cuda/band_kernels.h"
#include "kernels/band_outer_op.h"

namespace keras_bandrnn {
namespace functor {

template <typename T>
struct BandOuter<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BandGeometry& g, const T* a, const T* b, T* out) {
    ReportLaunch(kbr_band_outer(KbrDtype<T>::value, g.batch, g.n, g.lower, g.upper, g.cyclic, a,
                                b, out, d.stream()),
                 "BandOuter");
  }
};

KBR_INSTANTIATE_GPU_FUNCTOR(BandOuter);

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
