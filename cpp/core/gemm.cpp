#include "core/gemm.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <new>
#include <type_traits>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "core/gemm_kernel.h"
#include "core/parallel.h"

namespace ember {

namespace {

template <class T, int Order>
using CMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0,
                        Eigen::OuterStride<>>;
template <class T>
using OutMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                          Eigen::OuterStride<>>;

// A block of op(X): rows [r0, r0+nr) and columns [c0, c0+nc) of the logical R x Ccols matrix.
// Stored row-major R x Ccols (trans=false, ld=Ccols) or row-major Ccols x R (trans=true, ld=R),
// which is the same as column-major R x Ccols.
template <class T, bool Trans>
auto block_of(const T* X, int64_t R, int64_t Ccols, int64_t r0, int64_t nr, int64_t c0,
              int64_t nc) {
  if constexpr (Trans) {
    return CMap<T, Eigen::ColMajor>(X + c0 * R + r0, nr, nc, Eigen::OuterStride<>(R));
  } else {
    return CMap<T, Eigen::RowMajor>(X + r0 * Ccols + c0, nr, nc, Eigen::OuterStride<>(Ccols));
  }
}


// Epilogue of gemm_bias_act (gk::bias_relu). The packed float path hands it to the micro-kernel,
// which applies it to each tile of the last k-block as it stores it (the same two float ops on
// the same stored value); the other paths run apply_all after the product.
template <class T>
struct Epi {
  const T* bias = nullptr;
  bool relu = false;
  bool any() const { return bias != nullptr || relu; }
  // The whole M x N matrix, rows split over threads.
  void apply_all(T* C, int64_t M, int64_t N) const {
    if (!any()) return;
    parallel_for(M, 2 * N, [&](int64_t r0, int64_t r1) {
      gk::bias_relu(C + r0 * N, N, r1 - r0, N, bias, relu);
    });
  }
};

#if defined(__AVX2__) && defined(__FMA__)
#define EMBER_PACKED_SGEMM 1

// ---- float: GotoBLAS/BLIS-style packed GEMM with an AVX2/FMA 6x16 micro-kernel ----------------
// (run as 12x32 zmm tiles by gk::micro_grid where AVX-512 is there; same panels, same bits)
//
// Loops (outer to inner): jc over N in blocks of nc_block(kc) columns; pc over K in equal blocks of
// <= kKC (a function of K only); the packed B block (kc x nc, panels of 16 columns) is shared by
// all threads; the M x nc output is cut into tasks (blocks of <= kMC rows times column chunks,
// both functions of the shape only), each packing its own A block (mc x kc, panels of 6 rows)
// into a per-thread buffer and running the micro-kernel over it.
// Every output element is ((0 + sum over k-block 0) + sum over k-block 1) + ... (or C + ... when
// accumulating), each k-block sum formed in k order from zero in the micro-kernel: the arithmetic
// depends on K only, so results are bitwise identical whatever the thread count or task split.

using gk::kMR;
using gk::kNR;
using gk::kGridNB;
using gk::micro_grid;
using gk::pack_a;
using gk::pack_b_panel;
using gk::pack_b_rows;

// k-blocks of up to 1024: K <= 1024 (every MLP / RNN layer here) is one block, so each C tile
// is written once instead of once per 256 k. The B micro-panel (kc x 16, up to 64 KiB) then
// streams from L2 instead of staying in L1, which Zen 3's L2 keeps up with: against kc = 256,
// 1024x784x512 went 90.0 -> 92.9 GFLOP/s at one thread and 256x1024x1024 166.9 -> 175.8 at two.
constexpr int64_t kKC = 1024;
constexpr int64_t kMC = 144;  // A block <= 144 rows (row blocks are equal: M = 1024 gives 128)
// Packed B block of the k-blocked path: kc x nc <= ~4 MiB (in L3), nc a multiple of 16.
constexpr int64_t kBBlock = int64_t(1) << 20;
inline int64_t nc_block(int64_t kcb) { return std::max<int64_t>(1, kBBlock / kcb / kNR - 1) * kNR; }

// Per-thread packing buffers (scratch slots 0 and 1 are the GEMM's).
inline float* a_buffer(size_t n) { return gk::scratch<0>(n); }
inline float* b_buffer(size_t n) { return gk::scratch<1>(n); }
// The few B panels a task packs right before use (wholek_tasks with Bsrc).
inline float* panel_buffer(size_t n) { return gk::scratch<2>(n); }


// Whole-K variant for op(B) of at most kWholeB floats (the MLP / RNN / im2col sizes): all of B is
// packed in one parallel region (k-blocks x panels), then one region of tasks each runs every
// k-block for its (row block, column chunks): two parallel regions per call instead of two per
// k-block. Same k-blocks and micro-kernel calls per output tile, so the same bits as below.
constexpr int64_t kWholeB = int64_t(1) << 20;  // 4 MiB of packed B
// C of at least this many floats (256 KiB) is taken to be out of cache when a tile is stored
// (micro_grid's fetch_c): the smallest C where prefetching measured a gain was 128x784
// (1.05-1.07x); LeNet's products (C of 64x120 and the like, in cache) lost with it.
constexpr int64_t kFetchC = int64_t(1) << 16;

// Sizes of the whole-K blocking: a function of the shape only.
struct WholeK {
  int64_t nkb, kcb, mcb, nmblocks, npanels, ppc, nch, ntasks;
  WholeK(int64_t M, int64_t N, int64_t K) {
    nkb = (K + kKC - 1) / kKC;
    kcb = (K + nkb - 1) / nkb;
    const int64_t nmb = (M + kMC - 1) / kMC;
    mcb = ((M + nmb - 1) / nmb + kMR - 1) / kMR * kMR;
    nmblocks = (M + mcb - 1) / mcb;
    npanels = (N + kNR - 1) / kNR;
    const int64_t want_chunks = std::max<int64_t>(1, (16 + nmblocks - 1) / nmblocks);
    const int64_t nchunks = std::min(npanels, want_chunks);
    ppc = ((npanels + nchunks - 1) / nchunks + kGridNB - 1) / kGridNB * kGridNB;
    nch = (npanels + ppc - 1) / ppc;
    ntasks = nmblocks * nch;
  }
};

// Row-major (non-transposed) B is packed by blocks of kRowsB rows across all the panels
// (gk::pack_b_rows; a lone panel packed in its task is the same call over all its rows):
// panel by panel, each packed a kc-row column strip at a time, the source reads hop to a new
// row (often a new page) every 64 bytes, where neither the L2 streamer nor the TLB keeps up.
// With 16 rows per block the 16 source rows are each read front to back (16 streams) and each
// panel gets 16 rows (1 KiB) at a time. Same packed bytes. Same-process A/B (gemm_ab) against
// panel by panel: 256x1024x1024 1.08-1.10x at one thread, 1.09-1.24x at two (8 and 32 rows
// measured 1.06 and 1.05).
constexpr int64_t kRowsB = 16;

// All of op(B) (K x N) into Bp: k-block q (at pc = q * kcb) at Bp + pc * npanels * kNR, panel p
// at + p * kNR * kc. Threaded over (k-block, panel), or (k-block, kRowsB rows) for row-major B.
template <bool TB>
void pack_b_whole(float* Bp, const float* B, int64_t N, int64_t K, int64_t kcb) {
  const int64_t sbk = TB ? 1 : N, sbn = TB ? K : 1;
  const int64_t nkb = (K + kcb - 1) / kcb, npanels = (N + kNR - 1) / kNR;
  if constexpr (!TB) {
    // Threaded over (k-block, block of kRowsB rows).
    const int64_t nrb = (kcb + kRowsB - 1) / kRowsB;
    parallel_for(nkb * nrb, 8 * kRowsB * N, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t pc = (i / nrb) * kcb, kc = std::min(kcb, K - pc);
        const int64_t r0 = (i % nrb) * kRowsB, r1 = std::min(kc, r0 + kRowsB);
        if (r0 < r1) pack_b_rows(Bp + pc * npanels * kNR, B, N, pc, kc, r0, r1, 0, N);
      }
    });
    return;
  }
  parallel_for(nkb * npanels, 8 * kcb * kNR, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t q = i / npanels, p = i % npanels;
      const int64_t pc = q * kcb, kc = std::min(kcb, K - pc);
      pack_b_panel<TB>(Bp + pc * npanels * kNR + p * kNR * kc, B, sbk, sbn, pc, kc, p * kNR,
                       std::min(kNR, N - p * kNR));
    }
  });
}

