// Registration and shape functions of the fused band-RNN step (the band
// cells' inner loop). Kernels: custom_ops/kernels/band_rnn_step_op.cc.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace keras_bandrnn {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Merges the (..., n) inputs [0, count) and checks diags (n, k) at `diags`.
absl::Status StepShapes(InferenceContext* c, int count, int diags_index,
                        ShapeHandle* state, ShapeHandle* diags) {
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, state));
  for (int i = 1; i < count; ++i) {
    ShapeHandle s;
    TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(i), 1, &s));
    TF_RETURN_IF_ERROR(c->Merge(*state, s, state));
  }
  TF_RETURN_IF_ERROR(c->WithRank(c->input(diags_index), 2, diags));
  int64_t lower, upper;
  TF_RETURN_IF_ERROR(c->GetAttr("lower", &lower));
  TF_RETURN_IF_ERROR(c->GetAttr("upper", &upper));
  DimensionHandle n, k;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*state, -1), c->Dim(*diags, 0), &n));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(*diags, 1), lower + upper + 1, &k));
  TF_RETURN_IF_ERROR(c->ReplaceDim(*state, -1, n, state));
  *diags = c->Matrix(n, k);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("BandRnnStep")
    .Input("z: T")
    .Input("h: T")
    .Input("diags: T")
    .Output("out: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("lower: int >= 0")
    .Attr("upper: int >= 0")
    .Attr("cyclic: bool = false")
    .Attr("activation: {'tanh', 'sigmoid', 'relu', 'linear'} = 'tanh'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle state, diags;
      TF_RETURN_IF_ERROR(StepShapes(c, 2, 2, &state, &diags));
      c->set_output(0, state);
      return absl::OkStatus();
    })
    .Doc(R"doc(
out = activation(z + band_matmul(h, diags)): one step of a band RNN.
)doc");

REGISTER_OP("BandRnnStepGrad")
    .Input("dout: T")
    .Input("out: T")
    .Input("h: T")
    .Input("diags: T")
    .Output("dz: T")
    .Output("dh: T")
    .Output("ddiags: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("lower: int >= 0")
    .Attr("upper: int >= 0")
    .Attr("cyclic: bool = false")
    .Attr("activation: {'tanh', 'sigmoid', 'relu', 'linear'} = 'tanh'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle state, diags;
      TF_RETURN_IF_ERROR(StepShapes(c, 3, 3, &state, &diags));
      c->set_output(0, state);
      c->set_output(1, state);
      c->set_output(2, diags);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of BandRnnStep: dz = dout * activation'(out), dh = dz A (band_matmul
with transpose), ddiags = band_outer(dz, h).
)doc");

}  // namespace keras_bandrnn
