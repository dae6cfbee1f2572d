#include "ops/pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/parallel.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace ember {

namespace {

// Pooling is memory-bound: below this much work (elements read and written) a parallel region
// saves little on the 2-core machines, so small pools stay on the calling thread. Measured with
// the vectorized 2x2 max pool (shared machine, load ~3): 2 threads are 1.1x faster at 2^17,
// 1.4-1.7x at 2^19 (~60 us at 1 thread), 1.7-1.8x at 2^21; the slower pooling loops gain more.
constexpr int64_t kPoolParallelWork = int64_t(1) << 18;

// Runs f(plane) over all N*C planes, in parallel when large; cost is per plane.
template <class F>
void for_planes(const PoolGeom& g, int64_t cost, F&& f) {
  if (g.N * g.C * cost < kPoolParallelWork) cost = 1;  // below parallel_for's threshold
  parallel_for(g.N * g.C, cost, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) f(p);
  });
}

// ---- max pooling with kernel 2 / stride 2 along W, kernel = stride = KH in {1, 2} along H, no
// padding, no dilation: the 2x2 pool of CNNs and the kernel-2 pool of 1-D CNNs (H = 1). Windows
// tile the input without overlap; trailing odd rows/columns belong to no window.
//
// A window's candidates in scan order are c0 = (r0,w0), c1 = (r0,w0+1), c2 = (r1,w0),
// c3 = (r1,w0+1). The general loop keeps the first and then takes each next c when
// `c > best || isnan(c)`: the result is the last NaN if there is one, else the first maximum.
// That combine is associative, so combine(combine(c0,c1), combine(c2,c3)) gives the same element
// (value bits and index), which is what the vector kernels compute, branch-free.

// Returns KH (1 or 2) when g is that case, else 0. Offsets within a plane must fit int32 (the
// vector kernels hold them in 32-bit lanes).
inline int64_t pool2_rows(const PoolGeom& g) {
  if (g.KW != 2 || g.sw != 2 || g.pw != 0 || g.dw != 1) return 0;
  if ((g.KH != 1 && g.KH != 2) || g.sh != g.KH || g.ph != 0 || g.dh != 1) return 0;
  if (g.KH * g.OH > g.H || 2 * g.OW > g.W || g.H * g.W > INT32_MAX) return 0;
  return g.KH;
}

// Later candidate c replaces the earlier b: c > b or c is NaN (bitwise |: no branch).
template <class T>
inline bool wins(T c, T b) {
  return (c > b) | (c != c);
}

// t ? a : b through bit masks: which candidate wins is data-dependent (random), and compilers
// turn a ?: on floats into a mispredicted branch.
template <class T>
inline T select(bool t, T a, T b) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static_assert(sizeof(T) == sizeof(U), "float or double");
  U ua, ub;
  std::memcpy(&ua, &a, sizeof a);
  std::memcpy(&ub, &b, sizeof b);
  const U m = U(0) - U(t);
  const U u = (ua & m) | (ub & ~m);
  T r;
  std::memcpy(&r, &u, sizeof r);
  return r;
}

// g where the ReLU output y is > 0, else +0 (relu_backward's rule; NaN y gives 0).
template <class T>
inline T relu_masked(T g, T y) {
  return y > T(0) ? g : T(0);
}

// Outputs [ow0, OW) of one output row: r points at the window row 0 (r + W is row 1), base is
// the flat index of r[0] in its plane.
template <class T, int KH, bool kIdx>
inline void max2_scalar(T* y, int64_t* ip, const T* r, int64_t W, int64_t base, int64_t ow0,
                        int64_t OW) {
  for (int64_t ow = ow0; ow < OW; ++ow) {
    const T* p = r + 2 * ow;
    bool t = wins(p[1], p[0]);
    T best = select(t, p[1], p[0]);
    int64_t off = t;
    if (KH == 2) {
      t = wins(p[W + 1], p[W]);
      const T best1 = select(t, p[W + 1], p[W]);
      const int64_t off1 = W + t;
      t = wins(best1, best);
      best = select(t, best1, best);
      off += (off1 - off) & -int64_t(t);
    }
    y[ow] = best;
    if (kIdx) ip[ow] = base + 2 * ow + off;
  }
}

