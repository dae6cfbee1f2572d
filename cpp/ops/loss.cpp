#include "ops/loss.h"

#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "ops/eltwise.h"
#include "ops/vexp.h"

namespace ember {

using eltwise::Blk;

namespace {

constexpr int64_t kCheap = 2, kTranscendental = 20;

// Forward of a pointwise loss: body(r, in...) writes the unweighted per-element losses of one
// block; w (optional) multiplies them. none -> out[i]; mean/sum -> out[0].
template <class T, class F, class... P>
void loss_map(T* out, const T* w, int64_t n, Reduction red, int64_t cost, F body,
              const P*... in) {
  auto run = [&](auto&& f, auto... ptrs) {
    if (red == Reduction::none) {
      eltwise::map(out, n, cost, f, ptrs...);
    } else {
      const double s = eltwise::map_sum<T>(n, cost, f, ptrs...);
      out[0] = static_cast<T>(red == Reduction::mean ? s / static_cast<double>(n) : s);
    }
  };
  if (w)
    run([&](Blk<T>& r, const auto& wb, const auto&... a) { body(r, a...); r *= wb; }, w, in...);
  else
    run(body, in...);
}

// Backward of a pointwise loss: body(r, g, in...) writes the gradient of one block given the
// upstream gradient g, which is dy's block (none) or a scalar (mean/sum, already divided by n
// for mean), times w's block when w is given.
template <class T, class F, class... P>
void grad_map(T* d, const T* dy, const T* w, int64_t n, Reduction red, int64_t cost, F body,
              const P*... in) {
  if (red == Reduction::none) {
    if (w)
      eltwise::map(d, n, cost, [&](Blk<T>& r, const auto& g, const auto& wb, const auto&... a) {
        body(r, g * wb, a...);
      }, dy, w, in...);
    else
      eltwise::map(d, n, cost, [&](Blk<T>& r, const auto& g, const auto&... a) {
        body(r, g, a...);
      }, dy, in...);
  } else {
    const T gs = red == Reduction::mean ? static_cast<T>(dy[0] / static_cast<double>(n)) : dy[0];
    if (w)
      eltwise::map(d, n, cost, [&](Blk<T>& r, const auto& wb, const auto&... a) {
        body(r, gs * wb, a...);
      }, w, in...);
    else
      eltwise::map(d, n, cost, [&](Blk<T>& r, const auto&... a) { body(r, gs, a...); }, in...);
  }
}

template <class T>
void negate(T* dst, const T* src, int64_t n) {
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = -src[i];
  });
}

}  // namespace

// ---- mse: (x - t)^2 ; d/dx = 2 (x - t) ; d/dt = -d/dx -----------------------------------------
template <class T>
void mse_loss_forward(T* out, const T* x, const T* t, int64_t n, Reduction r) {
  loss_map(out, static_cast<const T*>(nullptr), n, r, kCheap,
           [](auto& o, const auto& x, const auto& t) { o = (x - t).square(); }, x, t);
}
template <class T>
void mse_loss_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, int64_t n,
                       Reduction r) {
  T* d = dx ? dx : dt;
  if (!d) return;
  grad_map(d, dy, static_cast<const T*>(nullptr), n, r, kCheap,
           [](auto& o, const auto& g, const auto& x, const auto& t) {
             o = g * (T(2) * (x - t));
           }, x, t);
  if (dx && dt) negate(dt, dx, n);
  else if (dt) negate(dt, dt, n);
}

// ---- l1: |x - t| ; d/dx = sign(x - t) ---------------------------------------------------------
template <class T>
void l1_loss_forward(T* out, const T* x, const T* t, int64_t n, Reduction r) {
  loss_map(out, static_cast<const T*>(nullptr), n, r, kCheap,
           [](auto& o, const auto& x, const auto& t) { o = (x - t).abs(); }, x, t);
}
template <class T>
void l1_loss_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, int64_t n,
                      Reduction r) {
  T* d = dx ? dx : dt;
  if (!d) return;
  grad_map(d, dy, static_cast<const T*>(nullptr), n, r, kCheap,
           [](auto& o, const auto& g, const auto& x, const auto& t) {
             o = g * (x - t).sign();
           }, x, t);
  if (dx && dt) negate(dt, dx, n);
  else if (dt) negate(dt, dt, n);
}

