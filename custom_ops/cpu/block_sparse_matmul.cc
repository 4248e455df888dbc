// Framework-free CPU block-sparse matmul; see block_sparse_matmul.h.

#include "cpu/block_sparse_matmul.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "cpu/acc_type.h"

namespace keras_bandrnn {
namespace cpu {
namespace {

template <typename S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using ConstMap = Eigen::Map<const Mat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using MutableMap = Eigen::Map<Mat<S>, 0, Eigen::OuterStride<>>;

// Rows b with mask[b, blk], in increasing order.
void ActiveRows(const BlockSparseGeometry& g, const bool* mask, int64_t blk,
                std::vector<int64_t>* rows) {
  rows->clear();
  const int64_t nb = g.num_blocks();
  for (int64_t b = 0; b < g.batch; ++b) {
    if (mask[b * nb + blk]) rows->push_back(b);
  }
}

int64_t CountActive(const BlockSparseGeometry& g, const bool* mask) {
  return std::count(mask, mask + g.batch * g.num_blocks(), true);
}

// dst (rows.size(), width) = src[rows, col:col + width] (leading dim ld).
template <typename T, typename S>
void GatherRows(const T* src, int64_t ld, int64_t col, int64_t width,
                const std::vector<int64_t>& rows, Mat<S>* dst) {
  dst->resize(static_cast<Eigen::Index>(rows.size()), width);
  for (size_t i = 0; i < rows.size(); ++i) {
    const T* s = src + rows[i] * ld + col;
    S* d = dst->data() + i * width;
    for (int64_t j = 0; j < width; ++j) d[j] = static_cast<S>(s[j]);
  }
}

// dst[row_of(i), col:col + src.cols()] = src row i, converted to T: the
// inverse of GatherRows (row_of: local row -> row of dst, leading dim ld).
template <typename S, typename T, typename RowOf>
void StoreRows(const Mat<S>& src, RowOf row_of, T* dst, int64_t ld, int64_t col) {
  const int64_t width = src.cols();
  for (int64_t i = 0; i < src.rows(); ++i) {
    T* d = dst + row_of(i) * ld + col;
    const S* s = src.data() + i * width;
    for (int64_t j = 0; j < width; ++j) d[j] = static_cast<T>(s[j]);
  }
}

inline int64_t SameRow(int64_t i) { return i; }

// A (rows, cols) window of src (leading dim ld) as a map of S: the memory
// itself when T is S, else a converted copy held in `buffer`.
template <typename T, typename S>
ConstMap<S> Window(const T* src, int64_t ld, int64_t rows, int64_t cols,
                   Mat<S>* buffer) {
  if constexpr (std::is_same<T, S>::value) {
    return ConstMap<S>(src, rows, cols, Eigen::OuterStride<>(ld));
  } else {
    buffer->resize(rows, cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        (*buffer)(r, c) = static_cast<S>(src[r * ld + c]);
      }
    }
    return ConstMap<S>(buffer->data(), rows, cols, Eigen::OuterStride<>(cols));
  }
}

template <typename T>
void FillRow(T* dst, int64_t width) {
  std::fill(dst, dst + width, T(0));
}

// ---------------------------------------------------------------------------
// Register-blocked micro-kernel for float and double (GCC vector extensions;
// 64-byte vectors are AVX-512 registers with -march=native, pairs of AVX2
// registers otherwise). A tile is R active rows x NV vectors of columns:
// acc[r][v] += x[row r][k] * w[k, cols v] over a chunk of k, with x broadcast
// from the row itself (no gather) and w read in place (row stride ldw).

template <typename S>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(64)));
};