// dx for outputs [ow0, OW) of one output row (rows r, r + W of dx): each input element gets its
// window's gradient if the window's index points at it, else 0 (written, no zero fill). +0
// turns a -0 gradient into +0, as zero fill + add does. Returns false if an index is not in its
// window (the caller then scatters the plane instead).
template <class T, int KH, bool kMask>
inline bool max2_back_scalar(T* d, const T* gy, const int64_t* ip, const T* mask, int64_t W,
                             int64_t base, int64_t ow0, int64_t OW) {
  bool ok = true;
  for (int64_t ow = ow0; ow < OW; ++ow) {
    const int64_t o = ip[ow] - (base + 2 * ow);
    T* p = d + 2 * ow;
    p[0] = p[1] = T(0);
    if (KH == 2) p[W] = p[W + 1] = T(0);
    const bool in = KH == 2 ? (o == 0) | (o == 1) | (o == W) | (o == W + 1) : (o == 0) | (o == 1);
    if (in)
      p[o] = (kMask ? relu_masked(gy[ow], mask[ow]) : gy[ow]) + T(0);
    else
      ok = false;
  }
  return ok;
}

#if defined(__AVX2__)
// Vector kernels: 8 float / 4 double outputs per step. They return the first output they did not
// do. When OW is at least one step but not a multiple, the last step is moved back to end at OW
// (it recomputes some outputs, writing the same values), so there is no scalar tail.

// Lane i of the (even, odd) pair from the 2*lanes inputs at p: the shuffles give the outputs in
// the order 0 1 4 5 2 3 6 7 (float) / 0 2 1 3 (double), fixed by one permute at the end.
inline void split(const float* p, __m256& e, __m256& o) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  e = _mm256_shuffle_ps(a, b, 0x88);
  o = _mm256_shuffle_ps(a, b, 0xDD);
}
inline void split(const double* p, __m256d& e, __m256d& o) {
  const __m256d a = _mm256_loadu_pd(p), b = _mm256_loadu_pd(p + 4);
  e = _mm256_unpacklo_pd(a, b);
  o = _mm256_unpackhi_pd(a, b);
}
// Mask of lanes where the later candidate c replaces the earlier b: c > b or c is NaN.
inline __m256 wins(__m256 c, __m256 b) {
  return _mm256_or_ps(_mm256_cmp_ps(c, b, _CMP_GT_OQ), _mm256_cmp_ps(c, c, _CMP_UNORD_Q));
}
inline __m256d wins(__m256d c, __m256d b) {
  return _mm256_or_pd(_mm256_cmp_pd(c, b, _CMP_GT_OQ), _mm256_cmp_pd(c, c, _CMP_UNORD_Q));
}
inline __m256i order(__m256i v) { return _mm256_permute4x64_epi64(v, 0xD8); }

template <int KH, bool kIdx>
inline int64_t max2_vec(float* y, int64_t* ip, const float* r, int64_t W, int64_t base,
                        int64_t OW) {
  if (OW < 8) return 0;
  const __m256i one = _mm256_set1_epi32(1), wv = _mm256_set1_epi32(int32_t(W));
  const __m256i step = _mm256_setr_epi64x(0, 2, 4, 6);
  for (int64_t ow = 0; ow < OW; ow += 8) {
    if (ow > OW - 8) ow = OW - 8;
    __m256 e, o;
    split(r + 2 * ow, e, o);
    __m256 m = wins(o, e);
    __m256 best = _mm256_blendv_ps(e, o, m);
    __m256i off = _mm256_and_si256(_mm256_castps_si256(m), one);
    if (KH == 2) {
      split(r + W + 2 * ow, e, o);
      m = wins(o, e);
      const __m256 best1 = _mm256_blendv_ps(e, o, m);
      const __m256i off1 = _mm256_add_epi32(wv, _mm256_and_si256(_mm256_castps_si256(m), one));
      m = wins(best1, best);
      best = _mm256_blendv_ps(best, best1, m);
      off = _mm256_castps_si256(
          _mm256_blendv_ps(_mm256_castsi256_ps(off), _mm256_castsi256_ps(off1), m));
    }
    _mm256_storeu_ps(y + ow, _mm256_castsi256_ps(order(_mm256_castps_si256(best))));
    if (kIdx) {
      off = order(off);
      const __m256i b = _mm256_add_epi64(_mm256_set1_epi64x(base + 2 * ow), step);
      const __m256i lo = _mm256_add_epi64(b, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(off)));
      const __m256i hi = _mm256_add_epi64(_mm256_add_epi64(b, _mm256_set1_epi64x(8)),
                                          _mm256_cvtepi32_epi64(_mm256_extracti128_si256(off, 1)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ip + ow), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ip + ow + 4), hi);
    }
  }
  return OW;
}