// ---- binary cross entropy on probabilities ---------------------------------------------------
// d/dx = w (x - t) / max(x (1 - x), 1e-12)   (torch's clamp)   d/dt = w (log(1 - x) - log x)
template <class T>
void bce_forward(T* out, const T* x, const T* t, const T* w, int64_t n, Reduction r) {
  loss_map(out, w, n, r, kTranscendental, [](auto& o, const auto& x, const auto& t) {
    o = (t - T(1)) * (-x).log1p().max(T(-100)) - t * x.log().max(T(-100));
  }, x, t);
}
template <class T>
void bce_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, const T* w, int64_t n,
                  Reduction r) {
  if (dx)
    grad_map(dx, dy, w, n, r, kCheap, [](auto& o, const auto& g, const auto& x,
                                         const auto& t) {
      o = g * (x - t) / ((T(1) - x) * x).max(T(1e-12));
    }, x, t);
  if (dt)
    grad_map(dt, dy, w, n, r, kTranscendental, [](auto& o, const auto& g, const auto& x) {
      o = g * ((-x).log1p() - x.log());
    }, x);
}
template <class T>
int64_t first_outside_unit(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!(x[i] >= T(0) && x[i] <= T(1))) return i;
  return -1;
}

// ---- binary cross entropy with logits ----------------------------------------------------------
// log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)), finite for any finite x.
// loss = (1 - t) x - lw log_sigmoid(x), lw = 1 + (pw - 1) t
// d/dx = lw sigmoid(x) - pw t        d/dt = -x - (pw - 1) log_sigmoid(x)     (pw = 1 if absent)
namespace {
template <class X> auto log_sigmoid(const X& x) {
  using T = typename X::Scalar;
  return x.min(T(0)) - vexp(-x.abs()).log1p();
}
}  // namespace

template <class T>
void bce_with_logits_forward(T* out, const T* x, const T* t, const T* w, const T* pw, int64_t n,
                             Reduction r) {
  if (pw)
    loss_map(out, w, n, r, kTranscendental, [](auto& o, const auto& x, const auto& t,
                                               const auto& pw) {
      o = (T(1) - t) * x - (T(1) + (pw - T(1)) * t) * log_sigmoid(x);
    }, x, t, pw);
  else
    loss_map(out, w, n, r, kTranscendental, [](auto& o, const auto& x, const auto& t) {
      o = (T(1) - t) * x - log_sigmoid(x);
    }, x, t);
}
template <class T>
void bce_with_logits_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, const T* w,
                              const T* pw, int64_t n, Reduction r) {
  if (dx) {
    if (pw)
      grad_map(dx, dy, w, n, r, kTranscendental, [](auto& o, const auto& g, const auto& x,
                                                    const auto& t, const auto& pw) {
        o = g * ((T(1) + (pw - T(1)) * t) * (T(1) + vexp(-x)).inverse() - pw * t);
      }, x, t, pw);
    else
      grad_map(dx, dy, w, n, r, kTranscendental, [](auto& o, const auto& g, const auto& x,
                                                    const auto& t) {
        o = g * ((T(1) + vexp(-x)).inverse() - t);
      }, x, t);
  }
  if (dt) {
    if (pw)
      grad_map(dt, dy, w, n, r, kTranscendental, [](auto& o, const auto& g, const auto& x,
                                                    const auto& pw) {
        o = g * (-x - (pw - T(1)) * log_sigmoid(x));
      }, x, pw);
    else
      grad_map(dt, dy, w, n, r, kCheap, [](auto& o, const auto& g, const auto& x) {
        o = g * (-x);
      }, x);
  }
}

