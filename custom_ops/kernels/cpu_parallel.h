// Adapts TensorFlow's CPU thread pool to the framework-free kernels'
// Schedule callback (cpu/parallel_for.h).
#ifndef KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_
#define KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_

#define EIGEN_USE_THREADS

#include <cstdint>
#include <functional>
#include <utility>

#include "cpu/parallel_for.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {

inline cpu::Schedule CpuSchedule(const Eigen::ThreadPoolDevice& d) {
  return [&d](std::function<void()> closure) { d.getPool()->Schedule(std::move(closure)); };
}

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_
