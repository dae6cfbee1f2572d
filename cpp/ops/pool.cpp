#include "ops/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"

namespace ember {

namespace {

// Pooling is memory-bound: below this much work (elements touched) a parallel region costs more
// than it saves on the 2-core machines, so small pools stay on the calling thread.
constexpr int64_t kPoolParallelWork = int64_t(1) << 21;

// Runs f(plane) over all N*C planes, in parallel when large; cost is per plane.
template <class F>
void for_planes(const PoolGeom& g, int64_t cost, F&& f) {
  if (g.N * g.C * cost < kPoolParallelWork) cost = 1;  // below parallel_for's threshold
  parallel_for(g.N * g.C, cost, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) f(p);
  });
}

}  // namespace

template <class T>
void max_pool2d_forward(T* y, int64_t* idx, const T* x, const PoolGeom& g) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  const int64_t in_plane = H * W, out_plane = OH * OW;
  const bool fast2x2 = g.KH == 2 && g.KW == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 &&
                       g.pw == 0 && g.dh == 1 && g.dw == 1 && 2 * OH <= H && 2 * OW <= W;
  for_planes(g, in_plane + out_plane * g.KH * g.KW, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    int64_t* ip = idx ? idx + p * out_plane : nullptr;
    if (fast2x2) {
      // 2x2, stride 2: the common CNN case, no bounds checks.
      for (int64_t oh = 0; oh < OH; ++oh) {
        const T* r0 = xp + 2 * oh * W;
        const T* r1 = r0 + W;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = 2 * ow, base = 2 * oh * W + w0;
          T best = r0[w0];
          int64_t bi = base;
          // Scan order (r0,w0), (r0,w0+1), (r1,w0), (r1,w0+1); NaN wins (as in PyTorch).
          auto take = [&](T v, int64_t i) {
            if (v > best || std::isnan(v)) {
              best = v;
              bi = i;
            }
          };
          take(r0[w0 + 1], base + 1);
          take(r1[w0], base + W);
          take(r1[w0 + 1], base + W + 1);
          yp[oh * OW + ow] = best;
          if (ip) ip[oh * OW + ow] = bi;
        }
      }
      return;
    }
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
void max_pool2d_backward(T* dx, const T* dy, const int64_t* idx, const PoolGeom& g) {
  const int64_t in_plane = g.H * g.W, out_plane = g.OH * g.OW;
  for_planes(g, in_plane + out_plane, [&](int64_t p) {
    T* dp = dx + p * in_plane;
    std::fill(dp, dp + in_plane, T(0));
    const T* gp = dy + p * out_plane;
    const int64_t* ip = idx + p * out_plane;
    for (int64_t q = 0; q < out_plane; ++q) dp[ip[q]] += gp[q];
  });
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
  template void max_pool2d_backward<T>(T*, const T*, const int64_t*, const PoolGeom&);         \
  template void avg_pool2d_forward<T>(T*, const T*, const PoolGeom&, bool, int64_t);           \
  template void avg_pool2d_backward<T>(T*, const T*, const PoolGeom&, bool, int64_t);          \
  template void adaptive_avg_pool2d_forward<T>(T*, const T*, const PoolGeom&);                 \
  template void adaptive_avg_pool2d_backward<T>(T*, const T*, const PoolGeom&);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