// ---- class losses ---------------------------------------------------------------------------
// A sample's C class values sit at stride `inner`. Contiguous rows (inner == 1) are used in
// place; strided ones are gathered into a per-thread buffer (and results scattered back), so one
// code path serves both. Rows go through eltwise's fixed blocks: results depend on the values
// only. Each sample is computed by one thread; reductions over samples run afterwards, in order,
// in double.
namespace {

template <class T>
struct RowIO {
  int64_t C, inner;
  std::vector<T> x, t, dx, dt;  // gather/scatter buffers, used only when inner > 1
  RowIO(int64_t C_, int64_t inner_) : C(C_), inner(inner_) {
    if (inner > 1) x.resize(C), t.resize(C), dx.resize(C), dt.resize(C);
  }
  const T* in(const T* base, int64_t off, std::vector<T>& buf) {
    if (inner == 1) return base + off;
    for (int64_t k = 0; k < C; ++k) buf[k] = base[off + k * inner];
    return buf.data();
  }
  T* out(T* base, int64_t off, std::vector<T>& buf) {
    return inner == 1 ? base + off : buf.data();
  }
  void flush(T* base, int64_t off, const std::vector<T>& buf) {
    if (inner > 1)
      for (int64_t k = 0; k < C; ++k) base[off + k * inner] = buf[k];
  }
  void zero(T* base, int64_t off) {
    for (int64_t k = 0; k < C; ++k) base[off + k * inner] = T(0);
  }
};

// Runs f(i, off, io) for every sample i; off is the offset of its first class value.
template <class T, class F>
void for_samples(const ClassLoss& p, int64_t cost, F f) {
  parallel_for(p.N * p.inner, p.C * cost, [&](int64_t s0, int64_t s1) {
    RowIO<T> io(p.C, p.inner);
    for (int64_t i = s0; i < s1; ++i)
      f(i, (i / p.inner) * p.C * p.inner + i % p.inner, io);
  });
}

// A row's log-sum-exp as the pair (m, ls): lse = m + ls with m the row max and
// ls = log(sum(exp(x - m))). Kept apart so that x - lse is formed as (x - m) - ls, exactly as
// log_softmax does: m + ls would round at the scale of m (e.g. 1000) and lose digits of ls.
template <class T>
void row_lse(T* ml, const T* xr, int64_t C) {
  const T m = eltwise::max_row(xr, C);
  ml[0] = m;
  ml[1] = std::log(eltwise::sum_row<T>(C, [m](auto& o, const auto& x) {
    o = vexp(x - m);
  }, xr));
}

template <class T>
double sum_in_order(const T* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += v[i];
  return s;
}

// Summed weight of the non-ignored class targets: the mean's divisor.
template <class T>
double target_weight_sum(const int64_t* target, const T* weight, const ClassLoss& p) {
  const int64_t S = p.N * p.inner;
  double s = 0;
  for (int64_t i = 0; i < S; ++i)
    if (target[i] != p.ignore_index) s += weight ? static_cast<double>(weight[target[i]]) : 1.0;
  return s;
}

// out[0] = the reduction of the S per-sample losses (mean: divided by divisor).
template <class T>
void reduce_samples(T* out, const T* per, int64_t S, Reduction red, double divisor) {
  const double s = sum_in_order(per, S);
  out[0] = static_cast<T>(red == Reduction::mean ? s / divisor : s);
}

// The upstream gradient of sample i.
template <class T>
T sample_grad(const T* dy, int64_t i, Reduction red, double divisor) {
  if (red == Reduction::none) return dy[i];
  return red == Reduction::mean ? static_cast<T>(dy[0] / divisor) : dy[0];
}
}  // namespace

template <class T>
void cross_entropy_forward(T* out, T* lse, const T* x, const int64_t* target, const T* weight,
                           const ClassLoss& p) {
  const int64_t S = p.N * p.inner, C = p.C;
  std::vector<T> tmp(p.reduction == Reduction::none ? 0 : S);
  T* per = p.reduction == Reduction::none ? out : tmp.data();
  const T eps = static_cast<T>(p.label_smoothing);
  for_samples<T>(p, kTranscendental, [&](int64_t i, int64_t off, RowIO<T>& io) {
    const int64_t t = target[i];
    if (t == p.ignore_index) {
      per[i] = T(0);
      lse[2 * i] = lse[2 * i + 1] = T(0);
      return;
    }
    const T* xr = io.in(x, off, io.x);
    row_lse(lse + 2 * i, xr, C);
    const T m = lse[2 * i], ls = lse[2 * i + 1];
    const T wt = weight ? weight[t] : T(1);
    T loss = (T(1) - eps) * wt * ((m - xr[t]) + ls);
    if (eps > T(0)) {
      const T smooth =
          weight ? eltwise::sum_row<T>(C, [m, ls](auto& o, const auto& x, const auto& w) {
                     o = ((m - x) + ls) * w;
                   }, xr, weight)
                 : eltwise::sum_row<T>(C, [m, ls](auto& o, const auto& x) {
                     o = (m - x) + ls;
                   }, xr);
      loss += eps / T(C) * smooth;
    }
    per[i] = loss;
  });
  if (p.reduction != Reduction::none)
    reduce_samples(out, per, S, p.reduction,
                   p.reduction == Reduction::mean ? target_weight_sum(target, weight, p) : 1.0);
}

