// ember/core/shapes_conv: output sizes and validation for convolution and pooling.
//
// Every conv/pool op is computed as a 2-D op: a 1-D op is the 2-D op with H = 1 and a 1-wide
// kernel, stride 1, padding 0 and dilation 1 along H. The functions here resolve 'same'/'valid'
// padding, validate every argument (rank, channels, groups, kernel vs padded input) and fill a
// geometry struct that the kernels in ops/conv and ops/pool read. Errors are
// std::invalid_argument (ValueError in Python) naming the op and the shapes.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "core/shapes.h"

namespace ember {

// Geometry of one 2-D convolution, seen from the convolution's side: input image (C, H, W),
// output (OC, OH, OW), kernel (KH, KW), groups G. Padding may be asymmetric ('same' with an even
// effective kernel pads one more at the bottom/right, like PyTorch).
struct ConvGeom {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t OC = 0, OH = 0, OW = 0;
  int64_t KH = 1, KW = 1;
  int64_t sh = 1, sw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  int64_t dh = 1, dw = 1;
  int64_t G = 1;
  int64_t Cg() const { return C / G; }
  int64_t OCg() const { return OC / G; }
  int64_t KK() const { return KH * KW; }
};

namespace detail {

inline std::string vec_str(const std::vector<int64_t>& v) { return shape_str(v); }

// A per-dimension parameter given as 1 value (broadcast) or nd values.
inline std::vector<int64_t> expand_param(const char* op, const char* name,
                                         const std::vector<int64_t>& v, size_t nd, int64_t lo) {
  std::vector<int64_t> out;
  if (v.size() == 1) out.assign(nd, v[0]);
  else if (v.size() == nd) out = v;
  else
    fail(std::string(op) + ": " + name + " must have 1 or " + std::to_string(nd) +
         " values, got " + vec_str(v));
  for (auto x : out)
    if (x < lo)
      fail(std::string(op) + ": " + name + " must be >= " + std::to_string(lo) + ", got " +
           vec_str(v));
  return out;
}

inline void check_rank(const char* op, const Shape& x, size_t nd, const char* layout) {
  if (x.size() != nd + 2)
    fail(std::string(op) + ": expected a " + std::to_string(nd + 2) + "-D input " + layout +
         ", got a " + std::to_string(x.size()) + "-D input of shape " + shape_str(x));
}

}  // namespace detail

// conv1d / conv2d: x (N, C, [H,] W), w (OC, C/groups, [KH,] KW), bias (OC,) or null.
// padding_mode: "" (use padding), "same" or "valid". nd: 1 or 2.
inline ConvGeom conv_geometry(const char* op, const Shape& x, const Shape& w, const Shape* bias,
                              const std::vector<int64_t>& stride_,
                              const std::vector<int64_t>& padding_,
                              const std::vector<int64_t>& dilation_, int64_t groups,
                              const std::string& padding_mode, int nd) {
  detail::check_rank(op, x, nd, nd == 1 ? "(N, C, L)" : "(N, C, H, W)");
  if (w.size() != size_t(nd + 2))
    fail(std::string(op) + ": weight must be " + std::to_string(nd + 2) + "-D " +
         (nd == 1 ? "(out_channels, in_channels/groups, kW)"
                  : "(out_channels, in_channels/groups, kH, kW)") +
         ", got shape " + shape_str(w));
  if (groups < 1) fail(std::string(op) + ": groups must be >= 1, got " + std::to_string(groups));
  auto stride = detail::expand_param(op, "stride", stride_, nd, 1);
  auto dil = detail::expand_param(op, "dilation", dilation_, nd, 1);
  ConvGeom g;
  g.N = x[0];
  g.C = x[1];
  g.H = nd == 2 ? x[2] : 1;
  g.W = x.back();
  g.OC = w[0];
  g.KH = nd == 2 ? w[2] : 1;
  g.KW = w.back();
  g.G = groups;
  g.sh = nd == 2 ? stride[0] : 1;
  g.sw = stride.back();
  g.dh = nd == 2 ? dil[0] : 1;
  g.dw = dil.back();
  if (g.C % groups != 0)
    fail(std::string(op) + ": in_channels " + std::to_string(g.C) + " (input shape " +
         shape_str(x) + ") is not divisible by groups=" + std::to_string(groups));
  if (g.OC % groups != 0)
    fail(std::string(op) + ": out_channels " + std::to_string(g.OC) + " (weight shape " +
         shape_str(w) + ") is not divisible by groups=" + std::to_string(groups));
  if (w[1] * groups != g.C)
    fail(std::string(op) + ": input shape " + shape_str(x) + " does not match weight shape " +
         shape_str(w) + " with groups=" + std::to_string(groups) + ": expected " +
         std::to_string(w[1] * groups) + " input channels, got " + std::to_string(g.C));
  for (size_t i = 2; i < w.size(); ++i)
    if (w[i] < 1) fail(std::string(op) + ": kernel sizes must be >= 1, weight shape " + shape_str(w));
  if (bias && (bias->size() != 1 || (*bias)[0] != g.OC))
    fail(std::string(op) + ": bias shape " + shape_str(*bias) + " does not match weight shape " +
         shape_str(w) + ": expected (" + std::to_string(g.OC) + ",)");
  if (padding_mode == "same") {
    if (g.sh != 1 || g.sw != 1)
      fail(std::string(op) + ": padding='same' is not supported for strided convolutions");
    const int64_t th = g.dh * (g.KH - 1), tw = g.dw * (g.KW - 1);
    g.pt = th / 2;
    g.pb = th - g.pt;
    g.pl = tw / 2;
    g.pr = tw - g.pl;
  } else if (padding_mode == "valid" || padding_mode.empty()) {
    std::vector<int64_t> pad = padding_mode.empty() ? padding_ : std::vector<int64_t>{0};
    pad = detail::expand_param(op, "padding", pad, nd, 0);
    g.pt = g.pb = nd == 2 ? pad[0] : 0;
    g.pl = g.pr = pad.back();
  } else {
    fail(std::string(op) + ": padding must be an int, a tuple, 'same' or 'valid', got '" +
         padding_mode + "'");
  }
  const int64_t ekh = g.dh * (g.KH - 1) + 1, ekw = g.dw * (g.KW - 1) + 1;
  const int64_t ph = g.H + g.pt + g.pb, pw = g.W + g.pl + g.pr;
  if (ekh > ph || ekw > pw) {
    std::string k = nd == 2 ? "(" + std::to_string(ekh) + ", " + std::to_string(ekw) + ")"
                            : "(" + std::to_string(ekw) + ",)";
    std::string p = nd == 2 ? "(" + std::to_string(ph) + ", " + std::to_string(pw) + ")"
                            : "(" + std::to_string(pw) + ",)";
    fail(std::string(op) + ": kernel size " + k + " (dilated) is larger than the padded input " +
         p + " (input shape " + shape_str(x) + ", weight shape " + shape_str(w) + ")");
  }
  g.OH = (ph - ekh) / g.sh + 1;
  g.OW = (pw - ekw) / g.sw + 1;
  return g;
}

inline Shape conv_output_shape(const ConvGeom& g, int nd) {
  return nd == 2 ? Shape{g.N, g.OC, g.OH, g.OW} : Shape{g.N, g.OC, g.OW};
}

// conv_transpose: x (N, Cin, [H,] W), w (Cin, OC/groups, [KH,] KW) -> (N, OC, OH, OW) with
// OH = (H-1)*s - 2p + d(K-1) + output_padding + 1. Returned geometry is that of the *forward*
// convolution whose input-gradient this op is: conv input = our output (C = OC_t, H = OH_t),
// conv output = our input (OC = Cin, OH = H).
inline ConvGeom conv_transpose_geometry(const char* op, const Shape& x, const Shape& w,
                                        const Shape* bias, const std::vector<int64_t>& stride_,
                                        const std::vector<int64_t>& padding_,
                                        const std::vector<int64_t>& output_padding_,
                                        const std::vector<int64_t>& dilation_, int64_t groups,
                                        int nd) {
  detail::check_rank(op, x, nd, nd == 1 ? "(N, C, L)" : "(N, C, H, W)");
  if (w.size() != size_t(nd + 2))
    fail(std::string(op) + ": weight must be " + std::to_string(nd + 2) + "-D " +
         (nd == 1 ? "(in_channels, out_channels/groups, kW)"
                  : "(in_channels, out_channels/groups, kH, kW)") +
         ", got shape " + shape_str(w));
  if (groups < 1) fail(std::string(op) + ": groups must be >= 1, got " + std::to_string(groups));
  auto stride = detail::expand_param(op, "stride", stride_, nd, 1);
  auto dil = detail::expand_param(op, "dilation", dilation_, nd, 1);
  auto pad = detail::expand_param(op, "padding", padding_, nd, 0);
  auto opad = detail::expand_param(op, "output_padding", output_padding_, nd, 0);
  const int64_t cin = x[1];
  if (w[0] != cin)
    fail(std::string(op) + ": input shape " + shape_str(x) + " does not match weight shape " +
         shape_str(w) + ": expected " + std::to_string(w[0]) + " input channels, got " +
         std::to_string(cin));
  if (cin % groups != 0)
    fail(std::string(op) + ": in_channels " + std::to_string(cin) + " (input shape " +
         shape_str(x) + ") is not divisible by groups=" + std::to_string(groups));
  for (size_t i = 2; i < w.size(); ++i)
    if (w[i] < 1) fail(std::string(op) + ": kernel sizes must be >= 1, weight shape " + shape_str(w));
  for (int i = 0; i < nd; ++i)
    if (opad[i] >= stride[i] && opad[i] >= dil[i])
      fail(std::string(op) + ": output_padding must be smaller than either stride or dilation, "
           "got output_padding=" + detail::vec_str(opad) + ", stride=" + detail::vec_str(stride) +
           ", dilation=" + detail::vec_str(dil));
  ConvGeom g;
  g.N = x[0];
  g.OC = cin;  // conv's output channels = our input channels
  g.OH = nd == 2 ? x[2] : 1;
  g.OW = x.back();
  g.G = groups;
  g.C = w[1] * groups;
  g.KH = nd == 2 ? w[2] : 1;
  g.KW = w.back();
  g.sh = nd == 2 ? stride[0] : 1;
  g.sw = stride.back();
  g.dh = nd == 2 ? dil[0] : 1;
  g.dw = dil.back();
  g.pt = nd == 2 ? pad[0] : 0;
  g.pl = pad.back();
  const int64_t oph = nd == 2 ? opad[0] : 0, opw = opad.back();
  g.H = (g.OH - 1) * g.sh - 2 * g.pt + g.dh * (g.KH - 1) + oph + 1;
  g.W = (g.OW - 1) * g.sw - 2 * g.pl + g.dw * (g.KW - 1) + opw + 1;
  // output_padding adds rows at the bottom/right that no input position reaches; the kernels
  // read only pt/pl and the explicit output size.
  g.pb = g.pt;
  g.pr = g.pl;
  if (bias && (bias->size() != 1 || (*bias)[0] != g.C))
    fail(std::string(op) + ": bias shape " + shape_str(*bias) + " does not match weight shape " +
         shape_str(w) + ": expected (" + std::to_string(g.C) + ",)");
  if (g.H < 1 || g.W < 1)
    fail(std::string(op) + ": computed output size is not positive for input shape " +
         shape_str(x) + " and weight shape " + shape_str(w));
  return g;
}

inline Shape conv_transpose_output_shape(const ConvGeom& g, int nd) {
  return nd == 2 ? Shape{g.N, g.C, g.H, g.W} : Shape{g.N, g.C, g.W};
}

// ---- pooling ---------------------------------------------------------------------------------

struct PoolGeom {
  int64_t N = 0, C = 0, H = 1, W = 0, OH = 1, OW = 0;
  int64_t KH = 1, KW = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};

namespace detail {
inline int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // The last window must start inside the input or the left padding.
  if (ceil_mode && (o - 1) * s >= in + p) --o;
  return o;
}
}  // namespace detail

