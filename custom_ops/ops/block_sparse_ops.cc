// Registration and shape functions of the block-sparse matmul op family
// (SPEC section 3). Kernels live in
// custom_ops/kernels/block_sparse_matmul_op.{cc,_gpu.cu.cc}.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace keras_bandrnn {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Checks mask (batch, n / block_size) against the batch and column dims.
absl::Status CheckMask(InferenceContext* c, int mask_input, DimensionHandle batch,
                       DimensionHandle n, DimensionHandle* merged_batch) {
  int64_t block_size;
  TF_RETURN_IF_ERROR(c->GetAttr("block_size", &block_size));
  ShapeHandle mask;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(mask_input), 2, &mask));
  TF_RETURN_IF_ERROR(c->Merge(batch, c->Dim(mask, 0), merged_batch));
  if (c->ValueKnown(n)) {
    const int64_t cols = c->Value(n);
    if (cols % block_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "The number of columns N = ", cols, " of `w` is not divisible by "
          "`block_size` = ", block_size));
    }
    DimensionHandle unused;
    TF_RETURN_IF_ERROR(
        c->WithValue(c->Dim(mask, 1), cols / block_size, &unused));
  }
  return absl::OkStatus();
}

// x (B, K), w (K, N), mask (B, N / block_size) -> y (B, N).
absl::Status ForwardShape(InferenceContext* c) {
  ShapeHandle x, w;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &w));
  DimensionHandle k, batch;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 1), c->Dim(w, 0), &k));
  TF_RETURN_IF_ERROR(CheckMask(c, 2, c->Dim(x, 0), c->Dim(w, 1), &batch));
  c->set_output(0, c->Matrix(batch, c->Dim(w, 1)));
  return absl::OkStatus();
}

// dy (B, N), w (K, N), mask -> dx (B, K).
absl::Status GradXShape(InferenceContext* c) {
  ShapeHandle dy, w;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &dy));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &w));
  DimensionHandle n, batch;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(dy, 1), c->Dim(w, 1), &n));
  TF_RETURN_IF_ERROR(CheckMask(c, 2, c->Dim(dy, 0), n, &batch));
  c->set_output(0, c->Matrix(batch, c->Dim(w, 0)));
  return absl::OkStatus();
}

// x (B, K), dy (B, N), mask -> dw (K, N).
absl::Status GradWShape(InferenceContext* c) {
  ShapeHandle x, dy;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &dy));
  DimensionHandle batch, batch2;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(dy, 0), &batch));
  TF_RETURN_IF_ERROR(CheckMask(c, 2, batch, c->Dim(dy, 1), &batch2));
  c->set_output(0, c->Matrix(c->Dim(x, 1), c->Dim(dy, 1)));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("BlockSparseMatmul")
    .Input("x: T")
    .Input("w: T")
    .Input("mask: bool")
    .Output("y: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("block_size: int >= 1")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
y[b, blk] = x[b] @ w[:, blk] where mask[b, blk], else 0; column block blk is
columns [blk * block_size, (blk + 1) * block_size) of w and y.
)doc");

REGISTER_OP("BlockSparseMatmulGradX")
    .Input("dy: T")
    .Input("w: T")
    .Input("mask: bool")
    .Output("dx: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("block_size: int >= 1")
    .SetShapeFn(GradXShape)
    .Doc(R"doc(
dx[b] = sum over blk with mask[b, blk] of dy[b, blk] @ w[:, blk]^T.
)doc");

REGISTER_OP("BlockSparseMatmulGradW")
    .Input("x: T")
    .Input("dy: T")
    .Input("mask: bool")
    .Output("dw: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("block_size: int >= 1")
    .SetShapeFn(GradWShape)
    .Doc(R"doc(
dw[:, blk] = sum over b with mask[b, blk] of x[b]^T dy[b, blk].
)doc");

}  // namespace keras_bandrnn