// d/dx_c = g [ (1 - e) w_t (p_c - [c == t]) + e/C (p_c sum_k w_k - w_c) ],  p = softmax(x)
//        = a p_c - g e/C w_c - g (1 - e) w_t [c == t],   a = g ((1 - e) w_t + e/C sum_k w_k)
template <class T>
void cross_entropy_backward(T* dx, const T* dy, const T* x, const T* lse, const int64_t* target,
                            const T* weight, const ClassLoss& p) {
  const int64_t C = p.C;
  const T eps = static_cast<T>(p.label_smoothing);
  const double divisor =
      p.reduction == Reduction::mean ? target_weight_sum(target, weight, p) : 1.0;
  const T wall = weight ? static_cast<T>(sum_in_order(weight, C)) : T(C);
  for_samples<T>(p, kTranscendental, [&](int64_t i, int64_t off, RowIO<T>& io) {
    const int64_t t = target[i];
    if (t == p.ignore_index) {
      io.zero(dx, off);
      return;
    }
    const T* xr = io.in(x, off, io.x);
    T* dr = io.out(dx, off, io.dx);
    const T g = sample_grad(dy, i, p.reduction, divisor);
    const T wt = weight ? weight[t] : T(1);
    const T a = g * ((T(1) - eps) * wt + eps / T(C) * wall), c = g * eps / T(C);
    const T m = lse[2 * i], ls = lse[2 * i + 1];
    if (weight && eps > T(0))
      eltwise::map_row(dr, C, [a, c, m, ls](auto& o, const auto& x, const auto& w) {
        o = a * vexp((x - m) - ls) - c * w;
      }, xr, weight);
    else
      eltwise::map_row(dr, C, [a, c, m, ls](auto& o, const auto& x) {
        o = a * vexp((x - m) - ls) - c;
      }, xr);
    dr[t] -= g * (T(1) - eps) * wt;
    io.flush(dx, off, io.dx);
  });
}

template <class T>
void cross_entropy_prob_forward(T* out, T* lse, const T* x, const T* target, const T* weight,
                                const ClassLoss& p) {
  const int64_t S = p.N * p.inner, C = p.C;
  std::vector<T> tmp(p.reduction == Reduction::none ? 0 : S);
  T* per = p.reduction == Reduction::none ? out : tmp.data();
  const T eps = static_cast<T>(p.label_smoothing), keep = T(1) - eps, spread = eps / T(C);
  for_samples<T>(p, kTranscendental, [&](int64_t i, int64_t off, RowIO<T>& io) {
    const T* xr = io.in(x, off, io.x);
    const T* tr = io.in(target, off, io.t);
    row_lse(lse + 2 * i, xr, C);
    const T m = lse[2 * i], ls = lse[2 * i + 1];
    if (weight)
      per[i] = eltwise::sum_row<T>(C, [=](auto& o, const auto& x, const auto& t,
                                          const auto& w) {
        o = ((m - x) + ls) * (keep * t + spread) * w;
      }, xr, tr, weight);
    else
      per[i] = eltwise::sum_row<T>(C, [=](auto& o, const auto& x, const auto& t) {
        o = ((m - x) + ls) * (keep * t + spread);
      }, xr, tr);
  });
  if (p.reduction != Reduction::none)
    reduce_samples(out, per, S, p.reduction, static_cast<double>(S));
}

// d/dx_c = g [ p_c sum_k w_k t'_k - w_c t'_c ]      d/dt_c = g (1 - e) w_c (lse - x_c)
template <class T>
void cross_entropy_prob_backward(T* dx, T* dt, const T* dy, const T* x, const T* lse,
                                 const T* target, const T* weight, const ClassLoss& p) {
  const int64_t S = p.N * p.inner, C = p.C;
  const T eps = static_cast<T>(p.label_smoothing), keep = T(1) - eps, spread = eps / T(C);
  const double divisor = static_cast<double>(S);
  for_samples<T>(p, kTranscendental, [&](int64_t i, int64_t off, RowIO<T>& io) {
    const T* xr = io.in(x, off, io.x);
    const T* tr = io.in(target, off, io.t);
    const T g = sample_grad(dy, i, p.reduction, divisor);
    const T m = lse[2 * i], ls = lse[2 * i + 1];
    if (dx) {
      T* dr = io.out(dx, off, io.dx);
      if (weight) {
        const T tw = eltwise::sum_row<T>(C, [=](auto& o, const auto& t, const auto& w) {
          o = (keep * t + spread) * w;
        }, tr, weight);
        eltwise::map_row(dr, C, [=](auto& o, const auto& x, const auto& t, const auto& w) {
          o = g * (tw * vexp((x - m) - ls) - w * (keep * t + spread));
        }, xr, tr, weight);
      } else {
        const T tw = eltwise::sum_row<T>(C, [=](auto& o, const auto& t) {
          o = keep * t + spread;
        }, tr);
        eltwise::map_row(dr, C, [=](auto& o, const auto& x, const auto& t) {
          o = g * (tw * vexp((x - m) - ls) - (keep * t + spread));
        }, xr, tr);
      }
      io.flush(dx, off, io.dx);
    }
    if (dt) {
      T* tg = io.out(dt, off, io.dt);
      const T gk = g * keep;
      if (weight)
        eltwise::map_row(tg, C, [=](auto& o, const auto& x, const auto& w) {
          o = gk * w * ((m - x) + ls);
        }, xr, weight);
      else
        eltwise::map_row(tg, C, [=](auto& o, const auto& x) { o = gk * ((m - x) + ls); }, xr);
      io.flush(dt, off, io.dt);
    }
  });
}