// The tasks of the whole-K path over a B packed as pack_b_whole does. When B is not packed yet
// (Bsrc given) and there is a single row block, every panel is used by one task only: that task
// packs it right before use (one parallel region per call, the panel still hot in L1), into a
// per-thread buffer of kGridNB panels that stays in cache. (Packed at its place in a whole-B
// buffer, 1.6 MB for W1's 784x512 layer, each panel's stores went to lines out of L2, and that
// pack was 7% of a W1 step.)
template <bool TA, bool TB>
void wholek_tasks(const WholeK& wk, int64_t M, int64_t N, int64_t K, const float* A, float* Bp,
                  const float* Bsrc, float* C, bool acc, const Epi<float>& epi) {
  const int64_t sai = TA ? 1 : K, sak = TA ? M : 1;
  const int64_t sbk = TB ? 1 : N, sbn = TB ? K : 1;
  const int64_t kcb = wk.kcb, mcb = wk.mcb, npanels = wk.npanels, ppc = wk.ppc, nch = wk.nch;
  // Prefetch C tiles (micro_grid's fetch_c) only where C is large enough to be out of cache.
  const bool fetch_c = M * N >= kFetchC;
  parallel_for(wk.ntasks, 2 * mcb * K * ppc * kNR, [&](int64_t t0, int64_t t1) {
    float* Ap = a_buffer(static_cast<size_t>(mcb * kcb));
    float* Bt = Bsrc ? panel_buffer(static_cast<size_t>(kGridNB * kNR * kcb)) : nullptr;
    for (int64_t t = t0; t < t1;) {
      // This thread's consecutive tasks of one row block: pack each A k-block once for them.
      const int64_t mb = t / nch, tend = std::min(t1, (mb + 1) * nch);
      const int64_t ch0 = t % nch, ch1 = ch0 + (tend - t);
      const int64_t i0 = mb * mcb, mc = std::min(mcb, M - i0);
      const int64_t pbeg = ch0 * ppc, pend = std::min(npanels, ch1 * ppc);
      for (int64_t pc = 0; pc < K; pc += kcb) {
        const int64_t kc = std::min(kcb, K - pc);
        const bool load_c = acc || pc > 0;
        pack_a<TA>(Ap, A, sai, sak, i0, mc, pc, kc);
        for (int64_t p = pbeg; p < pend; p += kGridNB) {
          const int64_t pe = std::min(pend, p + kGridNB);
          float* bp = Bsrc ? Bt : Bp + pc * npanels * kNR + p * kNR * kc;
          if (Bsrc)
            for (int64_t q = p; q < pe; ++q)
              pack_b_panel<TB>(bp + (q - p) * kNR * kc, Bsrc, sbk, sbn, pc, kc, q * kNR,
                               std::min(kNR, N - q * kNR));
          // The last k-block's tiles get the epilogue as they are stored.
          const bool last = pc + kc >= K;
          micro_grid(kc, Ap, kMR * kc, mc, bp, kNR * kc, std::min(N, pe * kNR) - p * kNR,
                     C + i0 * N + p * kNR, N, load_c,
                     last && epi.bias ? epi.bias + p * kNR : nullptr, last && epi.relu,
                     fetch_c);
        }
      }
      t = tend;
    }
  });
}

