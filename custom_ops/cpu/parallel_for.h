// The parallel-for callback through which framework-free CPU code is threaded.
// The TensorFlow kernels pass one backed by Eigen::ThreadPoolDevice::parallelFor.
#ifndef KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
#define KERAS_BANDRNN_CPU_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <chrono>
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

// Calls fn(u) for every unit u in [0, units), on at most `threads` threads
// that take the units in order from a shared counter, so that a thread that
// starts late (waking a pool thread costs tens of microseconds on the 2-core
// machine of BENCHMARKS.md) takes fewer of them. The thread that runs range 0
// (the calling thread, with Eigen's parallelFor) then spins, for at most
// `max_spin_us` microseconds, until the other threads have returned: blocking
// in the pool's barrier while they finish their last units would cost it
// another wake-up. The bound limits what the spin takes from a thread that
// has not been scheduled yet on a busy machine.
inline void DynamicFor(const ParallelFor& parallel, int threads, int64_t units,
                       const std::function<void(int64_t)>& fn,
                       int64_t max_spin_us = 100) {
  if (units <= 0) return;
  const int64_t shards = std::min<int64_t>(std::max(threads, 1), units);
  if (shards <= 1) {
    for (int64_t u = 0; u < units; ++u) fn(u);
    return;
  }
  std::atomic<int64_t> next{0}, returned{0};
  parallel(shards, int64_t{1} << 40, [&](int64_t s0, int64_t s1) {
    for (int64_t u; (u = next.fetch_add(1, std::memory_order_relaxed)) < units;) fn(u);
    returned.fetch_add(s1 - s0, std::memory_order_acq_rel);
    if (s0 != 0) return;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::microseconds(max_spin_us);
    while (returned.load(std::memory_order_acquire) < shards &&
           std::chrono::steady_clock::now() < deadline) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  });
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
