// Sizes of one BlockGruUpdate: the GRU state update of the open gate blocks.
#ifndef KERAS_BANDRNN_KERNELS_BLOCK_GRU_GEOMETRY_H_
#define KERAS_BANDRNN_KERNELS_BLOCK_GRU_GEOMETRY_H_

#include <cstdint>

namespace keras_bandrnn {

// h (batch, units), gate (batch, blocks), xp and hp (batch, 2 * units),
// bias (2 * units); `units` is a multiple of `blocks`.
struct BlockGruGeometry {
  int64_t batch;
  int64_t units;
  int64_t blocks;
  int64_t block() const { return units / blocks; }  // L, units per gate block
};

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BLOCK_GRU_GEOMETRY_H_
