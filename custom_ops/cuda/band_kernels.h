// Framework-free CUDA band kernels (SPEC section 3) with C-ABI launchers.
//
// All pointers are device pointers, row-major and densely packed; the launch
// is asynchronous on `stream`. Each launcher returns cudaSuccess, or
// cudaErrorInvalidValue for bad sizes (negative, k > n with cyclic, an unknown
// dtype), cudaErrorInvalidConfiguration for sizes past the grid limits
// (n > 4,194,240 for band_matmul and band_matmul_tanh; k > 4,194,240 for
// band_outer), or the launch error. Sizes of zero are fine (nothing to do;
// band_outer writes zeros).
#ifndef KERAS_BANDRNN_CUDA_BAND_KERNELS_H_
#define KERAS_BANDRNN_CUDA_BAND_KERNELS_H_

#include "cuda/kbr_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// y (batch, n) = x (batch, n) A^T, or x A with `transpose`; A is the n x n band
// held row-aligned in diags (n, k), k = lower + upper + 1:
// diags[i, j] = A[i, c(i, j)], c(i, j) = i + j - lower (mod n if `cyclic`).
// Padding entries of an open band never contribute (even if not finite).
int kbr_band_matmul(int dtype, int64_t batch, int64_t n, int64_t lower, int64_t upper,
                    int cyclic, int transpose, const void* x, const void* diags, void* y,
                    cudaStream_t stream);

// y (batch, n) = tanh(addend + x A^T): kbr_band_matmul (no transpose) into y,
// then y = tanh(addend + y) elementwise on the same stream, in the
// accumulation type (float for the 16-bit types and float, double for double)
// from the product as rounded to the dtype. Same sizes, validation and return
// codes as kbr_band_matmul; addend is (batch, n). y must not overlap x, diags
// or addend (the product is written to y before addend is read).
int kbr_band_matmul_tanh(int dtype, int64_t batch, int64_t n, int64_t lower, int64_t upper,
                         int cyclic, const void* x, const void* diags, const void* addend,
                         void* y, cudaStream_t stream);

// g (n, k): g[i, j] = sum_b a[b, i] * b[b, c(i, j)]; padding entries are 0.
int kbr_band_outer(int dtype, int64_t batch, int64_t n, int64_t lower, int64_t upper,
                   int cyclic, const void* a, const void* b, void* g, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif  // KERAS_BANDRNN_CUDA_BAND_KERNELS_H_
