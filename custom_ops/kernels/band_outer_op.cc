// BandOuter kernels: the OpKernel, the CPU functor, and the registrations.

#define EIGEN_USE_THREADS

#include "kernels/band_outer_op.h"

#include <type_traits>

#include "cpu/band_cpu.h"
#include "kernels/band_validation.h"
#include "kernels/cpu_parallel.h"
#include "kernels/register_kernels.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace keras_bandrnn {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace functor {

template <typename T>
struct BandOuter<CPUDevice, T> {
  void operator()(tensorflow::OpKernelContext* ctx, const CPUDevice& d,
                  const BandGeometry& g, const T* a,
                  const T* b, T* out) {
    cpu::BandOuter(g, a, b, out, CpuSchedule(ctx), d.numThreads());
  }
};

}  // namespace functor

template <typename Device, typename T>
class BandOuterOp : public tensorflow::OpKernel {
 public:
  explicit BandOuterOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetBandAttrs(ctx, &lower_, &upper_, &cyclic_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& a = ctx->input(0);
    const tensorflow::Tensor& b = ctx->input(1);
    OP_REQUIRES(ctx, a.shape() == b.shape(),
                absl::InvalidArgumentError(
                    "`a` and `b` must have the same shape, got " +
                    a.shape().DebugString() + " and " + b.shape().DebugString()));
    BandGeometry g;
    OP_REQUIRES_OK(ctx, BandGeometryOf(a.shape(), "a", lower_, upper_, cyclic_, &g));
    tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({g.n, g.k()}), &out));
    if (out->NumElements() == 0) return;
    if constexpr (std::is_same<Device, CPUDevice>::value) {
      // An empty sum. (The GPU functor writes these zeros itself: an Eigen
      // expression on the GpuDevice would need this file compiled by nvcc.)
      if (g.batch == 0) {
        out->flat<T>().device(ctx->eigen_device<Device>()) = out->flat<T>().constant(T(0));
        return;
      }
    }
    functor::BandOuter<Device, T>()(ctx, ctx->eigen_device<Device>(), g,
                                    a.flat<T>().data(), b.flat<T>().data(),
                                    out->flat<T>().data());
  }

 private:
  int64_t lower_, upper_;
  bool cyclic_;
};

KBR_REGISTER_KERNELS("BandOuter", BandOuterOp);

}  // namespace keras_bandrnn
