// BandOuter kernels: the OpKernel, the CPU functor, and the registrations.

#define EIGEN_USE_THREADS

#include "kernels/band_outer_op.h"

#include <type_traits>

#include "cpu/band_cpu.h"
#include "kernels/band_validation.h"
#include "kernels/cpu_parallel.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"

namespace keras_bandrnn {

using CPUDevice = Eigen::ThreadPoolDevice;
using GPUDevice = Eigen::GpuDevice;

namespace functor {

template <typename T>
struct BandOuter<CPUDevice, T> {
  void operator()(const CPUDevice& d, const BandGeometry& g, const T* a,
                  const T* b, T* out) {
    cpu::BandOuter(g, a, b, out, CpuSchedule(d), d.numThreads());
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
    functor::BandOuter<Device, T>()(ctx->eigen_device<Device>(), g,
                                    a.flat<T>().data(), b.flat<T>().data(),
                                    out->flat<T>().data());
  }

 private:
  int64_t lower_, upper_;
  bool cyclic_;
};

#define REGISTER_CPU(T)                                                    \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("BandOuter").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      BandOuterOp<CPUDevice, T>);
TF_CALL_float(REGISTER_CPU);
TF_CALL_double(REGISTER_CPU);
TF_CALL_bfloat16(REGISTER_CPU);
TF_CALL_half(REGISTER_CPU);
#undef REGISTER_CPU

#if GOOGLE_CUDA
#define REGISTER_GPU(T)                                                    \
  extern template struct functor::BandOuter<GPUDevice, T>;                 \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("BandOuter").Device(tensorflow::DEVICE_GPU).TypeConstraint<T>("T"), \
      BandOuterOp<GPUDevice, T>);
TF_CALL_float(REGISTER_GPU);
TF_CALL_double(REGISTER_GPU);
TF_CALL_bfloat16(REGISTER_GPU);
TF_CALL_half(REGISTER_GPU);
#undef REGISTER_GPU
#endif  // GOOGLE_CUDA

}  // namespace keras_bandrnn
