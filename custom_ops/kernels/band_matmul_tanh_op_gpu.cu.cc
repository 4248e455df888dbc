// BandMatmulTanh GPU functor: a thin adapter over kbr_band_matmul_tanh (cuda/).
#if GOOGLE_CUDA

#include "kernels/gpu_functor.h"  // first: it defines EIGEN_USE_GPU

#include "cuda/band_kernels.h"
#include "kernels/band_matmul_tanh_op.h"

namespace keras_bandrnn {
namespace functor {

template <typename T>
struct BandMatmulTanh<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BandGeometry& g, const T* x, const T* diags,
                  const T* addend, T* y) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "element size");
    ReportLaunch(kbr_band_matmul_tanh(KbrDtype<T>::value, g.batch, g.n, g.lower, g.upper,
                                      g.cyclic, x, diags, addend, y, d.stream()),
                 "BandMatmulTanh");
  }
};

KBR_INSTANTIATE_GPU_FUNCTOR(BandMatmulTanh);

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
