// ember/ops/conv: 2-D convolution (conv1d is the H = 1 case) and transposed convolution.
//
// Dimension legend (ConvGeom, core/shapes_conv.h), always from the forward convolution's side:
//   N batch, C input channels, H x W input, OC output channels, OH x OW output, KH x KW kernel,
//   G groups (Cg = C/G, OCg = OC/G), P = OH*OW, weight (OC, Cg, KH, KW).
// conv_transpose2d is the adjoint of that convolution: its input is the conv's output side
// (N, OC, OH, OW) and its output the conv's input side (N, C, H, W); weight layout is the same
// memory, (Cin_t = OC, OC_t/G = Cg, KH, KW).
//
// Method: float 3x3 stride-1 convolutions with enough channels run Winograd's F(2x2, 3x3)
// (ops/conv_winograd) for the forward pass and both gradients (and conv_transpose's). Other
// float on AVX2 builds runs ops/conv_packed (the packed GEMM micro-kernel with im2col fused into
// its packing; at stride 1 the input gradient runs as the flipped convolution when
// that is faster). Otherwise (double, portable builds, or too few sample blocks for threads over
// blocks): im2col + GEMM per block of samples (several small samples share one GEMM so that tiny
// convolutions still run at GEMM speed; a large sample is cut into tiles of output rows so that
// its im2col stays in L2), col2im for the input-side gradients, on Eigen or ember::gemm.
// One level of parallelism: over sample blocks with single-threaded kernels, or (too few blocks,
// decided by the shape only) serially over blocks with ember::gemm's threaded GEMM; convolutions
// under 1 Mflop stay single-threaded. Weight gradients are reduced over a fixed number of sample
// chunks in a fixed order, so every result is bitwise identical at any thread count. Per-thread
// scratch is reused across calls.
// Tuning knobs (read once; for experiments): EMBER_CONV_IMPL=im2col (skip the packed and
// Winograd paths), EMBER_CONV_WINOGRAD=0 (skip Winograd only),
// EMBER_CONV_PARALLEL_WORK (flops below which a convolution stays on one thread, 2^20),
// EMBER_CONV_TILE (tile columns, 256), EMBER_CONV_COLS (GEMM columns per sample block, 512).
//
// Parameter gradients accumulate (+=); input gradients overwrite (=). Null pointers skip a grad.
#pragma once

#include "core/shapes_conv.h"

namespace ember {

// y (N, OC, OH, OW) = conv(x (N, C, H, W), w) + b ; b may be null.
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvGeom& g,
                    bool relu = false);  // relu: y = relu(y), fused (Conv then ReLU in Sequential)

// dx (N, C, H, W) = conv^T(dy)      (overwrite)
// dw (OC, Cg, KH, KW) += dy * x     (accumulate)
// db (OC) += sum dy                 (accumulate)
template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const ConvGeom& g);

// y (N, C, H, W) = conv^T(x (N, OC, OH, OW), w) + b (C) ; b may be null.
template <class T>
void conv_transpose2d_forward(T* y, const T* x, const T* w, const T* b, const ConvGeom& g);

// dx (N, OC, OH, OW) = conv(dy) (overwrite); dw += ; db (C) += .
template <class T>
void conv_transpose2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                               const ConvGeom& g);

// The method each pass of a float32 conv2d of geometry g runs (double always runs "im2col"),
// for tests and diagnostics: "winograd" (ops/conv_winograd), "packed" (ops/conv_packed; the
// input gradient as the flipped convolution), "packed-scatter" (input gradient scattered
// through col2im), "direct" (forward and weight gradient of stride-1 layers with few input
// taps, AVX-512 builds: ops/conv_packed) or "im2col".
struct ConvMethods {
  const char* forward;
  const char* input_grad;
  const char* weight_grad;
};
ConvMethods conv2d_methods(const ConvGeom& g);

}  // namespace ember
