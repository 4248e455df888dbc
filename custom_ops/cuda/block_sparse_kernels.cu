// CUDA block-sparse matmul kernels: forward, grad_x, grad_w. See the header
// for the contract. The output columns are cut into groups of 64 (the engine's
// N tile); per group, a pre-pass compacts the rows that are active in any
// block overlapping the group (stable order, so the reductions are
// deterministic). Forward and grad_w are then dense tile products over those
// gathered rows only; the per-element mask is applied where a group spans
// several blocks (block_size < 64 or not a divisor of 64).
#include "cuda/block_sparse_kernels.h"
#include "cuda/tile_gemm.cuh"

#include <algorithm>
#include <cstring>

namespace keras_bandrnn {
namespace cuda {
namespace {

constexpr int kGroup = kTileN;       // columns per group
constexpr int kRowTile = kTileM;     // grad_x row tile (its skip flags use it)
constexpr int kScanThreads = 256;

struct Sizes {
  int64_t batch, k, n, bs, nb, groups, row_tiles;
};

Sizes sizes(int64_t batch, int64_t k, int64_t n, int64_t bs) {
  Sizes s{batch, k, n, bs, bs > 0 ? n / bs : 0, ceil_div(n, kGroup), ceil_div(batch, kRowTile)};
  return s;
}

bool valid(int64_t batch, int64_t k, int64_t n, int64_t bs) {
  return batch >= 0 && k >= 0 && n >= 0 && bs >= 1 && n % bs == 0 && batch < 0x7fffffff &&
         ceil_div(n, kGroup) <= 65535;
}

size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

// Workspace of forward / grad_w: counts[groups] then rows[groups][batch].
size_t lists_bytes(const Sizes& s) {
  return align_up(sizeof(int) * size_t(s.groups)) +
         align_up(sizeof(int) * size_t(s.groups) * size_t(s.batch));
}
// Workspace of grad_x: flags[row_tiles][groups].
size_t flags_bytes(const Sizes& s) { return align_up(size_t(s.row_tiles) * size_t(s.groups)); }

// Blocks overlapping group g: [blk0, blk1].
KBR_HD void group_blocks(int64_t g, int64_t n, int64_t bs, int64_t& blk0,
                                             int64_t& blk1) {
  const int64_t c0 = g * kGroup;
  const int64_t c1 = min64(c0 + kGroup, n) - 1;
  blk0 = c0 / bs;
  blk1 = c1 / bs;
}

// One block per group: stable compaction of the rows active in the group.
__global__ void __launch_bounds__(kScanThreads)
    group_rows_kernel(const unsigned char* __restrict__ mask, int64_t batch, int64_t n,
                      int64_t bs, int* __restrict__ counts, int* __restrict__ rows) {
  __shared__ int warp_counts[kScanThreads / 32];
  __shared__ int base;
  const int64_t g = blockIdx.x;
  const int64_t nb = n / bs;
  int64_t blk0, blk1;
  group_blocks(g, n, bs, blk0, blk1);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (threadIdx.x == 0) base = 0;
  __syncthreads();
  for (int64_t b0 = 0; b0 < batch; b0 += kScanThreads) {
    const int64_t b = b0 + threadIdx.x;
    bool active = false;
    if (b < batch)
      for (int64_t blk = blk0; blk <= blk1 && !active; ++blk) active = mask[b * nb + blk] != 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, active);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int offset = base;
    for (int w = 0; w < warp; ++w) offset += warp_counts[w];
    offset += __popc(ballot & ((1u << lane) - 1u));
    if (active) rows[g * batch + offset] = int(b);
    __syncthreads();
    if (threadIdx.x == 0) {
      int total = 0;
      for (int w = 0; w < kScanThreads / 32; ++w) total += warp_counts[w];
      base += total;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) counts[g] = base;
}

// flags[rt][g]: some row of row tile rt is active in some block of group g.
__global__ void __launch_bounds__(kScanThreads)
    tile_flags_kernel(const unsigned char* __restrict__ mask, int64_t batch, int64_t n,
                      int64_t bs, int64_t groups, unsigned char* __restrict__ flags) {
  const int64_t rt = blockIdx.x;
  const int64_t g = int64_t(blockIdx.y) * kScanThreads + threadIdx.x;
  if (g >= groups) return;
  const int64_t nb = n / bs;
  int64_t blk0, blk1;
  group_blocks(g, n, bs, blk0, blk1);
  const int64_t b_end = min64((rt + 1) * kRowTile, batch);
  unsigned char any = 0;
  for (int64_t b = rt * kRowTile; b < b_end && !any; ++b)
    for (int64_t blk = blk0; blk <= blk1 && !any; ++blk) any = mask[b * nb + blk] != 0;
  flags[rt * groups + g] = any;
}

template <typename T_, int BK>
struct Common {
  using T = T_;
  using Acc = typename Num<T>::Acc;
  const unsigned char* mask;
  int64_t batch, K, N, bs, nb, groups;
  KBR_HD bool active(int64_t b, int64_t col) const {
    return mask[b * nb + col / bs] != 0;
  }
  KBR_HD int first_chunk_linear() const { return 0; }
};

// y[rows(g), group g] = x[rows(g)] @ w[:, group g], masked per element.
template <typename T_, int BK>
struct ForwardProblem : Common<T_, BK> {
  using typename Common<T_, BK>::T;
  using typename Common<T_, BK>::Acc;
  const T* x;
  const T* w;
  T* y;
  const int* counts;
  const int* rows;
  static constexpr bool kAContigK = true;   // x rows along K
  static constexpr bool kBContigK = false;  // w rows along N
  struct Tile {
    int64_t g, c0;
    const int* rows;
    int t0, cnt, nk;
  };
  template <int BM, int BN, int BKe>
  KBR_HD bool setup(Tile& t, unsigned bx, unsigned by) const {
    static_assert(BN == kGroup && BKe == BK, "tile mismatch");
    t.g = by;
    t.cnt = counts[t.g];
    t.t0 = int(bx) * BM;
    if (t.t0 >= t.cnt) return false;
    t.c0 = t.g * kGroup;
    t.rows = rows + t.g * this->batch;
    t.nk = int(ceil_div(this->K, BK));
    return true;
  }
  KBR_HD int first_chunk(const Tile&) const { return 0; }
  KBR_HD int next_chunk(const Tile&, int kc) const { return kc + 1; }
  KBR_HD T a(const Tile& t, int kc, int r, int kk) const {
    const int tt = t.t0 + r;
    const int64_t ki = int64_t(kc) * BK + kk;
    if (tt >= t.cnt || ki >= this->K) return zero<T>();
    return x[int64_t(t.rows[tt]) * this->K + ki];
  }
  KBR_HD T b(const Tile& t, int kc, int kk, int c) const {
    const int64_t ki = int64_t(kc) * BK + kk, col = t.c0 + c;
    if (ki >= this->K || col >= this->N) return zero<T>();
    return w[ki * this->N + col];
  }
  KBR_HD void store(const Tile& t, int r, int c, Acc v) const {
    const int tt = t.t0 + r;
    const int64_t col = t.c0 + c;
    if (tt >= t.cnt || col >= this->N) return;
    const int64_t b = t.rows[tt];
    y[b * this->N + col] = this->active(b, col) ? Num<T>::from_acc(v) : zero<T>();
  }
};

// dw[:, group g] = x[rows(g)]^T @ (dy[rows(g), group g] masked).
template <typename T_, int BK>
struct GradWProblem : Common<T_, BK> {
  using typename Common<T_, BK>::T;
  using typename Common<T_, BK>::Acc;
  const T* x;
  const T* dy;
  T* dw;
  const int* counts;
  const int* rows;
  static constexpr bool kAContigK = false;  // x rows along K (= M here)
  static constexpr bool kBContigK = false;  // dy rows along N
  struct Tile {
    int64_t k0, c0;
    const int* rows;
    int cnt, nk;
  };
  template <int BM, int BN, int BKe>
  KBR_HD bool setup(Tile& t, unsigned bx, unsigned by) const {
    static_assert(BN == kGroup && BKe == BK, "tile mismatch");
    const int64_t g = by;
    t.cnt = counts[g];
    t.k0 = int64_t(bx) * BM;
    t.c0 = g * kGroup;
    t.rows = rows + g * this->batch;
    t.nk = int(ceil_div(t.cnt, BK));
    return true;
  }
  KBR_HD int first_chunk(const Tile&) const { return 0; }
  KBR_HD int next_chunk(const Tile&, int kc) const { return kc + 1; }
  KBR_HD T a(const Tile& t, int kc, int r, int kk) const {
    const int tt = kc * BK + kk;
    const int64_t ki = t.k0 + r;
    if (tt >= t.cnt || ki >= this->K) return zero<T>();
    return x[int64_t(t.rows[tt]) * this->K + ki];
  }
  KBR_HD T b(const Tile& t, int kc, int kk, int c) const {
    const int tt = kc * BK + kk;
    const int64_t col = t.c0 + c;
    if (tt >= t.cnt || col >= this->N) return zero<T>();
    const int64_t b = t.rows[tt];
    return this->active(b, col) ? dy[b * this->N + col] : zero<T>();
  }
  KBR_HD void store(const Tile& t, int r, int c, Acc v) const {
    const int64_t ki = t.k0 + r, col = t.c0 + c;
    if (ki < this->K && col < this->N) dw[ki * this->N + col] = Num<T>::from_acc(v);
  }
};

// dx[row tile] = (dy masked) @ w^T, skipping groups inactive in the row tile.
template <typename T_, int BK>
struct GradXProblem : Common<T_, BK> {
  using typename Common<T_, BK>::T;
  using typename Common<T_, BK>::Acc;
  const T* dy;
  const T* w;
  T* dx;
  const unsigned char* flags;
  static constexpr int kChunksPerGroup = kGroup / BK;
  static_assert(kGroup % BK == 0, "chunk must divide the group");
  static constexpr bool kAContigK = true;  // dy rows along N (the reduction)
  static constexpr bool kBContigK = true;  // w rows along N (the reduction)
  struct Tile {
    int64_t b0, k0;
    const unsigned char* flags;
    int nk;
  };
  template <int BM, int BN, int BKe>
  KBR_HD bool setup(Tile& t, unsigned bx, unsigned by) const {
    static_assert(BM == kRowTile && BKe == BK, "tile mismatch");
    t.b0 = int64_t(bx) * BM;
    t.k0 = int64_t(by) * BN;
    t.flags = flags + int64_t(bx) * this->groups;
    t.nk = int(this->groups * kChunksPerGroup);
    return true;
  }
  KBR_HD int first_active(const Tile& t, int64_t g) const {
    while (g < this->groups && !t.flags[g]) ++g;
    return int(g * kChunksPerGroup);
  }
  KBR_HD int first_chunk(const Tile& t) const { return first_active(t, 0); }
  KBR_HD int next_chunk(const Tile& t, int kc) const {
    const int next = kc + 1;
    return next % kChunksPerGroup ? next : first_active(t, next / kChunksPerGroup);
  }
  KBR_HD T a(const Tile& t, int kc, int r, int kk) const {
    const int64_t b = t.b0 + r, col = int64_t(kc) * BK + kk;
    if (b >= this->batch || col >= this->N || !this->active(b, col)) return zero<T>();
    return dy[b * this->N + col];
  }
  KBR_HD T b(const Tile& t, int kc, int kk, int c) const {
    const int64_t col = int64_t(kc) * BK + kk, ki = t.k0 + c;
    if (col >= this->N || ki >= this->K) return zero<T>();
    return w[ki * this->N + col];
  }
  KBR_HD void store(const Tile& t, int r, int c, Acc v) const {
    const int64_t b = t.b0 + r, ki = t.k0 + c;
    if (b < this->batch && ki < this->K) dx[b * this->K + ki] = Num<T>::from_acc(v);
  }
};

template <class P>
void fill_common(P& p, const Sizes& s, const unsigned char* mask) {
  p.mask = mask;
  p.batch = s.batch;
  p.K = s.k;
  p.N = s.n;
  p.bs = s.bs;
  p.nb = s.nb;
  p.groups = s.groups;
}

cudaError_t build_lists(const Sizes& s, const unsigned char* mask, void* ws, int** counts,
                        int** rows, cudaStream_t stream) {
  *counts = static_cast<int*>(ws);
  *rows = reinterpret_cast<int*>(static_cast<char*>(ws) + align_up(sizeof(int) * s.groups));
  if (s.groups == 0) return cudaSuccess;
#ifdef KBR_EMULATE
  for (int64_t g = 0; g < s.groups; ++g) {
    int64_t blk0, blk1, cnt = 0;
    group_blocks(g, s.n, s.bs, blk0, blk1);
    for (int64_t b = 0; b < s.batch; ++b) {
      bool active = false;
      for (int64_t blk = blk0; blk <= blk1; ++blk) active |= mask[b * s.nb + blk] != 0;
      if (active) (*rows)[g * s.batch + cnt++] = int(b);
    }
    (*counts)[g] = int(cnt);
  }
  return cudaSuccess;
#endif
  group_rows_kernel<<<unsigned(s.groups), kScanThreads, 0, stream>>>(mask, s.batch, s.n, s.bs,
                                                                      *counts, *rows);
  return cudaGetLastError();
}

template <typename T>
cudaError_t forward_t(const Sizes& s, const void* x, const void* w, const unsigned char* mask,
                      void* y, void* ws, cudaStream_t stream) {
  if (s.batch == 0 || s.n == 0) return cudaSuccess;
#ifdef KBR_EMULATE
  memset(y, 0, sizeof(T) * size_t(s.batch) * size_t(s.n));
  cudaError_t err = cudaSuccess;
#else
  cudaError_t err = cudaMemsetAsync(y, 0, sizeof(T) * size_t(s.batch) * size_t(s.n), stream);
#endif
  if (err != cudaSuccess) return err;
  ForwardProblem<T, chunk_k<T>()> p;
  fill_common(p, s, mask);
  p.x = static_cast<const T*>(x);
  p.w = static_cast<const T*>(w);
  p.y = static_cast<T*>(y);
  int *counts, *rows;
  if ((err = build_lists(s, mask, ws, &counts, &rows, stream)) != cudaSuccess) return err;
  p.counts = counts;
  p.rows = rows;
  const dim3 grid{unsigned(ceil_div(s.batch, kTileM)), unsigned(s.groups), 1u};
  return launch_tile_gemm<decltype(p), kTileM>(p, grid, stream);
}

template <typename T>
cudaError_t grad_w_t(const Sizes& s, const void* x, const void* dy, const unsigned char* mask,
                     void* dw, void* ws, cudaStream_t stream) {
  if (s.k == 0 || s.n == 0) return cudaSuccess;
  GradWProblem<T, chunk_k<T>()> p;
  fill_common(p, s, mask);
  p.x = static_cast<const T*>(x);
  p.dy = static_cast<const T*>(dy);
  p.dw = static_cast<T*>(dw);
  int *counts, *rows;
  cudaError_t err = build_lists(s, mask, ws, &counts, &rows, stream);
  if (err != cudaSuccess) return err;
  p.counts = counts;
  p.rows = rows;
  const int64_t k_tiles = ceil_div(s.k, kTileM);
  if (k_tiles > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const dim3 grid{unsigned(k_tiles), unsigned(s.groups), 1u};
  return launch_tile_gemm<decltype(p), kTileM>(p, grid, stream);
}

template <typename T>
cudaError_t grad_x_t(const Sizes& s, const void* dy, const void* w, const unsigned char* mask,
                     void* dx, void* ws, cudaStream_t stream) {
  if (s.batch == 0 || s.k == 0) return cudaSuccess;
  const int64_t k_tiles = ceil_div(s.k, kTileN);
  if (k_tiles > 65535 || s.row_tiles > 0x7fffffff) return cudaErrorInvalidConfiguration;
  GradXProblem<T, chunk_k<T>()> p;
  fill_common(p, s, mask);
  p.dy = static_cast<const T*>(dy);
  p.w = static_cast<const T*>(w);
  p.dx = static_cast<T*>(dx);
  p.flags = static_cast<const unsigned char*>(ws);
#ifdef KBR_EMULATE
  for (int64_t rt = 0; rt < s.row_tiles; ++rt)
    for (int64_t g = 0; g < s.groups; ++g) {
      int64_t blk0, blk1;
      group_blocks(g, s.n, s.bs, blk0, blk1);
      unsigned char any = 0;
      for (int64_t b = rt * kRowTile; b < std::min((rt + 1) * kRowTile, s.batch); ++b)
        for (int64_t blk = blk0; blk <= blk1; ++blk) any |= mask[b * s.nb + blk] != 0;
      static_cast<unsigned char*>(ws)[rt * s.groups + g] = any;
    }
  if (false) {
#else
  if (s.groups > 0) {
#endif
    const dim3 fgrid{unsigned(s.row_tiles), unsigned(ceil_div(s.groups, kScanThreads)), 1u};
    tile_flags_kernel<<<fgrid, kScanThreads, 0, stream>>>(mask, s.batch, s.n, s.bs, s.groups,
                                                          static_cast<unsigned char*>(ws));
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  const dim3 grid{unsigned(s.row_tiles), unsigned(k_tiles), 1u};
  return launch_tile_gemm<decltype(p), kTileM>(p, grid, stream);
}

size_t workspace_bytes(int op, const Sizes& s) {
  switch (op) {
    case KBR_BLOCK_SPARSE_FORWARD:
    case KBR_BLOCK_SPARSE_GRAD_W:
      return lists_bytes(s);
    case KBR_BLOCK_SPARSE_GRAD_X:
      return flags_bytes(s);
  }
  return 0;
}

int check(int op, int64_t batch, int64_t k, int64_t n, int64_t bs, size_t ws_bytes,
          const void* ws) {
  if (!valid(batch, k, n, bs)) return cudaErrorInvalidValue;
  const size_t need = workspace_bytes(op, sizes(batch, k, n, bs));
  if (need > 0 && (ws == nullptr || ws_bytes < need)) return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace
}  // namespace cuda
}  // namespace keras_bandrnn

using namespace keras_bandrnn::cuda;

extern "C" size_t kbr_block_sparse_workspace_bytes(int op, int64_t batch, int64_t k, int64_t n,
                                                   int64_t block_size) {
  if (!valid(batch, k, n, block_size)) return 0;
  return workspace_bytes(op, sizes(batch, k, n, block_size));
}

extern "C" int kbr_block_sparse_matmul(int dtype, int64_t batch, int64_t k, int64_t n,
                                       int64_t block_size, const void* x, const void* w,
                                       const unsigned char* mask, void* y, void* workspace,
                                       size_t workspace_bytes, cudaStream_t stream) {
  if (int err = check(KBR_BLOCK_SPARSE_FORWARD, batch, k, n, block_size, workspace_bytes,
                      workspace))
    return err;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return forward_t<T>(sizes(batch, k, n, block_size), x, w, mask, y, workspace, stream);
  });
}

extern "C" int kbr_block_sparse_matmul_grad_x(int dtype, int64_t batch, int64_t k, int64_t n,
                                              int64_t block_size, const void* dy, const void* w,
                                              const unsigned char* mask, void* dx,
                                              void* workspace, size_t workspace_bytes,
                                              cudaStream_t stream) {
  if (int err =
          check(KBR_BLOCK_SPARSE_GRAD_X, batch, k, n, block_size, workspace_bytes, workspace))
    return err;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return grad_x_t<T>(sizes(batch, k, n, block_size), dy, w, mask, dx, workspace, stream);
  });
}

extern "C" int kbr_block_sparse_matmul_grad_w(int dtype, int64_t batch, int64_t k, int64_t n,
                                              int64_t block_size, const void* x, const void* dy,
                                              const unsigned char* mask, void* dw,
                                              void* workspace, size_t workspace_bytes,
                                              cudaStream_t stream) {
  if (int err =
          check(KBR_BLOCK_SPARSE_GRAD_W, batch, k, n, block_size, workspace_bytes, workspace))
    return err;
  return dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return grad_w_t<T>(sizes(batch, k, n, block_size), x, dy, mask, dw, workspace, stream);
  });
}