template <int KH, bool kIdx>
inline int64_t max2_vec(double* y, int64_t* ip, const double* r, int64_t W, int64_t base,
                        int64_t OW) {
  if (OW < 4) return 0;
  const __m256i one = _mm256_set1_epi64x(1), wv = _mm256_set1_epi64x(W);
  const __m256i step = _mm256_setr_epi64x(0, 2, 4, 6);
  for (int64_t ow = 0; ow < OW; ow += 4) {
    if (ow > OW - 4) ow = OW - 4;
    __m256d e, o;
    split(r + 2 * ow, e, o);
    __m256d m = wins(o, e);
    __m256d best = _mm256_blendv_pd(e, o, m);
    __m256i off = _mm256_and_si256(_mm256_castpd_si256(m), one);
    if (KH == 2) {
      split(r + W + 2 * ow, e, o);
      m = wins(o, e);
      const __m256d best1 = _mm256_blendv_pd(e, o, m);
      const __m256i off1 = _mm256_add_epi64(wv, _mm256_and_si256(_mm256_castpd_si256(m), one));
      m = wins(best1, best);
      best = _mm256_blendv_pd(best, best1, m);
      off = _mm256_castpd_si256(
          _mm256_blendv_pd(_mm256_castsi256_pd(off), _mm256_castsi256_pd(off1), m));
    }
    _mm256_storeu_pd(y + ow, _mm256_permute4x64_pd(best, 0xD8));
    if (kIdx) {
      const __m256i b = _mm256_add_epi64(_mm256_set1_epi64x(base + 2 * ow), step);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ip + ow), _mm256_add_epi64(b, order(off)));
    }
  }
  return OW;
}

// Backward, 8 float / 4 double outputs per step (the last step moved back as above). For float
// the index offsets o = idx - (window base) are compared in 32-bit lanes; an offset in its window
// is in [0, W+1], so its high 32 bits must be 0 (which also rejects indices far out of range).
template <int KH, bool kMask>
inline int64_t max2_back_vec(float* d, const float* gy, const int64_t* ip, const float* mask,
                             int64_t W, int64_t base, int64_t OW, bool& ok) {
  if (OW < 8) return 0;
  const __m256 zero = _mm256_setzero_ps();
  const __m256i one = _mm256_set1_epi32(1), wv = _mm256_set1_epi32(int32_t(W)),
                w1 = _mm256_set1_epi32(int32_t(W + 1)), step = _mm256_setr_epi64x(0, 2, 4, 6);
  __m256i hit = _mm256_set1_epi32(-1);  // AND over lanes of "index is in its window"
  for (int64_t ow = 0; ow < OW; ow += 8) {
    if (ow > OW - 8) ow = OW - 8;
    const __m256i b = _mm256_add_epi64(_mm256_set1_epi64x(base + 2 * ow), step);
    const __m256i lo = _mm256_sub_epi64(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip + ow)), b);
    const __m256i hi =
        _mm256_sub_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip + ow + 4)),
                         _mm256_add_epi64(b, _mm256_set1_epi64x(8)));
    // low 32 bits of the 8 offsets, in output order; the high 32 bits (any order: they only
    // join the all-lanes check)
    const __m256i o = order(_mm256_castps_si256(
        _mm256_shuffle_ps(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi), 0x88)));
    const __m256i o_high = _mm256_castps_si256(
        _mm256_shuffle_ps(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi), 0xDD));
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(gy + ow), zero);
    if (kMask) v = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(mask + ow), zero, _CMP_GT_OQ), v);
    const __m256i m0 = _mm256_cmpeq_epi32(o, _mm256_setzero_si256()),
                  m1 = _mm256_cmpeq_epi32(o, one);
    __m256i any = _mm256_or_si256(m0, m1);
    // interleave (g0, g1) per output: unpack gives outputs 0 1 | 4 5 and 2 3 | 6 7 per half
    auto store_row = [&](float* p, __m256i ma, __m256i mb) {
      const __m256 ga = _mm256_and_ps(_mm256_castsi256_ps(ma), v);
      const __m256 gb = _mm256_and_ps(_mm256_castsi256_ps(mb), v);
      const __m256 l = _mm256_unpacklo_ps(ga, gb), h = _mm256_unpackhi_ps(ga, gb);
      _mm256_storeu_ps(p, _mm256_permute2f128_ps(l, h, 0x20));
      _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(l, h, 0x31));
    };
    store_row(d + 2 * ow, m0, m1);
    if (KH == 2) {
      const __m256i m2 = _mm256_cmpeq_epi32(o, wv), m3 = _mm256_cmpeq_epi32(o, w1);
      any = _mm256_or_si256(any, _mm256_or_si256(m2, m3));
      store_row(d + W + 2 * ow, m2, m3);
    }
    hit = _mm256_and_si256(hit, _mm256_and_si256(
                                    any, _mm256_cmpeq_epi32(o_high, _mm256_setzero_si256())));
  }
  ok &= _mm256_movemask_epi8(hit) == -1;
  return OW;
}