// Rows of w per chunk of the k loop. A column tile's row tiles all read the
// same slice of the chunk (128 rows of NV vectors, 32 KB at 4 vectors of
// float), which stays in L2 between them; each first row tile prefetches
// ahead (see NextChunk). Measured on the benchmark's shapes, one thread:
// - on the Intel Xeon (Emerald Rapids) of an earlier run, 64 rows with the
//   per-tile prefetch took 0.73-0.88x the time of the kernel tuned before on
//   the AMD Zen 4 host (32-row chunks whose first row tiles streamed the next
//   chunk, 256-row chunks for blocks narrower than two vectors), at blocks
//   16 to 128 and densities 0.1 to 1; there 48 and 128 rows were slower
//   than 64 (without the stream of narrow blocks, which came later);
// - on the AMD Zen 4 host of BENCHMARKS.md, with the stream, 128 rows took
//   0.92-0.98x the time of 64 at blocks 16 to 128, densities 0.25 to 1, N =
//   1024 and 2048, and the same at density 0.1 and K = 27.
constexpr int64_t kKChunk = 128;

// How far ahead a column tile of four vectors prefetches its slice of w
// (ColumnTile). Measured on the benchmark's shapes, one thread, at block 16
// on the AMD host: 4 to 16 rows are within noise of each other.
constexpr int64_t kPrefetchRows = 8;

// Vector multiply-adds each thread must get for the forward to be split
// (about 25 us of work on the machine of BENCHMARKS.md).
constexpr double kMinForwardFmasPerThread = 100000;

// Multiply-adds each thread must get for a gradient product to be split
// (the same 25 us, counted in scalar multiply-adds of the Eigen products).
constexpr double kMinShardWork = 16 * kMinForwardFmasPerThread;

// The NV cache lines of a column slice's row at p (the tile walks down the
// slice, a new 4 KB page every row, which the hardware prefetchers do not
// all follow).
template <typename S, int NV>
inline void PrefetchLines(const S* p) {
  constexpr int kLanes = sizeof(typename VecOf<S>::type) / sizeof(S);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) __builtin_prefetch(p + v * kLanes);
}

// The cache lines of the next chunk of w (rows [k0 + kc, k0 + 2 kc), the
// columns of a thread's blocks), prefetched in address order by the first
// row tiles of blocks narrower than four vectors, as many lines per step of
// their k loops as they read (NV), so that the chunk is in L2 when its tiles
// read it. Their own reads take two lines or fewer of a row, a new page
// every row, which neither the hardware prefetchers nor a prefetch a few
// rows ahead (as the four-vector tiles do) cover well: measured on the
// benchmark's shapes, one thread, on the AMD Zen 4 host of BENCHMARKS.md,
// the stream took 0.81-0.90x the time of that prefetch at block 32, density
// 0.25 (the 16/64 cell's recurrent product, N = 2048), 0.84-0.92x at N =
// 1024, 0.91-1.0x at density 0.5, 0.83-0.94x at block 16, and was within 4%
// at densities 0.1 and 1; at block 64 it was 1.07-1.09x at density 0.1 and
// within 2% elsewhere, so four-vector tiles keep their own prefetch. (Not
// measured on the Intel host of the previous run, where the kernel with
// 32-row chunks and this stream for every block width took 1.1-1.4x the
// time of 64-row chunks with the per-tile prefetch.)
// Null `line`: done.
struct NextChunk {
  const char* line;     // next line to prefetch
  const char* row_end;  // end of the current row's span
  int64_t span;         // bytes of a row's span
  int64_t stride;       // bytes from one row to the next
  int64_t rows;         // rows left after the current one
  template <int Lines>
  inline void Step() {
    for (int i = 0; i < Lines && line != nullptr; ++i) {
      __builtin_prefetch(line);
      line += 64;
      if (line >= row_end) {
        if (rows-- > 0) {
          row_end += stride;
          line = row_end - span;
        } else {
          line = nullptr;
        }
      }
    }
  }
};

// The stream over rows [k, k + kc) of w, columns [c0, c1) (leading dim ld,
// c0 < c1): empty for kc <= 0.
template <typename S>
NextChunk NextChunkOf(const S* w, int64_t ld, int64_t k, int64_t kc, int64_t c0,
                      int64_t c1) {
  if (kc <= 0) return NextChunk{nullptr, nullptr, 0, 0, 0};
  const char* start = reinterpret_cast<const char*>(w + k * ld + c0);
  const int64_t span = (c1 - c0) * static_cast<int64_t>(sizeof(S));
  // Lines from the one holding the first byte: the row's span rounded out.
  const char* aligned = reinterpret_cast<const char*>(
      reinterpret_cast<uintptr_t>(start) & ~uintptr_t{63});
  const int64_t lead = start - aligned;
  return NextChunk{aligned, aligned + lead + span, lead + span,
                   ld * static_cast<int64_t>(sizeof(S)), kc - 1};
}