template <class T>
void nll_loss_forward(T* out, const T* x, const int64_t* target, const T* weight,
                      const ClassLoss& p) {
  const int64_t S = p.N * p.inner;
  std::vector<T> tmp(p.reduction == Reduction::none ? 0 : S);
  T* per = p.reduction == Reduction::none ? out : tmp.data();
  parallel_for(S, kCheap, [&](int64_t s0, int64_t s1) {
    for (int64_t i = s0; i < s1; ++i) {
      const int64_t t = target[i];
      const int64_t off = (i / p.inner) * p.C * p.inner + i % p.inner;
      per[i] = t == p.ignore_index ? T(0) : -(weight ? weight[t] : T(1)) * x[off + t * p.inner];
    }
  });
  if (p.reduction != Reduction::none)
    reduce_samples(out, per, S, p.reduction,
                   p.reduction == Reduction::mean ? target_weight_sum(target, weight, p) : 1.0);
}

template <class T>
void nll_loss_backward(T* dx, const T* dy, const int64_t* target, const T* weight,
                       const ClassLoss& p) {
  const int64_t S = p.N * p.inner;
  const double divisor =
      p.reduction == Reduction::mean ? target_weight_sum(target, weight, p) : 1.0;
  // Each thread zeroes and fills whole samples' class slabs (n index), so no two threads write
  // the same memory.
  const int64_t slab = p.C * p.inner;
  parallel_for(p.N, slab, [&](int64_t n0, int64_t n1) {
    std::fill(dx + n0 * slab, dx + n1 * slab, T(0));
    for (int64_t i = n0 * p.inner; i < n1 * p.inner; ++i) {
      const int64_t t = target[i];
      if (t == p.ignore_index) continue;
      const int64_t off = (i / p.inner) * slab + i % p.inner;
      dx[off + t * p.inner] = -(weight ? weight[t] : T(1)) * sample_grad(dy, i, p.reduction,
                                                                            divisor);
    }
  });
  (void)S;
}

#define EMBER_INSTANTIATE(T)                                                                 \
  template void mse_loss_forward<T>(T*, const T*, const T*, int64_t, Reduction);            \
  template void mse_loss_backward<T>(T*, T*, const T*, const T*, const T*, int64_t,         \
                                     Reduction);                                             \
  template void l1_loss_forward<T>(T*, const T*, const T*, int64_t, Reduction);             \
  template void l1_loss_backward<T>(T*, T*, const T*, const T*, const T*, int64_t,          \
                                    Reduction);                                              \
  template void bce_forward<T>(T*, const T*, const T*, const T*, int64_t, Reduction);       \
  template void bce_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t,    \
                                Reduction);                                                  \
  template int64_t first_outside_unit<T>(const T*, int64_t);                                \
  template void bce_with_logits_forward<T>(T*, const T*, const T*, const T*, const T*,      \
                                           int64_t, Reduction);                              \
  template void bce_with_logits_backward<T>(T*, T*, const T*, const T*, const T*,           \
                                            const T*, const T*, int64_t, Reduction);         \
  template void cross_entropy_forward<T>(T*, T*, const T*, const int64_t*, const T*,        \
                                         const ClassLoss&);                                  \
  template void cross_entropy_backward<T>(T*, const T*, const T*, const T*, const int64_t*, \
                                          const T*, const ClassLoss&);                       \
  template void cross_entropy_prob_forward<T>(T*, T*, const T*, const T*, const T*,         \
                                              const ClassLoss&);                             \
  template void cross_entropy_prob_backward<T>(T*, T*, const T*, const T*, const T*,        \
                                               const T*, const T*, const ClassLoss&);        \
  template void nll_loss_forward<T>(T*, const T*, const int64_t*, const T*,                 \
                                    const ClassLoss&);                                       \
  template void nll_loss_backward<T>(T*, const T*, const int64_t*, const T*,                \
                                     const ClassLoss&);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