template <int KH, bool kMask>
inline int64_t max2_back_vec(double* d, const double* gy, const int64_t* ip, const double* mask,
                             int64_t W, int64_t base, int64_t OW, bool& ok) {
  if (OW < 4) return 0;
  const __m256d zero = _mm256_setzero_pd();
  const __m256i one = _mm256_set1_epi64x(1), wv = _mm256_set1_epi64x(W),
                w1 = _mm256_set1_epi64x(W + 1), step = _mm256_setr_epi64x(0, 2, 4, 6);
  __m256i hit = _mm256_set1_epi64x(-1);
  for (int64_t ow = 0; ow < OW; ow += 4) {
    if (ow > OW - 4) ow = OW - 4;
    const __m256i o =
        _mm256_sub_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ip + ow)),
                         _mm256_add_epi64(_mm256_set1_epi64x(base + 2 * ow), step));
    __m256d v = _mm256_add_pd(_mm256_loadu_pd(gy + ow), zero);
    if (kMask) v = _mm256_and_pd(_mm256_cmp_pd(_mm256_loadu_pd(mask + ow), zero, _CMP_GT_OQ), v);
    const __m256i m0 = _mm256_cmpeq_epi64(o, _mm256_setzero_si256()),
                  m1 = _mm256_cmpeq_epi64(o, one);
    __m256i any = _mm256_or_si256(m0, m1);
    auto store_row = [&](double* p, __m256i ma, __m256i mb) {
      const __m256d ga = _mm256_and_pd(_mm256_castsi256_pd(ma), v);
      const __m256d gb = _mm256_and_pd(_mm256_castsi256_pd(mb), v);
      const __m256d l = _mm256_unpacklo_pd(ga, gb), h = _mm256_unpackhi_pd(ga, gb);
      _mm256_storeu_pd(p, _mm256_permute2f128_pd(l, h, 0x20));
      _mm256_storeu_pd(p + 4, _mm256_permute2f128_pd(l, h, 0x31));
    };
    store_row(d + 2 * ow, m0, m1);
    if (KH == 2) {
      const __m256i m2 = _mm256_cmpeq_epi64(o, wv), m3 = _mm256_cmpeq_epi64(o, w1);
      any = _mm256_or_si256(any, _mm256_or_si256(m2, m3));
      store_row(d + W + 2 * ow, m2, m3);
    }
    hit = _mm256_and_si256(hit, any);
  }
  ok &= _mm256_movemask_epi8(hit) == -1;
  return OW;
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
// float with AVX-512. Forward: 16 outputs per step, the lanes past OW masked off in every load
// and store, so rows narrower than a vector (LeNet's 10 -> 5) need no scalar loop and no step is
// redone. Same combine, same bits as the 8-lane kernels above. Against those (with the scalar
// loop for OW < 8), same-process A/B on LeNet's two pools with indices: 1.8x (28 -> 14) and
// 2.0x (10 -> 5).
inline __mmask16 first_lanes(int64_t n) {  // lanes [0, n), n clamped to [0, 16]
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}
inline __mmask16 wins16(__m512 c, __m512 b) {
  return _mm512_cmp_ps_mask(c, b, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
}

template <int KH, bool kIdx>
inline int64_t max2_vec16(float* y, int64_t* ip, const float* r, int64_t W, int64_t base,
                          int64_t OW) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32(int32_t(W));
  for (int64_t ow = 0; ow < OW; ow += 16) {
    const int64_t cnt = std::min<int64_t>(16, OW - ow);
    const __mmask16 mo = first_lanes(cnt), ma = first_lanes(2 * cnt),
                    mb = first_lanes(2 * cnt - 16);
    // even and odd columns of the 2 cnt inputs of window row p
    auto split = [&](const float* p, __m512& e, __m512& o) {
      const __m512 a = _mm512_maskz_loadu_ps(ma, p), b = _mm512_maskz_loadu_ps(mb, p + 16);
      e = _mm512_permutex2var_ps(a, ev, b);
      o = _mm512_permutex2var_ps(a, od, b);
    };
    __m512 e, o;
    split(r + 2 * ow, e, o);
    __mmask16 m = wins16(o, e);
    __m512 best = _mm512_mask_blend_ps(m, e, o);
    __m512i off = _mm512_maskz_mov_epi32(m, one);
    if (KH == 2) {
      split(r + W + 2 * ow, e, o);
      m = wins16(o, e);
      const __m512 best1 = _mm512_mask_blend_ps(m, e, o);
      const __m512i off1 = _mm512_mask_add_epi32(wv, m, wv, one);
      m = wins16(best1, best);
      best = _mm512_mask_blend_ps(m, best, best1);
      off = _mm512_mask_blend_epi32(m, off, off1);
    }
    _mm512_mask_storeu_ps(y + ow, mo, best);
    if (kIdx) {  // in-plane flat indices fit 32 bits (pool2_rows)
      const __m512i i32 = _mm512_add_epi32(
          _mm512_add_epi32(_mm512_set1_epi32(int32_t(base + 2 * ow)), ev), off);
      _mm512_mask_storeu_epi64(ip + ow, __mmask8(mo),
                               _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i32)));
      _mm512_mask_storeu_epi64(ip + ow + 8, __mmask8(mo >> 8),
                               _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i32, 1)));
    }
  }
  return OW;
}

