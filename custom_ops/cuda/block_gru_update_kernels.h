// Framework-free CUDA kernel of BlockGruUpdate (ConditionalGRUCell's state
// update on the open gate blocks) with a C-ABI launcher. The math and the
// layout are those of kernels/block_gru_update_op.h:
//
//   h, out (batch, units); gate (batch, blocks); xp, hp (batch, 2 * units);
//   bias (2 * units); L = units / blocks. For unit u = i L + j of row b,
//   v = gate[b, i], cr = 2 i L + j, ch = cr + L:
//     v > 0:  z = tanh(v) (gate holds the gate's pre-activations)
//             r = sigmoid((xp[b, cr] + bias[cr]) + hp[b, cr])
//             hc = tanh((xp[b, ch] + bias[ch]) + r * hp[b, ch])
//             out[b, u] = (1 - z) * h[b, u] + z * hc
//     else (NaN included): out[b, u] = h[b, u], copied exactly.
//
// All pointers are device pointers, row-major and densely packed; `out` may
// be `h` (an update in place: closed units are then not written). The launch
// is asynchronous on `stream`; 16-bit types compute in float32. Returns
// cudaSuccess (also for batch or units of 0: nothing to do), or
// cudaErrorInvalidValue for bad sizes (negative, blocks < 1, units not a
// multiple of blocks, an unknown dtype), or the launch error.
#ifndef KERAS_BANDRNN_CUDA_BLOCK_GRU_UPDATE_KERNELS_H_
#define KERAS_BANDRNN_CUDA_BLOCK_GRU_UPDATE_KERNELS_H_

#include "cuda/kbr_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

int kbr_block_gru_update(int dtype, int64_t batch, int64_t units, int64_t blocks,
                         const void* h, const void* xp, const void* hp, const void* gate,
                         const void* bias, void* out, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif  // KERAS_BANDRNN_CUDA_BLOCK_GRU_UPDATE_KERNELS_H_
