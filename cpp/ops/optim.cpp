#include "ops/optim.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"

namespace ember {

namespace {

// Rough flops per element of an update, for the parallel threshold only.
constexpr int64_t kUpdateCost = 16;

// torch.lerp's vectorized form (ATen lerp_vec): one fused multiply-add from the nearer end.
template <class T>
inline T lerp(T self, T end, T w) {
  const T diff = end - self;
  return std::abs(w) < T(0.5) ? std::fma(w, diff, self) : std::fma(w - T(1), diff, end);
}

}  // namespace

// ---- SGD ---------------------------------------------------------------------------------------
// torch: grad = -g if maximize; grad = grad.add(p, alpha=wd); buf = grad.clone() on the first step
// else buf.mul_(m).add_(grad, alpha=1-dampening); grad = grad.add(buf, alpha=m) if nesterov else
// buf; p.add_(grad, alpha=-lr).
template <class T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdOptions& o) {
  const bool wd_on = o.weight_decay != 0, mom_on = o.momentum != 0 && buf != nullptr;
  const T wd = T(o.weight_decay), mom = T(o.momentum), damp1 = T(1 - o.dampening);
  const T neg_lr = T(-o.lr);
  const bool first = o.first_step, nesterov = o.nesterov, maximize = o.maximize;
  // Independent elements: any split gives the same bits.
  parallel_for(n, kUpdateCost, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T d = maximize ? -g[i] : g[i];
      if (wd_on) d = std::fma(wd, p[i], d);
      if (mom_on) {
        const T bi = first ? d : std::fma(damp1, d, T(buf[i] * mom));
        buf[i] = bi;
        d = nesterov ? std::fma(mom, bi, d) : bi;
      }
      p[i] = std::fma(neg_lr, d, p[i]);
    }
  });
}

// ---- Adam / AdamW ------------------------------------------------------------------------------
// torch: p.mul_(1 - lr*wd) (AdamW) or grad = grad.add(p, alpha=wd) (Adam); m.lerp_(grad, 1-b1);
// v.mul_(b2).addcmul_(grad, grad, value=1-b2); vmax = maximum(vmax, v) (amsgrad);
// denom = (sqrt(v or vmax) / bc2**0.5).add_(eps); p.addcdiv_(m, denom, value=-lr/bc1).
template <class T>
void adam_update(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamOptions& o) {
  const double s = double(o.step);
  const double bc1 = 1 - std::pow(o.beta1, s), bc2 = 1 - std::pow(o.beta2, s);
  const double step_size = o.lr / bc1;
  const T bc2_sqrt = T(std::pow(bc2, 0.5));
  const T w1 = T(1 - o.beta1), b2 = T(o.beta2), c2 = T(1 - o.beta2), eps = T(o.eps);
  const T neg_step = T(-step_size), wd = T(o.weight_decay), decay = T(1 - o.lr * o.weight_decay);
  const bool wd_on = o.weight_decay != 0, decoupled = o.decoupled_weight_decay;
  const bool amsgrad = o.amsgrad && vmax != nullptr, maximize = o.maximize;
  parallel_for(n, kUpdateCost, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T d = maximize ? -g[i] : g[i];
      T pi = p[i];
      if (wd_on) {
        if (decoupled)
          pi = pi * decay;
        else
          d = std::fma(wd, pi, d);
      }
      const T mi = lerp(m[i], d, w1);
      m[i] = mi;
      const T vi0 = v[i] * b2;
      T vi = std::fma(c2 * d, d, vi0);  // ATen addcmul: fma(value * t1, t2, self)
      v[i] = vi;
      if (amsgrad) {
        const T mx = vmax[i];
        vi = (vi > mx || std::isnan(vi)) ? vi : mx;  // torch.maximum propagates NaN
        vmax[i] = vi;
      }
      T denom = std::sqrt(vi) / bc2_sqrt;
      denom = denom + eps;
      p[i] = pi + neg_step * mi / denom;
    }
  });
}

// ---- RMSprop -----------------------------------------------------------------------------------
// torch: grad = grad.add(p, alpha=wd); sq.mul_(a).addcmul_(grad, grad, value=1-a);
// centered: gavg.lerp_(grad, 1-a); avg = sq.addcmul(gavg, gavg, value=-1).sqrt_() else sq.sqrt();
// avg.add_(eps); momentum > 0: buf.mul_(m).addcdiv_(grad, avg); p.add_(buf, alpha=-lr)
// else p.addcdiv_(grad, avg, value=-lr).
template <class T>
void rmsprop_update(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n,
                    const RmspropOptions& o) {
  const T wd = T(o.weight_decay), alpha = T(o.alpha), c = T(1 - o.alpha), eps = T(o.eps);
  const T mom = T(o.momentum), neg_lr = T(-o.lr);
  const bool wd_on = o.weight_decay != 0, centered = o.centered && gavg != nullptr;
  const bool mom_on = o.momentum > 0 && buf != nullptr, maximize = o.maximize;
  parallel_for(n, kUpdateCost, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T d = maximize ? -g[i] : g[i];
      if (wd_on) d = std::fma(wd, p[i], d);
      const T si0 = sq[i] * alpha;
      const T si = std::fma(c * d, d, si0);
      sq[i] = si;
      T avg;
      if (centered) {
        const T ga = lerp(gavg[i], d, c);
        gavg[i] = ga;
        avg = std::sqrt(std::fma(-ga, ga, si));
      } else {
        avg = std::sqrt(si);
      }
      avg = avg + eps;
      if (mom_on) {
        T bi = buf[i] * mom;
        bi = bi + d / avg;
        buf[i] = bi;
        p[i] = std::fma(neg_lr, bi, p[i]);
      } else {
        p[i] = p[i] + neg_lr * d / avg;
      }
    }
  });
}

