#include "core/gemm.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <new>
#include <type_traits>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

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


#if defined(__AVX2__) && defined(__FMA__)
#define EMBER_PACKED_SGEMM 1

// ---- float: GotoBLAS/BLIS-style packed GEMM with an AVX2/FMA 6x16 micro-kernel ----------------
//
// Loops (outer to inner): jc over N in blocks of <= kNC columns; pc over K in equal blocks of
// <= kKC (a function of K only); the packed B block (kc x nc, panels of 16 columns) is shared by
// all threads; the M x nc output is cut into tasks (blocks of <= kMC rows times column chunks,
// both functions of the shape only), each packing its own A block (mc x kc, panels of 6 rows)
// into a per-thread buffer and running the micro-kernel over it.
// Every output element is ((0 + sum over k-block 0) + sum over k-block 1) + ... (or C + ... when
// accumulating), each k-block sum formed in k order from zero in the micro-kernel: the arithmetic
// depends on K only, so results are bitwise identical whatever the thread count or task split.

constexpr int64_t kMR = 6;
constexpr int64_t kNR = 16;
constexpr int64_t kKC = 256;   // A micro-panel 6 KiB + B micro-panel 16 KiB in L1 (32 KiB)
constexpr int64_t kMC = 144;   // A block <= 144 x 256 floats = 144 KiB in L2 (512 KiB)
constexpr int64_t kNC = 4080;  // B block <= 256 x 4080 floats ~ 4 MiB in L3

struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  ~AlignedBuf() { std::free(p); }
  float* get(size_t need) {
    if (need > n) {
      std::free(p);
      p = nullptr;
      n = 0;
      const size_t bytes = (need * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      n = need;
    }
    return p;
  }
};

