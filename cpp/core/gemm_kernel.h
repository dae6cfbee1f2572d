// ember/core/gemm_kernel: the float building blocks of the packed GEMM, shared by core/gemm
// (general matrix products) and ops/conv (which packs im2col panels straight from the image).
// Only with AVX2+FMA (EMBER_GEMM_KERNEL is defined then); callers fall back to Eigen otherwise.
//
//   micro_6x16: C[0:mr, 0:nr] (=|+=) Ap (6 x kc) * Bp (kc x 16), both packed k-major. The k-sum is
//               formed from zero, then stored or added to C: the same bits whatever C held.
//   micro_grid: a block of such tiles (many A panels x many B panels); with AVX-512 it runs them
//               as 12 x 32 zmm tiles (micro_zmm), bitwise the same as the 6 x 16 loops. Given a
//               bias (per column) or relu, each finished tile gets + bias then ReLU as stored;
//               fetch_c prefetches each tile's C lines first (for a C long out of cache).
//   pack_a:     rows of op(A) into 6-row panels (zero rows past the end).
//   pack_b_rows: rows of a k-block of a row-major B into its 16-column panels.
//   pack_b_panel: one 16-column panel of op(B) (zero columns past the end).
//   transpose8x8: an 8x8 float transpose in registers.
//   AlignedBuf, scratch<Slot>: 64-byte aligned, grow-only (per-thread) buffers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ember {
namespace gk {

// The linear layers' epilogue on rows [0, rows) x columns [0, cols) of C (ld ldc): + bias[col]
// (when given), then ReLU (when relu) with relu's own rule, x < 0 ? 0 : x (NaN and -0 pass
// through, as in ops/activation). The scalar form, for any build; micro_zmm applies the same
// two ops in its store.
template <class T>
inline void bias_relu(T* C, int64_t ldc, int64_t rows, int64_t cols, const T* bias, bool relu) {
  for (int64_t r = 0; r < rows; ++r) {
    T* row = C + r * ldc;
    if (bias)
      for (int64_t c = 0; c < cols; ++c) row[c] += bias[c];
    if (relu)
      for (int64_t c = 0; c < cols; ++c) row[c] = row[c] < T(0) ? T(0) : row[c];
  }
}

}  // namespace gk
}  // namespace ember

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EMBER_GEMM_KERNEL 1
// micro_zmm's 12 x 32 k loop in GNU inline assembly (x86-64, AVX-512, GCC); the intrinsics
// elsewhere, or with -DEMBER_NO_ASM_KERNEL.
#if defined(__AVX512F__) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(EMBER_NO_ASM_KERNEL)
#define EMBER_ASM_KERNEL 1
#else
#define EMBER_ASM_KERNEL 0
#endif

namespace ember {
namespace gk {

constexpr int64_t kMR = 6;
constexpr int64_t kNR = 16;
// B panels per micro_grid tile column: callers that hand micro_grid a few panels at a time (to
// pack them just before use) hand it this many.
#if defined(__AVX512F__)
constexpr int64_t kGridNB = 2;
#else
constexpr int64_t kGridNB = 1;
#endif

// At least n floats (n is set to how many fit), 64-byte aligned, for std::free. From 256 KiB up
// (packed GEMM operands, convolution workspaces) the block is 2 MiB aligned and rounded, and
// Linux is asked to back it with huge pages (transparent huge pages in "madvise" mode, as on
// the VM here, give none otherwise). A packed panel crosses a 4 KiB page every 64 k, and a B
// packed whole spans up to 1024 of them; fewer TLB misses is the likely reason for the gain
// (no hardware counters here to show it).
// Same-process A/B (gemm_ab), one thread: 256x1024x1024 (nn, B packed whole) 1.025-1.035,
// 64x4096x256 1.068, 128x512x784 1.018; two threads 1.016-1.027; the other products (ta, tb,
// 256^3) 0.98-1.01. Peak RSS of a W1 / W5 / W7 run +4 / +4 / +12 MB.
inline float* alloc_floats(size_t& n) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void* p = nullptr;
#if defined(__linux__)
  constexpr size_t kHuge = size_t(1) << 21;
  if (bytes >= (size_t(1) << 18)) {
    const size_t huge = (bytes + kHuge - 1) / kHuge * kHuge;
    p = std::aligned_alloc(kHuge, huge);
    if (p) {
      madvise(p, huge, MADV_HUGEPAGE);  // advice only: a refusal changes nothing
      bytes = huge;
    }
  }
#endif
  if (!p) p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  n = bytes / sizeof(float);
  return static_cast<float*>(p);
}

struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  ~AlignedBuf() { std::free(p); }
  float* get(size_t need) {
    if (need > n) {
      std::free(p);
      p = nullptr;
      n = 0;
      p = alloc_floats(need);  // need becomes the capacity
      n = need;
    }
    return p;
  }
};

