#include "ops/norm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/parallel.h"

namespace ember {

namespace {
// Rows per block in the layer-norm parameter-gradient reduction: fixed, so the summation order
// (within a block in row order, then across blocks in block order) never depends on threads.
constexpr int64_t kLnRowBlock = 32;
// Rows whose forward statistics are computed back to back before their outputs.
constexpr int64_t kLnStatRows = 8;
// Rows whose sums (and squared deviations) run interleaved in one loop (sums_of, sqdevs_of).
constexpr int kLnSumRows = 4;

// Reductions in 2 x kN independent partial sums (two native-width vectors, lane j takes
// elements i = j mod 2kN), the lanes then added in lane order in double: a fixed order (for a
// given build) that vectorizes without -ffast-math. GCC/Clang vector extensions, because GCC
// turns the equivalent scalar-array loop into a slow permute-heavy vectorization. Partials are
// in T: for float each lane sums only n/(2kN) terms, of centred or same-signed data.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <class T>
struct Lanes {
  static constexpr int kN = kVecBytes / sizeof(T);
  typedef T V __attribute__((vector_size(kVecBytes)));
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static V splat(T a) {
    V v;
    for (int j = 0; j < kN; ++j) v[j] = a;
    return v;
  }
  // Tail elements (fewer than 2kN) go to lanes 0.. of (a0, a1); then all lanes in order.
  static double total(V a0, V a1, const T* tail, int64_t nt) {
    T l[2 * kN];
    std::memcpy(l, &a0, sizeof a0);
    std::memcpy(l + kN, &a1, sizeof a1);
    for (int64_t j = 0; j < nt; ++j) l[j] += tail[j];
    double t = 0;
    for (int j = 0; j < 2 * kN; ++j) t += l[j];
    return t;
  }
};

// sum x[i] over each of R rows (row r at x + r * ld), into out[r]. The rows' loops run
// interleaved, R independent pairs of accumulator chains instead of one: a single row's loop is
// bound by the add latency (one pair of vectors per ~3 cycles), not by its loads. Each row's
// lanes and their order are those of a lone row (R = 1), so the sums are bitwise the same.
template <class T, int R>
void sums_of(const T* x, int64_t ld, int64_t n, double* out) {
  using L = Lanes<T>;
  typename L::V a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = L::splat(T(0));
  int64_t i = 0;
  for (; i + 2 * L::kN <= n; i += 2 * L::kN)
    for (int r = 0; r < R; ++r) {
      a0[r] += L::load(x + r * ld + i);
      a1[r] += L::load(x + r * ld + i + L::kN);
    }
  for (int r = 0; r < R; ++r) out[r] = L::total(a0[r], a1[r], x + r * ld + i, n - i);
}

template <class T>
double sum_of(const T* x, int64_t n) {
  double s;
  sums_of<T, 1>(x, 0, n, &s);
  return s;
}

// sum (x[i] - m[r])^2 over each of R rows, as sums_of.
template <class T, int R>
void sqdevs_of(const T* x, int64_t ld, int64_t n, const T* m, double* out) {
  using L = Lanes<T>;
  typename L::V a0[R], a1[R], mv[R];
  for (int r = 0; r < R; ++r) {
    a0[r] = a1[r] = L::splat(T(0));
    mv[r] = L::splat(m[r]);
  }
  int64_t i = 0;
  for (; i + 2 * L::kN <= n; i += 2 * L::kN)
    for (int r = 0; r < R; ++r) {
      const typename L::V t0 = L::load(x + r * ld + i) - mv[r];
      const typename L::V t1 = L::load(x + r * ld + i + L::kN) - mv[r];
      a0[r] += t0 * t0;
      a1[r] += t1 * t1;
    }
  for (int r = 0; r < R; ++r) {
    const T* xr = x + r * ld;
    T tail[2 * L::kN];
    for (int64_t j = 0; i + j < n; ++j) tail[j] = (xr[i + j] - m[r]) * (xr[i + j] - m[r]);
    out[r] = L::total(a0[r], a1[r], tail, n - i);
  }
}

template <class T>
double sqdev_of(const T* x, int64_t n, T m) {
  double s;
  sqdevs_of<T, 1>(x, 0, n, &m, &s);
  return s;
}

// y = (x - m) * rs * gamma + beta over one row (gamma, beta may be null).
template <class T>
void normalize_row(T* __restrict y, const T* __restrict x, const T* gamma, const T* beta, T m,
                   T rs, int64_t D) {
  if (gamma && beta) {
    for (int64_t d = 0; d < D; ++d) y[d] = (x[d] - m) * rs * gamma[d] + beta[d];
  } else if (gamma) {
    for (int64_t d = 0; d < D; ++d) y[d] = (x[d] - m) * rs * gamma[d];
  } else if (beta) {
    for (int64_t d = 0; d < D; ++d) y[d] = (x[d] - m) * rs + beta[d];
  } else {
    for (int64_t d = 0; d < D; ++d) y[d] = (x[d] - m) * rs;
  }
}

// (sum g[i] * w[i], sum g[i] * w[i] * (x[i] - m)); w may be null (= 1)
template <class T>
void dot_sums(const T* g, const T* w, const T* x, int64_t n, T m, double& sg, double& sgx) {
  using L = Lanes<T>;
  using V = typename L::V;
  constexpr int K = L::kN;
  V a0 = L::splat(T(0)), a1 = a0, b0 = a0, b1 = a0, mv = L::splat(m);
  int64_t i = 0;
  if (w) {
    for (; i + 2 * K <= n; i += 2 * K) {
      const V g0 = L::load(g + i) * L::load(w + i), g1 = L::load(g + i + K) * L::load(w + i + K);
      a0 += g0;
      a1 += g1;
      b0 += g0 * (L::load(x + i) - mv);
      b1 += g1 * (L::load(x + i + K) - mv);
    }
  } else {
    for (; i + 2 * K <= n; i += 2 * K) {
      const V g0 = L::load(g + i), g1 = L::load(g + i + K);
      a0 += g0;
      a1 += g1;
      b0 += g0 * (L::load(x + i) - mv);
      b1 += g1 * (L::load(x + i + K) - mv);
    }
  }
  T ta[2 * K], tb[2 * K];
  for (int64_t j = 0; i + j < n; ++j) {
    const T gv = w ? g[i + j] * w[i + j] : g[i + j];
    ta[j] = gv;
    tb[j] = gv * (x[i + j] - m);
  }
  sg = L::total(a0, a1, ta, n - i);
  sgx = L::total(b0, b1, tb, n - i);
}

// One row of the layer-norm input gradient: with g = dy * gamma and xhat = (x - m) * rs,
// dx = rs * (g - mean(g) - xhat * mean(g * xhat)).
// With kParams, the same pass also adds this row's dy * xhat and dy into the block partials pg, pb.
template <class T, bool kGamma, bool kParams>
void ln_backward_row(T* __restrict dx, T* __restrict pg, T* __restrict pb,
                     const T* __restrict dy, const T* __restrict x, const T* __restrict gamma,
                     T m, T rs, int64_t D) {
  double sa, sc;
  dot_sums(dy, kGamma ? gamma : nullptr, x, D, m, sa, sc);
  const T am = T(sa / D), cm = T(sc * double(rs) / D);
  const T k = rs * cm;  // dx = rs * (g - am) - (x - m) * rs * rs * cm
  for (int64_t e = 0; e < D; ++e) {
    const T g = kGamma ? dy[e] * gamma[e] : dy[e];
    const T xm = x[e] - m;
    dx[e] = rs * (g - am - xm * k);
    if (kParams) {
      pg[e] += dy[e] * (xm * rs);
      pb[e] += dy[e];
    }
  }
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Layer norm

template <class T>
void layer_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta,
                        int64_t R, int64_t D, double eps) {
  // Each row's two-pass mean/variance is done by one thread. Rows go in groups of kLnStatRows,
  // stage by stage (all sums, all means, all squared deviations, all rstd, then the outputs):
  // one row's stages form a chain of lane totals, double divisions and a square root (~200
  // cycles of latency), and staged this way the chains of a group's rows overlap. Same
  // arithmetic per row as one row at a time; forward at 1 thread: 256x16 11.2 -> 8.4 us,
  // 256x256 39.0 -> 23.5 us. Rows of 8 vectors or more also run their sums kLnSumRows rows per
  // loop (sums_of): same bits, same-process A/B new/old on a Zen 3, 1 and 2 threads: 256x256
  // 1.08-1.10, 256x1024 1.10-1.12 (shorter rows measured 0.96 that way, so they do not).
  parallel_for(R, 6 * D, [&](int64_t r0, int64_t r1) {
    for (int64_t g0 = r0; g0 < r1; g0 += kLnStatRows) {
      const int64_t g1 = std::min(r1, g0 + kLnStatRows);
      double m[kLnStatRows], rs[kLnStatRows];
      T mt[kLnStatRows];
      // Two passes: the mean, then the squared deviations from it (no cancellation), each
      // kLnSumRows rows at a time.
      const int64_t g4 = D >= 8 * Lanes<T>::kN ? g1 : g0;  // short rows: one at a time
      int64_t r = g0;
      for (; r + kLnSumRows <= g4; r += kLnSumRows)
        sums_of<T, kLnSumRows>(x + r * D, D, D, m + (r - g0));
      for (; r < g1; ++r) sums_of<T, 1>(x + r * D, D, D, m + (r - g0));
      for (r = g0; r < g1; ++r) {
        m[r - g0] = D > 0 ? m[r - g0] / D : 0.0;
        mt[r - g0] = T(m[r - g0]);
      }
      for (r = g0; r + kLnSumRows <= g4; r += kLnSumRows)
        sqdevs_of<T, kLnSumRows>(x + r * D, D, D, mt + (r - g0), rs + (r - g0));
      for (; r < g1; ++r) sqdevs_of<T, 1>(x + r * D, D, D, mt + (r - g0), rs + (r - g0));
      for (r = g0; r < g1; ++r) {
        rs[r - g0] = 1.0 / std::sqrt((D > 0 ? rs[r - g0] / D : 0.0) + eps);
        mean[r] = T(m[r - g0]);
        rstd[r] = T(rs[r - g0]);
      }
      for (r = g0; r < g1; ++r)
        normalize_row(y + r * D, x + r * D, gamma, beta, T(m[r - g0]), T(rs[r - g0]), D);
    }
  });
}

template <class T>
void layer_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                         const T* rstd, const T* gamma, int64_t R, int64_t D) {
  const bool params = dgamma || dbeta;
  const int64_t nb = (R + kLnRowBlock - 1) / kLnRowBlock;
  // part[b] holds block b's (sum dy*xhat, sum dy) over its rows: (nb, 2, D).
  std::vector<T> part(params ? nb * 2 * D : 0);
  T* pp = part.data();
  parallel_for(nb, kLnRowBlock * D * 10, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* pg = params ? pp + b * 2 * D : nullptr;
      T* pb = params ? pg + D : nullptr;
      if (params) std::fill(pg, pg + 2 * D, T(0));
      const int64_t rend = std::min(R, (b + 1) * kLnRowBlock);
      for (int64_t r = b * kLnRowBlock; r < rend; ++r) {
        const T* xr = x + r * D;
        const T* gr = dy + r * D;
        const T m = mean[r], rs = rstd[r];
        T* dr = dx ? dx + r * D : nullptr;
        if (dx && params) {  // input and parameter gradients in one pass over the row
          if (gamma)
            ln_backward_row<T, true, true>(dr, pg, pb, gr, xr, gamma, m, rs, D);
          else
            ln_backward_row<T, false, true>(dr, pg, pb, gr, xr, gamma, m, rs, D);
        } else if (dx) {
          if (gamma)
            ln_backward_row<T, true, false>(dr, pg, pb, gr, xr, gamma, m, rs, D);
          else
            ln_backward_row<T, false, false>(dr, pg, pb, gr, xr, gamma, m, rs, D);
        } else if (params) {
          for (int64_t d = 0; d < D; ++d) {
            pg[d] += gr[d] * ((xr[d] - m) * rs);
            pb[d] += gr[d];
          }
        }
      }
    }
  });
  if (!params) return;
  // Column sums of the block partials in block order; each column is reduced by one thread.
  parallel_for(D, 2 * nb, [&](int64_t c0, int64_t c1) {
    for (int64_t b = 1; b < nb; ++b) {
      const T* pg = pp + b * 2 * D;
      for (int64_t c = c0; c < c1; ++c) {
        pp[c] += pg[c];
        pp[D + c] += pg[D + c];
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (dgamma) dgamma[c] += pp[c];
      if (dbeta) dbeta[c] += pp[D + c];
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Batch norm

template <class T>
void batch_norm_forward(T* y, T* mean, T* rstd, T* running_mean, T* running_var, const T* x,
                        const T* gamma, const T* beta, int64_t N, int64_t C, int64_t S,
                        bool use_batch_stats, double momentum, double eps) {
  const int64_t M = N * S;
  // Channels are split over threads; each channel's sums run over (n, s) in a fixed order. The
  // loops go n-outer so that (N, C) input (S = 1) reads rows contiguously.
  parallel_for(C, 8 * M, [&](int64_t c0, int64_t c1) {
    if (use_batch_stats) {
      std::vector<double> sum(c1, 0.0), sq(c1, 0.0);
      double* su = sum.data();  // indexed by channel (entries below c0 unused)
      double* sqc = sq.data();
      if (S == 1) {
        // (N, C): rows of channels; per-channel double accumulators, vectorized over c.
        for (int64_t n = 0; n < N; ++n) {
          const T* row = x + n * C;
          for (int64_t c = c0; c < c1; ++c) su[c] += row[c];
        }
        for (int64_t c = c0; c < c1; ++c) su[c] /= double(M);  // now the mean
        for (int64_t n = 0; n < N; ++n) {
          const T* row = x + n * C;
          for (int64_t c = c0; c < c1; ++c) {
            const double t = row[c] - su[c];
            sqc[c] += t * t;
          }
        }
      } else {
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = c0; c < c1; ++c) su[c] += sum_of(x + (n * C + c) * S, S);
        for (int64_t c = c0; c < c1; ++c) su[c] /= double(M);  // now the mean
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = c0; c < c1; ++c)
            sqc[c] += sqdev_of(x + (n * C + c) * S, S, T(su[c]));
      }
      for (int64_t c = c0; c < c1; ++c) {
        const double m = sum[c], var = sq[c] / double(M);
        mean[c] = T(m);
        rstd[c] = T(1.0 / std::sqrt(var + eps));
        if (running_mean)
          running_mean[c] = T((1.0 - momentum) * double(running_mean[c]) + momentum * m);
        if (running_var && M > 1)
          running_var[c] = T((1.0 - momentum) * double(running_var[c]) +
                             momentum * var * double(M) / double(M - 1));
      }
    } else {
      for (int64_t c = c0; c < c1; ++c) {
        mean[c] = running_mean[c];
        rstd[c] = T(1.0 / std::sqrt(double(running_var[c]) + eps));
      }
    }
    // y = x * a + b per channel, with a = gamma * rstd, b = beta - mean * a
    std::vector<T> av(c1), bv(c1);
    T* ap = av.data();  // indexed by channel (entries below c0 unused)
    T* bp = bv.data();
    for (int64_t c = c0; c < c1; ++c) {
      ap[c] = (gamma ? gamma[c] : T(1)) * rstd[c];
      bp[c] = (beta ? beta[c] : T(0)) - mean[c] * ap[c];
    }
    if (S == 1) {
      for (int64_t n = 0; n < N; ++n) {
        const T* xr = x + n * C;
        T* yr = y + n * C;
        for (int64_t c = c0; c < c1; ++c) yr[c] = xr[c] * ap[c] + bp[c];
      }
      return;
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) {
        const T* p = x + (n * C + c) * S;
        T* q = y + (n * C + c) * S;
        const T a = ap[c], b = bp[c];
        for (int64_t i = 0; i < S; ++i) q[i] = p[i] * a + b;
      }
  });
}

template <class T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                         const T* rstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                         bool use_batch_stats) {
  const int64_t M = N * S;
  parallel_for(C, 10 * M, [&](int64_t c0, int64_t c1) {
    const bool need_sums = dgamma || dbeta || (dx && use_batch_stats);
    std::vector<double> sdy(c1, 0.0), sdyx(c1, 0.0);  // sum dy, sum dy * xhat
    if (need_sums && S == 1) {
      double* a = sdy.data();  // indexed by channel (entries below c0 unused)
      double* b = sdyx.data();
      for (int64_t n = 0; n < N; ++n) {
        const T* xr = x + n * C;
        const T* gr = dy + n * C;
        for (int64_t c = c0; c < c1; ++c) {
          a[c] += gr[c];
          b[c] += double(gr[c]) * double(xr[c] - mean[c]);
        }
      }
    } else if (need_sums) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          const T* p = x + (n * C + c) * S;
          const T* g = dy + (n * C + c) * S;
          double a, b;
          dot_sums(g, static_cast<const T*>(nullptr), p, S, mean[c], a, b);
          sdy[c] += a;
          sdyx[c] += b;
        }
    }
    if (need_sums) {
      for (int64_t c = c0; c < c1; ++c) {
        sdyx[c] *= double(rstd[c]);
        if (dgamma) dgamma[c] += T(sdyx[c]);
        if (dbeta) dbeta[c] += T(sdy[c]);
      }
    }
    if (!dx) return;
    if (S == 1) {
      // dx = k * g - (k * gm + k * rs * gxm * (x - m)) = k * g - u - v * x, per-channel u, v
      std::vector<T> kv(c1), uv(c1), vv(c1);
      for (int64_t c = c0; c < c1; ++c) {
        const T rs = rstd[c], k = (gamma ? gamma[c] : T(1)) * rs;
        T gm = 0, gxm = 0;
        if (use_batch_stats) {
          gm = T(sdy[c] / double(M));
          gxm = T(sdyx[c] / double(M));
        }
        kv[c] = k;
        vv[c] = k * rs * gxm;
        uv[c] = k * gm - vv[c] * mean[c];
      }
      const T *kp = kv.data(), *up = uv.data(), *vp = vv.data();
      for (int64_t n = 0; n < N; ++n) {
        const T* xr = x + n * C;
        const T* gr = dy + n * C;
        T* q = dx + n * C;
        for (int64_t c = c0; c < c1; ++c) q[c] = kp[c] * gr[c] - up[c] - vp[c] * xr[c];
      }
      return;
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) {
        const T* p = x + (n * C + c) * S;
        const T* g = dy + (n * C + c) * S;
        T* q = dx + (n * C + c) * S;
        const T rs = rstd[c], k = (gamma ? gamma[c] : T(1)) * rs;
        if (use_batch_stats) {
          const T m = mean[c];
          const T gm = T(sdy[c] / double(M)), gxm = T(sdyx[c] / double(M));
          for (int64_t i = 0; i < S; ++i) q[i] = k * (g[i] - gm - (p[i] - m) * rs * gxm);
        } else {
          for (int64_t i = 0; i < S; ++i) q[i] = k * g[i];
        }
      }
  });
}

