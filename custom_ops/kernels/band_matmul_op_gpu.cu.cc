// BandMatmul GPU functor: a thin adapter over kbr_band_matmul (cuda/).
#if GOOGLE_CUDA

#include "kernels/gpu_functor.h"  // first: it defines EIGEN_USE_GPU

#include "cuda/band_kernels.h"
#include "kernels/band_matmul_op.h"

namespace keras_bandrnn {
namespace functor {

template <typename T>
struct BandMatmul<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BandGeometry& g, bool transpose, const T* x,
                  const T* diags, T* y) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "element size");
    ReportLaunch(kbr_band_matmul(KbrDtype<T>::value, g.batch, g.n, g.lower, g.upper, g.cyclic,
                                 transpose, x, diags, y, d.stream()),
                 "BandMatmul");
  }
};

KBR_INSTANTIATE_GPU_FUNCTOR(BandMatmul);

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
