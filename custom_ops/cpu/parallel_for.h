// The parallel-for callback through which framework-free CPU code is threaded.
// The TensorFlow kernels pass one backed by Eigen::ThreadPoolDevice::parallelFor.
#ifndef KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
#define KERAS_BANDRNN_CPU_PARALLEL_FOR_H_

#include <cstdint>
#include <functional>

namespace keras_bandrnn {
namespace cpu {

// Calls fn(begin, end) on disjoint ranges that cover [0, total), possibly on
// several threads at once. cost_per_unit is a rough number of CPU cycles per
// unit of work, used to decide how finely to split.
using ParallelFor = std::function<void(
    int64_t total, double cost_per_unit,
    const std::function<void(int64_t begin, int64_t end)>& fn)>;

// Runs everything on the calling thread.
inline void SerialFor(int64_t total, double,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (total > 0) fn(0, total);
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
