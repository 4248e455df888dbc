// Common definitions of the framework-free CUDA launchers (C ABI).
#ifndef KERAS_BANDRNN_CUDA_KBR_CUDA_H_
#define KERAS_BANDRNN_CUDA_KBR_CUDA_H_

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element type of every floating-point operand of one launch. 16-bit types
// accumulate in float32, float32 in float32 (no TF32), float64 in float64.
typedef enum {
  KBR_FLOAT32 = 0,
  KBR_FLOAT64 = 1,
  KBR_BFLOAT16 = 2,
  KBR_FLOAT16 = 3,
} kbr_dtype;

#ifdef __cplusplus
}
#endif

#endif  // KERAS_BANDRNN_CUDA_KBR_CUDA_H_