// A per-thread, grow-only aligned scratch buffer; each Slot is its own buffer (callers that can
// be active at once on one thread take different slots).
template <int Slot>
inline float* scratch(size_t n) {
  thread_local AlignedBuf b;
  return b.get(n);
}

// C[0:mr, 0:nr] (=|+=) Ap (6 x kc, packed k-major) * Bp (kc x 16, packed k-major).
inline void micro_6x16(int64_t kc, const float* __restrict Ap, const float* __restrict Bp,
                       float* C, int64_t ldc, int64_t mr, int64_t nr, bool load_c) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp);
    const __m256 b1 = _mm256_load_ps(Bp + 8);
    __m256 a;
    a = _mm256_broadcast_ss(Ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(Ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(Ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(Ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(Ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(Ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    Ap += kMR;
    Bp += kNR;
  }
  if (mr == kMR && nr == kNR) {
#define EMBER_ROW(i, x0, x1)                                              \
  {                                                                       \
    float* c = C + i * ldc;                                               \
    if (load_c) {                                                         \
      _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), x0));         \
      _mm256_storeu_ps(c + 8, _mm256_add_ps(_mm256_loadu_ps(c + 8), x1)); \
    } else {                                                              \
      _mm256_storeu_ps(c, x0);                                            \
      _mm256_storeu_ps(c + 8, x1);                                        \
    }                                                                     \
  }
    EMBER_ROW(0, c00, c01)
    EMBER_ROW(1, c10, c11)
    EMBER_ROW(2, c20, c21)
    EMBER_ROW(3, c30, c31)
    EMBER_ROW(4, c40, c41)
    EMBER_ROW(5, c50, c51)
#undef EMBER_ROW
    return;
  }
  alignas(32) float out[kMR][kNR];
  _mm256_store_ps(out[0], c00);
  _mm256_store_ps(out[0] + 8, c01);
  _mm256_store_ps(out[1], c10);
  _mm256_store_ps(out[1] + 8, c11);
  _mm256_store_ps(out[2], c20);
  _mm256_store_ps(out[2] + 8, c21);
  _mm256_store_ps(out[3], c30);
  _mm256_store_ps(out[3] + 8, c31);
  _mm256_store_ps(out[4], c40);
  _mm256_store_ps(out[4] + 8, c41);
  _mm256_store_ps(out[5], c50);
  _mm256_store_ps(out[5] + 8, c51);
  for (int64_t i = 0; i < mr; ++i) {
    float* c = C + i * ldc;
    if (load_c) {
      for (int64_t j = 0; j < nr; ++j) c[j] += out[i][j];
    } else {
      for (int64_t j = 0; j < nr; ++j) c[j] = out[i][j];
    }
  }
}

#if defined(__AVX512F__)
// The AVX-512 micro-kernel: NA 6-row A panels (at Ap, Ap + as) times NB 16-column B panels (at
// Bp, Bp + bs), each packed k-major as for micro_6x16, into C[0:mr, 0:nr] (mr <= 6 NA,
// nr <= 16 NB, nr > 16 (NB - 1)). One zmm per 16 columns: 6 NA x NB accumulators (24 at 2x2).
// Every output is the same k-ordered FMA chain from zero, then the same single store or add,
// as micro_6x16: the bits do not depend on which kernel computed a tile.
// kExtra = false ignores bias, relu and fetch_c: micro_grid takes it when all three are off (the
// convolutions; products with a small C and no epilogue), which so run the kernel as before.
template <int NA, int NB, bool kExtra>
inline void micro_zmm(int64_t kc, const float* __restrict Ap, int64_t as,
                      const float* __restrict Bp, int64_t bs, float* C, int64_t ldc, int64_t mr,
                      int64_t nr, bool load_c, const float* bias, bool relu, bool fetch_c) {
  constexpr int kR = 6 * NA;
  __m512 c[kR][NB];
#pragma GCC unroll 12
  for (int i = 0; i < kR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < NB; ++j) c[i][j] = _mm512_setzero_ps();
  const float* a1 = Ap + (NA > 1 ? as : 0);
  const float* b1 = Bp + (NB > 1 ? bs : 0);
  // fetch_c: fetch the tile's C lines now, so that the final stores find them in L1 instead of
  // each missing to L3 or memory (a large C is written once per k-block, long out of cache).
  // Same-process A/B (gemm_ab), one thread: 512x128x784 (ta) 1.30x, 1024x256x1024 (ta)
  // 1.08-1.09x, 128x512x784 1.05-1.07x, 1024x784x512 (tb) 1.03-1.04x; 256^3, 2048^3 and
  // kc = 1024 shapes unchanged. How much it gains depends on where the buffers fall: another
  // build of the same A/B read 512x128x784 at 1.0x, and with the option switched off in one
  // side only, 1.6x. Over a C still in cache it costs (a W3 step lost 4-8% with it on for every
  // tile), which is why callers choose.
  if (kExtra && fetch_c)
    for (int64_t i = 0; i < std::min<int64_t>(mr, kR); ++i) {
      const char* cp = reinterpret_cast<const char*>(C + i * ldc);
      _mm_prefetch(cp, _MM_HINT_T0);
      _mm_prefetch(cp + 64, _MM_HINT_T0);
      if constexpr (NB > 1) _mm_prefetch(cp + 127, _MM_HINT_T0);  // a third line if unaligned
    }
#if EMBER_ASM_KERNEL
  // The 12 x 32 tile's k loop in assembly, four k per iteration. The same FMAs in the same k
  // order as the loop below (c = a * b + c from zero), so the same bits (gemm_ab: same=1).
  // Per k the loop below issues ~46 uops for 24 FMAs (12 cycles on two FMA ports): 12
  // broadcasts, 2 B loads, 2 prefetches, 4 pointer bumps and the loop test, near the core's 4
  // uops per cycle. Here A panel 0's six values are the FMAs' embedded broadcast operands
  // (load + FMA in one fused uop; 22 loads per k still fit the two load ports' 24 slots), panel
  // 1's are broadcast once (an indexed operand would not stay fused), and the pointer bumps and
  // loop test come once per four k: ~35 uops per k. Same-process A/B against the intrinsics
  // (gemm_ab, five runs over an hour): one thread 1024x256x1024 (ta) 1.07-1.12, 2048^3
  // 0.98-1.09, 300x784x512 (tb) 0.96-1.16, 256^3 (tb) 1.07; two threads 0.97-1.16. Alone, the
  // kernel over packed panels in cache: 1.08-1.14. Broadcasting every row (~43 uops per k) read
  // 1.00-1.01 in gemm_ab; without the B prefetches, 0.96.
  if constexpr (NA == 2 && NB == 2) {
    const int64_t asb = as * int64_t(sizeof(float)), bsb = bs * int64_t(sizeof(float));
    // k step U of the unrolled loop (r8: A panel 0 at k, r9: B panel 0 at k, panel 1 of each
    // at + asb / + bsb bytes): the B lines 8 k ahead prefetched (as below), the two B rows
    // loaded, then row R of A panel 0 as an FMA's broadcast operand and row R of panel 1
    // broadcast once into zmm28 for its two FMAs.
#define EMB_B(U)                                             \
  "prefetcht0 " #U "*64+512(%%r9)\n\t"                      \
  "prefetcht0 " #U "*64+512(%%r9,%[bsb])\n\t"               \
  "vmovups " #U "*64(%%r9), %%zmm30\n\t"                    \
  "vmovups " #U "*64(%%r9,%[bsb]), %%zmm31\n\t"
#define EMB_R0(U, R, C0, C1)                                                \
  "vfmadd231ps " #U "*24+" #R "*4(%%r8)%{1to16%}, %%zmm30, %[" #C0 "]\n\t" \
  "vfmadd231ps " #U "*24+" #R "*4(%%r8)%{1to16%}, %%zmm31, %[" #C1 "]\n\t"
#define EMB_R1(U, R, C0, C1)                                  \
  "vbroadcastss " #U "*24+" #R "*4(%%r8,%[asb]), %%zmm28\n\t" \
  "vfmadd231ps %%zmm30, %%zmm28, %[" #C0 "]\n\t"              \
  "vfmadd231ps %%zmm31, %%zmm28, %[" #C1 "]\n\t"
#define EMB_STEP(U)                                                                        \
  EMB_B(U) EMB_R0(U, 0, c00, c01) EMB_R0(U, 1, c10, c11) EMB_R0(U, 2, c20, c21)           \
      EMB_R0(U, 3, c30, c31) EMB_R0(U, 4, c40, c41) EMB_R0(U, 5, c50, c51)                \
          EMB_R1(U, 0, c60, c61) EMB_R1(U, 1, c70, c71) EMB_R1(U, 2, c80, c81)            \
              EMB_R1(U, 3, c90, c91) EMB_R1(U, 4, ca0, ca1) EMB_R1(U, 5, cb0, cb1)
    asm("vpxord %[c00], %[c00], %[c00]\n\t"
        "vpxord %[c01], %[c01], %[c01]\n\t"
        "vpxord %[c10], %[c10], %[c10]\n\t"
        "vpxord %[c11], %[c11], %[c11]\n\t"
        "vpxord %[c20], %[c20], %[c20]\n\t"
        "vpxord %[c21], %[c21], %[c21]\n\t"
        "vpxord %[c30], %[c30], %[c30]\n\t"
        "vpxord %[c31], %[c31], %[c31]\n\t"
        "vpxord %[c40], %[c40], %[c40]\n\t"
        "vpxord %[c41], %[c41], %[c41]\n\t"
        "vpxord %[c50], %[c50], %[c50]\n\t"
        "vpxord %[c51], %[c51], %[c51]\n\t"
        "vpxord %[c60], %[c60], %[c60]\n\t"
        "vpxord %[c61], %[c61], %[c61]\n\t"
        "vpxord %[c70], %[c70], %[c70]\n\t"
        "vpxord %[c71], %[c71], %[c71]\n\t"
        "vpxord %[c80], %[c80], %[c80]\n\t"
        "vpxord %[c81], %[c81], %[c81]\n\t"
        "vpxord %[c90], %[c90], %[c90]\n\t"
        "vpxord %[c91], %[c91], %[c91]\n\t"
        "vpxord %[ca0], %[ca0], %[ca0]\n\t"
        "vpxord %[ca1], %[ca1], %[ca1]\n\t"
        "vpxord %[cb0], %[cb0], %[cb0]\n\t"
        "vpxord %[cb1], %[cb1], %[cb1]\n\t"
        "mov %[pa], %%r8\n\t"
        "mov %[pb], %%r9\n\t"
        "mov %[kc], %%r10\n\t"
        "shr $2, %%r10\n\t"
        "jz 2f\n\t"
        ".p2align 5\n"
        "1:\n\t"
        EMB_STEP(0) EMB_STEP(1) EMB_STEP(2) EMB_STEP(3)
        "add $96, %%r8\n\t"
        "add $256, %%r9\n\t"
        "dec %%r10\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "mov %[kc], %%r10\n\t"
        "and $3, %%r10\n\t"
        "jz 4f\n"
        "3:\n\t"
        EMB_STEP(0)
        "add $24, %%r8\n\t"
        "add $64, %%r9\n\t"
        "dec %%r10\n\t"
        "jnz 3b\n"
        "4:\n\t"
        : [c00] "=&v"(c[0][0]), [c01] "=&v"(c[0][1]), [c10] "=&v"(c[1][0]), [c11] "=&v"(c[1][1]),
          [c20] "=&v"(c[2][0]), [c21] "=&v"(c[2][1]), [c30] "=&v"(c[3][0]), [c31] "=&v"(c[3][1]),
          [c40] "=&v"(c[4][0]), [c41] "=&v"(c[4][1]), [c50] "=&v"(c[5][0]), [c51] "=&v"(c[5][1]),
          [c60] "=&v"(c[6][0]), [c61] "=&v"(c[6][1]), [c70] "=&v"(c[7][0]), [c71] "=&v"(c[7][1]),
          [c80] "=&v"(c[8][0]), [c81] "=&v"(c[8][1]), [c90] "=&v"(c[9][0]), [c91] "=&v"(c[9][1]),
          [ca0] "=&v"(c[10][0]), [ca1] "=&v"(c[10][1]), [cb0] "=&v"(c[11][0]), [cb1] "=&v"(c[11][1])
        : [pa] "r"(Ap), [pb] "r"(Bp), [kc] "r"(kc), [asb] "r"(asb), [bsb] "r"(bsb)
        : "r8", "r9", "r10", "xmm28", "xmm30", "xmm31", "cc", "memory");
#undef EMB_STEP
#undef EMB_R1
#undef EMB_R0
#undef EMB_B
  } else
#endif
  for (int64_t k = 0; k < kc; ++k) {
    // The B panels (up to kc x 32 floats) stream from L2; fetching 8 k ahead measured +3-7%
    // (same-process A/B, 1 and 2 threads, six shapes); prefetching A as well gained nothing.
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * kNR), _MM_HINT_T0);
    if constexpr (NB > 1)
      _mm_prefetch(reinterpret_cast<const char*>(b1 + (k + 8) * kNR), _MM_HINT_T0);
    __m512 b[NB];
    b[0] = _mm512_loadu_ps(Bp + k * kNR);
    if constexpr (NB > 1) b[1] = _mm512_loadu_ps(b1 + k * kNR);
#pragma GCC unroll 12
    for (int i = 0; i < kR; ++i) {
      const __m512 a = _mm512_set1_ps((i < 6 ? Ap : a1)[k * kMR + i % 6]);
#pragma GCC unroll 2
      for (int j = 0; j < NB; ++j) c[i][j] = _mm512_fmadd_ps(a, b[j], c[i][j]);
    }
  }
  const int64_t rows = std::min<int64_t>(mr, kR);
