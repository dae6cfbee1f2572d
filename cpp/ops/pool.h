// ember/ops/pool: max / average / adaptive-average pooling over (N, C, H, W) planes (1-D pooling
// is the H = 1 case). Geometry in PoolGeom (core/shapes_conv.h).
//
// Every plane (n, c) is independent: the loops run in parallel over planes, so results are
// bitwise identical at any thread count. Input gradients overwrite (=).
#pragma once

#include <cstdint>

#include "core/shapes_conv.h"

namespace ember {

// y (N, C, OH, OW) = max over each window; idx holds the arg-max as a flat index h*W + w into
// the input plane (PyTorch's convention). Padding never wins; NaN propagates; ties keep the
// first maximum in scan order.
template <class T>
void max_pool2d_forward(T* y, int64_t* idx, const T* x, const PoolGeom& g);

// dx (N, C, H, W) = scatter-add of dy at idx (overwrite). Returns false, with dx unspecified,
// when an index is outside [0, H*W) (the caller reports it).
// relu_y (null, or shaped like dy): the pooled output of a ReLU'd input, relu(x) pooled; its
// ReLU backward is applied on the way (dy where relu_y > 0, else 0). The value at an arg-max is
// the pooled value, so this is bitwise relu_backward(max_pool_backward(dy), relu(x)) without
// the pass over the full-size gradient and without keeping relu(x).
template <class T>
bool max_pool2d_backward(T* dx, const T* dy, const int64_t* idx, const PoolGeom& g,
                         const T* relu_y = nullptr);

// y = mean over each window; the divisor counts padding when count_include_pad (windows are
// clipped to input + padding), or is divisor_override when > 0.
template <class T>
void avg_pool2d_forward(T* y, const T* x, const PoolGeom& g, bool count_include_pad,
                        int64_t divisor_override);

template <class T>
void avg_pool2d_backward(T* dx, const T* dy, const PoolGeom& g, bool count_include_pad,
                         int64_t divisor_override);

// Adaptive average pooling: window i along H spans [floor(i*H/OH), ceil((i+1)*H/OH)).
template <class T>
void adaptive_avg_pool2d_forward(T* y, const T* x, const PoolGeom& g);

template <class T>
void adaptive_avg_pool2d_backward(T* dx, const T* dy, const PoolGeom& g);

}  // namespace ember