template <bool TA, bool TB>
void packed_sgemm_wholek(int64_t M, int64_t N, int64_t K, const float* A, const float* B,
                         float* C, bool acc, const Epi<float>& epi) {
  const WholeK wk(M, N, K);
  // A single row block uses each panel once: its task packs it right before use, in L1. Except
  // a row-major B of 64K floats or more: its panel-by-panel reads are slow (kRowsB), and packing
  // it whole by rows first measured 1.05-1.21x (128x512x784, 64x1024x1024, 16x784x128 at one
  // thread); a smaller B is packed faster in the task than a second parallel region costs (at
  // two threads 128x16x784 lost 7% packed whole).
  const bool pack_in_task = wk.nmblocks == 1 && (TB || K * N < (int64_t(1) << 16));
  if (pack_in_task) {
    wholek_tasks<TA, TB>(wk, M, N, K, A, nullptr, B, C, acc, epi);
    return;
  }
  float* Bp = b_buffer(static_cast<size_t>(wk.npanels * kNR * K));
  pack_b_whole<TB>(Bp, B, N, K, wk.kcb);
  wholek_tasks<TA, TB>(wk, M, N, K, A, Bp, nullptr, C, acc, epi);
}

template <bool TA, bool TB>
void packed_sgemm(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
                  bool acc, const Epi<float>& epi) {
  if (K * ((N + kNR - 1) / kNR * kNR) <= kWholeB) {
    packed_sgemm_wholek<TA, TB>(M, N, K, A, B, C, acc, epi);
    return;
  }
  const int64_t sai = TA ? 1 : K, sak = TA ? M : 1;
  const int64_t sbk = TB ? 1 : N, sbn = TB ? K : 1;
  // Equal k-blocks of at most kKC: the k-summation order is a function of K only.
  const int64_t nkb = (K + kKC - 1) / kKC, kcb = (K + nkb - 1) / nkb;
  // Row blocks: equal, multiples of kMR, at most kMC.
  const int64_t nmb = (M + kMC - 1) / kMC;
  const int64_t mcb = ((M + nmb - 1) / nmb + kMR - 1) / kMR * kMR;
  const int64_t nmblocks = (M + mcb - 1) / mcb;
  const int64_t ncb = nc_block(kcb);
  for (int64_t jc = 0; jc < N; jc += ncb) {
    const int64_t nc = std::min(ncb, N - jc);
    const int64_t npanels = (nc + kNR - 1) / kNR;
    // Column chunks so that there are >= ~16 tasks (shape-only; an odd handful of row blocks
    // would leave one of two threads idle for a block's time). A thread's consecutive tasks share
    // a row block, so its packed A block is reused across chunks.
    const int64_t want_chunks = std::max<int64_t>(1, (16 + nmblocks - 1) / nmblocks);
    const int64_t nchunks = std::min(npanels, want_chunks);
    // panels per chunk, whole micro_grid tiles
    const int64_t ppc = ((npanels + nchunks - 1) / nchunks + kGridNB - 1) / kGridNB * kGridNB;
    const int64_t ntasks = nmblocks * ((npanels + ppc - 1) / ppc);
    float* Bp = b_buffer(static_cast<size_t>(npanels * kNR * kcb));
    for (int64_t pc = 0; pc < K; pc += kcb) {
      const int64_t kc = std::min(kcb, K - pc);
      const bool load_c = acc || pc > 0;
      if constexpr (TB) {
        parallel_for(npanels, 8 * kc * kNR, [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p)
            pack_b_panel<TB>(Bp + p * kNR * kc, B, sbk, sbn, pc, kc, jc + p * kNR,
                             std::min(kNR, nc - p * kNR));
        });
      } else {
        parallel_for((kc + kRowsB - 1) / kRowsB, 8 * kRowsB * nc, [&](int64_t i0, int64_t i1) {
          pack_b_rows(Bp, B, N, pc, kc, i0 * kRowsB, std::min(kc, i1 * kRowsB), jc, nc);
        });
      }
      const int64_t nch = (npanels + ppc - 1) / ppc;
      parallel_for(ntasks, 2 * mcb * kc * ppc * kNR, [&](int64_t t0, int64_t t1) {
        float* Ap = a_buffer(static_cast<size_t>(mcb * kcb));
        int64_t packed_mb = -1;
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t mb = t / nch, ch = t % nch;
          const int64_t i0 = mb * mcb, mc = std::min(mcb, M - i0);
          if (mb != packed_mb) {
            pack_a<TA>(Ap, A, sai, sak, i0, mc, pc, kc);
            packed_mb = mb;
          }
          const int64_t pbeg = ch * ppc, pend = std::min(npanels, pbeg + ppc);
          const bool last = pc + kc >= K;
          micro_grid(kc, Ap, kMR * kc, mc, Bp + pbeg * kNR * kc, kNR * kc,
                     std::min(nc, pend * kNR) - pbeg * kNR, C + i0 * N + jc + pbeg * kNR, N,
                     load_c, last && epi.bias ? epi.bias + jc + pbeg * kNR : nullptr,
                     last && epi.relu, M * N >= kFetchC);
        }
      });
    }
  }
}

