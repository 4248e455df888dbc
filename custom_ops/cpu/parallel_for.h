// The parallel-for callback through which framework-free CPU code is threaded.
// The TensorFlow kernels pass one backed by Eigen::ThreadPoolDevice::parallelFor.
#ifndef KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
#define KERAS_BANDRNN_CPU_PARALLEL_FOR_H_

#include <algorithm>
#include <cstdint>
#include <functional>

namespace keras_bandrnn {
namespace cpu {

// Calls fn(begin, end) on disjoint ranges that cover [0, total), possibly on
// several threads at once. cost_per_unit is a rough number of CPU cycles per
// unit of work, used to decide how finely to split. kernels/cpu_parallel.h
// makes one from TensorFlow's thread pool.
using ParallelFor = std::function<void(
    int64_t total, int64_t cost_per_unit,
    const std::function<void(int64_t begin, int64_t end)>& fn)>;

// Runs everything on the calling thread.
inline void SerialFor(int64_t total, int64_t,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (total > 0) fn(0, total);
}

// Calls fn(begin, end) on at most `threads` contiguous ranges covering
// [0, total), for uniform work of `work` units in all: as many ranges as get
// at least `min_work` each (one when the whole is smaller), so that a thread
// is only woken when its share pays for the wake-up. With no more ranges than
// threads, the calling thread takes one of them itself.
inline void ShardedFor(const ParallelFor& parallel, int threads, int64_t total,
                       double work, double min_work,
                       const std::function<void(int64_t, int64_t)>& fn) {
  if (total <= 0) return;
  int64_t shards = std::min<int64_t>(std::max(threads, 1), total);
  if (min_work > 0) shards = std::min<int64_t>(shards, static_cast<int64_t>(work / min_work));
  if (shards <= 1) return fn(0, total);
  // A large cost per range makes the pool run exactly `shards` of them.
  parallel(shards, int64_t{1} << 40, [&](int64_t s0, int64_t s1) {
    const int64_t begin = s0 * total / shards, end = s1 * total / shards;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
