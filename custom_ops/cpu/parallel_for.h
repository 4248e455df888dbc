// How the framework-free CPU kernels are threaded: a Schedule that hands
// closures to thread pools (the TensorFlow kernels pass one made from the
// op's threads, kernels/cpu_parallel.h), and the count of threads a kernel
// may use.
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

// Runs a closure on a pool thread, some time later (a thread pool's Schedule).
using Runner = std::function<void(std::function<void()>)>;

// Where a kernel's helpers run: `first` takes them; `second`, when set, is
// offered the helpers that have not started by the time the calling thread
// has finished its first unit of work (`first` may be a pool whose threads
// are all busy, or the caller's own single thread).
struct Schedule {
  Runner first, second;
};

// Calls fn(u) for every unit u in [0, units), on the calling thread and on up
// to `threads - 1` helpers run by `schedule`, which take the units in order
// from a shared counter. The caller waits only for the units the helpers have
// taken, never for a helper to start: waking a pool thread costs tens of
// microseconds on the 2-core machine of BENCHMARKS.md, and hundreds when the
// other core is busy, in which case the caller simply takes every unit
// itself. A helper that starts after the last unit was taken, or after
// `threads - 1` others (`first`'s and `second`'s together), returns without
// touching fn (the counters live in shared state that outlives the call).
inline void DynamicFor(const Schedule& schedule, int threads, int64_t units,
                       const std::function<void(int64_t)>& fn) {
  if (units <= 0) return;
  const int64_t helpers = std::min<int64_t>(std::max(threads, 1), units) - 1;
  if (helpers <= 0 || !schedule.first) {
    for (int64_t u = 0; u < units; ++u) fn(u);
    return;
  }
  struct Counters {
    std::atomic<int64_t> next{0}, done{0}, joined{0};
  };
  const auto counters = std::make_shared<Counters>();
  const std::function<void(int64_t)>* body = &fn;
  const auto take = [counters, body, units] {
    for (int64_t u; (u = counters->next.fetch_add(1, std::memory_order_relaxed)) < units;) {
      (*body)(u);
      counters->done.fetch_add(1, std::memory_order_release);
    }
  };
  const auto helper = [counters, take, helpers] {
    if (counters->joined.fetch_add(1, std::memory_order_relaxed) < helpers) take();
  };
  for (int64_t i = 0; i < helpers; ++i) schedule.first(helper);
  for (int64_t u, taken = 0; (u = counters->next.fetch_add(1, std::memory_order_relaxed)) < units; ++taken) {
    if (taken == 1 && schedule.second) {
      const int64_t missing = helpers - counters->joined.load(std::memory_order_relaxed);
      for (int64_t i = 0; i < missing; ++i) schedule.second(helper);
    }
    fn(u);
    counters->done.fetch_add(1, std::memory_order_release);
  }
  // The units still running are on helpers that have started: spin
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
