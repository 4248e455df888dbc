// Framework-free CPU BlockGruUpdate; see block_gru_update.h.

#include "cpu/block_gru_update.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "cpu/acc_type.h"

namespace keras_bandrnn {
namespace cpu {
namespace {

// Work (in multiply-adds, sigmoid and tanh counted as about 10 each) a thread
// must get for the update to be split: below that, the hand-off costs more.
// Measured eagerly on ConditionalGRUCell's benchmark shapes (batch 64, 1024
// units, 64 blocks of 16), 2 cores: 100000 against 400000 took the update
// from 61 to 53 us at 75% closed blocks and from 48 to 42 us at 90% (one
// thread before, two now), and left 50% closed (two threads either way) at
// 68 us; a plain eager add over the same (64, 1024) state takes 45 us.
constexpr double kMinWorkPerThread = 100000;

// Values per chunk: one 64-byte vector (an AVX-512 register, two AVX2 ones).
// Fixed-size chunks keep Eigen on its vector path whatever the alignment (a
// dynamic-size expression of 16 values that does not start on a 64-byte
// boundary is computed one value at a time).
template <typename S>
constexpr int64_t kChunk = 64 / sizeof(S);

// The operands of one chunk of an open block: h, then the reset-gate and
// candidate columns of xp, hp and bias.
enum { kH, kXr, kXh, kHr, kHh, kBr, kBh, kOperands };

template <typename S>
void Chunk(S z, const S* const* in, S* out) {
  using Values = Eigen::Array<S, kChunk<S>, 1>;
  using Map = Eigen::Map<const Values>;
  const auto r = ((Map(in[kXr]) + Map(in[kBr])) + Map(in[kHr])).logistic();
  const auto hc = ((Map(in[kXh]) + Map(in[kBh])) + r * Map(in[kHh])).tanh();
  Eigen::Map<Values> result(out);
  result = (S(1) - z) * Map(in[kH]) + z * hc;
}

// One open block of one row: L units at h (and out), their r columns at
// xp[0:L] (and hp, bias), their candidate columns at xp[L:2L]. Whole chunks
// of float or double are computed in place; a last partial chunk, and every
// chunk of a half type, goes through `buf` (kOperands + 1 chunks of S).
template <typename T, typename S>
void OpenBlock(int64_t L, S z, const T* h, const T* xp, const T* hp,
               const T* bias, T* out, S* buf) {
  const T* src[kOperands] = {h, xp, xp + L, hp, hp + L, bias, bias + L};
  constexpr int64_t C = kChunk<S>;
  for (int64_t j = 0; j < L; j += C) {
    const int64_t m = std::min(C, L - j);
    if constexpr (std::is_same<T, S>::value) {
      if (m == C) {
        const S* in[kOperands];
        for (int o = 0; o < kOperands; ++o) in[o] = src[o] + j;
        Chunk<S>(z, in, out + j);
        continue;
      }
    }
    const S* in[kOperands];
    for (int o = 0; o < kOperands; ++o) {
      S* d = buf + o * C;
      for (int64_t e = 0; e < C; ++e) d[e] = e < m ? static_cast<S>(src[o][j + e]) : S(0);
      in[o] = d;
    }
    S* res = buf + kOperands * C;
    Chunk<S>(z, in, res);
    for (int64_t e = 0; e < m; ++e) out[j + e] = static_cast<T>(res[e]);
  }
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
               alignas(64) S buf[(kOperands + 1) * kChunk<S>];
               std::vector<S> v(nb), z(nb);  // one row's pre-activations and gates
               for (int64_t b = b0; b < b1; ++b) {
                 for (int64_t i = 0; i < nb; ++i) v[i] = static_cast<S>(gate[b * nb + i]);
                 // The gates of the whole row at once (vectorized), used where v > 0.
                 Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>(z.data(), nb) =
                     Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(v.data(), nb).tanh();
                 for (int64_t i = 0; i < nb; ++i) {
                   const int64_t u = b * n + i * L, c = b * 2 * n + 2 * i * L;
                   if (v[i] > S(0)) {  // NaN is closed
                     OpenBlock<T, S>(L, z[i], h + u, xp + c, hp + c, bias + 2 * i * L, out + u, buf);
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
KERAS_BANDRNN_FOR_EACH_DTYPE(KERAS_BANDRNN_INSTANTIATE)
#undef KERAS_BANDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace keras_bandrnn