// Backward of rows narrower than 8 outputs (LeNet's 10 -> 5), which the 8-lane kernel leaves to
// the scalar loop: one 8-lane step with the lanes past OW masked off (1.6x the scalar loop on
// LeNet's second pool). Wider rows keep the 8-lane kernel: a 16-lane masked kernel for all
// widths measured 0.77-0.86x of it (OW = 14 and 5).
template <int KH, bool kMask>
inline int64_t max2_back_narrow(float* d, const float* gy, const int64_t* ip, const float* mask,
                                int64_t W, int64_t base, int64_t OW, bool& ok) {
  if (OW >= 8) return max2_back_vec<KH, kMask>(d, gy, ip, mask, W, base, OW, ok);
  const __mmask8 mo = __mmask8((1u << OW) - 1u);
  const __mmask16 m2 = first_lanes(2 * OW);
  // offsets of the indices in their windows, in range when <= W + 1 (<= 1 in 1-D) as unsigned
  const __m512i o64 = _mm512_sub_epi64(
      _mm512_maskz_loadu_epi64(mo, ip),
      _mm512_add_epi64(_mm512_set1_epi64(base), _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14)));
  const __mmask8 in = _mm512_cmple_epu64_mask(o64, _mm512_set1_epi64(KH == 2 ? W + 1 : 1));
  const __m256i o = _mm512_cvtepi64_epi32(o64);
  const __m256 zero = _mm256_setzero_ps();
  __m256 v = _mm256_add_ps(_mm256_maskz_loadu_ps(mo, gy), zero);
  if (kMask)
    v = _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(_mm256_maskz_loadu_ps(mo, mask), zero, _CMP_GT_OQ),
                            v);
  // (g_i, g'_i) pairs: lanes 0..7 of a and b interleaved, 2 OW floats from p
  const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  auto store_row = [&](float* p, __mmask8 ka, __mmask8 kb) {
    const __m512 ga = _mm512_castps256_ps512(_mm256_maskz_mov_ps(ka, v));
    const __m512 gb = _mm512_castps256_ps512(_mm256_maskz_mov_ps(kb, v));
    _mm512_mask_storeu_ps(p, m2, _mm512_permutex2var_ps(ga, il, gb));
  };
  const __mmask8 k0 = in & _mm256_cmpeq_epi32_mask(o, _mm256_setzero_si256()),
                 k1 = in & _mm256_cmpeq_epi32_mask(o, _mm256_set1_epi32(1));
  __mmask8 any = k0 | k1;
  store_row(d, k0, k1);
  if (KH == 2) {
    const __mmask8 k2 = in & _mm256_cmpeq_epi32_mask(o, _mm256_set1_epi32(int32_t(W))),
                   k3 = in & _mm256_cmpeq_epi32_mask(o, _mm256_set1_epi32(int32_t(W + 1)));
    any |= k2 | k3;
    store_row(d + W, k2, k3);
  }
  ok &= (any & mo) == mo;
  return OW;
}
#endif
#else
template <int KH, bool kIdx, class T>
inline int64_t max2_vec(T*, int64_t*, const T*, int64_t, int64_t, int64_t) {
  return 0;
}
template <int KH, bool kMask, class T>
inline int64_t max2_back_vec(T*, const T*, const int64_t*, const T*, int64_t, int64_t, int64_t,
                             bool&) {
  return 0;
}
#endif

