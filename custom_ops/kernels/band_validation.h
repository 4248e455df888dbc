// Checks shared by the band kernels: every size the kernels index with is
// validated here, with errors that name the argument.
#ifndef KERAS_BANDRNN_KERNELS_BAND_VALIDATION_H_
#define KERAS_BANDRNN_KERNELS_BAND_VALIDATION_H_

#include <limits>
#include <string>

#include "kernels/band_geometry.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace keras_bandrnn {

// Reads the band attributes of an op.
inline absl::Status GetBandAttrs(tensorflow::OpKernelConstruction* ctx,
                                 int64_t* lower, int64_t* upper, bool* cyclic) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("lower", lower));
  TF_RETURN_IF_ERROR(ctx->GetAttr("upper", upper));
  TF_RETURN_IF_ERROR(ctx->GetAttr("cyclic", cyclic));
  if (*lower < 0 || *upper < 0 ||
      *lower + *upper + 1 > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        "`lower` and `upper` must be >= 0 with lower + upper + 1 < 2^31");
  }
  return absl::OkStatus();
}

// The geometry of a product over `x` (..., n); checks cyclic's k <= n.
inline absl::Status BandGeometryOf(const tensorflow::TensorShape& x,
                                   const std::string& name, int64_t lower,
                                   int64_t upper, bool cyclic,
                                   BandGeometry* g) {
  if (x.dims() < 1) {
    return absl::InvalidArgumentError("`" + name +
                                      "` must have rank >= 1, got a scalar");
  }
  const int64_t n = x.dim_size(x.dims() - 1);
  int64_t batch = 1;
  for (int d = 0; d + 1 < x.dims(); ++d) batch *= x.dim_size(d);
  *g = BandGeometry{batch, n, lower, upper, cyclic};
  if (cyclic && g->k() > n) {
    return absl::InvalidArgumentError(
        "a cyclic band needs lower + upper + 1 <= n; got lower=" +
        std::to_string(lower) + ", upper=" + std::to_string(upper) +
        " with n=" + std::to_string(n) + " (last dimension of `" + name + "`)");
  }
  return absl::OkStatus();
}

// `diags` must be (n, k).
inline absl::Status CheckDiags(const tensorflow::TensorShape& diags,
                               const BandGeometry& g) {
  if (diags.dims() != 2 || diags.dim_size(0) != g.n ||
      diags.dim_size(1) != g.k()) {
    return absl::InvalidArgumentError(
        "`diags` must have shape (n, lower + upper + 1) = (" +
        std::to_string(g.n) + ", " + std::to_string(g.k()) + "), got " +
        diags.DebugString());
  }
  return absl::OkStatus();
}

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BAND_VALIDATION_H_
