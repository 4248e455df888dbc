// BandRnnStep and BandRnnStepGrad kernels: the OpKernels, the CPU functors,
// and the registrations (CPU only).

#define EIGEN_USE_THREADS

#include "kernels/band_rnn_step_op.h"

#include <string>

#include "cpu/band_rnn_step.h"
#include "kernels/band_validation.h"
#include "kernels/cpu_parallel.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"

namespace keras_bandrnn {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace {

// Below this many multiply-adds (batch * n * k) per product, a step runs on
// the calling thread: splitting a few tens of microseconds of work across
// the pool costs about as much in wake-ups as it saves, and much more when
// the cores are busy (measured on the 2-core machine: BandCell(896), batch
// 64, 100 steps, forward + backward 0.75x the time with the pool; at n=8192
// the pool is 1.6x faster). The executor still runs independent ops side by
// side.
constexpr int64_t kSerialMacs = int64_t{1} << 23;

cpu::ParallelFor StepParallelFor(const CPUDevice& d, const BandGeometry& g) {
  if (g.batch * g.n * g.k() < kSerialMacs) return cpu::SerialFor;
  return CpuParallelFor(d);
}

absl::Status GetStepActivation(tensorflow::OpKernelConstruction* ctx,
                               cpu::StepActivation* act) {
  std::string name;
  TF_RETURN_IF_ERROR(ctx->GetAttr("activation", &name));
  if (name == "tanh") {
    *act = cpu::StepActivation::kTanh;
  } else if (name == "sigmoid") {
    *act = cpu::StepActivation::kSigmoid;
  } else if (name == "relu") {
    *act = cpu::StepActivation::kRelu;
  } else if (name == "linear") {
    *act = cpu::StepActivation::kLinear;
  } else {
    return absl::InvalidArgumentError(
        "`activation` must be one of tanh, sigmoid, relu, linear; got " + name);
  }
  return absl::OkStatus();
}

absl::Status CheckSameShape(const tensorflow::Tensor& t, const char* name,
                            const tensorflow::Tensor& ref, const char* ref_name) {
  if (t.shape() != ref.shape()) {
    return absl::InvalidArgumentError(
        std::string("`") + name + "` must have the shape of `" + ref_name +
        "`, got " + t.shape().DebugString() + " and " + ref.shape().DebugString());
  }
  return absl::OkStatus();
}

}  // namespace

namespace functor {

template <typename T>
struct BandRnnStep<CPUDevice, T> {
  void operator()(const CPUDevice& d, const BandGeometry& g, StepActivation act,
                  const T* z, const T* h, const T* diags, T* out) {
    cpu::BandRnnStep(g, act, z, h, diags, out, StepParallelFor(d, g));
  }
};

template <typename T>
struct BandRnnStepGrad<CPUDevice, T> {
  void operator()(const CPUDevice& d, const BandGeometry& g, StepActivation act,
                  const T* dout, const T* out, const T* h, const T* diags,
                  T* dz, T* dh, T* ddiags) {
    cpu::BandRnnStepGrad(g, act, dout, out, h, diags, dz, dh, ddiags,
                         StepParallelFor(d, g));
  }
};

}  // namespace functor

// out = act(z + h A^T).
template <typename Device, typename T>
class BandRnnStepOp : public tensorflow::OpKernel {
 public:
  explicit BandRnnStepOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetBandAttrs(ctx, &lower_, &upper_, &cyclic_));
    OP_REQUIRES_OK(ctx, GetStepActivation(ctx, &act_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& z = ctx->input(0);
    const tensorflow::Tensor& h = ctx->input(1);
    const tensorflow::Tensor& diags = ctx->input(2);
    BandGeometry g;
    OP_REQUIRES_OK(ctx, BandGeometryOf(h.shape(), "h", lower_, upper_, cyclic_, &g));
    OP_REQUIRES_OK(ctx, CheckSameShape(z, "z", h, "h"));
    OP_REQUIRES_OK(ctx, CheckDiags(diags.shape(), g));
    tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, h.shape(), &out));
    if (out->NumElements() == 0) return;
    functor::BandRnnStep<Device, T>()(ctx->eigen_device<Device>(), g, act_,
                                      z.flat<T>().data(), h.flat<T>().data(),
                                      diags.flat<T>().data(), out->flat<T>().data());
  }

 private:
  int64_t lower_, upper_;
  bool cyclic_;
  cpu::StepActivation act_;
};

// (dz, dh, ddiags) from dout and the step's saved out, h and diags.
template <typename Device, typename T>
class BandRnnStepGradOp : public tensorflow::OpKernel {
 public:
  explicit BandRnnStepGradOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetBandAttrs(ctx, &lower_, &upper_, &cyclic_));
    OP_REQUIRES_OK(ctx, GetStepActivation(ctx, &act_));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& dout = ctx->input(0);
    const tensorflow::Tensor& out = ctx->input(1);
    const tensorflow::Tensor& h = ctx->input(2);
    const tensorflow::Tensor& diags = ctx->input(3);
    BandGeometry g;
    OP_REQUIRES_OK(ctx, BandGeometryOf(h.shape(), "h", lower_, upper_, cyclic_, &g));
    OP_REQUIRES_OK(ctx, CheckSameShape(dout, "dout", h, "h"));
    OP_REQUIRES_OK(ctx, CheckSameShape(out, "out", h, "h"));
    OP_REQUIRES_OK(ctx, CheckDiags(diags.shape(), g));
    tensorflow::Tensor *dz = nullptr, *dh = nullptr, *ddiags = nullptr;
    // dz is computed elementwise from dout, so it may take over dout's buffer.
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, h.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, h.shape(), &dh));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, diags.shape(), &ddiags));
    if (ddiags->NumElements() == 0) return;  // n == 0 (then dz, dh are empty too)
    functor::BandRnnStepGrad<Device, T>()(
        ctx->eigen_device<Device>(), g, act_, dout.flat<T>().data(),
        out.flat<T>().data(), h.flat<T>().data(), diags.flat<T>().data(),
        dz->flat<T>().data(), dh->flat<T>().data(), ddiags->flat<T>().data());
  }

 private:
  int64_t lower_, upper_;
  bool cyclic_;
  cpu::StepActivation act_;
};

#define REGISTER_CPU(T)                                                         \
  REGISTER_KERNEL_BUILDER(                                                      \
      Name("BandRnnStep").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      BandRnnStepOp<CPUDevice, T>);                                             \
  REGISTER_KERNEL_BUILDER(Name("BandRnnStepGrad")                               \
                              .Device(tensorflow::DEVICE_CPU)                   \
                              .TypeConstraint<T>("T"),                          \
                          BandRnnStepGradOp<CPUDevice, T>);
TF_CALL_float(REGISTER_CPU);
TF_CALL_double(REGISTER_CPU);
TF_CALL_bfloat16(REGISTER_CPU);
TF_CALL_half(REGISTER_CPU);
#undef REGISTER_CPU

}  // namespace keras_bandrnn