// ---- Adagrad -----------------------------------------------------------------------------------
// torch: grad = grad.add(p, alpha=wd); clr = lr / (1 + (step-1)*lr_decay);
// sum.addcmul_(grad, grad, value=1); std = sum.sqrt().add_(eps); p.addcdiv_(grad, std, value=-clr).
template <class T>
void adagrad_update(T* p, const T* g, T* sum, int64_t n, const AdagradOptions& o) {
  const double clr = o.lr / (1 + double(o.step - 1) * o.lr_decay);
  const T wd = T(o.weight_decay), eps = T(o.eps), neg_clr = T(-clr);
  const bool wd_on = o.weight_decay != 0, maximize = o.maximize;
  parallel_for(n, kUpdateCost, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T d = maximize ? -g[i] : g[i];
      if (wd_on) d = std::fma(wd, p[i], d);
      const T si = std::fma(d, d, sum[i]);
      sum[i] = si;
      const T sd = std::sqrt(si) + eps;
      p[i] = p[i] + neg_clr * d / sd;
    }
  });
}

// ---- reductions for clipping and penalties -----------------------------------------------------

namespace {

constexpr int64_t kNormBlock = 1 << 14;
constexpr int kLanes = 8;

// Reduces one block with kLanes independent double accumulators (a fixed association, so the
// compiler may vectorize it without changing the result).
template <class T, class F>
double block_sum(const T* x, int64_t n, F&& f) {
  double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += f(double(x[i + k]));
  for (int k = 0; i < n; ++i, ++k) acc[k] += f(double(x[i]));
  double s = 0;
  for (int k = 0; k < kLanes; ++k) s += acc[k];
  return s;
}

}  // namespace

template <class T>
double norm_partial(const T* x, int64_t n, double p) {
  const double inf = std::numeric_limits<double>::infinity();
  const bool is_max = p == inf, is_min = p == -inf;
  if (n <= 0) return is_min ? inf : 0.0;
  const int64_t nb = (n + kNormBlock - 1) / kNormBlock;
  std::vector<double> part(nb);
  parallel_for(nb, 2 * kNormBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* xb = x + b * kNormBlock;
      const int64_t len = std::min<int64_t>(kNormBlock, n - b * kNormBlock);
      double r;
      if (is_max || is_min) {
        r = is_max ? 0.0 : inf;
        bool nan = false;
        for (int64_t i = 0; i < len; ++i) {
          const double a = std::abs(double(xb[i]));
          nan |= std::isnan(a);
          r = is_max ? std::max(r, a) : std::min(r, a);
        }
        if (nan) r = std::numeric_limits<double>::quiet_NaN();
      } else if (p == 2) {
        r = block_sum(xb, len, [](double a) { return a * a; });
      } else if (p == 1) {
        r = block_sum(xb, len, [](double a) { return std::abs(a); });
      } else if (p == 0) {
        r = block_sum(xb, len, [](double a) { return a != 0 ? 1.0 : 0.0; });
      } else {
        r = block_sum(xb, len, [p](double a) { return std::pow(std::abs(a), p); });
      }
      part[b] = r;
    }
  });
  double r = part[0];
  for (int64_t b = 1; b < nb; ++b) {
    if (std::isnan(part[b]) || std::isnan(r))
      r = std::numeric_limits<double>::quiet_NaN();
    else if (is_max)
      r = std::max(r, part[b]);
    else if (is_min)
      r = std::min(r, part[b]);
    else
      r += part[b];
  }
  return r;
}

template <class T>
void scale_inplace(T* x, int64_t n, double s) {
  const T c = T(s);
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= c;
  });
}

template <class T>
void clamp_inplace(T* x, int64_t n, double lo, double hi) {
  const T l = T(lo), h = T(hi);
  parallel_for(n, 2, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T v = x[i];
      x[i] = std::isnan(v) ? v : std::min(std::max(v, l), h);
    }
  });
}

template <class T>
void penalty_backward(T* dx, const T* x, int64_t n, double coef, int kind) {
  const T c = T(coef);
  parallel_for(n, 2, [&](int64_t b, int64_t e) {
    if (kind == 1) {
      for (int64_t i = b; i < e; ++i) {
        const T v = x[i];
        const T sgn = v > 0 ? T(1) : (v < 0 ? T(-1) : (v == 0 ? T(0) : v));
        dx[i] += c * sgn;
      }
    } else {
      for (int64_t i = b; i < e; ++i) dx[i] += c * x[i];
    }
  });
}

#define EMBER_INSTANTIATE(T)                                                                  \
  template void sgd_update<T>(T*, const T*, T*, int64_t, const SgdOptions&);                 \
  template void adam_update<T>(T*, const T*, T*, T*, T*, int64_t, const AdamOptions&);       \
  template void rmsprop_update<T>(T*, const T*, T*, T*, T*, int64_t, const RmspropOptions&); \
  template void adagrad_update<T>(T*, const T*, T*, int64_t, const AdagradOptions&);         \
  template double norm_partial<T>(const T*, int64_t, double);                                \
  template void scale_inplace<T>(T*, int64_t, double);                                       \
  template void clamp_inplace<T>(T*, int64_t, double, double);                               \
  template void penalty_backward<T>(T*, const T*, int64_t, double, int);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
