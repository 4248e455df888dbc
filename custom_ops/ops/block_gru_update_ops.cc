// Registration and shape function of BlockGruUpdate (ConditionalGRUCell's
// state update on the open gate blocks). Kernels live in
// custom_ops/kernels/block_gru_update_op.{cc,_gpu.cu.cc}.

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace keras_bandrnn {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// h (B, n), xp (B, 2n), hp (B, 2n), gate (B, g), bias (2n) -> out (B, n).
absl::Status UpdateShape(InferenceContext* c) {
  ShapeHandle h, xp, hp, gate, bias;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &h));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &xp));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &hp));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &gate));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 1, &bias));
  DimensionHandle batch, two_n, unused;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(h, 0), c->Dim(xp, 0), &batch));
  TF_RETURN_IF_ERROR(c->Merge(batch, c->Dim(hp, 0), &batch));
  TF_RETURN_IF_ERROR(c->Merge(batch, c->Dim(gate, 0), &batch));
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(h, 1), 2, &two_n));
  TF_RETURN_IF_ERROR(c->Merge(two_n, c->Dim(xp, 1), &two_n));
  TF_RETURN_IF_ERROR(c->Merge(two_n, c->Dim(hp, 1), &two_n));
  TF_RETURN_IF_ERROR(c->Merge(two_n, c->Dim(bias, 0), &two_n));
  const DimensionHandle n = c->Dim(h, 1), blocks = c->Dim(gate, 1);
  if (c->ValueKnown(blocks) && c->Value(blocks) < 1) {
    return absl::InvalidArgumentError("`gate` must have at least one column");
  }
  if (c->ValueKnown(n) && c->ValueKnown(blocks) && c->Value(n) % c->Value(blocks) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The units n = ", c->Value(n), " of `h` are not a multiple of the ",
        c->Value(blocks), " columns (gate blocks) of `gate`"));
  }
  c->set_output(0, c->Matrix(batch, n));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("BlockGruUpdate")
    .Input("h: T")
    .Input("xp: T")
    .Input("hp: T")
    .Input("gate: T")
    .Input("bias: T")
    .Output("out: T")
    .Attr("T: {float, double, bfloat16, half}")
    .SetShapeFn(UpdateShape)
    .Doc(R"doc(
The GRU state update of the open gate blocks (ConditionalGRUCell, block
gating). With L = n / g, block i of a row is units [i L, (i + 1) L) and the
columns [2 i L, 2 i L + L) (reset gate) and [2 i L + L, 2 (i + 1) L)
(candidate) of xp, hp and bias. gate holds the gate's pre-activations: where
gate[b, i] > 0, with z = tanh(gate[b, i]), r = sigmoid(xp + bias + hp) and
hc = tanh(xp + bias + r * hp) on those columns, out = (1 - z) * h + z * hc;
elsewhere out = h exactly.
)doc");

}  // namespace keras_bandrnn
