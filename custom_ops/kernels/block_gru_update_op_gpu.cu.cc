// BlockGruUpdate GPU functor: a thin adapter over the launcher of
// cuda/block_gru_update_kernels.h, on the device's stream. `out` may be `h`
// (the op forwards h's buffer when it can); the kernel allows that.
#if GOOGLE_CUDA

#include "kernels/gpu_functor.h"  // first: it defines EIGEN_USE_GPU

#include "cuda/block_gru_update_kernels.h"
#include "kernels/block_gru_update_op.h"

namespace keras_bandrnn {
namespace functor {

template <typename T>
struct BlockGruUpdate<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BlockGruGeometry& g, const T* h, const T* xp,
                  const T* hp, const T* gate, const T* bias, T* out) {
    ReportLaunch(kbr_block_gru_update(KbrDtype<T>::value, g.batch, g.units, g.blocks, h, xp, hp,
                                      gate, bias, out, d.stream()),
                 "BlockGruUpdate");
  }
};

KBR_INSTANTIATE_GPU_FUNCTOR(BlockGruUpdate);

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