template <class T, int KH, bool kIdx>
void max2_plane(T* y, int64_t* ip, const T* x, const PoolGeom& g) {
  const int64_t W = g.W, OW = g.OW;
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const int64_t base = KH * oh * W;
    T* yr = y + oh * OW;
    int64_t* ir = kIdx ? ip + oh * OW : nullptr;
    int64_t done;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    if constexpr (std::is_same_v<T, float>)
      done = max2_vec16<KH, kIdx>(yr, ir, x + base, W, base, OW);
    else
#endif
      done = max2_vec<KH, kIdx>(yr, ir, x + base, W, base, OW);
    max2_scalar<T, KH, kIdx>(yr, ir, x + base, W, base, done, OW);
  }
}

// One plane of dx; false if some index is not in its window (dx of the plane is then garbage).
// mask: null, or the ReLU output whose backward is applied too (g where mask > 0, else 0).
template <class T, int KH, bool kMask>
bool max2_back_rows(T* d, const T* gy, const int64_t* ip, const T* mask, const PoolGeom& g) {
  const int64_t W = g.W, OW = g.OW;
  bool ok = true;
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const int64_t base = KH * oh * W;
    T* dr = d + base;
    const T* mr = mask ? mask + oh * OW : nullptr;
    int64_t done;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    if constexpr (std::is_same_v<T, float>)
      done = max2_back_narrow<KH, kMask>(dr, gy + oh * OW, ip + oh * OW, mr, W, base, OW, ok);
    else
#endif
      done = max2_back_vec<KH, kMask>(dr, gy + oh * OW, ip + oh * OW, mr, W, base, OW, ok);
    ok &= max2_back_scalar<T, KH, kMask>(dr, gy + oh * OW, ip + oh * OW, mr, W, base, done, OW);
    for (int64_t k = 0; k < KH; ++k) std::fill(dr + k * W + 2 * OW, dr + (k + 1) * W, T(0));
  }
  std::fill(d + KH * g.OH * W, d + g.H * W, T(0));
  return ok;
}

