// ember/ops/loss: loss functions with their reductions, forward and backward side by side.
//
// Reduction: none -> one loss per element (pointwise losses) or per sample (class losses);
// mean / sum -> one value, summed in double in an order that does not depend on the thread
// count. A mean over zero elements is NaN, as in torch. In backward, dy holds as many values as
// the forward output (one for mean/sum). Input gradients (dx, dt) overwrite; a null pointer
// skips that gradient.
#pragma once

#include <cstdint>

namespace ember {

enum class Reduction : int { none = 0, mean = 1, sum = 2 };

// ---- pointwise losses over n elements; input x and target t have the same shape -------------
// mse: (x - t)^2 ; l1: |x - t|
template <class T> void mse_loss_forward(T* out, const T* x, const T* t, int64_t n, Reduction r);
template <class T>
void mse_loss_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, int64_t n, Reduction r);
template <class T> void l1_loss_forward(T* out, const T* x, const T* t, int64_t n, Reduction r);
template <class T>
void l1_loss_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, int64_t n, Reduction r);

// binary_cross_entropy on probabilities x: -w (t log x + (1 - t) log(1 - x)), each log clamped
// to >= -100 as in torch. w: per-element weight, or null for 1.
template <class T>
void bce_forward(T* out, const T* x, const T* t, const T* w, int64_t n, Reduction r);
template <class T>
void bce_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, const T* w, int64_t n,
                  Reduction r);
// Index of the first element that is not in [0, 1] (NaN included), or -1.
template <class T> int64_t first_outside_unit(const T* x, int64_t n);

// binary_cross_entropy_with_logits, stable for any x:
//   (1 - t) x - (1 + (pw - 1) t) log_sigmoid(x), times w. pw (pos_weight), w: per element or null.
template <class T>
void bce_with_logits_forward(T* out, const T* x, const T* t, const T* w, const T* pw, int64_t n,
                             Reduction r);
template <class T>
void bce_with_logits_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, const T* w,
                              const T* pw, int64_t n, Reduction r);

// ---- class losses: input viewed as (N, C, inner), one sample per (n, inner index) -----------
// Class targets hold N * inner indices in [0, C) or == ignore_index (checked by the caller).
// weight: per-class weight (C), or null. mean divides by the summed weight of the non-ignored
// targets (class targets) or by the number of samples (probability targets), as torch does.
struct ClassLoss {
  int64_t N, C, inner;
  Reduction reduction;
  int64_t ignore_index;
  double label_smoothing;
};

// cross_entropy = log_softmax + nll in one pass, log-sum-exp stable. lse (2 * N * inner)
// receives each sample's log-sum-exp as the pair (row max m, log(sum(exp(x - m)))) for the
// backward pass (an ignored sample's pair is unused). With label smoothing e:
//   loss = (1 - e) w[t] (lse - x_t) + e / C * sum_c w_c (lse - x_c)
template <class T>
void cross_entropy_forward(T* out, T* lse, const T* x, const int64_t* target, const T* weight,
                           const ClassLoss& p);
template <class T>
void cross_entropy_backward(T* dx, const T* dy, const T* x, const T* lse, const int64_t* target,
                            const T* weight, const ClassLoss& p);
// Probability targets (same shape as x): loss = sum_c w_c t'_c (lse - x_c), t' = (1-e) t + e/C.
template <class T>
void cross_entropy_prob_forward(T* out, T* lse, const T* x, const T* target, const T* weight,
                                const ClassLoss& p);
template <class T>
void cross_entropy_prob_backward(T* dx, T* dt, const T* dy, const T* x, const T* lse,
                                 const T* target, const T* weight, const ClassLoss& p);

// nll_loss on log-probabilities x: -w[t] x_t.
template <class T>
void nll_loss_forward(T* out, const T* x, const int64_t* target, const T* weight,
                      const ClassLoss& p);
template <class T>
void nll_loss_backward(T* dx, const T* dy, const int64_t* target, const T* weight,
                       const ClassLoss& p);

}  // namespace ember
