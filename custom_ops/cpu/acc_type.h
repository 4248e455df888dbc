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

// M(T) for each dtype the kernels support: their explicit instantiations.
#define KERAS_BANDRNN_FOR_EACH_DTYPE(M) M(float) M(double) M(Eigen::half) M(Eigen::bfloat16)

#endif  // KERAS_BANDRNN_CPU_ACC_TYPE_H_
