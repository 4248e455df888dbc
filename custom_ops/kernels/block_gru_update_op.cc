// BlockGruUpdate: the OpKernel, the CPU functor and the kernel registrations
// (CPU; GPU under GOOGLE_CUDA, implemented in block_gru_update_op_gpu.cu.cc).

#define EIGEN_USE_THREADS
#if GOOGLE_CUDA
#define EIGEN_USE_GPU
#endif

#include "kernels/block_gru_update_op.h"

#include "cpu/block_gru_update.h"
#include "kernels/cpu_parallel.h"
#include "kernels/register_kernels.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace keras_bandrnn {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using CPUDevice = Eigen::ThreadPoolDevice;

namespace functor {

template <typename T>
struct BlockGruUpdate<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const CPUDevice& d,
                  const BlockGruGeometry& g, const T* h,
                  const T* xp, const T* hp, const T* gate, const T* bias,
                  T* out) {
    cpu::BlockGruUpdate<T>(g, h, xp, hp, gate, bias, out, CpuSchedule(ctx), d.numThreads());
  }
};

}  // namespace functor

namespace {

template <typename Device, typename T>
class BlockGruUpdateOp : public OpKernel {
 public:
  explicit BlockGruUpdateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& h = ctx->input(0);
    const Tensor& xp = ctx->input(1);
    const Tensor& hp = ctx->input(2);
    const Tensor& gate = ctx->input(3);
    const Tensor& bias = ctx->input(4);
    OP_REQUIRES(ctx, h.dims() == 2,
                InvalidArgument("`h` must be a matrix (B, n), got shape ",
                                h.shape().DebugString()));
    OP_REQUIRES(ctx, gate.dims() == 2,
                InvalidArgument("`gate` must be a matrix (B, g), got shape ",
                                gate.shape().DebugString()));
    const int64_t batch = h.dim_size(0), n = h.dim_size(1), blocks = gate.dim_size(1);
    const TensorShape products({batch, 2 * n});
    OP_REQUIRES(ctx, xp.shape() == products,
                InvalidArgument("`xp` must have shape (B, 2 n) = ",
                                products.DebugString(), ", got ",
                                xp.shape().DebugString()));
    OP_REQUIRES(ctx, hp.shape() == products,
                InvalidArgument("`hp` must have shape (B, 2 n) = ",
                                products.DebugString(), ", got ",
                                hp.shape().DebugString()));
    OP_REQUIRES(ctx, gate.dim_size(0) == batch,
                InvalidArgument("`gate` has ", gate.dim_size(0),
                                " rows but `h` has B = ", batch));
    OP_REQUIRES(ctx, blocks >= 1,
                InvalidArgument("`gate` must have at least one column"));
    OP_REQUIRES(ctx, n % blocks == 0,
                InvalidArgument("The units n = ", n, " of `h` are not a multiple of the ",
                                blocks, " columns (gate blocks) of `gate`"));
    OP_REQUIRES(ctx, bias.dims() == 1 && bias.dim_size(0) == 2 * n,
                InvalidArgument("`bias` must have shape (2 n) = (", 2 * n,
                                "), got ", bias.shape().DebugString()));
    // The update writes into h's buffer when nothing else holds it: closed
    // blocks then cost nothing.
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, h.shape(), &out));
    if (out->NumElements() == 0) return;
    functor::BlockGruUpdate<Device, T>()(
        ctx, ctx->eigen_device<Device>(), BlockGruGeometry{batch, n, blocks},
        h.flat<T>().data(), xp.flat<T>().data(), hp.flat<T>().data(),
        gate.flat<T>().data(), bias.flat<T>().data(), out->flat<T>().data());
  }
};

}  // namespace

KBR_REGISTER_KERNELS("BlockGruUpdate", BlockGruUpdateOp);

}  // namespace keras_bandrnn
