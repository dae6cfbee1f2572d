#include "ops/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"

namespace ember {

namespace {
// Rows per block in the layer-norm parameter-gradient reduction: fixed, so the summation order
// (within a block in row order, then across blocks in block order) never depends on threads.
constexpr int64_t kLnRowBlock = 32;
}  // namespace

// ---------------------------------------------------------------------------------------------
// Layer norm

template <class T>
void layer_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta,
                        int64_t R, int64_t D, double eps) {
  // One row per iteration; each row's two-pass mean/variance is done by one thread.
  parallel_for(R, 6 * D, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += xr[d];
      const double m = D > 0 ? s / D : 0.0;
      double v = 0;
      for (int64_t d = 0; d < D; ++d) {
        const double t = xr[d] - m;
        v += t * t;
      }
      v = D > 0 ? v / D : 0.0;
      const double rs = 1.0 / std::sqrt(v + eps);
      mean[r] = T(m);
      rstd[r] = T(rs);
      const T mt = T(m), rst = T(rs);
      if (gamma && beta) {
        for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mt) * rst * gamma[d] + beta[d];
      } else if (gamma) {
        for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mt) * rst * gamma[d];
      } else if (beta) {
        for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mt) * rst + beta[d];
      } else {
        for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mt) * rst;
      }
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
        if (params) {
          for (int64_t d = 0; d < D; ++d) {
            const T xh = (xr[d] - m) * rs;
            pg[d] += gr[d] * xh;
            pb[d] += gr[d];
          }
        }
        if (dx) {
          double a = 0, c = 0;  // sum g, sum g * xhat, with g = dy * gamma
          for (int64_t d = 0; d < D; ++d) {
            const T xh = (xr[d] - m) * rs;
            const T g = gamma ? gr[d] * gamma[d] : gr[d];
            a += g;
            c += g * xh;
          }
          const T am = T(a / D), cm = T(c / D);
          T* dr = dx + r * D;
          for (int64_t d = 0; d < D; ++d) {
            const T xh = (xr[d] - m) * rs;
            const T g = gamma ? gr[d] * gamma[d] : gr[d];
            dr[d] = rs * (g - am - xh * cm);
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
    const int64_t nc = c1 - c0;
    if (use_batch_stats) {
      std::vector<double> sum(nc, 0.0), sq(nc, 0.0);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          const T* p = x + (n * C + c) * S;
          double s = 0;
          for (int64_t i = 0; i < S; ++i) s += p[i];
          sum[c - c0] += s;
        }
      for (int64_t c = 0; c < nc; ++c) sum[c] /= double(M);  // now the mean
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          const T* p = x + (n * C + c) * S;
          const double m = sum[c - c0];
          double s = 0;
          for (int64_t i = 0; i < S; ++i) {
            const double t = p[i] - m;
            s += t * t;
          }
          sq[c - c0] += s;
        }
      for (int64_t c = c0; c < c1; ++c) {
        const double m = sum[c - c0], var = sq[c - c0] / double(M);
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
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) {
        const T* p = x + (n * C + c) * S;
        T* q = y + (n * C + c) * S;
        // y = x * a + b with a = gamma * rstd, b = beta - mean * a
        const T a = (gamma ? gamma[c] : T(1)) * rstd[c];
        const T b = (beta ? beta[c] : T(0)) - mean[c] * a;
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
    const int64_t nc = c1 - c0;
    const bool need_sums = dgamma || dbeta || (dx && use_batch_stats);
    std::vector<double> sdy(nc, 0.0), sdyx(nc, 0.0);  // sum dy, sum dy * xhat
    if (need_sums) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          const T* p = x + (n * C + c) * S;
          const T* g = dy + (n * C + c) * S;
          const T m = mean[c];
          double a = 0, b = 0;
          for (int64_t i = 0; i < S; ++i) {
            a += g[i];
            b += double(g[i]) * double(p[i] - m);
          }
          sdy[c - c0] += a;
          sdyx[c - c0] += b;
        }
      for (int64_t c = c0; c < c1; ++c) {
        sdyx[c - c0] *= double(rstd[c]);
        if (dgamma) dgamma[c] += T(sdyx[c - c0]);
        if (dbeta) dbeta[c] += T(sdy[c - c0]);
      }
    }
    if (!dx) return;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) {
        const T* p = x + (n * C + c) * S;
        const T* g = dy + (n * C + c) * S;
        T* q = dx + (n * C + c) * S;
        const T rs = rstd[c], k = (gamma ? gamma[c] : T(1)) * rs;
        if (use_batch_stats) {
          const T m = mean[c];
          const T gm = T(sdy[c - c0] / double(M)), gxm = T(sdyx[c - c0] / double(M));
          for (int64_t i = 0; i < S; ++i) q[i] = k * (g[i] - gm - (p[i] - m) * rs * gxm);
        } else {
          for (int64_t i = 0; i < S; ++i) q[i] = k * g[i];
        }
      }
  });
}

// ---------------------------------------------------------------------------------------------
// Dropout

template <class T>
void dropout_apply(T* y, const T* x, const T* u, int64_t n_mask, int64_t inner, T p, T scale) {
  parallel_for(n_mask, 2 * inner, [&](int64_t i0, int64_t i1) {
    if (inner == 1) {
      for (int64_t i = i0; i < i1; ++i) y[i] = u[i] >= p ? x[i] * scale : T(0);
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
