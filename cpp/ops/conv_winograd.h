// ember/ops/conv_winograd: 3x3, stride-1 float convolution by Winograd's minimal filtering
// algorithm F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).
//
// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch under it:
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A
// so the 36 multiply-adds per output pixel and input channel of the direct convolution become 16
// per 4 outputs (2.25x fewer), at the cost of cheap add-only transforms. The products over input
// channels run as 16 independent GEMMs (one per position xi of the 4x4 transformed tile) on the
// packed micro-kernel of core/gemm_kernel:
//   M[xi] (OC x tiles) = U[xi] (OC x C) @ V[xi] (C x tiles)
// U (the transformed weights) is packed once per call. Tiles are processed in blocks of whole
// tile rows: a block's input transform writes V straight into the micro-kernel's panel layout,
// and each 16-tile panel is multiplied for all 16 xi and output-transformed while it is in cache.
//
// The weight gradient uses the same transforms the other way round (conv_winograd_weight_grad).
//
// Accuracy: the transforms are exact up to rounding (coefficients 0, +-1 and 1/2; U and the
// final weight-gradient transform are formed in double); measured errors against float64 are at
// or below the direct float32 convolution's (tests/ops/test_conv_winograd.py).
// Every output is computed by the same instruction sequence whatever the batch size, the block
// it falls in or the thread count, and weight gradients are summed in a fixed order: results
// are bitwise reproducible at any thread count.
// Available only with AVX2+FMA; EMBER_CONV_WINOGRAD=0 or EMBER_CONV_IMPL=im2col in the
// environment (read once) turns it off, for benchmarks and tests; EMBER_WINO_TILES (tiles per
// block, 32) is a tuning knob (16-128 measured the same on W7/W9 shapes).
#pragma once

#include "core/shapes_conv.h"

namespace ember {

// True when conv_winograd_forward runs g: an AVX2 build with the algorithm enabled, a 3x3
// kernel, stride 1, dilation 1, one group, and enough channels for the 16 GEMMs to pay
// (a function of the shape only, never of the batch size or the thread count).
bool winograd_applies(const ConvGeom& g);

// y (N, OC, OH, OW) = conv(x (N, C, H, W), w (OC, C, 3, 3)) [+ bias] [then relu].
// serial: stay on the calling thread.
void conv_winograd_forward(float* y, const float* x, const float* w, const float* bias,
                           const ConvGeom& g, bool serial, bool relu);

// dw (OC, C, 3, 3) += the weight gradient of that convolution from dy (N, OC, OH, OW) and x,
// by the same transforms (dg = G^T [sum over tiles of (A dY A^T) .* (B^T d B)] G): 16 GEMMs
// whose reduction runs over tiles, summed over a fixed number of chunks in a fixed order.
void conv_winograd_weight_grad(float* dw, const float* dy, const float* x, const ConvGeom& g,
                               bool serial);

}  // namespace ember