#endif  // AVX2 && FMA

int64_t block_size(int64_t dim) {
  // At most ~16 blocks, never smaller than 64 rows: depends on the shape only.
  int64_t b = (dim + 15) / 16;
  b = (b + 15) / 16 * 16;
  return std::max<int64_t>(64, b);
}

template <class T, bool TA, bool TB>
void eigen_gemm(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C, bool acc) {
  const bool split_m = M >= N;
  const int64_t dim = split_m ? M : N;
  const int64_t bs = block_size(dim);
  const int64_t nblocks = (dim + bs - 1) / bs;
  const int64_t other = split_m ? N : M;
  parallel_for(nblocks, 2 * bs * other * K, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * bs, len = std::min(bs, dim - s);
      const int64_t m0 = split_m ? s : 0, mn = split_m ? len : M;
      const int64_t n0 = split_m ? 0 : s, nn = split_m ? N : len;
      auto a = block_of<T, TA>(A, M, K, m0, mn, 0, K);
      auto bm = block_of<T, TB>(B, K, N, 0, K, n0, nn);
      OutMap<T> c(C + m0 * N + n0, mn, nn, Eigen::OuterStride<>(N));
      if (K == 0) {
        if (!acc) c.setZero();
      } else if (acc) {
        c.noalias() += a * bm;
      } else {
        c.noalias() = a * bm;
      }
    }
  });
}

