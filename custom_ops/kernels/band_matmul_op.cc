// BandMatmul kernels: the OpKernel, the CPU functor, and the registrations.

#define EIGEN_USE_THREADS

#include "kernels/band_matmul_op.h"

#include "cpu/band_cpu.h"
#include "kernels/band_validation.h"
#include "kernels/cpu_parallel.h"
#include "kernels/register_kernels.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace keras_bandrnn {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace functor {

template <typename T>
struct BandMatmul<CPUDevice, T> {
  void operator()(tensorflow::OpKernelContext* ctx, const CPUDevice& d,
                  const BandGeometry& g, bool transpose,
                  const T* x, const T* diags, T* y) {
    cpu::BandMatmul(g, transpose, x, diags, y, CpuSchedule(ctx), d.numThreads());
  }
};

}  // namespace functor

template <typename Device, typename T>
class BandMatmulOp : public tensorflow::OpKernel {
 public:
  explicit BandMatmulOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetBandAttrs(ctx, &lower_, &upper_, &cyclic_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transpose", &transpose_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    const tensorflow::Tensor& diags = ctx->input(1);
    BandGeometry g;
    OP_REQUIRES_OK(ctx, BandGeometryOf(x.shape(), "x", lower_, upper_, cyclic_, &g));
    OP_REQUIRES_OK(ctx, CheckDiags(diags.shape(), g));
    tensorflow::Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (y->NumElements() == 0) return;
    functor::BandMatmul<Device, T>()(ctx, ctx->eigen_device<Device>(), g, transpose_,
                                     x.flat<T>().data(), diags.flat<T>().data(),
                                     y->flat<T>().data());
  }

 private:
  int64_t lower_, upper_;
  bool cyclic_, transpose_;
};

KBR_REGISTER_KERNELS("BandMatmul", BandMatmulOp);

}  // namespace keras_bandrnn