// y[rows r, NV vectors] (+)= sum over kc of x[r][k] * w[k, :], w row k at
// wp + k * ldw. `first`: the chunk starts the sum (else it accumulates onto
// y). Each step of k advances `next`, when given; else the first `ahead`
// steps prefetch the slice's row kPrefetchRows further down.
template <typename S, int R, int NV>
void Tile(int64_t kc, const S* const* xr, const S* wp, int64_t ldw,
          S* const* yr, bool first, NextChunk* next, int64_t ahead) {
  using V = typename VecOf<S>::type;
  constexpr int kLanes = sizeof(V) / sizeof(S);
  V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (first) {
        acc[r][v] = V{};
      } else {
        __builtin_memcpy(&acc[r][v], yr[r] + v * kLanes, sizeof(V));
      }
    }
  }
  const S* xs[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) xs[r] = xr[r];
  for (int64_t k = 0; k < kc; ++k) {
    if (NV < 4 && next != nullptr) {  // (no branch in four-vector tiles)
      next->Step<NV>();
    } else if (k < ahead) {
      PrefetchLines<S, NV>(wp + (k + kPrefetchRows) * ldw);
    }
    V wv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(&wv[v], wp + k * ldw + v * kLanes, sizeof(V));
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const S xv = xs[r][k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += xv * wv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(yr[r] + v * kLanes, &acc[r][v], sizeof(V));
    }
  }
}

// Columns that are not a whole vector (block sizes below or between
// multiples of the vector width; the unstructured gating's one-column
// blocks): each output is a dot product along k, in vectors, of a row of x
// and a column of the chunk's slice of w, transposed into wt (row c: column
// c, kKChunk apart). R rows share each vector of wt. (A scalar loop over k
// with the columns innermost ran at a quarter of a multiply-add per cycle:
// one column of 1024 rows took longer than the dense product of all rows.)
template <typename S, int R>
void NarrowTile(int64_t kc, int64_t width, const S* const* xr, const S* wt,
                S* const* yr, bool first) {
  using V = typename VecOf<S>::type;
  constexpr int64_t kLanes = sizeof(V) / sizeof(S);
  const int64_t kv = kc - kc % kLanes;
  for (int64_t c = 0; c < width; ++c) {
    const S* wc = wt + c * kKChunk;
    V acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = V{};
    for (int64_t k = 0; k < kv; k += kLanes) {
      V wv;
      __builtin_memcpy(&wv, wc + k, sizeof(V));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        V xv;
        __builtin_memcpy(&xv, xr[r] + k, sizeof(V));
        acc[r] += xv * wv;
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      S sum = S(0);
      for (int64_t i = 0; i < kLanes; ++i) sum += acc[r][i];
      for (int64_t k = kv; k < kc; ++k) sum += xr[r][k] * wc[k];
      yr[r][c] = first ? sum : yr[r][c] + sum;
    }
  }
}

// Rows per NarrowTile: independent accumulators enough to keep the
// multiply-add units busy.
constexpr int kNarrowRows = 8;

template <typename S, int R = kNarrowRows>
void NarrowRows(int64_t rows, int64_t kc, int64_t width, const S* const* xr,
                const S* wt, S* const* yr, bool first) {
  if constexpr (R > 0) {
    if (rows == R) return NarrowTile<S, R>(kc, width, xr, wt, yr, first);
    return NarrowRows<S, R - 1>(rows, kc, width, xr, wt, yr, first);
  }
}

template <typename S, int NV, int R>
void TileRows(int64_t rows, int64_t kc, const S* const* xr, const S* wp,
              int64_t ldw, S* const* yr, bool first, NextChunk* next,
              int64_t ahead) {
  if constexpr (R > 0) {
    if (rows == R) return Tile<S, R, NV>(kc, xr, wp, ldw, yr, first, next, ahead);
    return TileRows<S, NV, R - 1>(rows, kc, xr, wp, ldw, yr, first, next, ahead);
  }
}

