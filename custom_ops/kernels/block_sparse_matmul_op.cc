// OpKernels of BlockSparseMatmul, BlockSparseMatmulGradX and
// BlockSparseMatmulGradW, their CPU functors and the kernel registrations (CPU;
// GPU under GOOGLE_CUDA, implemented in block_sparse_matmul_op_gpu.cu.cc).

#define EIGEN_USE_THREADS
#if GOOGLE_CUDA
#define EIGEN_USE_GPU
#endif

#include "kernels/block_sparse_matmul_op.h"

#include "cpu/block_sparse_matmul.h"
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
struct BlockSparseMatmul<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const CPUDevice& d,
                  const BlockSparseGeometry& g, const T* x,
                  const T* w, const bool* mask, T* y) {
    cpu::BlockSparseMatmul<T>(g, x, w, mask, y, CpuSchedule(ctx), d.numThreads());
  }
};

template <typename T>
struct BlockSparseMatmulGradX<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const CPUDevice& d,
                  const BlockSparseGeometry& g, const T* dy,
                  const T* w, const bool* mask, T* dx) {
    cpu::BlockSparseMatmulGradX<T>(g, dy, w, mask, dx, CpuSchedule(ctx), d.numThreads());
  }
};

template <typename T>
struct BlockSparseMatmulGradW<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const CPUDevice& d,
                  const BlockSparseGeometry& g, const T* x,
                  const T* dy, const bool* mask, T* dw) {
    cpu::BlockSparseMatmulGradW<T>(g, x, dy, mask, dw, CpuSchedule(ctx), d.numThreads());
  }
};

}  // namespace functor

namespace {

// Which operand plays which role; the three ops differ only in that.
enum class Kind { kForward, kGradX, kGradW };

// Validates the inputs of one of the three ops and derives the geometry.
// Inputs are (x, w, mask), (dy, w, mask) or (x, dy, mask) per kind.
template <Kind kind>
class BlockSparseBase : public OpKernel {
 public:
  explicit BlockSparseBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("block_size", &block_size_));
    OP_REQUIRES(ctx, block_size_ >= 1,
                InvalidArgument("`block_size` must be >= 1, got ", block_size_));
  }

 protected:
  // Sets the context's status on bad input.
  void Validate(OpKernelContext* ctx, BlockSparseGeometry* g) {
    static constexpr const char* kNames[3][2] = {
        {"x", "w"}, {"dy", "w"}, {"x", "dy"}};
    const char* const* names = kNames[static_cast<int>(kind)];
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    const Tensor& mask = ctx->input(2);
    OP_REQUIRES(ctx, a.dims() == 2,
                InvalidArgument("`", names[0], "` must be a matrix, got shape ",
                                a.shape().DebugString()));
    OP_REQUIRES(ctx, b.dims() == 2,
                InvalidArgument("`", names[1], "` must be a matrix, got shape ",
                                b.shape().DebugString()));
    OP_REQUIRES(ctx, mask.dims() == 2,
                InvalidArgument("`mask` must be a matrix, got shape ",
                                mask.shape().DebugString()));
    OP_REQUIRES(ctx, mask.dtype() == tensorflow::DT_BOOL,
                InvalidArgument("`mask` must be bool, got ",
                                tensorflow::DataTypeString(mask.dtype())));
    int64_t batch, k, n;
    switch (kind) {
      case Kind::kForward:  // x (B, K), w (K, N)
        batch = a.dim_size(0), k = a.dim_size(1), n = b.dim_size(1);
        OP_REQUIRES(ctx, b.dim_size(0) == k,
                    InvalidArgument("`w` has ", b.dim_size(0),
                                    " rows but `x` has K = ", k, " columns"));
        break;
      case Kind::kGradX:  // dy (B, N), w (K, N)
        batch = a.dim_size(0), n = a.dim_size(1), k = b.dim_size(0);
        OP_REQUIRES(ctx, b.dim_size(1) == n,
                    InvalidArgument("`w` has ", b.dim_size(1),
                                    " columns but `dy` has N = ", n, " columns"));
        break;
      case Kind::kGradW:  // x (B, K), dy (B, N)
        batch = a.dim_size(0), k = a.dim_size(1), n = b.dim_size(1);
        OP_REQUIRES(ctx, b.dim_size(0) == batch,
                    InvalidArgument("`dy` has ", b.dim_size(0),
                                    " rows but `x` has B = ", batch, " rows"));
        break;
    }
    OP_REQUIRES(ctx, n % block_size_ == 0,
                InvalidArgument("The number of columns N = ", n,
                                " is not divisible by `block_size` = ",
                                block_size_));
    const int64_t nb = n / block_size_;
    OP_REQUIRES(ctx, mask.dim_size(0) == batch && mask.dim_size(1) == nb,
                InvalidArgument("`mask` must have shape (B, N / block_size) = (",
                                batch, ", ", nb, "), got ",
                                mask.shape().DebugString()));
    *g = BlockSparseGeometry{batch, k, n, block_size_};
  }

  int64_t block_size_;
};

// One OpKernel for the three ops: validate, allocate the output of the kind's
// shape, call the kind's functor.
template <Kind kind, typename Functor, typename Device, typename T>
class BlockSparseOp : public BlockSparseBase<kind> {
 public:
  using BlockSparseBase<kind>::BlockSparseBase;
  void Compute(OpKernelContext* ctx) override {
    BlockSparseGeometry g;
    this->Validate(ctx, &g);
    if (!ctx->status().ok()) return;
    // y (B, N), dx (B, K), dw (K, N).
    const TensorShape shape = kind == Kind::kForward ? TensorShape({g.batch, g.n})
                              : kind == Kind::kGradX ? TensorShape({g.batch, g.k})
                                                     : TensorShape({g.k, g.n});
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &out));
    if (out->NumElements() == 0) return;
    Functor()(ctx, ctx->eigen_device<Device>(), g, ctx->input(0).flat<T>().data(),
              ctx->input(1).flat<T>().data(), ctx->input(2).flat<bool>().data(),
              out->flat<T>().data());
  }
};

template <typename Device, typename T>
using BlockSparseMatmulOp =
    BlockSparseOp<Kind::kForward, functor::BlockSparseMatmul<Device, T>, Device, T>;
template <typename Device, typename T>
using BlockSparseMatmulGradXOp =
    BlockSparseOp<Kind::kGradX, functor::BlockSparseMatmulGradX<Device, T>, Device, T>;
template <typename Device, typename T>
using BlockSparseMatmulGradWOp =
    BlockSparseOp<Kind::kGradW, functor::BlockSparseMatmulGradW<Device, T>, Device, T>;

}  // namespace

KBR_REGISTER_KERNELS("BlockSparseMatmul", BlockSparseMatmulOp);
KBR_REGISTER_KERNELS("BlockSparseMatmulGradX", BlockSparseMatmulGradXOp);
KBR_REGISTER_KERNELS("BlockSparseMatmulGradW", BlockSparseMatmulGradWOp);

}  // namespace keras_bandrnn
