// Framework-free CPU BlockGruUpdate; see block_gru_update.h.

#include "cpu/block_gru_update.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "Eigen/Core"
#include "cpu/acc_type.h"

namespace keras_bandrnn {
namespace cpu {
namespace {

// Work (in multiply-adds, sigmoid and tanh counted as about 10 each) a thread
// must get for the update to be split: below that, the hand-off costs more.
constexpr double kMinWorkPerThread = 400000;

template <typename T>
using Segment = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// One open block of one row: L units, their r columns at xp[0:L] (and hp,
// bias), their candidate columns at xp[L:2L].
template <typename T>
void OpenBlock(int64_t L, typename AccOf<T>::type z, const T* h, const T* xp,
               const T* hp, const T* bias, T* out) {
  using S = typename AccOf<T>::type;
  const auto acc = [L](const T* p) { return Segment<T>(p, L).template cast<S>(); };
  const auto r = ((acc(xp) + acc(bias)) + acc(hp)).logistic();
  const auto hc = ((acc(xp + L) + acc(bias + L)) + r * acc(hp + L)).tanh();
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(out, L) =
      ((S(1) - z) * acc(h) + z * hc).template cast<T>();
}

}  // namespace

template <typename T>
void BlockGruUpdate(const BlockGruGeometry& g, const T* h, const T* xp,
                    const T* hp, const T* gate, const T* bias, T* out,
                    const Schedule& schedule, int threads) {
  using S = typename AccOf<T>::type;
  const int64_t n = g.units, nb = g.blocks, L = g.block();
  if (g.batch == 0 || n == 0) return;
  int64_t open = 0;
  for (int64_t i = 0; i < g.batch * nb; ++i) open += static_cast<S>(gate[i]) > S(0);
  const double work = double(open) * L * 30 + double(g.batch) * n;
  ShardedFor(schedule, threads, g.batch, work, kMinWorkPerThread,
             [&](int64_t b0, int64_t b1) {
               for (int64_t b = b0; b < b1; ++b) {
                 for (int64_t i = 0; i < nb; ++i) {
                   const S v = static_cast<S>(gate[b * nb + i]);
                   const int64_t u = b * n + i * L, c = b * 2 * n + 2 * i * L;
                   if (v > S(0)) {  // NaN is closed
                     OpenBlock<T>(L, std::tanh(v), h + u, xp + c, hp + c, bias + 2 * i * L, out + u);
                   } else if (out != h) {
                     std::copy_n(h + u, L, out + u);
                   }
                 }
               }
             });
}

#define KERAS_BANDRNN_INSTANTIATE(T)                                          \
  template void BlockGruUpdate<T>(const BlockGruGeometry&, const T*, const T*, \
                                  const T*, const T*, const T*, T*,           \
                                  const Schedule&, int);
KERAS_BANDRNN_INSTANTIATE(float)
KERAS_BANDRNN_INSTANTIATE(double)
KERAS_BANDRNN_INSTANTIATE(Eigen::half)
KERAS_BANDRNN_INSTANTIATE(Eigen::bfloat16)
#undef KERAS_BANDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace keras_bandrnn