// Most rows per tile for NV vectors of columns: R * NV accumulators and the
// NV w vectors fit in the 32 vector registers (x is broadcast from memory).
// Measured on the benchmark's shapes, one thread, against 6 and 10 (which
// kept the R row pointers in general registers): 7 rows of 4 vectors and 13
// of 2 take 0.82-0.89x the time at density 0.25, 0.9-0.94x at block 32 and
// densities 0.1-1; 14 of 2 was no better, and slower at block 64, density 0.1.
template <int NV>
constexpr int MaxRows() {
  return NV >= 4 ? 7 : NV == 2 ? 13 : 12;
}

// The active rows of one column block.
struct BlockRows {
  const int64_t* rows;
  int64_t count;
};

// One column tile of NV vectors at `col`, all active rows of its block, for
// k in [k0, k0 + kc); the first row tile advances `next`, or (null)
// prefetches the slice ahead. The row tiles have balanced sizes (15 rows of
// 4 vectors: 5 + 5 + 5). (On earlier hosts, copying the slice into a
// contiguous panel for the row tiles to share, BLAS-style, was slower:
// 1.1-1.3x at densities 0.25-0.5, block 32 and 64, one thread; so was
// copying the block's rows of x into one buffer per chunk: 1.06-1.14x at
// density 0.25, blocks 16-64. On the AMD host, copying the rows of x was
// again within noise, 0.94-1.05x at block 32.)
template <typename S, int NV>
void ColumnTile(const BlockSparseGeometry& g, const S* x, const S* w,
                int64_t col, BlockRows rows, int64_t k0, int64_t kc, S* y,
                NextChunk* next) {
  constexpr int kRows = MaxRows<NV>();
  const int64_t K = g.k, N = g.n, m = rows.count;
  const S* wp = w + k0 * N + col;
  const int64_t tiles = (m + kRows - 1) / kRows;
  // Steps whose row kPrefetchRows further down is still a row of w.
  const int64_t ahead = std::clamp<int64_t>(K - k0 - kPrefetchRows, 0, kc);
  const S* xr[kRows];
  S* yr[kRows];
  for (int64_t t = 0, i0 = 0; t < tiles; ++t) {
    const int64_t r = (m - i0) / (tiles - t);
    for (int64_t i = 0; i < r; ++i) {
      xr[i] = x + rows.rows[i0 + i] * K + k0;
      yr[i] = y + rows.rows[i0 + i] * N + col;
    }
    TileRows<S, NV, kRows>(r, kc, xr, wp, N, yr, k0 == 0, t == 0 ? next : nullptr,
                           t == 0 ? ahead : 0);
    i0 += r;
  }
}

// Column tiles of the columns [col, end) (adjacent blocks with the same
// active rows): the widest that fit, 2-vector tiles when there are few rows
// (more rows per tile, no room for 4-vector tiles of that height).
template <typename S>
void ForwardBlockChunk(const BlockSparseGeometry& g, const S* x, const S* w,
                       int64_t col, int64_t end, BlockRows rows, int64_t k0,
                       int64_t kc, S* y, NextChunk* next) {
  using V = typename VecOf<S>::type;
  constexpr int64_t kLanes = sizeof(V) / sizeof(S);
  const bool few = rows.count <= MaxRows<2>() && rows.count > MaxRows<4>();
  for (; !few && end - col >= 4 * kLanes; col += 4 * kLanes) {
    ColumnTile<S, 4>(g, x, w, col, rows, k0, kc, y, next);
  }
  for (; end - col >= 2 * kLanes; col += 2 * kLanes) {
    ColumnTile<S, 2>(g, x, w, col, rows, k0, kc, y, next);
  }
  for (; end - col >= kLanes; col += kLanes) {
    ColumnTile<S, 1>(g, x, w, col, rows, k0, kc, y, next);
  }
  if (col < end) {  // fewer than kLanes columns
    const int64_t width = end - col;
    alignas(64) S wt[kLanes * kKChunk];
    const S* wp = w + k0 * g.n + col;
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t c = 0; c < width; ++c) wt[c * kKChunk + k] = wp[k * g.n + c];
    }
    const S* xr[kNarrowRows];
    S* yr[kNarrowRows];
    for (int64_t i0 = 0; i0 < rows.count; i0 += kNarrowRows) {
      const int64_t r = std::min<int64_t>(kNarrowRows, rows.count - i0);
      for (int64_t i = 0; i < r; ++i) {
        xr[i] = x + rows.rows[i0 + i] * g.k + k0;
        yr[i] = y + rows.rows[i0 + i] * g.n + col;
      }
      NarrowRows<S>(r, kc, width, xr, wt, yr, k0 == 0);
    }
  }
}

