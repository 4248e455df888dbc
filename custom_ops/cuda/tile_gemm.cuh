// Generic tiled GEMM engines shared by the band and block-sparse kernels.
//
// Every op here is a sum of dense tile products C(BM x BN) += A(BM x BK) B(BK x BN)
// whose A and B tiles are *generated* on the fly from the op's operands (a band
// tile of `diags`, a gathered list of active rows, a masked slice, ...). A
// problem type P tells the engine how:
//
//   using T = ...;                                  storage type
//   struct Tile {...};                              per-block state
//   template <int BM, int BN, int BK>
//   bool setup(Tile&, bx, by) const;                block (bx, by); false: idle
//   __device__ int first_chunk(const Tile&) const;  first reduction chunk
//   __device__ int next_chunk(const Tile&, int kc) const;   (>= t.nk: done)
//   __device__ T a(const Tile&, int kc, int m, int k) const;  A element, 0 outside
//   __device__ T b(const Tile&, int kc, int k, int n) const;  B element, 0 outside
//   __device__ void store(const Tile&, int m, int n, Acc v) const;
//   static constexpr bool kAContigK, kBContigK;     operand contiguous along k?
//
// kAContigK / kBContigK pick the thread-to-element order of the tile loads
// (consecutive threads read consecutive global addresses) and, for the tensor
// core engine, the shared-memory layout (row/col major fragments).
//
// Two engines:
//  - SimtGemm: float/double, register blocking TM x TN per thread, operands in
//    shared memory k-major, next chunk prefetched into registers while the
//    current one is multiplied. Accumulates in the storage type (fp32 / fp64).
//  - WmmaGemm: bfloat16/float16 on tensor cores (nvcuda::wmma 16x16x16,
//    float accumulators), warp tile 32x32, same register prefetch.
// Framework-free: no TensorFlow header may be included here.
#ifndef KERAS_BANDRNN_CUDA_TILE_GEMM_CUH_
#define KERAS_BANDRNN_CUDA_TILE_GEMM_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "cuda/kbr_cuda.h"

// Problem methods are host-callable too, so that the tiling can be checked
// against references by a CPU emulation of the engines (tests/gpu/emulate.cu).
#define KBR_HD __host__ __device__ __forceinline__

