// Adapts an op's TensorFlow threads to the framework-free kernels' Schedule
// (cpu/parallel_for.h).
#ifndef KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_
#define KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_

#define EIGEN_USE_THREADS

#include <functional>
#include <utility>

#include "cpu/parallel_for.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_bandrnn {

// Helpers go to the op's runner (the executor's inter-op threads; eager ops
// have one too), with the intra-op pool as `second` for when those threads
// are busy or there is only one (inter_op_parallelism_threads = 1: the op
// runs on it, and alone the runner left the op on one thread, 1.56x the
// time). The inter-op thread that handed this op over is awake; an intra-op
// thread has to be woken, and on the 2-core machine of BENCHMARKS.md it then
// contends with the executor's spinning threads for the other core. Measured
// there, paired in one process, batch 64, against the intra-op pool alone:
// ConditionalGRUCell's inference step (a `tf.function` loop) at 75% closed
// blocks 0.76-0.90x the time; BandCell(896)'s `train_on_batch` 0.84x and
// `predict_on_batch` 0.81x; BandCell(8192)'s 1.0x and 0.65x. Offering every
// helper to both pools at once was slower than either (BandCell(8192)'s
// predict 1.38x). How many threads a kernel uses is still the intra-op
// pool's size (the functors pass `d.numThreads()`). (A helper thread of the
// library's own that spins 150-1000 us after each job, so that it is awake
// for the next call, was measured there too, in windows alternating within
// one process: eager block_sparse_matmul calls of the benchmark's shapes took
// 0.65-1.03x the time, e.g. block 32 at density 0.1 274 -> 177 us, but the
// cell's tf.function step at 75% closed blocks took 0.97-1.22x, median 1.11x,
// its spinning taking a core from the executor's threads.)
inline cpu::Schedule CpuSchedule(tensorflow::OpKernelContext* ctx) {
  const Eigen::ThreadPoolDevice& d = ctx->eigen_device<Eigen::ThreadPoolDevice>();
  cpu::Runner pool = [&d](std::function<void()> closure) {
    d.getPool()->Schedule(std::move(closure));
  };
  const cpu::Runner* runner = ctx->runner();
  if (runner == nullptr || !*runner) return {std::move(pool), nullptr};
  return {[runner](std::function<void()> closure) { (*runner)(std::move(closure)); },
          std::move(pool)};
}

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_CPU_PARALLEL_H_