// Two adjacent blocks of two vectors each (block 32 in float, 16 in double)
// whose active rows are few (at density 0.1, 6 or 7 each): one tile computes
// both, so that each row of w it reads is 4 cache lines instead of 2. Reading
// w costs about as much per row (a new page) as per line: measured on the
// benchmark's shapes, one thread, a density 0.1 forward took 1.8x as long at
// block 32 as at block 64. ra + rb <= kPairRows rows: 2 (ra + rb)
// accumulators and the 4 w vectors fit in the 32 vector registers.
constexpr int kPairRows = 12;

// acc over the ra rows of block a (vectors 0, 1 of each w row) and the rb
// rows of block b (vectors 2, 3): x row r at xp + r * kKChunk (a copy, so that
// one register addresses all the rows), output row r at yr[r].
template <typename S, int RA, int RB>
void PairTile(int64_t kc, const S* xp, const S* wp, int64_t ldw, S* const* yr,
              bool first, NextChunk* next) {
  using V = typename VecOf<S>::type;
  constexpr int kLanes = sizeof(V) / sizeof(S);
  constexpr int R = RA + RB;
  V acc[R][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      if (first) {
        acc[r][v] = V{};
      } else {
        __builtin_memcpy(&acc[r][v], yr[r] + v * kLanes, sizeof(V));
      }
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    next->Step<4>();
    V wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      __builtin_memcpy(&wv[v], wp + k * ldw + v * kLanes, sizeof(V));
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const S xv = xp[r * kKChunk + k];
      acc[r][0] += xv * wv[r < RA ? 0 : 2];
      acc[r][1] += xv * wv[r < RA ? 1 : 3];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      __builtin_memcpy(yr[r] + v * kLanes, &acc[r][v], sizeof(V));
    }
  }
}

template <typename S, int RA, int RB = kPairRows - RA>
void PairRows(int64_t ra, int64_t rb, int64_t kc, const S* xp, const S* wp,
              int64_t ldw, S* const* yr, bool first, NextChunk* next) {
  if constexpr (RA > 0 && RB > 0) {
    if (ra != RA) return PairRows<S, RA - 1>(ra, rb, kc, xp, wp, ldw, yr, first, next);
    if (rb != RB) return PairRows<S, RA, RB - 1>(ra, rb, kc, xp, wp, ldw, yr, first, next);
    PairTile<S, RA, RB>(kc, xp, wp, ldw, yr, first, next);
  }
}

// Blocks blk and blk + 1 (rows a and b, a.count + b.count <= kPairRows) for
// k in [k0, k0 + kc).
template <typename S>
void ForwardPairChunk(const BlockSparseGeometry& g, const S* x, const S* w,
                      int64_t blk, BlockRows a, BlockRows b, int64_t k0,
                      int64_t kc, S* y, NextChunk* next) {
  const int64_t K = g.k, N = g.n, bs = g.block_size;
  alignas(64) S xp[kPairRows * kKChunk];
  S* yr[kPairRows];
  for (int64_t i = 0; i < a.count + b.count; ++i) {
    const bool in_a = i < a.count;
    const int64_t row = in_a ? a.rows[i] : b.rows[i - a.count];
    std::copy_n(x + row * K + k0, kc, xp + i * kKChunk);
    yr[i] = y + row * N + (in_a ? blk : blk + 1) * bs;
  }
  const S* wp = w + k0 * N + blk * bs;
  PairRows<S, kPairRows - 1>(a.count, b.count, kc, xp, wp, N, yr, k0 == 0, next);
}

