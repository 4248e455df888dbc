// CUDA kernel of BlockGruUpdate; see the header for the contract. Elementwise:
// one thread per (row, unit) in a grid-stride loop with 64-bit indices
// (launch_elementwise of elementwise.cuh). The per-element code
// (GruUpdate::element) is host-callable, so that the CPU emulation
// (tests/gpu/emulate.cu, -DKBR_EMULATE) runs the very same indexing on the
// host. `out` may be `h` (in place; closed units are then not written), so
// neither carries __restrict__.
#include "cuda/block_gru_update_kernels.h"
#include "cuda/elementwise.cuh"

#include <cstdint>

namespace keras_bandrnn {
namespace cuda {
namespace {

template <typename T>
struct GruUpdate {
  using Acc = typename Num<T>::Acc;
  const T* h;
  const T* xp;
  const T* hp;
  const T* gate;
  const T* bias;
  T* out;
  int64_t units, blocks, L;

  // Element e = b * units + u of h / out.
  KBR_HD void element(int64_t e) const {
    const int64_t b = e / units, u = e - b * units;
    const int64_t i = u / L, j = u - i * L;
    const Acc v = Num<T>::to_acc(gate[b * blocks + i]);  // the gate's pre-activation
    if (!(v > Acc(0))) {  // closed, NaN included: h bit for bit
      if (out != h) out[e] = h[e];
      return;
    }
    const Acc z = tanh_acc(v);
    const int64_t cr = 2 * i * L + j, ch = cr + L, row = b * 2 * units;
    const Acc r = sigmoid((Num<T>::to_acc(xp[row + cr]) + Num<T>::to_acc(bias[cr])) +
                          Num<T>::to_acc(hp[row + cr]));
    const Acc hc = tanh_acc((Num<T>::to_acc(xp[row + ch]) + Num<T>::to_acc(bias[ch])) +
                            r * Num<T>::to_acc(hp[row + ch]));
    out[e] = Num<T>::from_acc((Acc(1) - z) * Num<T>::to_acc(h[e]) + z * hc);
  }
};

template <typename T>
cudaError_t gru_update_t(int64_t batch, int64_t units, int64_t blocks, const void* h,
                         const void* xp, const void* hp, const void* gate, const void* bias,
                         void* out, cudaStream_t stream) {
  GruUpdate<T> p;
  p.h = static_cast<const T*>(h);
  p.xp = static_cast<const T*>(xp);
  p.hp = static_cast<const T*>(hp);
  p.gate = static_cast<const T*>(gate);
  p.bias = static_cast<const T*>(bias);
  p.out = static_cast<T*>(out);
  p.units = units;
  p.blocks = blocks;
  p.L = units / blocks;
  return launch_elementwise(p, batch * units, stream);  // no launch when empty
}

// Sizes only; dispatch() rejects an unknown dtype.
bool gru_valid(int64_t batch, int64_t units, int64_t blocks) {
  // xp and hp hold batch * 2 * units elements: that count must fit int64.
  return batch >= 0 && units >= 0 && blocks >= 1 && units % blocks == 0 &&
         (batch == 0 || units <= INT64_MAX / 2 / batch);
}

}  // namespace
}  // namespace cuda
}  // namespace keras_bandrnn

using namespace keras_bandrnn::cuda;

extern "C" int kbr_block_gru_update(int dtype, int64_t batch, int64_t units, int64_t blocks,
                                    const void* h, const void* xp, const void* hp,
                                    const void* gate, const void* bias, void* out,
                                    cudaStream_t stream) {
  if (!gru_valid(batch, units, blocks)) return cudaErrorInvalidValue;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return gru_update_t<T>(batch, units, blocks, h, xp, hp, gate, bias, out, stream);
  });
}
