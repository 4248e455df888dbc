// Adapts TensorFlow's CPU thread pool to the framework-free kernels'
// ParallelFor callback.
#ifndef KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_
#define KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_

#define EIGEN_USE_THREADS

#include <cstdint>
#include <functional>

#include "cpu/parallel_for.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {

inline cpu::ParallelFor CpuParallelFor(const Eigen::ThreadPoolDevice& d) {
  return [&d](int64_t total, int64_t cost_per_unit,
              const std::function<void(int64_t, int64_t)>& work) {
    if (total <= 0) return;
    d.parallelFor(total,
                  Eigen::TensorOpCost(0, 0, static_cast<double>(cost_per_unit)),
                  [&work](Eigen::Index begin, Eigen::Index end) { work(begin, end); });
  };
}

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_