namespace keras_bandrnn {
namespace cuda {

// ---------------------------------------------------------------------------
// Numeric traits: accumulator type and conversions.
template <typename T>
struct Num;
template <>
struct Num<float> {
  using Acc = float;
  static KBR_HD float to_acc(float v) { return v; }
  static KBR_HD float from_acc(float v) { return v; }
};
template <>
struct Num<double> {
  using Acc = double;
  static KBR_HD double to_acc(double v) { return v; }
  static KBR_HD double from_acc(double v) { return v; }
};
template <>
struct Num<__half> {
  using Acc = float;
  static KBR_HD float to_acc(__half v) { return __half2float(v); }
  static KBR_HD __half from_acc(float v) { return __float2half_rn(v); }
};
template <>
struct Num<__nv_bfloat16> {
  using Acc = float;
  static KBR_HD float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
  static KBR_HD __nv_bfloat16 from_acc(float v) {
    return __float2bfloat16_rn(v);
  }
};

// f(TypeTag<T>()) for the storage type T of a kbr_dtype (f a generic lambda
// that reads T as `typename decltype(tag)::type`); cudaErrorInvalidValue for
// an unknown dtype.
template <typename T>
struct TypeTag {
  using type = T;
};
template <class F>
cudaError_t dispatch(int dtype, F&& f) {
  switch (dtype) {
    case KBR_FLOAT32:
      return f(TypeTag<float>());
    case KBR_FLOAT64:
      return f(TypeTag<double>());
    case KBR_BFLOAT16:
      return f(TypeTag<__nv_bfloat16>());
    case KBR_FLOAT16:
      return f(TypeTag<__half>());
  }
  return cudaErrorInvalidValue;
}

template <typename T>
KBR_HD T zero() {
  return Num<T>::from_acc(typename Num<T>::Acc(0));
}

// Column m of a cyclic band, m in (-n, 2n): m mod n without a division.
KBR_HD int64_t wrap_once(int64_t m, int64_t n) {
  return m < 0 ? m + n : (m >= n ? m - n : m);
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------
// Operand tile fetch into registers: element e = tid + r * NT of the tile,
// ordered so that consecutive threads read consecutive global addresses.
template <class P, int ROWS, int BK, int NT, bool kContigK, bool kIsA>
struct TileFetch {
  using T = typename P::T;
  static constexpr int kPer = ROWS * BK / NT;
  static_assert(ROWS * BK % NT == 0, "tile must split evenly over the threads");
  T v[kPer];

  // (r, k) coordinates of the i-th element this thread owns; r indexes M
  // (for A) or N (for B).
  static __device__ __forceinline__ void coords(int i, int& r, int& k) {
    const int e = threadIdx.x + i * NT;
    if (kContigK) {
      r = e / BK;
      k = e % BK;
    } else {
      k = e / ROWS;
      r = e % ROWS;
    }
  }

  __device__ __forceinline__ void fetch(const P& p, const typename P::Tile& t, int kc) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      int r, k;
      coords(i, r, k);
      v[i] = kIsA ? p.a(t, kc, r, k) : p.b(t, kc, k, r);
    }
  }
};

// ---------------------------------------------------------------------------
// SIMT engine (float, double). BM x BN block tile, TM x TN per thread.
template <class P, int BM, int BN, int BK, int TM, int TN>
struct SimtGemm {
  using T = typename P::T;
  using Acc = typename Num<T>::Acc;
  static constexpr int kThreads = (BM / TM) * (BN / TN);
  static constexpr int kPad = 16 / sizeof(Acc);  // keeps 16-byte alignment
  static_assert(BM % TM == 0 && BN % TN == 0, "bad thread tile");

  static __device__ __forceinline__ void run(const P& p) {
    __shared__ __align__(16) Acc As[BK][BM + kPad];
    __shared__ __align__(16) Acc Bs[BK][BN + kPad];
    typename P::Tile t;
    if (!p.template setup<BM, BN, BK>(t, blockIdx.x, blockIdx.y)) return;

    const int tx = threadIdx.x % (BN / TN);
    const int ty = threadIdx.x / (BN / TN);
    Acc acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = Acc(0);

    TileFetch<P, BM, BK, kThreads, P::kAContigK, true> fa;
    TileFetch<P, BN, BK, kThreads, P::kBContigK, false> fb;
    int kc = p.first_chunk(t);
    if (kc < t.nk) {
      fa.fetch(p, t, kc);
      fb.fetch(p, t, kc);
    }
    while (kc < t.nk) {
#pragma unroll
      for (int i = 0; i < fa.kPer; ++i) {
        int r, k;
        fa.coords(i, r, k);
        As[k][r] = Num<T>::to_acc(fa.v[i]);
      }
#pragma unroll
      for (int i = 0; i < fb.kPer; ++i) {
        int r, k;
        fb.coords(i, r, k);
        Bs[k][r] = Num<T>::to_acc(fb.v[i]);
      }
      __syncthreads();
      const int next = p.next_chunk(t, kc);
      if (next < t.nk) {  // global loads in flight during the FMAs below
        fa.fetch(p, t, next);
        fb.fetch(p, t, next);
      }
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        Acc ra[TM], rb[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) ra[i] = As[k][ty * TM + i];
#pragma unroll
        for (int j = 0; j < TN; ++j) rb[j] = Bs[k][tx * TN + j];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] += ra[i] * rb[j];
      }
      __syncthreads();
      kc = next;
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) p.store(t, ty * TM + i, tx * TN + j, acc[i][j]);
  }
};