float* a_buffer(size_t n) {
  thread_local AlignedBuf buf;
  return buf.get(n);
}
float* b_buffer(size_t n) {
  thread_local AlignedBuf buf;
  return buf.get(n);
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

// Ap = rows [i0, i0+mc) x cols [k0, k0+kc) of op(A), in panels of 6 rows (k-major inside a
// panel), zero rows past mc. op(A)(i, k) = A[i*sai + k*sak].
template <bool TA>
void pack_a(float* Ap, const float* A, int64_t sai, int64_t sak, int64_t i0, int64_t mc,
            int64_t k0, int64_t kc) {
  for (int64_t ip = 0; ip < mc; ip += kMR) {
    const int64_t mr = std::min(kMR, mc - ip);
    float* dst = Ap + ip * kc;
    const float* src = A + (i0 + ip) * sai + k0 * sak;
    if (mr == kMR) {
      if constexpr (TA) {  // rows are contiguous for fixed k
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + k * sak;
          float* d = dst + k * kMR;
          for (int64_t r = 0; r < kMR; ++r) d[r] = s[r];
        }
      } else {  // k is contiguous for fixed row
        const float* s0 = src;
        const float* s1 = src + sai;
        const float* s2 = src + 2 * sai;
        const float* s3 = src + 3 * sai;
        const float* s4 = src + 4 * sai;
        const float* s5 = src + 5 * sai;
        for (int64_t k = 0; k < kc; ++k) {
          float* d = dst + k * kMR;
          d[0] = s0[k];
          d[1] = s1[k];
          d[2] = s2[k];
          d[3] = s3[k];
          d[4] = s4[k];
          d[5] = s5[k];
        }
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

// One 16-column panel: Bp (kc x 16) = op(B)[k0:k0+kc, j0:j0+nr], zero columns past nr.
// op(B)(k, j) = B[k*sbk + j*sbn].
template <bool TB>
void pack_b_panel(float* Bp, const float* B, int64_t sbk, int64_t sbn, int64_t k0, int64_t kc,
                  int64_t j0, int64_t nr) {
  const float* src = B + k0 * sbk + j0 * sbn;
  if constexpr (!TB) {
    if (nr == kNR) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * sbk;
        _mm256_store_ps(Bp + k * kNR, _mm256_loadu_ps(s));
        _mm256_store_ps(Bp + k * kNR + 8, _mm256_loadu_ps(s + 8));
      }
      return;
    }
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = src + k * sbk;
      float* d = Bp + k * kNR;
      for (int64_t j = 0; j < nr; ++j) d[j] = s[j];
      for (int64_t j = nr; j < kNR; ++j) d[j] = 0.f;
    }
  } else {
    if (nr < kNR)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = nr; j < kNR; ++j) Bp[k * kNR + j] = 0.f;
    // Eight columns x eight k at a time through an in-register 8x8 transpose.
    int64_t j = 0;
    for (; j + 8 <= nr; j += 8) {
      const float* s = src + j * sbn;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 r0 = _mm256_loadu_ps(s + 0 * sbn + k), r1 = _mm256_loadu_ps(s + 1 * sbn + k);
        __m256 r2 = _mm256_loadu_ps(s + 2 * sbn + k), r3 = _mm256_loadu_ps(s + 3 * sbn + k);
        __m256 r4 = _mm256_loadu_ps(s + 4 * sbn + k), r5 = _mm256_loadu_ps(s + 5 * sbn + k);
        __m256 r6 = _mm256_loadu_ps(s + 6 * sbn + k), r7 = _mm256_loadu_ps(s + 7 * sbn + k);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        float* d = Bp + k * kNR + j;  // row k+q of the panel gets column q of the 8x8 block
        _mm256_storeu_ps(d + 0 * kNR, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_storeu_ps(d + 1 * kNR, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_storeu_ps(d + 2 * kNR, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_storeu_ps(d + 3 * kNR, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_storeu_ps(d + 4 * kNR, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_storeu_ps(d + 5 * kNR, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_storeu_ps(d + 6 * kNR, _mm256_permute2f128_ps(u2, u6, 0x31));
        _mm256_storeu_ps(d + 7 * kNR, _mm256_permute2f128_ps(u3, u7, 0x31));
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

// Whole-K variant for op(B) of at most kWholeB floats (the MLP / RNN / im2col sizes): all of B is
// packed in one parallel region (k-blocks x panels), then one region of tasks each runs every
// k-block for its (row block, column chunks): two parallel regions per call instead of two per
// k-block. Same k-blocks and micro-kernel calls per output tile, so the same bits as below.
constexpr int64_t kWholeB = int64_t(1) << 20;  // 4 MiB of packed B

template <bool TA, bool TB>
void packed_sgemm_wholek(int64_t M, int64_t N, int64_t K, const float* A, const float* B,
                         float* C, bool acc) {
  const int64_t sai = TA ? 1 : K, sak = TA ? M : 1;
  const int64_t sbk = TB ? 1 : N, sbn = TB ? K : 1;
  const int64_t nkb = (K + kKC - 1) / kKC, kcb = (K + nkb - 1) / nkb;
  const int64_t nmb = (M + kMC - 1) / kMC;
  const int64_t mcb = ((M + nmb - 1) / nmb + kMR - 1) / kMR * kMR;
  const int64_t nmblocks = (M + mcb - 1) / mcb;
  const int64_t npanels = (N + kNR - 1) / kNR;
  const int64_t want_chunks = std::max<int64_t>(1, (16 + nmblocks - 1) / nmblocks);
  const int64_t nchunks = std::min(npanels, want_chunks);
  const int64_t ppc = (npanels + nchunks - 1) / nchunks;
  const int64_t nch = (npanels + ppc - 1) / ppc;
  const int64_t ntasks = nmblocks * nch;
  // k-block q (starting at pc = q * kcb) lives at Bp + pc * npanels * kNR, panel p at + p*kNR*kc.
  float* Bp = b_buffer(static_cast<size_t>(npanels * kNR * K));
  // With a single row block every B panel is used by one task only: that task packs it right
  // before use (one parallel region per call, panel still hot in L1).
  const bool pack_in_task = nmblocks == 1;
  if (!pack_in_task)
    parallel_for(nkb * npanels, 8 * kcb * kNR, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t q = i / npanels, p = i % npanels;
      const int64_t pc = q * kcb, kc = std::min(kcb, K - pc);
      pack_b_panel<TB>(Bp + pc * npanels * kNR + p * kNR * kc, B, sbk, sbn, pc, kc, p * kNR,
                       std::min(kNR, N - p * kNR));
    }
  });
  parallel_for(ntasks, 2 * mcb * K * ppc * kNR, [&](int64_t t0, int64_t t1) {
    float* Ap = a_buffer(static_cast<size_t>(mcb * kcb));
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
        for (int64_t p = pbeg; p < pend; ++p) {
          const int64_t j = p * kNR, nr = std::min(kNR, N - j);
          float* bp = Bp + pc * npanels * kNR + p * kNR * kc;
          if (pack_in_task) pack_b_panel<TB>(bp, B, sbk, sbn, pc, kc, j, nr);
          for (int64_t ip = 0; ip < mc; ip += kMR)
            micro_6x16(kc, Ap + ip * kc, bp, C + (i0 + ip) * N + j, N, std::min(kMR, mc - ip),
                       nr, load_c);
        }
      }
      t = tend;
    }
  });
}

template <bool TA, bool TB>
void packed_sgemm(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
                  bool acc) {
  if (K * ((N + kNR - 1) / kNR * kNR) <= kWholeB) {
    packed_sgemm_wholek<TA, TB>(M, N, K, A, B, C, acc);
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
  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc);
    const int64_t npanels = (nc + kNR - 1) / kNR;
    // Column chunks so that there are >= ~16 tasks (shape-only; an odd handful of row blocks
    // would leave one of two threads idle for a block's time). A thread's consecutive tasks share
    // a row block, so its packed A block is reused across chunks.
    const int64_t want_chunks = std::max<int64_t>(1, (16 + nmblocks - 1) / nmblocks);
    const int64_t nchunks = std::min(npanels, want_chunks);
    const int64_t ppc = (npanels + nchunks - 1) / nchunks;  // panels per chunk
    const int64_t ntasks = nmblocks * ((npanels + ppc - 1) / ppc);
    float* Bp = b_buffer(static_cast<size_t>(npanels * kNR * kcb));
    for (int64_t pc = 0; pc < K; pc += kcb) {
      const int64_t kc = std::min(kcb, K - pc);
      const bool load_c = acc || pc > 0;
      parallel_for(npanels, 8 * kc * kNR, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          pack_b_panel<TB>(Bp + p * kNR * kc, B, sbk, sbn, pc, kc, jc + p * kNR,
                           std::min(kNR, nc - p * kNR));
      });
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
          for (int64_t p = pbeg; p < pend; ++p) {
            const int64_t j = jc + p * kNR, nr = std::min(kNR, N - j);
            const float* bp = Bp + p * kNR * kc;
            for (int64_t ip = 0; ip < mc; ip += kMR) {
              micro_6x16(kc, Ap + ip * kc, bp, C + (i0 + ip) * N + j, N,
                         std::min(kMR, mc - ip), nr, load_c);
            }
          }
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

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C,
          bool accumulate) {
  if (M == 0 || N == 0) return;
#ifdef EMBER_PACKED_SGEMM
  if constexpr (std::is_same_v<T, float>) {
    if (use_packed(M, N, K)) {
      if (K == 0) {
        if (!accumulate) std::fill(C, C + M * N, 0.f);
        return;
      }
      if (!ta && !tb) packed_sgemm<false, false>(M, N, K, A, B, C, accumulate);
      else if (!ta && tb) packed_sgemm<false, true>(M, N, K, A, B, C, accumulate);
      else if (ta && !tb) packed_sgemm<true, false>(M, N, K, A, B, C, accumulate);
      else packed_sgemm<true, true>(M, N, K, A, B, C, accumulate);
      return;
    }
  }
#endif
  if (!ta && !tb) eigen_gemm<T, false, false>(M, N, K, A, B, C, accumulate);
  else if (!ta && tb) eigen_gemm<T, false, true>(M, N, K, A, B, C, accumulate);
  else if (ta && !tb) eigen_gemm<T, true, false>(M, N, K, A, B, C, accumulate);
  else eigen_gemm<T, true, true>(M, N, K, A, B, C, accumulate);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, const float*,
                          float*, bool);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, const double*,
                           double*, bool);

}  // namespace ember
