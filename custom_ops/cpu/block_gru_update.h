// Framework-free CPU kernel of BlockGruUpdate, the state update of
// ConditionalGRUCell's block-gated inference on the open (sample, gate block)
// pairs. The math and the layout are in kernels/block_gru_update_op.h.
#ifndef KERAS_BANDRNN_CPU_BLOCK_GRU_UPDATE_H_
#define KERAS_BANDRNN_CPU_BLOCK_GRU_UPDATE_H_

#include "cpu/parallel_for.h"
#include "kernels/block_gru_geometry.h"

namespace keras_bandrnn {
namespace cpu {

// out (batch, units) from h, xp, hp, gate, bias. `out` may be `h` itself
// (then closed blocks are not touched). `threads`: how many threads may share
// the work, the caller's included (the others through `schedule`).
template <typename T>
void BlockGruUpdate(const BlockGruGeometry& g, const T* h, const T* xp,
                    const T* hp, const T* gate, const T* bias, T* out,
                    const Schedule& schedule, int threads);

}  // namespace cpu
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CPU_BLOCK_GRU_UPDATE_H_