// max_pool / avg_pool: x (N, C, [H,] W). stride empty -> kernel. dilation only for max pooling.
inline PoolGeom pool_geometry(const char* op, const Shape& x, const std::vector<int64_t>& kernel_,
                              const std::vector<int64_t>& stride_,
                              const std::vector<int64_t>& padding_,
                              const std::vector<int64_t>& dilation_, bool ceil_mode, int nd) {
  detail::check_rank(op, x, nd, nd == 1 ? "(N, C, L)" : "(N, C, H, W)");
  auto k = detail::expand_param(op, "kernel_size", kernel_, nd, 1);
  auto s = stride_.empty() ? k : detail::expand_param(op, "stride", stride_, nd, 1);
  auto p = detail::expand_param(op, "padding", padding_, nd, 0);
  auto d = detail::expand_param(op, "dilation", dilation_, nd, 1);
  for (int i = 0; i < nd; ++i)
    if (2 * p[i] > k[i])
      fail(std::string(op) + ": padding should be at most half of kernel size, got padding=" +
           detail::vec_str(p) + " and kernel_size=" + detail::vec_str(k));
  PoolGeom g;
  g.N = x[0];
  g.C = x[1];
  g.H = nd == 2 ? x[2] : 1;
  g.W = x.back();
  g.KH = nd == 2 ? k[0] : 1;
  g.KW = k.back();
  g.sh = nd == 2 ? s[0] : 1;
  g.sw = s.back();
  g.ph = nd == 2 ? p[0] : 0;
  g.pw = p.back();
  g.dh = nd == 2 ? d[0] : 1;
  g.dw = d.back();
  const int64_t ekh = g.dh * (g.KH - 1) + 1, ekw = g.dw * (g.KW - 1) + 1;
  if (ekh > g.H + 2 * g.ph || ekw > g.W + 2 * g.pw)
    fail(std::string(op) + ": kernel size " + detail::vec_str(k) +
         " is larger than the padded input (input shape " + shape_str(x) + ", padding " +
         detail::vec_str(p) + ")");
  g.OH = nd == 2 ? detail::pool_out(g.H, g.KH, g.sh, g.ph, g.dh, ceil_mode) : 1;
  g.OW = detail::pool_out(g.W, g.KW, g.sw, g.pw, g.dw, ceil_mode);
  if (g.OH < 1 || g.OW < 1)
    fail(std::string(op) + ": output size is not positive for input shape " + shape_str(x));
  return g;
}

inline Shape pool_output_shape(const PoolGeom& g, int nd) {
  return nd == 2 ? Shape{g.N, g.C, g.OH, g.OW} : Shape{g.N, g.C, g.OW};
}

// adaptive_avg_pool2d: x (N, C, H, W) -> (N, C, OH, OW); window i spans
// [floor(i*H/OH), ceil((i+1)*H/OH)).
inline PoolGeom adaptive_pool_geometry(const char* op, const Shape& x,
                                       const std::vector<int64_t>& out_, int nd) {
  detail::check_rank(op, x, nd, nd == 1 ? "(N, C, L)" : "(N, C, H, W)");
  auto o = detail::expand_param(op, "output_size", out_, nd, 1);
  PoolGeom g;
  g.N = x[0];
  g.C = x[1];
  g.H = nd == 2 ? x[2] : 1;
  g.W = x.back();
  if (g.H < 1 || g.W < 1)
    fail(std::string(op) + ": input spatial size must be positive, got shape " + shape_str(x));
  g.OH = nd == 2 ? o[0] : 1;
  g.OW = o.back();
  return g;
}

}  // namespace ember