// ---------------------------------------------------------------------------------------------
// Dropout

namespace {
// Branch-free (the mask is random, a branch would mispredict half the time) and with restrict
// pointers so the loop vectorizes: y = x * (u >= p ? scale : 0), as torch's x * mask * scale.
template <class T>
void dropout_span(T* __restrict y, const T* __restrict x, const T* __restrict u, int64_t n,
                  T p, T scale) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * (u[i] >= p ? scale : T(0));
}
}  // namespace

template <class T>
void dropout_apply(T* y, const T* x, const T* u, int64_t n_mask, int64_t inner, T p, T scale) {
  parallel_for(n_mask, 2 * inner, [=](int64_t i0, int64_t i1) {
    if (inner == 1) {
      dropout_span(y + i0, x + i0, u + i0, i1 - i0, p, scale);
      return;
    }
    for (int64_t i = i0; i < i1; ++i) {
      const T k = u[i] >= p ? scale : T(0);
      const T* xi = x + i * inner;
      T* yi = y + i * inner;
      for (int64_t j = 0; j < inner; ++j) yi[j] = xi[j] * k;
    }
  });
}

#define EMBER_INSTANTIATE(T)                                                                   \
  template void layer_norm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t,       \
                                      int64_t, double);                                        \
  template void layer_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,     \
                                       const T*, int64_t, int64_t);                            \
  template void batch_norm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,        \
                                      int64_t, int64_t, int64_t, bool, double, double);        \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,     \
                                       const T*, int64_t, int64_t, int64_t, bool);             \
  template void dropout_apply<T>(T*, const T*, const T*, int64_t, int64_t, T, T);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
