// BandMatmulTanh kernels: the OpKernel, the CPU functor, and the registrations.

#define EIGEN_USE_THREADS

#include "kernels/band_matmul_tanh_op.h"

#include "cpu/band_cpu.h"
#include "kernels/band_validation.h"
#include "kernels/cpu_parallel.h"
#include "kernels/register_kernels.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace keras_bandrnn {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace functor {

template <typename T>
struct BandMatmulTanh<CPUDevice, T> {
  void operator()(tensorflow::OpKernelContext* ctx, const CPUDevice& d,
                  const BandGeometry& g, const T* x,
                  const T* diags, const T* addend, T* y) {
    cpu::BandMatmulTanh(g, x, diags, addend, y, CpuSchedule(ctx), d.numThreads());
  }
};

}  // namespace functor

template <typename Device, typename T>
class BandMatmulTanhOp : public tensorflow::OpKernel {
 public:
  explicit BandMatmulTanhOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetBandAttrs(ctx, &lower_, &upper_, &cyclic_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    const tensorflow::Tensor& diags = ctx->input(1);
    const tensorflow::Tensor& addend = ctx->input(2);
    BandGeometry g;
    OP_REQUIRES_OK(ctx, BandGeometryOf(x.shape(), "x", lower_, upper_, cyclic_, &g));
    OP_REQUIRES_OK(ctx, CheckDiags(diags.shape(), g));
    OP_REQUIRES(ctx, addend.shape() == x.shape(),
                absl::InvalidArgumentError("`addend` must have the shape of `x`, " +
                                           x.shape().DebugString() + ", got " +
                                           addend.shape().DebugString()));
    tensorflow::Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (y->NumElements() == 0) return;
    functor::BandMatmulTanh<Device, T>()(ctx, ctx->eigen_device<Device>(), g,
                                         x.flat<T>().data(), diags.flat<T>().data(),
                                         addend.flat<T>().data(), y->flat<T>().data());
  }

 private:
  int64_t lower_, upper_;
  bool cyclic_;
};

KBR_REGISTER_KERNELS("BandMatmulTanh", BandMatmulTanhOp);

}  // namespace keras_bandrnn