// Blocks [begin, end) of the forward product in float or double: lists the
// active rows of each block, zeroes the inactive (row, block) pairs, then
// sweeps the k chunks, each over all the blocks.
template <typename S>
void ForwardBlocks(const BlockSparseGeometry& g, const S* x, const S* w,
                   const bool* mask, S* y, int64_t begin, int64_t end) {
  constexpr int64_t kLanes = sizeof(typename VecOf<S>::type) / sizeof(S);
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (K == 0) {  // every pair is 0
    for (int64_t b = 0; b < B; ++b) FillRow(y + b * N + begin * bs, (end - begin) * bs);
    return;
  }
  std::vector<int64_t> rows((end - begin) * B);
  // Runs of adjacent blocks with the same active rows: blocks [first, first +
  // count). A run is computed as one block, so that narrow blocks get wide
  // tiles where their rows agree (every block of a dense mask: at block 32,
  // density 1, measured on the benchmark's shapes, one thread, 0.74x the time
  // of block by block, and 0.66x at block 16).
  struct Run {
    int64_t first, count;
    BlockRows rows;
  };
  std::vector<Run> runs;
  for (int64_t blk = begin; blk < end; ++blk) {
    int64_t* r = rows.data() + (blk - begin) * B;
    int64_t m = 0;
    for (int64_t b = 0; b < B; ++b) {
      if (mask[b * nb + blk]) r[m++] = b;
    }
    if (m == 0) continue;
    if (!runs.empty() && runs.back().first + runs.back().count == blk &&
        runs.back().rows.count == m && std::equal(r, r + m, runs.back().rows.rows)) {
      ++runs.back().count;
    } else {
      runs.push_back({blk, 1, {r, m}});
    }
  }
  // The inactive pairs are zeroed a run of adjacent blocks at a time: one
  // fill per pair cost more than the fills' bytes (at block 32, all 64 x 64
  // pairs inactive, 44 us against 14 us, measured on the benchmark's shapes).
  for (int64_t b = 0; b < B; ++b) {
    const bool* active = mask + b * nb;
    for (int64_t blk = begin; blk < end;) {
      const int64_t run = blk;
      while (blk < end && !active[blk]) ++blk;
      if (blk > run) FillRow(y + b * N + run * bs, (blk - run) * bs);
      while (blk < end && active[blk]) ++blk;
    }
  }
  if (runs.empty()) return;
  const bool stream = bs < 4 * kLanes;  // see NextChunk
  const int64_t c0 = runs.front().first * bs;
  const int64_t c1 = (runs.back().first + runs.back().count) * bs;
  for (int64_t k0 = 0; k0 < K; k0 += kKChunk) {
    const int64_t kc = std::min(kKChunk, K - k0);
    NextChunk next_chunk{};
    if (stream) next_chunk = NextChunkOf(w, N, k0 + kc, std::min(kKChunk, K - k0 - kc), c0, c1);
    NextChunk* const next = stream ? &next_chunk : nullptr;
    for (size_t i = 0; i < runs.size();) {
      const Run& a = runs[i];
      const Run* b = i + 1 < runs.size() ? &runs[i + 1] : nullptr;
      const bool pair = bs == 2 * kLanes && b != nullptr && a.count == 1 && b->count == 1 &&
                        b->first == a.first + 1 && a.rows.count + b->rows.count <= kPairRows;
      if (pair) {
        ForwardPairChunk<S>(g, x, w, a.first, a.rows, b->rows, k0, kc, y, next);
      } else {
        ForwardBlockChunk<S>(g, x, w, a.first * bs, (a.first + a.count) * bs, a.rows, k0, kc,
                             y, next);
      }
      i += pair ? 2 : 1;
    }
  }
}

}  // namespace