#pragma GCC unroll 2
  for (int j = 0; j < NB; ++j) {
    const int64_t cols = std::min<int64_t>(kNR, nr - j * kNR);
    const __mmask16 m = cols >= kNR ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
    const __m512 bv =
        kExtra && bias ? _mm512_maskz_loadu_ps(m, bias + j * kNR) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < kR; ++i) {
      if (i >= rows) break;
      float* cp = C + i * ldc + j * kNR;
      __m512 v = load_c ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, cp), c[i][j]) : c[i][j];
      // The epilogue, bias_relu's two ops on the stored value: + bias, then x < 0 ? 0 : x (an
      // ordered compare: NaN and -0 pass through).
      if (kExtra && bias) v = _mm512_add_ps(v, bv);
      if (kExtra && relu)
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ),
                               _mm512_setzero_ps());
      _mm512_mask_storeu_ps(cp, m, v);
    }
  }
}
#endif

// C[0:mc, 0:nc] (=|+=) the product of ceil(mc / 6) packed A panels (the first at Ap, then every
// as floats) and ceil(nc / 16) packed B panels (every bs floats), each tile from zero as in
// micro_6x16. B panels outer, A panels inner (with kc up to 1024 both stream from L2).
// With AVX-512 the tiles are 12 x 32 (two panels of each), so one broadcast feeds two FMAs and
// one B load feeds twelve; the results are bitwise those of the 6 x 16 loops.
inline void micro_grid(int64_t kc, const float* Ap, int64_t as, int64_t mc, const float* Bp,
                       int64_t bs, int64_t nc, float* C, int64_t ldc, bool load_c,
                       const float* bias = nullptr, bool relu = false, bool fetch_c = false) {
#if defined(__AVX512F__)
  // One tile at row i, column j: two A panels where more than 6 rows remain, two B panels where
  // more than 16 columns do.
  auto tile = [&](int64_t i, int64_t j) {
    const float* ap = Ap + (i / kMR) * as;
    const float* bp = Bp + (j / kNR) * bs;
    float* c = C + i * ldc + j;
    const int64_t mr = mc - i, nr = nc - j;
    const float* bj = bias ? bias + j : nullptr;
    auto run = [&](auto extra) {
      constexpr bool kX = decltype(extra)::value;
#define EMBER_TILE(NA, NB) \
  micro_zmm<NA, NB, kX>(kc, ap, as, bp, bs, c, ldc, mr, nr, load_c, bj, relu, fetch_c)
      if (nr > kNR) {
        if (mr > kMR) EMBER_TILE(2, 2);
        else EMBER_TILE(1, 2);
      } else {
        if (mr > kMR) EMBER_TILE(2, 1);
        else EMBER_TILE(1, 1);
      }
#undef EMBER_TILE
    };
    if (bias || relu || fetch_c) run(std::true_type{});
    else run(std::false_type{});
  };
  // (A panels outer was no faster on the AVX-512 Xeon, nor kc = 384 with it.)
  for (int64_t j = 0; j < nc; j += 2 * kNR)
    for (int64_t i = 0; i < mc; i += 2 * kMR) tile(i, j);
#else
  for (int64_t j = 0; j < nc; j += kNR) {
    const float* bp = Bp + (j / kNR) * bs;
    const int64_t nr = std::min(kNR, nc - j);
    for (int64_t i = 0; i < mc; i += kMR) {
      const int64_t mr = std::min(kMR, mc - i);
      float* c = C + i * ldc + j;
      micro_6x16(kc, Ap + (i / kMR) * as, bp, c, ldc, mr, nr, load_c);
      // the epilogue, while the tile is in L1
      if (bias || relu) bias_relu(c, ldc, mr, nr, bias ? bias + j : nullptr, relu);
    }
  }
#endif
}

