// ember/ops/activation: elementwise activations and softmax / log_softmax.
//
// Elementwise ops run over n elements of a contiguous array. Backward kernels take the incoming
// gradient dy as `const T*` (n values) or as `Fill<T>` (one value for all n, the gradient of a
// full sum or mean); both are instantiated. Backward passes overwrite dx (input
// gradients are never accumulated) and use whichever of x (input) or y (output) is cheaper:
// relu/sigmoid/tanh differentiate from y; leaky_relu/elu/gelu/silu from x.
//
// Softmax views x as (outer, D, inner) and normalizes over D (the softmax dim): inner == 1 is
// the contiguous last-dim case; inner > 1 is any other dim, handled without a transpose.
//
// step (Heaviside) is forward only: it has no backward kernel. Its derivative is zero wherever
// it exists, so ember.functional.step returns a tensor that does not require grad.
#pragma once

#include <cstdint>

#include "core/fill.h"

namespace ember {

template <class T> void relu_forward(T* y, const T* x, int64_t n);
template <class T, class G>
void relu_backward(T* dx, G dy, const T* y, int64_t n);

template <class T> void leaky_relu_forward(T* y, const T* x, int64_t n, T negative_slope);
template <class T, class G>
void leaky_relu_backward(T* dx, G dy, const T* x, int64_t n, T negative_slope);

template <class T> void elu_forward(T* y, const T* x, int64_t n, T alpha);
template <class T, class G>
void elu_backward(T* dx, G dy, const T* x, int64_t n, T alpha);

template <class T> void sigmoid_forward(T* y, const T* x, int64_t n);
template <class T, class G>
void sigmoid_backward(T* dx, G dy, const T* y, int64_t n);

template <class T> void tanh_forward(T* y, const T* x, int64_t n);
template <class T, class G>
void tanh_backward(T* dx, G dy, const T* y, int64_t n);

// approximate_tanh: torch's approximate='tanh'; otherwise the exact erf form.
template <class T> void gelu_forward(T* y, const T* x, int64_t n, bool approximate_tanh);
template <class T, class G>
void gelu_backward(T* dx, G dy, const T* x, int64_t n, bool approximate_tanh);

template <class T> void silu_forward(T* y, const T* x, int64_t n);
template <class T, class G>
void silu_backward(T* dx, G dy, const T* x, int64_t n);

// y = 1 where x > 0, 0 where x < 0, value_at_zero where x == 0; NaN stays NaN.
template <class T> void step_forward(T* y, const T* x, int64_t n, T value_at_zero);

// log_softmax when log is true. Backward uses the output y:
//   softmax:     dx = y * (dy - sum_D(dy * y))
//   log_softmax: dx = dy - exp(y) * sum_D(dy)
template <class T>
void softmax_forward(T* y, const T* x, int64_t outer, int64_t D, int64_t inner, bool log);
template <class T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t outer, int64_t D, int64_t inner,
                      bool log);

}  // namespace ember
