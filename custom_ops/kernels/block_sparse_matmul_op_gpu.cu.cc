// Block-sparse matmul GPU functors: thin adapters over the launchers of
// cuda/block_sparse_kernels.h. Their workspace (row lists / skip flags) comes
// from the device's allocator and is released asynchronously, after the
// stream has run the launch (TensorFlow's GpuDevice::deallocate).
#if GOOGLE_CUDA

#include "kernels/gpu_functor.h"  // first: it defines EIGEN_USE_GPU

#include "cuda/block_sparse_kernels.h"
#include "kernels/block_sparse_matmul_op.h"

namespace keras_bandrnn {
namespace functor {

namespace {

using Launcher = int (*)(int, int64_t, int64_t, int64_t, int64_t, const void*, const void*,
                         const unsigned char*, void*, void*, size_t, cudaStream_t);

template <typename T>
void Launch(const GPUDevice& d, int op, Launcher launcher, const char* name,
            const BlockSparseGeometry& g, const T* p, const T* q, const bool* mask, T* out) {
  static_assert(sizeof(bool) == 1, "mask is read as bytes");
  const size_t bytes = kbr_block_sparse_workspace_bytes(op, g.batch, g.k, g.n, g.block_size);
  void* ws = bytes ? d.allocate(bytes) : nullptr;
  if (bytes && ws == nullptr) {
    LOG(ERROR) << name << ": could not allocate " << bytes << " bytes of GPU workspace";
    return;
  }
  ReportLaunch(launcher(KbrDtype<T>::value, g.batch, g.k, g.n, g.block_size, p, q,
                        reinterpret_cast<const unsigned char*>(mask), out, ws, bytes, d.stream()),
               name);
  if (ws) d.deallocate(ws);
}

}  // namespace

template <typename T>
struct BlockSparseMatmul<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BlockSparseGeometry& g, const T* x, const T* w,
                  const bool* mask, T* y) {
    Launch(d, KBR_BLOCK_SPARSE_FORWARD, kbr_block_sparse_matmul, "BlockSparseMatmul", g, x, w,
           mask, y);
  }
};

template <typename T>
struct BlockSparseMatmulGradX<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BlockSparseGeometry& g, const T* dy, const T* w,
                  const bool* mask, T* dx) {
    Launch(d, KBR_BLOCK_SPARSE_GRAD_X, kbr_block_sparse_matmul_grad_x, "BlockSparseMatmulGradX",
           g, dy, w, mask, dx);
  }
};

template <typename T>
struct BlockSparseMatmulGradW<GPUDevice, T> {
  void operator()(tensorflow::OpKernelContext*, const GPUDevice& d,
                  const BlockSparseGeometry& g, const T* x, const T* dy,
                  const bool* mask, T* dw) {
    Launch(d, KBR_BLOCK_SPARSE_GRAD_W, kbr_block_sparse_matmul_grad_w, "BlockSparseMatmulGradW",
           g, x, dy, mask, dw);
  }
};

KBR_INSTANTIATE_GPU_FUNCTOR(BlockSparseMatmul);
KBR_INSTANTIATE_GPU_FUNCTOR(BlockSparseMatmulGradX);
KBR_INSTANTIATE_GPU_FUNCTOR(BlockSparseMatmulGradW);

}  // namespace functor
}  // namespace keras_bandrnn

#endif  // GOOGLE_CUDA