// In-register transpose: on return r_q holds column q of the 8x8 block whose rows were r0..r7.
inline void transpose8x8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5,
                         __m256& r6, __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(u0, u4, 0x20);
  r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
  r2 = _mm256_permute2f128_ps(u2, u6, 0x20);
  r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
  r4 = _mm256_permute2f128_ps(u0, u4, 0x31);
  r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
  r6 = _mm256_permute2f128_ps(u2, u6, 0x31);
  r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
}

#if defined(__AVX512F__)
// Six rows of a row-major source (row q at src + q * sai) into one k-major 6-row panel, 16 k at
// a time; returns how many k it packed (a multiple of 16). Two-source permutes, 18 per 96 floats
// where the 8x8 transposes take 48: pairs of rows are interleaved into 64-bit (row 2i, row 2i+1)
// pairs, then each output vector takes its 8 pairs from the three pair vectors. Packing the A
// blocks of 1024x784 (128 rows each) measured 1.5x the transposes (316 vs 476-493 us).
inline int64_t pack6_rows16(float* dst, const float* src, int64_t sai, int64_t kc) {
  const __m512i i_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i i_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                         15, 31);
  // With A, B, C the (row 0, 1), (2, 3), (4, 5) pair vectors of 8 k, the panel's 48 floats are
  // [A0 B0 C0 A1 B1 C1 A2 B2] [C2 A3 B3 C3 A4 B4 C4 A5] [B5 C5 A6 B6 C6 A7 B7 C7]: each vector
  // is a permute of A and B (indices 8+ pick B), then C's pairs merged under a mask.
  const __m512i ab0 = _mm512_setr_epi64(0, 8, 0, 1, 9, 0, 2, 10);
  const __m512i ab1 = _mm512_setr_epi64(0, 3, 11, 0, 4, 12, 0, 5);
  const __m512i ab2 = _mm512_setr_epi64(13, 0, 6, 14, 0, 7, 15, 0);
  const __m512i c0 = _mm512_setr_epi64(0, 0, 0, 0, 0, 1, 0, 0);
  const __m512i c1 = _mm512_setr_epi64(2, 0, 0, 3, 0, 0, 4, 0);
  const __m512i c2 = _mm512_setr_epi64(0, 5, 0, 0, 6, 0, 0, 7);
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512 r[kMR];
    for (int q = 0; q < kMR; ++q) r[q] = _mm512_loadu_ps(src + q * sai + k);
    double* d = reinterpret_cast<double*>(dst + k * kMR);
    for (int h = 0; h < 2; ++h) {  // k .. k+7, then k+8 .. k+15
      const __m512i ix = h ? i_hi : i_lo;
      const __m512d A = _mm512_castps_pd(_mm512_permutex2var_ps(r[0], ix, r[1]));
      const __m512d B = _mm512_castps_pd(_mm512_permutex2var_ps(r[2], ix, r[3]));
      const __m512d C = _mm512_castps_pd(_mm512_permutex2var_ps(r[4], ix, r[5]));
      _mm512_storeu_pd(d + h * 24,
                       _mm512_mask_permutexvar_pd(_mm512_permutex2var_pd(A, ab0, B), 0x24, c0, C));
      _mm512_storeu_pd(d + h * 24 + 8,
                       _mm512_mask_permutexvar_pd(_mm512_permutex2var_pd(A, ab1, B), 0x49, c1, C));
      _mm512_storeu_pd(d + h * 24 + 16,
                       _mm512_mask_permutexvar_pd(_mm512_permutex2var_pd(A, ab2, B), 0x92, c2, C));
    }
  }
  return k;
}
#endif

