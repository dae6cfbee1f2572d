// ember/ops/conv_packed: float convolution on the packed GEMM micro-kernel (core/gemm_kernel),
// with im2col fused into the packing: a panel of 16 output pixels is gathered from the image
// straight into the kernel's packed layout (and, for input gradients, scattered straight back),
// so no im2col matrix is ever written for the forward pass or the input gradient, and the weights
// are packed once per call instead of once per sample.
//
// The three passes below cover conv and conv_transpose (ops/conv.cpp maps their roles):
//   side_from_image   out (N, OC, P)   = W (OC, CgKK) @ im2col(img) [+ bias per OC]
//   image_from_side   img (N, C, H, W) = col2im(W^T @ src (N, OC, P)) [+ bias per C]
//   weight_grad       dw (OC, CgKK)   += sum over samples of src (OCg, P) @ im2col(img)^T
// Columns are output pixels of a block of nb consecutive samples (nb = plan.nb, so that small
// images still fill panels). Work is split over sample blocks (forward: over 16-pixel panels),
// each output always computed by the same instruction sequence; weight gradients are summed over
// a fixed number of chunks in a fixed order: results are bitwise identical at any thread count.
// Available only when compiled with AVX2+FMA; ops/conv.cpp uses im2col + GEMM otherwise.
#pragma once

#include <cstdint>

#include "core/shapes_conv.h"

namespace ember {

bool conv_packed_available();

// nb: samples per block (a function of the shape only). serial: stay on the calling thread.
// relu: the output is max(y, 0) (relu's rule: NaN and -0 pass), applied in the write-out.
void conv_packed_side_from_image(float* out, const float* img, const float* w, const float* bias,
                                 const ConvGeom& g, int64_t nb, bool serial, bool relu = false);
void conv_packed_image_from_side(float* img, const float* src, const float* w, const float* bias,
                                 const ConvGeom& g, int64_t nb, bool serial);
void conv_packed_weight_grad(float* dw, const float* src, const float* img, const ConvGeom& g,
                             int64_t nb, bool serial);

}  // namespace ember
