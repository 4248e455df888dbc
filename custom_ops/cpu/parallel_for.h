// How the framework-free CPU kernels are threaded: a Schedule callback that
// hands a closure to a thread pool (the TensorFlow kernels pass one backed by
// the op's Eigen::ThreadPoolDevice), and the count of threads a kernel may use.
#ifndef KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
#define KERAS_BANDRNN_CPU_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

namespace keras_bandrnn {
namespace cpu {

// Runs a closure on a pool thread, some time later (a thread pool's
// Schedule). kernels/cpu_parallel.h makes one from TensorFlow's thread pool.
using Schedule = std::function<void(std::function<void()>)>;

// Calls fn(u) for every unit u in [0, units), on the calling thread and on up
// to `threads - 1` pool threads, which take the units in order from a shared
// counter. The caller waits only for the units the pool threads have taken,
// never for a pool thread to start: waking one costs tens of microseconds on
// the 2-core machine of BENCHMARKS.md, and hundreds when the other core is
// busy, in which case the caller simply takes every unit itself. A pool
// thread that starts after the last unit was taken returns without touching
// fn (the counter lives in shared state that outlives the call).
inline void DynamicFor(const Schedule& schedule, int threads, int64_t units,
                       const std::function<void(int64_t)>& fn) {
  if (units <= 0) return;
  const int64_t helpers = std::min<int64_t>(std::max(threads, 1), units) - 1;
  if (helpers <= 0 || !schedule) {
    for (int64_t u = 0; u < units; ++u) fn(u);
    return;
  }
  struct Counters {
    std::atomic<int64_t> next{0}, done{0};
  };
  const auto counters = std::make_shared<Counters>();
  const std::function<void(int64_t)>* body = &fn;
  const auto run = [counters, body, units] {
    for (int64_t u; (u = counters->next.fetch_add(1, std::memory_order_relaxed)) < units;) {
      (*body)(u);
      counters->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t i = 0; i < helpers; ++i) schedule(run);
  run();
  // The units still running are on pool threads that have started: spin
  // briefly, then yield the core in case one of them waits for it.
  for (int spins = 0; counters->done.load(std::memory_order_acquire) < units; ++spins) {
    if (spins < 4096) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

// Calls fn(begin, end) on contiguous ranges covering [0, total), for uniform
// work of `work` units in all, on at most `threads` threads: as many as get
// at least `min_work` each (one when the whole is smaller), so that a pool
// thread is only involved when its share pays for the hand-off. The ranges,
// two per thread, go through DynamicFor: the caller takes the ranges that no
// pool thread has started on. (Measured on the benchmark's band products at
// n = 896, 2048 and 8192: two ranges per thread beat one, the static split,
// by 20% at n = 896; four were no better than two.)
inline void ShardedFor(const Schedule& schedule, int threads, int64_t total,
                       double work, double min_work,
                       const std::function<void(int64_t, int64_t)>& fn) {
  if (total <= 0) return;
  int64_t shards = std::min<int64_t>(std::max(threads, 1), total);
  if (min_work > 0) shards = std::min<int64_t>(shards, static_cast<int64_t>(work / min_work));
  if (shards <= 1) return fn(0, total);
  const int64_t units = std::min<int64_t>(total, 2 * shards);
  DynamicFor(schedule, static_cast<int>(shards), units, [&](int64_t s) {
    const int64_t begin = s * total / units, end = (s + 1) * total / units;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_PARALLEL_FOR_H_