// Ap = rows [i0, i0+mc) x cols [k0, k0+kc) of op(A), in panels of 6 rows (k-major inside a
// panel), zero rows past mc. op(A)(i, k) = A[i*sai + k*sak].
template <bool TA>
inline void pack_a(float* Ap, const float* A, int64_t sai, int64_t sak, int64_t i0, int64_t mc,
            int64_t k0, int64_t kc) {
  if constexpr (TA) {
    // The mc rows are contiguous for fixed k (sai == 1). Sixteen k at a time across all the
    // panels: the 16 source rows' lines (16 x mc floats) stay in L1 until every panel has
    // taken its 6 floats from them. Panel by panel over the whole kc, a kc of 1024 re-fetched
    // each line from L2 for every panel it feeds (W6's dW_hh, 512x2048x128, went 84.6 -> 81.8
    // GFLOP/s when kc went 256 -> 1024; 85.3 with this order).
    constexpr int64_t kKB = 16;
    for (int64_t kb = 0; kb < kc; kb += kKB) {
      const int64_t ke = std::min(kc, kb + kKB);
      // Fetch the next 16 source rows' lines (16 x mc floats) now: each row is a stream that
      // advances 24 bytes per panel, too slow and too many for the hardware prefetchers, and
      // the loads missed to L3 (the pack was 10% of a W6 step, mostly waiting on them).
      // gemm_ab, one thread: 512x2048x128 (W6's dW_hh) 1.067, 512x2048x64 1.030; 2 threads
      // 1.047; 1024x256x1024 and 512x128x784 (ta, K <= 256) unchanged. 32 rows ahead: 0.98-1.03.
      for (int64_t k = ke; k < std::min(kc, ke + kKB); ++k) {
        const char* row = reinterpret_cast<const char*>(A + i0 * sai + (k0 + k) * sak);
        for (int64_t off = 0; off < mc * int64_t(sizeof(float)); off += 64)
          _mm_prefetch(row + off, _MM_HINT_T0);
      }
      for (int64_t ip = 0; ip < mc; ip += kMR) {
        const int64_t mr = std::min(kMR, mc - ip);
        float* dst = Ap + ip * kc;
        const float* src = A + (i0 + ip) * sai + k0 * sak;
        if (mr == kMR) {  // 6 contiguous floats per k: one 4-float and one 2-float move
          for (int64_t k = kb; k < ke; ++k) {
            const float* s = src + k * sak;
            float* d = dst + k * kMR;
            _mm_storeu_ps(d, _mm_loadu_ps(s));
            _mm_storel_pi(reinterpret_cast<__m64*>(d + 4),
                          _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(s + 4)));
          }
        } else {
          for (int64_t k = kb; k < ke; ++k) {
            for (int64_t r = 0; r < mr; ++r) dst[k * kMR + r] = src[k * sak + r];
            for (int64_t r = mr; r < kMR; ++r) dst[k * kMR + r] = 0.f;
          }
        }
      }
    }
    return;
  }
  for (int64_t ip = 0; ip < mc; ip += kMR) {
    const int64_t mr = std::min(kMR, mc - ip);
    float* dst = Ap + ip * kc;
    const float* src = A + (i0 + ip) * sai + k0 * sak;
    if (mr == kMR) {  // k is contiguous for fixed row: 8 k of the 6 rows through an 8x8 transpose
      int64_t k = 0;
#if defined(__AVX512F__)
      k = pack6_rows16(dst, src, sai, kc);
#endif
      for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int64_t q = 0; q < kMR; ++q) r[q] = _mm256_loadu_ps(src + q * sai + k);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8x8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);  // r[q]: k + q, 6 rows
        float* d = dst + k * kMR;
        // 8-float stores of 6-float rows, ascending: each one's last two lanes are rewritten
        // by the next; the last row is stored as exactly 6, so nothing lands past this k.
        for (int q = 0; q < 7; ++q) _mm256_storeu_ps(d + q * kMR, r[q]);
        _mm_storeu_ps(d + 7 * kMR, _mm256_castps256_ps128(r[7]));
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 7 * kMR + 4), _mm256_extractf128_ps(r[7], 1));
      }
      for (; k < kc; ++k) {
        float* d = dst + k * kMR;
        for (int64_t q = 0; q < kMR; ++q) d[q] = src[q * sai + k];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        float* d = dst + k * kMR;
        for (int64_t r = 0; r < mr; ++r) d[r] = src[r * sai + k * sak];
        for (int64_t r = mr; r < kMR; ++r) d[r] = 0.f;
      }
    }
  }
}

