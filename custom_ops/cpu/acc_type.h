// The precision the CPU kernels accumulate in: half types in float32, double
// in double (SPEC section 3).
#ifndef KERAS_BANDRNN_CPU_ACC_TYPE_H_
#define KERAS_BANDRNN_CPU_ACC_TYPE_H_

namespace keras_bandrnn {
namespace cpu {

template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_ACC_TYPE_H_