template <class T, int KH>
bool max2_back_plane(T* d, const T* gy, const int64_t* ip, const T* mask, const PoolGeom& g) {
  return mask ? max2_back_rows<T, KH, true>(d, gy, ip, mask, g)
              : max2_back_rows<T, KH, false>(d, gy, ip, mask, g);
}

}  // namespace

template <class T>
void max_pool2d_forward(T* y, int64_t* idx, const T* x, const PoolGeom& g) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  const int64_t in_plane = H * W, out_plane = OH * OW;
  if (const int64_t kh = pool2_rows(g)) {
    // Cost: elements read and written (the kernels are memory-bound).
    for_planes(g, in_plane + 3 * out_plane, [&](int64_t p) {
      T* yp = y + p * out_plane;
      const T* xp = x + p * in_plane;
      int64_t* ip = idx ? idx + p * out_plane : nullptr;
      if (kh == 2) {
        ip ? max2_plane<T, 2, true>(yp, ip, xp, g) : max2_plane<T, 2, false>(yp, ip, xp, g);
      } else {
        ip ? max2_plane<T, 1, true>(yp, ip, xp, g) : max2_plane<T, 1, false>(yp, ip, xp, g);
      }
    });
    return;
  }
  for_planes(g, in_plane + out_plane * g.KH * g.KW, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    int64_t* ip = idx ? idx + p * out_plane : nullptr;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = oh * g.sh - g.ph;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = ow * g.sw - g.pw;
        T best = -std::numeric_limits<T>::infinity();
        int64_t bi = -1;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t h = h0 + kh * g.dh;
          if (h < 0 || h >= H) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t w = w0 + kw * g.dw;
            if (w < 0 || w >= W) continue;
            const T v = xp[h * W + w];
            if (bi < 0 || v > best || std::isnan(v)) {
              best = v;
              bi = h * W + w;
            }
          }
        }
        // A window entirely in padding cannot happen (padding <= kernel/2), but stay defined.
        if (bi < 0) bi = std::max<int64_t>(0, std::min(h0, H - 1)) * W +
                         std::max<int64_t>(0, std::min(w0, W - 1));
        yp[oh * OW + ow] = best;
        if (ip) ip[oh * OW + ow] = bi;
      }
    }
  });
}

template <class T>
bool max_pool2d_backward(T* dx, const T* dy, const int64_t* idx, const PoolGeom& g,
                         const T* relu_y) {
  const int64_t in_plane = g.H * g.W, out_plane = g.OH * g.OW;
  const int64_t kh = pool2_rows(g);
  std::atomic<bool> in_range{true};
  for_planes(g, in_plane + 3 * out_plane, [&](int64_t p) {
    T* dp = dx + p * in_plane;
    const T* gp = dy + p * out_plane;
    const int64_t* ip = idx + p * out_plane;
    // Non-overlapping windows: write dx directly when every index is in its own window (always,
    // for the forward's indices); otherwise scatter like the general case.
    const T* mp = relu_y ? relu_y + p * out_plane : nullptr;
    if (kh == 2 ? max2_back_plane<T, 2>(dp, gp, ip, mp, g)
                : kh == 1 && max2_back_plane<T, 1>(dp, gp, ip, mp, g))
      return;
    for (int64_t q = 0; q < out_plane; ++q)
      if (ip[q] < 0 || ip[q] >= in_plane) {
        in_range.store(false, std::memory_order_relaxed);
        return;
      }
    std::fill(dp, dp + in_plane, T(0));
    if (mp)
      for (int64_t q = 0; q < out_plane; ++q) dp[ip[q]] += relu_masked(gp[q], mp[q]);
    else
      for (int64_t q = 0; q < out_plane; ++q) dp[ip[q]] += gp[q];
  });
  return in_range.load();
}

namespace {

// Window bounds of output position o along one axis and the count_include_pad extent.
struct Win {
  int64_t lo, hi, padded;
};
inline Win avg_win(int64_t o, int64_t s, int64_t p, int64_t k, int64_t in) {
  int64_t lo = o * s - p;
  int64_t hi = std::min(lo + k, in + p);
  const int64_t padded = hi - lo;
  lo = std::max<int64_t>(lo, 0);
  hi = std::min(hi, in);
  return {lo, hi, padded};
}

}  // namespace