// ---------------------------------------------------------------------------
// Tensor-core engine (bfloat16, float16; float accumulators). Warps laid out
// (BM/32) x (BN/32), each owning a 32 x 32 output tile of 2 x 2 fragments.
template <class P, int BM, int BN, int BK>
struct WmmaGemm {
  using T = typename P::T;
  static constexpr int kWarpsM = BM / 32, kWarpsN = BN / 32;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  // Shared layouts (leading dimensions padded by 8 elements = 16 bytes).
  static constexpr int kLdA = P::kAContigK ? BK + 8 : BM + 8;
  static constexpr int kLdB = P::kBContigK ? BK + 8 : BN + 8;
  static constexpr int kElemsA = P::kAContigK ? BM * kLdA : BK * kLdA;
  static constexpr int kElemsB = P::kBContigK ? BN * kLdB : BK * kLdB;
  static constexpr int kLdC = BN + 4;
  static constexpr int kBytesAB = (kElemsA + kElemsB) * int(sizeof(T));
  static constexpr int kBytesC = BM * kLdC * int(sizeof(float));
  static constexpr int kBytes = kBytesAB > kBytesC ? kBytesAB : kBytesC;
  static_assert(BM % 32 == 0 && BN % 32 == 0 && BK % 16 == 0, "bad wmma tile");
  static_assert(kBytes <= 48 * 1024, "static shared memory limit");

  using LayoutA = typename std::conditional<P::kAContigK, nvcuda::wmma::row_major,
                                            nvcuda::wmma::col_major>::type;
  using LayoutB = typename std::conditional<P::kBContigK, nvcuda::wmma::col_major,
                                            nvcuda::wmma::row_major>::type;

  static __device__ __forceinline__ void run(const P& p) {
    namespace wmma = nvcuda::wmma;
    __shared__ __align__(128) unsigned char smem[kBytes];
    T* As = reinterpret_cast<T*>(smem);
    T* Bs = As + kElemsA;
    float* Cs = reinterpret_cast<float*>(smem);

    typename P::Tile t;
    if (!p.template setup<BM, BN, BK>(t, blockIdx.x, blockIdx.y)) return;

    const int warp = threadIdx.x / 32;
    const int wm = warp / kWarpsN, wn = warp % kWarpsN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    TileFetch<P, BM, BK, kThreads, P::kAContigK, true> fa;
    TileFetch<P, BN, BK, kThreads, P::kBContigK, false> fb;
    int kc = p.first_chunk(t);
    if (kc < t.nk) {
      fa.fetch(p, t, kc);
      fb.fetch(p, t, kc);
    }
    while (kc < t.nk) {
#pragma unroll
      for (int i = 0; i < fa.kPer; ++i) {
        int r, k;
        fa.coords(i, r, k);
        As[P::kAContigK ? r * kLdA + k : k * kLdA + r] = fa.v[i];
      }
#pragma unroll
      for (int i = 0; i < fb.kPer; ++i) {
        int r, k;
        fb.coords(i, r, k);
        Bs[P::kBContigK ? r * kLdB + k : k * kLdB + r] = fb.v[i];
      }
      __syncthreads();
      const int next = p.next_chunk(t, kc);
      if (next < t.nk) {
        fa.fetch(p, t, next);
        fb.fetch(p, t, next);
      }
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LayoutA> fragA[2];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LayoutB> fragB[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int m = wm * 32 + i * 16;
          const T* pa = P::kAContigK ? As + m * kLdA + kk : As + kk * kLdA + m;
          wmma::load_matrix_sync(fragA[i], pa, kLdA);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int n = wn * 32 + j * 16;
          const T* pb = P::kBContigK ? Bs + n * kLdB + kk : Bs + kk * kLdB + n;
          wmma::load_matrix_sync(fragB[j], pb, kLdB);
        }
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fragA[i], fragB[j], acc[i][j]);
      }
      __syncthreads();
      kc = next;
    }
    // Epilogue through shared memory (the operand buffers are free now).
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * kLdC + wn * 32 + j * 16, acc[i][j],
                                kLdC, wmma::mem_row_major);
    __syncthreads();
    for (int e = threadIdx.x; e < BM * BN; e += kThreads) {
      const int m = e / BN, n = e % BN;
      p.store(t, m, n, Cs[m * kLdC + n]);
    }
  }
};