// Transposes the 8x8 block whose rows are r[0..8) and stores its column q (8 floats) at
// d + q * ld: how 8 rows x 8 columns of a row-major source become 8 rows of a k-major panel.
inline void transpose8x8_store(__m256 (&r)[8], float* d, int64_t ld) {
  transpose8x8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
  for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + q * ld, r[q]);
}

// Rows [r0, r1) of the k-block at k0 (kc rows) of a row-major B (ld ldb), columns [j0, j0 + nc),
// into that block's panels (panel p at Bp + p * kNR * kc; zero columns past nc).
inline void pack_b_rows(float* Bp, const float* B, int64_t ldb, int64_t k0, int64_t kc,
                        int64_t r0, int64_t r1, int64_t j0, int64_t nc) {
  const int64_t full = nc / kNR;
  for (int64_t p = 0; p < full; ++p) {
    float* d = Bp + p * kNR * kc;
    const float* s = B + k0 * ldb + j0 + p * kNR;
    for (int64_t r = r0; r < r1; ++r) {
      _mm256_store_ps(d + r * kNR, _mm256_loadu_ps(s + r * ldb));
      _mm256_store_ps(d + r * kNR + 8, _mm256_loadu_ps(s + r * ldb + 8));
    }
  }
  if (full * kNR < nc) {
    const int64_t rem = nc - full * kNR;
    float* d = Bp + full * kNR * kc;
    const float* s = B + k0 * ldb + j0 + full * kNR;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t j = 0; j < rem; ++j) d[r * kNR + j] = s[r * ldb + j];
      for (int64_t j = rem; j < kNR; ++j) d[r * kNR + j] = 0.f;
    }
  }
}

