// The band geometry shared by the band kernels (mirrors keras_bandrnn/band.py).
// Framework-free: included by the CPU, CUDA and TensorFlow code alike.
#ifndef KERAS_BANDRNN_KERNELS_BAND_GEOMETRY_H_
#define KERAS_BANDRNN_KERNELS_BAND_GEOMETRY_H_

#include <cstdint>

namespace keras_bandrnn {

// An (n x n) band matrix stored row-aligned as diags (n, k):
// diags[i * k + j] = A[i, c(i, j)], c(i, j) = i + j - lower (mod n if cyclic).
// Products act on `batch` row vectors of length n.
struct BandGeometry {
  int64_t batch;
  int64_t n;
  int64_t lower;
  int64_t upper;
  bool cyclic;
  int64_t k() const { return lower + upper + 1; }
  // The transposed band A^T: lower and upper swap.
  BandGeometry Transposed() const { return {batch, n, upper, lower, cyclic}; }
};

}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_KERNELS_BAND_GEOMETRY_H_
