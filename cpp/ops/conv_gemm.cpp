#include "ops/conv_gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace ember {

#if defined(__AVX2__) && defined(__FMA__)

namespace {

constexpr int64_t kNR = 16;   // panel width: two ymm vectors
constexpr int64_t kKC = 384;  // largest k-block: a packed panel is <= 384 x 16 floats = 24 KiB (L1)
constexpr int kMR = 6;        // rows per micro-tile: 6 x 2 accumulators (12 of 16 ymm)

// C[0:mr, 0:nv] (=|+=) A[0:mr, 0:kc] * Bp (kc x 16, packed), mr <= 6. Always computes six rows
// (rows past mr re-read row 0 and are not stored) so the twelve accumulators stay in registers.
inline void micro(int mr, int64_t kc, const float* A, int64_t sam, int64_t sak, const float* Bp,
                  float* C, int64_t ldc, int64_t nv, bool load_c) {
  const float* a0 = A;
  const float* a1 = A + (mr > 1 ? 1 : 0) * sam;
  const float* a2 = A + (mr > 2 ? 2 : 0) * sam;
  const float* a3 = A + (mr > 3 ? 3 : 0) * sam;
  const float* a4 = A + (mr > 4 ? 4 : 0) * sam;
  const float* a5 = A + (mr > 5 ? 5 : 0) * sam;
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp + k * kNR);
    const __m256 b1 = _mm256_load_ps(Bp + k * kNR + 8);
    const int64_t o = k * sak;
    __m256 a;
    a = _mm256_broadcast_ss(a0 + o);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(a1 + o);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(a2 + o);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(a3 + o);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(a4 + o);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(a5 + o);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
  }
  // The k-sum is formed from zero and then added to C: the same order whatever C held.
  if (nv == kNR) {
#define EMBER_ROW(i, x0, x1)                                                      \
  if (i < mr) {                                                                   \
    float* c = C + i * ldc;                                                       \
    if (load_c) {                                                                 \
      _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), x0));                 \
      _mm256_storeu_ps(c + 8, _mm256_add_ps(_mm256_loadu_ps(c + 8), x1));         \
    } else {                                                                      \
      _mm256_storeu_ps(c, x0);                                                    \
      _mm256_storeu_ps(c + 8, x1);                                                \
    }                                                                             \
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
  alignas(32) float out[6][16];
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
  for (int i = 0; i < mr; ++i) {
    float* c = C + i * ldc;
    if (load_c) {
      for (int64_t j = 0; j < nv; ++j) c[j] += out[i][j];
    } else {
      for (int64_t j = 0; j < nv; ++j) c[j] = out[i][j];
    }
  }
}

// Bp (kc x 16) = B[k0:k0+kc, n0:n0+nv], zero in columns nv..15.
inline void pack_panel(float* Bp, const float* B, int64_t sbk, int64_t sbn, int64_t k0,
                       int64_t kc, int64_t n0, int64_t nv) {
  if (sbn == 1) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + (k0 + k) * sbk + n0;
      float* dst = Bp + k * kNR;
      std::memcpy(dst, src, nv * sizeof(float));
      if (nv < kNR) std::memset(dst + nv, 0, (kNR - nv) * sizeof(float));
    }
  } else {
    if (nv < kNR)
      for (int64_t k = 0; k < kc; ++k)
        std::memset(Bp + k * kNR + nv, 0, (kNR - nv) * sizeof(float));
    for (int64_t j = 0; j < nv; ++j) {
      const float* src = B + (n0 + j) * sbn + k0 * sbk;
      for (int64_t k = 0; k < kc; ++k) Bp[k * kNR + j] = src[k * sbk];
    }
  }
}

float* panel_buffer() {
  // 64-byte aligned per-thread panel, reused across calls.
  alignas(64) thread_local float buf[kKC * kNR];
  return buf;
}

}  // namespace

bool conv_gemm_available() { return true; }

void conv_sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, int64_t sak,
                const float* B, int64_t sbk, int64_t sbn, float* C, int64_t ldc, bool acc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!acc)
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.f);
    return;
  }
  float* Bp = panel_buffer();
  for (int64_t n0 = 0; n0 < N; n0 += kNR) {
    const int64_t nv = std::min(kNR, N - n0);
    // Equal k-blocks of at most kKC (a function of K only).
    const int64_t nkb = (K + kKC - 1) / kKC, kcb = (K + nkb - 1) / nkb;
    for (int64_t k0 = 0; k0 < K; k0 += kcb) {
      const int64_t kc = std::min(kcb, K - k0);
      pack_panel(Bp, B, sbk, sbn, k0, kc, n0, nv);
      const bool load_c = acc || k0 > 0;
      for (int64_t m0i = 0; m0i < M; m0i += kMR) {
        const int mr = int(std::min<int64_t>(kMR, M - m0i));
        micro(mr, kc, A + m0i * sam + k0 * sak, sam, sak, Bp, C + m0i * ldc + n0, ldc, nv,
                   load_c);
      }
    }
  }
}

#else  // no AVX2/FMA: callers use Eigen

bool conv_gemm_available() { return false; }

void conv_sgemm(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                int64_t, float*, int64_t, bool) {}

#endif

}  // namespace ember