template <typename T>
void BlockSparseMatmul(const BlockSparseGeometry& g, const T* x, const T* w,
                       const bool* mask, T* y, const Schedule& schedule,
                       int threads) {
  using S = typename AccOf<T>::type;
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (B == 0 || nb == 0) return;
  // The blocks are cut into ranges of equal work that the threads take in
  // turn (DynamicFor): a block's work varies with its active rows, and a pool
  // thread that wakes late takes fewer ranges. When there are fewer blocks
  // than ranges (the unstructured gating's product, U^T h^T, has a block per
  // sample, at batch 1 a single one), the rows are cut instead, each range a
  // product of its rows and all the blocks. work[i]: the multiply-adds before
  // unit i (block or row) of the cut: the active pairs' products, plus
  // zeroing the others, which is all an inactive pair costs (w is not read
  // for it); a block narrower than a vector counts as a vector, since
  // NarrowTile reads a vector of x per step of k for it. A range of work
  // [w0, w1) takes the units that start in it. Nearly empty masks run on the
  // calling thread instead of paying for a thread hand-off.
  constexpr int64_t kLanes = sizeof(typename VecOf<S>::type) / sizeof(S);
  const int64_t pair_work = K * std::max(bs, kLanes);
  const int64_t ranges_wanted = 2 * std::max(threads, 1);
  const bool by_rows = nb < ranges_wanted && B > 1;
  const int64_t units = by_rows ? B : nb;
  std::vector<int64_t> work(units + 1, 0);
  for (int64_t i = 0; i < units; ++i) {
    int64_t m = 0;
    if (by_rows) {
      m = std::count(mask + i * nb, mask + (i + 1) * nb, true);
    } else {
      for (int64_t b = 0; b < B; ++b) m += mask[b * nb + i];
    }
    work[i + 1] = work[i] + m * pair_work + (by_rows ? N : B * bs);
  }
  const int64_t total = work[units];
  const double vector_fmas = double(total) / kLanes;
  threads = static_cast<int>(std::max<double>(
      1, std::min<double>(threads, vector_fmas / kMinForwardFmasPerThread)));
  // Two ranges per thread: measured on the benchmark's shapes, four per
  // thread were no better, and one (a static split) left a thread waiting.
  const int64_t ranges = threads == 1 ? 1 : std::min<int64_t>(units, 2 * threads);
  // Blocks [begin, end) of the rows of `sub`, whose x, mask and y start at
  // xs, ms and ys.
  auto body = [&](const BlockSparseGeometry& sub, const T* xs, const bool* ms, T* ys,
                  int64_t begin, int64_t end) {
    if constexpr (std::is_same<T, S>::value) {  // float, double
      ForwardBlocks<S>(sub, xs, w, ms, ys, begin, end);
      return;
    }
    std::vector<int64_t> rows;
    Mat<S> xg, wbuf, yg;
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t col = blk * bs;
      ActiveRows(sub, ms, blk, &rows);
      const int64_t m = rows.size();
      if (m < sub.batch) {  // inactive rows are 0
        size_t next = 0;
        for (int64_t b = 0; b < sub.batch; ++b) {
          if (next < rows.size() && rows[next] == b) {
            ++next;
          } else {
            FillRow(ys + b * N + col, bs);
          }
        }
      }
      if (m == 0) continue;
      const ConstMap<S> wb = Window<T, S>(w + col, N, K, bs, &wbuf);
      GatherRows<T, S>(xs, K, 0, K, rows, &xg);
      yg.resize(m, bs);
      yg.noalias() = xg * wb;
      StoreRows(yg, [&](int64_t i) { return rows[i]; }, ys, N, col);
    }
  };
  DynamicFor(schedule, threads, ranges, [&](int64_t r) {
    const auto first_at = [&](int64_t at) {  // first unit starting at or after `at`
      return std::lower_bound(work.begin(), work.begin() + units, at) - work.begin();
    };
    const int64_t begin = first_at(r * total / ranges);
    const int64_t end = r + 1 == ranges ? units : first_at((r + 1) * total / ranges);
    if (begin >= end) return;
    if (!by_rows) return body(g, x, mask, y, begin, end);
    BlockSparseGeometry sub = g;
    sub.batch = end - begin;
    body(sub, x + begin * K, mask + begin * nb, y + begin * N, 0, nb);
  });
}

