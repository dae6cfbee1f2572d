#include "ops/optim.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/parallel.h"

namespace ember {

namespace {

// Rough flops per element of an update, for the parallel threshold only.
constexpr int64_t kUpdateCost = 16;

// torch.lerp's vectorized form (ATen lerp_vec): one fused multiply-add from the nearer end.
// SMALL (|w| < 0.5) is a compile-time flag; coeff is w when SMALL, else w - 1.
template <bool SMALL, class T>
inline T lerp(T self, T end, T coeff) {
  return std::fma(coeff, end - self, SMALL ? self : end);
}

// Calls f(std::bool_constant<b>...) so that every option becomes a compile-time constant and the
// element loops carry no control flow (they vectorize).
template <class F>
void with_flags(F&& f) {
  f();
}
template <class F, class... Bs>
void with_flags(F&& f, bool b, Bs... rest) {
  if (b)
    with_flags([&](auto... c) { f(std::true_type{}, c...); }, rest...);
  else
    with_flags([&](auto... c) { f(std::false_type{}, c...); }, rest...);
}

}  // namespace

// ---- SGD ---------------------------------------------------------------------------------------
// torch: grad = -g if maximize; grad = grad.add(p, alpha=wd); buf = grad.clone() on the first step
// else buf.mul_(m).add_(grad, alpha=1-dampening); grad = grad.add(buf, alpha=m) if nesterov else
// buf; p.add_(grad, alpha=-lr).
template <class T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdOptions& o) {
  const T wd = T(o.weight_decay), mom = T(o.momentum), damp1 = T(1 - o.dampening);
  const T neg_lr = T(-o.lr), sign = o.maximize ? T(-1) : T(1);  // -g is exact: g * -1
  with_flags(
      [&](auto WD, auto MOM, auto FIRST, auto NESTEROV) {
        // Independent elements: any split gives the same bits.
        parallel_for(n, kUpdateCost, [&, p, g, buf](int64_t b, int64_t e) {
          const T sign_ = sign, wd_ = wd, mom_ = mom, damp1_ = damp1, neg_lr_ = neg_lr;
          for (int64_t i = b; i < e; ++i) {
            T d = g[i] * sign_;
            if constexpr (WD) d = std::fma(wd_, p[i], d);
            if constexpr (MOM) {
              T bi;
              if constexpr (FIRST)
                bi = d;
              else
                bi = std::fma(damp1_, d, T(buf[i] * mom_));
              buf[i] = bi;
              if constexpr (NESTEROV)
                d = std::fma(mom_, bi, d);
              else
                d = bi;
            }
            p[i] = std::fma(neg_lr_, d, p[i]);
          }
        });
      },
      o.weight_decay != 0, o.momentum != 0 && buf != nullptr, o.first_step, o.nesterov);
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
  const bool small = std::abs(w1) < T(0.5);
  const T coeff1 = small ? w1 : w1 - T(1);
  const T neg_step = T(-step_size), wd = T(o.weight_decay), decay = T(1 - o.lr * o.weight_decay);
  const T sign = o.maximize ? T(-1) : T(1);
  const bool wd_on = o.weight_decay != 0;
  with_flags(
      [&](auto L2, auto DECOUPLED, auto AMS, auto SMALL) {
        parallel_for(n, kUpdateCost, [&, p, g, m, v, vmax](int64_t b, int64_t e) {
          // Local copies: a float store through p could otherwise alias a captured float and
          // keep the loop from vectorizing.
          const T sign_ = sign, decay_ = decay, wd_ = wd, coeff_ = coeff1, b2_ = b2, c2_ = c2;
          const T bc2_sqrt_ = bc2_sqrt, eps_ = eps, neg_step_ = neg_step;
          for (int64_t i = b; i < e; ++i) {
            T d = g[i] * sign_;
            T pi = p[i];
            if constexpr (DECOUPLED) pi = pi * decay_;
            if constexpr (L2) d = std::fma(wd_, pi, d);
            const T mi = lerp<SMALL>(m[i], d, coeff_);
            m[i] = mi;
            const T v0 = v[i] * b2_;
            T vi = std::fma(c2_ * d, d, v0);  // ATen addcmul: fma(value * t1, t2, self)
            v[i] = vi;
            if constexpr (AMS) {
              const T mx = vmax[i];
              vi = (vi != vi) ? vi : std::max(vi, mx);  // torch.maximum propagates NaN
              vmax[i] = vi;
            }
            T denom = std::sqrt(vi) / bc2_sqrt_;
            denom = denom + eps_;
            p[i] = pi + neg_step_ * mi / denom;
          }
        });
      },
      wd_on && !o.decoupled_weight_decay, wd_on && o.decoupled_weight_decay,
      o.amsgrad && vmax != nullptr, small);
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
  const bool small = std::abs(c) < T(0.5);
  const T coeff = small ? c : c - T(1);
  const T mom = T(o.momentum), neg_lr = T(-o.lr), sign = o.maximize ? T(-1) : T(1);
  with_flags(
      [&](auto WD, auto CENTERED, auto MOM, auto SMALL) {
        parallel_for(n, kUpdateCost, [&, p, g, sq, gavg, buf](int64_t b, int64_t e) {
          const T sign_ = sign, wd_ = wd, alpha_ = alpha, c_ = c, coeff_ = coeff, eps_ = eps;
          const T mom_ = mom, neg_lr_ = neg_lr;
          for (int64_t i = b; i < e; ++i) {
            T d = g[i] * sign_;
            if constexpr (WD) d = std::fma(wd_, p[i], d);
            const T s0 = sq[i] * alpha_;
            const T si = std::fma(c_ * d, d, s0);
            sq[i] = si;
            T avg;
            if constexpr (CENTERED) {
              const T ga = lerp<SMALL>(gavg[i], d, coeff_);
              gavg[i] = ga;
              avg = std::sqrt(std::fma(-ga, ga, si));
            } else {
              avg = std::sqrt(si);
            }
            avg = avg + eps_;
            if constexpr (MOM) {
              T bi = buf[i] * mom_;
              bi = bi + d / avg;
              buf[i] = bi;
              p[i] = std::fma(neg_lr_, bi, p[i]);
            } else {
              p[i] = p[i] + neg_lr_ * d / avg;
            }
          }
        });
      },
      o.weight_decay != 0, o.centered && gavg != nullptr, o.momentum > 0 && buf != nullptr,
      small);
}