// Kernel entry points: one per (engine, problem) instantiation.
template <class P, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__(SimtGemm<P, BM, BN, BK, TM, TN>::kThreads)
    simt_gemm_kernel(const P p) {
  SimtGemm<P, BM, BN, BK, TM, TN>::run(p);
}

template <class P, int BM, int BN, int BK>
__global__ void __launch_bounds__(WmmaGemm<P, BM, BN, BK>::kThreads) wmma_gemm_kernel(const P p) {
  WmmaGemm<P, BM, BN, BK>::run(p);
}

// Engine choice per storage type: SIMT for float/double, tensor cores for
// 16-bit types. `launch` returns the launch error (cudaSuccess when fine).
template <typename T>
struct IsTensorCoreType
    : std::integral_constant<bool, std::is_same<T, __half>::value ||
                                       std::is_same<T, __nv_bfloat16>::value> {};

// Block tile sizes. M is the "row" operand (batch rows for band_matmul).
constexpr int kTileM = 128, kTileMSmall = 64, kTileN = 64;

// Reduction chunk (BK) of the engine that launch_tile_gemm picks for T; the
// problems turn a chunk index kc into reduction indices kc * chunk_k<T>() + kk.
template <typename T>
constexpr int chunk_k() {
  return IsTensorCoreType<T>::value ? 32 : 16;
}

KBR_HD int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
KBR_HD int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

#ifdef KBR_EMULATE
// CPU emulation of the engines (tests only): same tiles, same chunk order, same
// generated operands; host pointers instead of device pointers.
template <class P, int BM, int BN, int BK>
void emulate_tile_gemm(const P& p, dim3 grid) {
  using Acc = typename Num<typename P::T>::Acc;
  static Acc acc[BM][BN];
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      typename P::Tile t;
      if (!p.template setup<BM, BN, BK>(t, bx, by)) continue;
      for (int m = 0; m < BM; ++m)
        for (int n = 0; n < BN; ++n) acc[m][n] = Acc(0);
      for (int kc = p.first_chunk(t); kc < t.nk; kc = p.next_chunk(t, kc))
        for (int k = 0; k < BK; ++k) {
          Acc bv[BN];
          for (int n = 0; n < BN; ++n) bv[n] = Num<typename P::T>::to_acc(p.b(t, kc, k, n));
          for (int m = 0; m < BM; ++m) {
            const Acc av = Num<typename P::T>::to_acc(p.a(t, kc, m, k));
            for (int n = 0; n < BN; ++n) acc[m][n] += av * bv[n];
          }
        }
      for (int m = 0; m < BM; ++m)
        for (int n = 0; n < BN; ++n) p.store(t, m, n, acc[m][n]);
    }
}
#endif

template <class P, int BM>
cudaError_t launch_tile_gemm(const P& p, dim3 grid, cudaStream_t stream) {
  using T = typename P::T;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaSuccess;
  if (grid.y > 65535 || grid.z > 65535) return cudaErrorInvalidConfiguration;
#ifdef KBR_EMULATE
  emulate_tile_gemm<P, BM, kTileN, chunk_k<T>()>(p, grid);
  return cudaSuccess;
#endif
  if constexpr (IsTensorCoreType<T>::value) {
    constexpr int BK = chunk_k<T>();
    wmma_gemm_kernel<P, BM, kTileN, BK>
        <<<grid, WmmaGemm<P, BM, kTileN, BK>::kThreads, 0, stream>>>(p);
  } else {
    constexpr int BK = chunk_k<T>(), TM = BM / 16, TN = 4;
    simt_gemm_kernel<P, BM, kTileN, BK, TM, TN>
        <<<grid, SimtGemm<P, BM, kTileN, BK, TM, TN>::kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace keras_bandrnn

#endif  // KERAS_BANDRNN_CUDA_TILE_GEMM_CUH_