template <class T>
void avg_pool2d_forward(T* y, const T* x, const PoolGeom& g, bool count_include_pad,
                        int64_t divisor_override) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  for_planes(g, H * W + OH * OW * g.KH * g.KW, [&](int64_t p) {
    const T* xp = x + p * H * W;
    T* yp = y + p * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const Win wh = avg_win(oh, g.sh, g.ph, g.KH, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Win ww = avg_win(ow, g.sw, g.pw, g.KW, W);
        T s = 0;
        for (int64_t h = wh.lo; h < wh.hi; ++h)
          for (int64_t w = ww.lo; w < ww.hi; ++w) s += xp[h * W + w];
        int64_t div = divisor_override > 0 ? divisor_override
                      : count_include_pad  ? wh.padded * ww.padded
                                           : (wh.hi - wh.lo) * (ww.hi - ww.lo);
        yp[oh * OW + ow] = div > 0 ? s / T(div) : T(0);
      }
    }
  });
}

template <class T>
void avg_pool2d_backward(T* dx, const T* dy, const PoolGeom& g, bool count_include_pad,
                         int64_t divisor_override) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  for_planes(g, H * W + OH * OW * g.KH * g.KW, [&](int64_t p) {
    T* dp = dx + p * H * W;
    const T* gp = dy + p * OH * OW;
    std::fill(dp, dp + H * W, T(0));
    for (int64_t oh = 0; oh < OH; ++oh) {
      const Win wh = avg_win(oh, g.sh, g.ph, g.KH, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Win ww = avg_win(ow, g.sw, g.pw, g.KW, W);
        int64_t div = divisor_override > 0 ? divisor_override
                      : count_include_pad  ? wh.padded * ww.padded
                                           : (wh.hi - wh.lo) * (ww.hi - ww.lo);
        if (div <= 0) continue;
        const T v = gp[oh * OW + ow] / T(div);
        for (int64_t h = wh.lo; h < wh.hi; ++h)
          for (int64_t w = ww.lo; w < ww.hi; ++w) dp[h * W + w] += v;
      }
    }
  });
}

namespace {
inline int64_t ad_lo(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t ad_hi(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }
}  // namespace

template <class T>
void adaptive_avg_pool2d_forward(T* y, const T* x, const PoolGeom& g) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  for_planes(g, H * W + OH * OW, [&](int64_t p) {
    const T* xp = x + p * H * W;
    T* yp = y + p * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = ad_lo(oh, H, OH), h1 = ad_hi(oh, H, OH);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = ad_lo(ow, W, OW), w1 = ad_hi(ow, W, OW);
        T s = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) s += xp[h * W + w];
        yp[oh * OW + ow] = s / T((h1 - h0) * (w1 - w0));
      }
    }
  });
}

template <class T>
void adaptive_avg_pool2d_backward(T* dx, const T* dy, const PoolGeom& g) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  for_planes(g, H * W + OH * OW, [&](int64_t p) {
    T* dp = dx + p * H * W;
    const T* gp = dy + p * OH * OW;
    std::fill(dp, dp + H * W, T(0));
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = ad_lo(oh, H, OH), h1 = ad_hi(oh, H, OH);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = ad_lo(ow, W, OW), w1 = ad_hi(ow, W, OW);
        const T v = gp[oh * OW + ow] / T((h1 - h0) * (w1 - w0));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dp[h * W + w] += v;
      }
    }
  });
}

#define EMBER_INSTANTIATE(T)                                                                   \
  template void max_pool2d_forward<T>(T*, int64_t*, const T*, const PoolGeom&);                \
  template bool max_pool2d_backward<T>(T*, const T*, const int64_t*, const PoolGeom&,          \
                                       const T*);                                              \
  template void avg_pool2d_forward<T>(T*, const T*, const PoolGeom&, bool, int64_t);           \
  template void avg_pool2d_backward<T>(T*, const T*, const PoolGeom&, bool, int64_t);          \
  template void adaptive_avg_pool2d_forward<T>(T*, const T*, const PoolGeom&);                 \
  template void adaptive_avg_pool2d_backward<T>(T*, const T*, const PoolGeom&);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