// One 16-column panel: Bp (kc x 16) = op(B)[k0:k0+kc, j0:j0+nr], zero columns past nr.
// op(B)(k, j) = B[k*sbk + j*sbn].
template <bool TB>
inline void pack_b_panel(float* Bp, const float* B, int64_t sbk, int64_t sbn, int64_t k0,
                         int64_t kc, int64_t j0, int64_t nr) {
  if constexpr (!TB) {
    pack_b_rows(Bp, B + j0 * sbn, sbk, k0, kc, 0, kc, 0, nr);  // a row's columns contiguous
  } else {
    const float* src = B + k0 * sbk + j0 * sbn;
    if (nr < kNR)  // zero whole rows first (Bp is 32-byte aligned); the columns < nr follow
      for (int64_t k = 0; k < kc; ++k) {
        _mm256_store_ps(Bp + k * kNR, _mm256_setzero_ps());
        _mm256_store_ps(Bp + k * kNR + 8, _mm256_setzero_ps());
      }
    // Eight columns x eight k at a time through an in-register 8x8 transpose.
    int64_t j = 0;
    for (; j + 8 <= nr; j += 8) {
      const float* s = src + j * sbn;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(s + q * sbn + k);
        // row k+q of the panel gets column q of the 8x8 block
        transpose8x8_store(r, Bp + k * kNR + j, kNR);
      }
      for (; k < kc; ++k)
        for (int64_t q = 0; q < 8; ++q) Bp[k * kNR + j + q] = s[q * sbn + k];
    }
    for (; j + 4 <= nr; j += 4) {
      const float* s0 = src + j * sbn;
      const float* s1 = s0 + sbn;
      const float* s2 = s1 + sbn;
      const float* s3 = s2 + sbn;
      for (int64_t k = 0; k < kc; ++k) {
        float* d = Bp + k * kNR + j;
        d[0] = s0[k];
        d[1] = s1[k];
        d[2] = s2[k];
        d[3] = s3[k];
      }
    }
    for (; j < nr; ++j) {
      const float* s = src + j * sbn;
      for (int64_t k = 0; k < kc; ++k) Bp[k * kNR + j] = s[k];
    }
  }
}

}  // namespace gk
}  // namespace ember

#endif  // AVX2 && FMA
