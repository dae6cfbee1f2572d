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

// img (nbk samples of C channels of HW values) channels [c0, c0 + Cg) += bias[c0 + c]: the bias
// of image_from_side (conv_transpose's forward), shared by the packed and im2col paths.
template <class T>
inline void add_channel_bias(T* img, const T* bias, int64_t nbk, int64_t C, int64_t c0,
                             int64_t Cg, int64_t HW) {
  for (int64_t i = 0; i < nbk; ++i)
    for (int64_t c = 0; c < Cg; ++c) {
      const T bv = bias[c0 + c];
      T* r = img + (i * C + c0 + c) * HW;
      for (int64_t q = 0; q < HW; ++q) r[q] += bv;
    }
}

// nb: samples per block (a function of the shape only). serial: stay on the calling thread.
// relu: the output is max(y, 0) (relu's rule: NaN and -0 pass), applied in the write-out.
void conv_packed_side_from_image(float* out, const float* img, const float* w, const float* bias,
                                 const ConvGeom& g, int64_t nb, bool serial, bool relu = false);
void conv_packed_image_from_side(float* img, const float* src, const float* w, const float* bias,
                                 const ConvGeom& g, int64_t nb, bool serial);
void conv_packed_weight_grad(float* dw, const float* src, const float* img, const ConvGeom& g,
                             int64_t nb, bool serial);

// The weight gradient of stride-1 convolutions with few channels (LeNet's), computed directly
// from output-gradient rows and padded image rows, with no im2col: an AVX-512 build only
// (the packed path otherwise). Same contract as conv_packed_weight_grad.
// The forward of such layers likewise (conv_direct_forward_applies): the same bits as
// conv_packed_side_from_image, which it replaces for them.
constexpr int64_t kDirectMaxKW = 7;
bool conv_direct_forward_applies(const ConvGeom& g);
void conv_direct_forward(float* out, const float* img, const float* w, const float* bias,
                         const ConvGeom& g, bool serial, bool relu);
// ... and with 9 to 16 output channels and more taps (LeNet's second layer), the channels along
// the vector lanes; also the packed path's bits.
bool conv_direct_oc_forward_applies(const ConvGeom& g);
void conv_direct_oc_forward(float* out, const float* img, const float* w, const float* bias,
                            const ConvGeom& g, bool serial, bool relu);
// Their weight gradient with the channels along the lanes (KW <= kDirectMaxKW); the contract of
// conv_packed_weight_grad.
bool conv_direct_oc_wgrad_applies(const ConvGeom& g);
void conv_direct_oc_weight_grad(float* dw, const float* src, const float* img,
                                const ConvGeom& g, bool serial);
bool conv_direct_wgrad_applies(const ConvGeom& g);
void conv_direct_weight_grad(float* dw, const float* src, const float* img, const ConvGeom& g,
                             bool serial);

}  // namespace ember