// ---- Adagrad -----------------------------------------------------------------------------------
// torch: grad = grad.add(p, alpha=wd); clr = lr / (1 + (step-1)*lr_decay);
// sum.addcmul_(grad, grad, value=1); std = sum.sqrt().add_(eps); p.addcdiv_(grad, std, value=-clr).
template <class T>
void adagrad_update(T* p, const T* g, T* sum, int64_t n, const AdagradOptions& o) {
  const double clr = o.lr / (1 + double(o.step - 1) * o.lr_decay);
  const T wd = T(o.weight_decay), eps = T(o.eps), neg_clr = T(-clr);
  const T sign = o.maximize ? T(-1) : T(1);
  with_flags(
      [&](auto WD) {
        parallel_for(n, kUpdateCost, [&, p, g, sum](int64_t b, int64_t e) {
          const T sign_ = sign, wd_ = wd, eps_ = eps, neg_clr_ = neg_clr;
          for (int64_t i = b; i < e; ++i) {
            T d = g[i] * sign_;
            if constexpr (WD) d = std::fma(wd_, p[i], d);
            const T si = std::fma(d, d, sum[i]);
            sum[i] = si;
            const T sd = std::sqrt(si) + eps_;
            p[i] = p[i] + neg_clr_ * d / sd;
          }
        });
      },
      o.weight_decay != 0);
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
