// Framework-free CUDA block-sparse matmul kernels (SPEC section 3) with C-ABI
// launchers.
//
//   y  (B, N) : y[b, blk] = x[b] @ w[:, blk] where mask[b, blk], else 0
//   dx (B, K) : dx[b] = sum over active blk of dy[b, blk] @ w[:, blk]^T
//   dw (K, N) : dw[:, blk] = sum over b active in blk of x[b]^T dy[b, blk]
// with x (B, K), w (K, N), mask (B, N / block_size) of bytes (nonzero: active),
// blk the columns [blk * block_size, (blk + 1) * block_size).
//
// All pointers are device pointers, row-major and densely packed; the launch
// is asynchronous on `stream`. The kernels need a device workspace of
// kbr_block_sparse_workspace_bytes(op, ...) bytes (may be 0, then pass NULL),
// which must stay allocated until the stream has run the launch. Launchers
// return cudaSuccess, cudaErrorInvalidValue for bad sizes (negative, block_size
// < 1, N % block_size != 0, workspace too small, unknown dtype/op),
// cudaErrorInvalidConfiguration past the grid limits (N > 4,194,240 columns;
// K > 4,194,240 for the dx kernel), or the launch error.
//
// Work: y and dw do work proportional to the number of active (b, blk) pairs
// (rows are gathered per 64-column group; groups narrower than a block share
// the union of their blocks' rows). dx skips, per 128-row tile, every
// 64-column group in which no row of the tile is active. All three are
// deterministic (no atomics in the arithmetic).
#ifndef KERAS_BANDRNN_CUDA_BLOCK_SPARSE_KERNELS_H_
#define KERAS_BANDRNN_CUDA_BLOCK_SPARSE_KERNELS_H_

#include "cuda/kbr_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  KBR_BLOCK_SPARSE_FORWARD = 0,
  KBR_BLOCK_SPARSE_GRAD_X = 1,
  KBR_BLOCK_SPARSE_GRAD_W = 2,
} kbr_block_sparse_op;

// Workspace bytes for `op` at these sizes (0 when nothing is needed); returns
// 0 for invalid sizes too (the launcher then reports them).
size_t kbr_block_sparse_workspace_bytes(int op, int64_t batch, int64_t k, int64_t n,
                                        int64_t block_size);

int kbr_block_sparse_matmul(int dtype, int64_t batch, int64_t k, int64_t n, int64_t block_size,
                            const void* x, const void* w, const unsigned char* mask, void* y,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream);

int kbr_block_sparse_matmul_grad_x(int dtype, int64_t batch, int64_t k, int64_t n,
                                   int64_t block_size, const void* dy, const void* w,
                                   const unsigned char* mask, void* dx, void* workspace,
                                   size_t workspace_bytes, cudaStream_t stream);

int kbr_block_sparse_matmul_grad_w(int dtype, int64_t batch, int64_t k, int64_t n,
                                   int64_t block_size, const void* x, const void* dy,
                                   const unsigned char* mask, void* dw, void* workspace,
                                   size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif  // KERAS_BANDRNN_CUDA_BLOCK_SPARSE_KERNELS_H_