template <typename T>
void BlockSparseMatmulGradX(const BlockSparseGeometry& g, const T* dy,
                            const T* w, const bool* mask, T* dx,
                            const Schedule& schedule, int threads) {
  using S = typename AccOf<T>::type;
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (B == 0 || K == 0) return;
  // Columns of dx are split into chunks; each chunk sums over all blocks.
  constexpr int64_t kChunk = 256;
  const int64_t chunks = (K + kChunk - 1) / kChunk;
  const double active = nb > 0 ? double(CountActive(g, mask)) : 0.0;
  const double cost = active * (bs * kChunk + kChunk + bs) + B * kChunk;
  ShardedFor(schedule, threads, chunks, chunks * cost, kMinShardWork, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    Mat<S> acc, dyg, wbuf, tmp;
    for (int64_t c = begin; c < end; ++c) {
      const int64_t k0 = c * kChunk, kc = std::min(kChunk, K - k0);
      acc.setZero(B, kc);
      for (int64_t blk = 0; blk < nb; ++blk) {
        ActiveRows(g, mask, blk, &rows);
        const int64_t m = rows.size();
        if (m == 0) continue;
        const int64_t col = blk * bs;
        GatherRows<T, S>(dy, N, col, bs, rows, &dyg);
        const ConstMap<S> wb = Window<T, S>(w + k0 * N + col, N, kc, bs, &wbuf);
        tmp.resize(m, kc);
        tmp.noalias() = dyg * wb.transpose();
        for (int64_t i = 0; i < m; ++i) acc.row(rows[i]) += tmp.row(i);
      }
      StoreRows(acc, SameRow, dx, K, k0);
    }
  });
}

template <typename T>
void BlockSparseMatmulGradW(const BlockSparseGeometry& g, const T* x,
                            const T* dy, const bool* mask, T* dw,
                            const Schedule& schedule, int threads) {
  using S = typename AccOf<T>::type;
  const int64_t B = g.batch, K = g.k, N = g.n, bs = g.block_size;
  const int64_t nb = g.num_blocks();
  if (K == 0 || nb == 0) return;
  const double pairs_per_block =
      B > 0 ? double(CountActive(g, mask)) / nb : 0.0;
  const double cost = pairs_per_block * (K * bs + K + bs) + K * bs;
  ShardedFor(schedule, threads, nb, nb * cost, kMinShardWork, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    Mat<S> xg, dyg, res;
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t col = blk * bs;
      ActiveRows(g, mask, blk, &rows);
      const int64_t m = rows.size();
      if (m == 0) {
        for (int64_t k = 0; k < K; ++k) FillRow(dw + k * N + col, bs);
        continue;
      }
      GatherRows<T, S>(dy, N, col, bs, rows, &dyg);
      if constexpr (std::is_same<T, S>::value) {
        MutableMap<S> out(dw + col, K, bs, Eigen::OuterStride<>(N));
        if (m == B) {
          out.noalias() =
              ConstMap<S>(x, B, K, Eigen::OuterStride<>(K)).transpose() * dyg;
        } else {
          GatherRows<T, S>(x, K, 0, K, rows, &xg);
          out.noalias() = xg.transpose() * dyg;
        }
      } else {
        GatherRows<T, S>(x, K, 0, K, rows, &xg);
        res.resize(K, bs);
        res.noalias() = xg.transpose() * dyg;
        StoreRows(res, SameRow, dw, N, col);
      }
    }
  });
}

#define KERAS_BANDRNN_INSTANTIATE(T)                                        \
  template void BlockSparseMatmul<T>(const BlockSparseGeometry&, const T*,  \
                                     const T*, const bool*, T*,             \
                                     const Schedule&, int);                 \
  template void BlockSparseMatmulGradX<T>(const BlockSparseGeometry&,       \
                                          const T*, const T*, const bool*,  \
                                          T*, const Schedule&, int);        \
  template void BlockSparseMatmulGradW<T>(const BlockSparseGeometry&,       \
                                          const T*, const T*, const bool*,  \
                                          T*, const Schedule&, int);
KERAS_BANDRNN_FOR_EACH_DTYPE(KERAS_BANDRNN_INSTANTIATE)
#undef KERAS_BANDRNN_INSTANTIATE

}  // namespace cpu
}  // namespace keras_bandrnn
