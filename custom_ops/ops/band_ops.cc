// Registration and shape functions of the band op family (SPEC section 3).
// Kernels live in custom_ops/kernels/band_{matmul,matmul_tanh,outer}_op.{cc,cu.cc}.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace keras_bandrnn {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status BandWidth(InferenceContext* c, int64_t* k) {
  int64_t lower, upper;
  TF_RETURN_IF_ERROR(c->GetAttr("lower", &lower));
  TF_RETURN_IF_ERROR(c->GetAttr("upper", &upper));
  *k = lower + upper + 1;
  return absl::OkStatus();
}

// x: (..., n), diags: (n, k) -> y: (..., n).
absl::Status BandMatmulShape(InferenceContext* c) {
  ShapeHandle x, diags;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &diags));
  int64_t k;
  TF_RETURN_IF_ERROR(BandWidth(c, &k));
  DimensionHandle n, unused;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, -1), c->Dim(diags, 0), &n));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(diags, 1), k, &unused));
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->ReplaceDim(x, -1, n, &out));
  c->set_output(0, out);
  return absl::OkStatus();
}

// a, b: (..., n) -> g: (n, k).
absl::Status BandOuterShape(InferenceContext* c) {
  ShapeHandle a, b, ab;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &a));
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(1), 1, &b));
  TF_RETURN_IF_ERROR(c->Merge(a, b, &ab));
  int64_t k;
  TF_RETURN_IF_ERROR(BandWidth(c, &k));
  c->set_output(0, c->Matrix(c->Dim(ab, -1), k));
  return absl::OkStatus();
}

// x: (..., n), diags: (n, k), addend: like x -> y: like x.
absl::Status BandMatmulTanhShape(InferenceContext* c) {
  TF_RETURN_IF_ERROR(BandMatmulShape(c));
  ShapeHandle y;
  TF_RETURN_IF_ERROR(c->Merge(c->output(0), c->input(2), &y));
  c->set_output(0, y);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("BandMatmul")
    .Input("x: T")
    .Input("diags: T")
    .Output("y: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("lower: int >= 0")
    .Attr("upper: int >= 0")
    .Attr("cyclic: bool = false")
    .Attr("transpose: bool = false")
    .SetShapeFn(BandMatmulShape)
    .Doc(R"doc(
y[..., i] = sum_j diags[i, j] * x[..., c(i, j)], c(i, j) = i + j - lower
(mod n if cyclic): y = x A^T, or y = x A with transpose.
)doc");

REGISTER_OP("BandOuter")
    .Input("a: T")
    .Input("b: T")
    .Output("g: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("lower: int >= 0")
    .Attr("upper: int >= 0")
    .Attr("cyclic: bool = false")
    .SetShapeFn(BandOuterShape)
    .Doc(R"doc(
g[i, j] = sum over leading dims of a[..., i] * b[..., c(i, j)]; padding
entries of an open band are 0.
)doc");

REGISTER_OP("BandMatmulTanh")
    .Input("x: T")
    .Input("diags: T")
    .Input("addend: T")
    .Output("y: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("lower: int >= 0")
    .Attr("upper: int >= 0")
    .Attr("cyclic: bool = false")
    .SetShapeFn(BandMatmulTanhShape)
    .Doc(R"doc(
y = tanh(addend + BandMatmul(x, diags)): the band cells' step, with the
activation applied as the product is written out.
)doc");

}  // namespace keras_bandrnn