#ifdef EMBER_PACKED_SGEMM
// Shape-based choice between the packed kernel and Eigen (a function of the shape only).
bool use_packed(int64_t M, int64_t N, int64_t K) {
  (void)N;
  (void)K;
  // EMBER_GEMM_FORCE=eigen|packed (read once) pins the choice, for tests and benchmarks.
  static const int force = [] {
    const char* e = std::getenv("EMBER_GEMM_FORCE");
    return !e ? 0 : e[0] == 'e' ? 1 : e[0] == 'p' ? 2 : 0;
  }();
  if (force) return force == 2;
  return M >= 12;  // measured: at M = 8 Eigen is a little faster, at 16 the packed path wins
}
#endif

}  // namespace

namespace {

template <class T>
void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C,
               bool accumulate, const Epi<T>& epi) {
  if (M == 0 || N == 0) return;
#ifdef EMBER_PACKED_SGEMM
  if constexpr (std::is_same_v<T, float>) {
    if (use_packed(M, N, K) && K > 0) {
      if (!ta && !tb) packed_sgemm<false, false>(M, N, K, A, B, C, accumulate, epi);
      else if (!ta && tb) packed_sgemm<false, true>(M, N, K, A, B, C, accumulate, epi);
      else if (ta && !tb) packed_sgemm<true, false>(M, N, K, A, B, C, accumulate, epi);
      else packed_sgemm<true, true>(M, N, K, A, B, C, accumulate, epi);
      return;
    }
  }
#endif
  if (K == 0) {
    if (!accumulate) std::fill(C, C + M * N, T(0));
  } else if (!ta && !tb) {
    eigen_gemm<T, false, false>(M, N, K, A, B, C, accumulate);
  } else if (!ta && tb) {
    eigen_gemm<T, false, true>(M, N, K, A, B, C, accumulate);
  } else if (ta && !tb) {
    eigen_gemm<T, true, false>(M, N, K, A, B, C, accumulate);
  } else {
    eigen_gemm<T, true, true>(M, N, K, A, B, C, accumulate);
  }
  epi.apply_all(C, M, N);
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C,
          bool accumulate) {
  gemm_impl<T>(ta, tb, M, N, K, A, B, C, accumulate, Epi<T>{});
}

template <class T>
void gemm_bias_act(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B,
                   T* C, const T* bias, bool relu) {
  Epi<T> epi;
  epi.bias = bias;
  epi.relu = relu;
  gemm_impl<T>(ta, tb, M, N, K, A, B, C, false, epi);
}

template <class T>
PackedB<T>::PackedB(bool trans_b, int64_t K, int64_t N, const T* B, int64_t rows_hint)
    : tb_(trans_b), K_(K), N_(N), B_(B) {
#ifdef EMBER_PACKED_SGEMM
  if constexpr (std::is_same_v<T, float>) {
    if (K > 0 && N > 0 && use_packed(rows_hint, N, K) &&
        K * ((N + kNR - 1) / kNR * kNR) <= kWholeB) {
      const size_t n = static_cast<size_t>((N + kNR - 1) / kNR * kNR * K);
      packed_ = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (!packed_) throw std::bad_alloc();
      const WholeK wk(rows_hint, N, K);
      if (trans_b) pack_b_whole<true>(packed_, B, N, K, wk.kcb);
      else pack_b_whole<false>(packed_, B, N, K, wk.kcb);
    }
  }
#endif
}

template <class T>
PackedB<T>::~PackedB() {
  std::free(packed_);
}

template <class T>
void PackedB<T>::multiply(int64_t M, const T* A, T* C, bool accumulate) const {
#ifdef EMBER_PACKED_SGEMM
  if constexpr (std::is_same_v<T, float>) {
    if (packed_ && M > 0 && use_packed(M, N_, K_)) {
      // The packed layout depends on K and N only (WholeK's k-blocks are a function of K).
      const WholeK wk(M, N_, K_);
      if (tb_) wholek_tasks<false, true>(wk, M, N_, K_, A, packed_, nullptr, C, accumulate, {});
      else wholek_tasks<false, false>(wk, M, N_, K_, A, packed_, nullptr, C, accumulate, {});
      return;
    }
  }
#endif
  gemm<T>(false, tb_, M, N_, K_, A, B_, C, accumulate);
}

template class PackedB<float>;
template class PackedB<double>;

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, const float*,
                          float*, bool);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, const double*,
                           double*, bool);
template void gemm_bias_act<float>(bool, bool, int64_t, int64_t, int64_t, const float*,
                                   const float*, float*, const float*, bool);
template void gemm_bias_act<double>(bool, bool, int64_t, int64_t, int64_t, const double*,
                                    const double*, double*, const double*, bool);

}  // namespace ember
