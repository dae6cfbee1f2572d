// ember/ops/optim: fused in-place optimizer updates, one call per parameter tensor, and the
// reductions behind gradient clipping and L1/L2 penalties.
//
// Every update follows PyTorch's single-tensor CPU implementation (torch/optim/<algo>.py,
// `_single_tensor_<algo>`) operation by operation: the same order, the same roundings to T after
// each torch op, scalar hyper-parameters folded in double and rounded to T where torch rounds them
// (torch's CPU opmath type for float is float), and a fused multiply-add exactly where ATen's
// vectorized kernels use one (add with alpha, lerp, addcmul). This file is compiled with
// -ffp-contract=off so the compiler adds no other fusions. SGD then matches torch bitwise; the
// others differ by round-off only because torch's float sqrt (MKL VML) is not correctly rounded
// (up to 0.75 ulp), while ours is. n = number of elements; p, g and the
// state buffers are contiguous arrays of n elements; g is read only.
#pragma once

#include <cstdint>

namespace ember {

struct SgdOptions {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
  bool first_step;  // momentum buffer is uninitialised: torch sets buf = grad (no dampening)
};

// p -= lr * d where d = g (+wd p), buf = momentum buf + (1-dampening) d, d = buf or d + m buf.
// buf may be null when momentum == 0.
template <class T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdOptions& o);

struct AdamOptions {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // the step count after incrementing (1 on the first update)
  bool amsgrad, maximize, decoupled_weight_decay;  // decoupled: AdamW
};

// m, v (and vmax when amsgrad; else null) are the first/second moment buffers.
template <class T>
void adam_update(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamOptions& o);

struct RmspropOptions {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};

// sq = square average; gavg (centered only, else null); buf (momentum > 0 only, else null).
template <class T>
void rmsprop_update(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n,
                    const RmspropOptions& o);

struct AdagradOptions {
  double lr, lr_decay, weight_decay, eps;
  int64_t step;  // after incrementing
  bool maximize;
};

template <class T>
void adagrad_update(T* p, const T* g, T* sum, int64_t n, const AdagradOptions& o);

// Norm reduction for clip_grad_norm_: returns, in double,
//   p == 2: sum x^2;  p == 1: sum |x|;  p == inf: max |x|;  p == -inf: min |x| (inf when n == 0);
//   p == 0: count of nonzeros;  other p: sum |x|^p.
// Blocks of fixed size are reduced independently and then summed in order, so the result does not
// depend on the thread count.
template <class T>
double norm_partial(const T* x, int64_t n, double p);

// x *= s (in place).
template <class T>
void scale_inplace(T* x, int64_t n, double s);

// x = clamp(x, lo, hi) (in place); NaN stays NaN like torch.clamp.
template <class T>
void clamp_inplace(T* x, int64_t n, double lo, double hi);

// dx += coef * sign(x) (kind 1) or dx += coef * x (kind 2): gradients of the L1 / L2 penalties.
template <class T>
void penalty_backward(T* dx, const T* x, int64_t n, double coef, int kind);

}  // namespace ember
