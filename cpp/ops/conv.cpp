#include "ops/conv.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/gemm.h"
#include "core/parallel.h"
#include "core/reduce.h"
#include "ops/conv_packed.h"
#include "ops/conv_winograd.h"

namespace ember {

namespace {

inline int64_t env_int(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : dflt;
}

// ---- single-threaded row-major GEMM on Eigen (used inside our own parallel loop) -------------

template <class T, int Order>
using CMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0,
                        Eigen::OuterStride<>>;
template <class T>
using RMap =
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
               Eigen::OuterStride<>>;

// C (M x N, row stride ldc) (+)= op(A) op(B); A stored M x K (row stride lda), or K x M when ta;
// B stored K x N (ldb), or N x K when tb. Row-major, as in core/gemm.h.
template <class T>
void mm1(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
         int64_t ldb, T* C, int64_t ldc, bool acc) {
  RMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K == 0) {
    if (!acc) c.setZero();
    return;
  }
  auto run = [&](const auto& a, const auto& b) {
    if (acc) c.noalias() += a * b;
    else c.noalias() = a * b;
  };
  using SA = Eigen::OuterStride<>;
  if (!ta && !tb)
    run(CMap<T, Eigen::RowMajor>(A, M, K, SA(lda)), CMap<T, Eigen::RowMajor>(B, K, N, SA(ldb)));
  else if (!ta && tb)
    run(CMap<T, Eigen::RowMajor>(A, M, K, SA(lda)), CMap<T, Eigen::ColMajor>(B, K, N, SA(ldb)));
  else if (ta && !tb)
    run(CMap<T, Eigen::ColMajor>(A, M, K, SA(lda)), CMap<T, Eigen::RowMajor>(B, K, N, SA(ldb)));
  else
    run(CMap<T, Eigen::ColMajor>(A, M, K, SA(lda)), CMap<T, Eigen::ColMajor>(B, K, N, SA(ldb)));
}

// threaded: ember::gemm (deterministic blocks over threads; natural strides only); else one Eigen
// call on this thread (double, portable builds, EMBER_CONV_IMPL=im2col).
template <class T>
inline void mm(bool threaded, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A,
               int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, bool acc) {
  if (threaded) {
    gemm<T>(ta, tb, M, N, K, A, B, C, acc);
    return;
  }
  mm1<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc);
}

// Per-thread scratch, grown as needed and kept for the next call (OpenMP threads persist).
template <class T, int Slot>
T* scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// ---- im2col / col2im ------------------------------------------------------------------------
//
// col (Cg*KH*KW rows, row stride ld): row (c, kh, kw), column (oh - oh0)*OW + ow holds
// img[c, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw] (0 outside), for output rows [oh0, oh1).

// The ow range [lo, hi) whose input column ow*sw + iw0 lies in [0, W).
inline void valid_range(int64_t iw0, int64_t sw, int64_t W, int64_t OW, int64_t& lo,
                        int64_t& hi) {
  lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
  hi = (W - 1 - iw0) < 0 ? 0 : (W - 1 - iw0) / sw + 1;
  lo = std::min(lo, OW);
  hi = std::max(lo, std::min(hi, OW));
}

template <class T>
void im2col(const T* img, int64_t Cg, const ConvGeom& g, int64_t oh0, int64_t oh1, T* col,
            int64_t ld) {
  const int64_t H = g.H, W = g.W, OW = g.OW;
  for (int64_t c = 0; c < Cg; ++c) {
    const T* im = img + c * H * W;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih0 = kh * g.dh - g.pt;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld - oh0 * OW;
        const int64_t iw0 = kw * g.dw - g.pl;
        int64_t lo, hi;
        valid_range(iw0, g.sw, W, OW, lo, hi);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          T* out = row + oh * OW;
          const int64_t ih = oh * g.sh + ih0;
          if (ih < 0 || ih >= H) {
            std::fill(out, out + OW, T(0));
            continue;
          }
          const T* src = im + ih * W + iw0;
          std::fill(out, out + lo, T(0));
          if (g.sw == 1) {
            std::memcpy(out + lo, src + lo, (hi - lo) * sizeof(T));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] = src[ow * g.sw];
          }
          std::fill(out + hi, out + OW, T(0));
        }
      }
    }
  }
}

// img (Cg, H, W) += col entries of output rows [oh0, oh1) onto their source pixels.
template <class T>
void col2im_add(const T* col, int64_t ld, int64_t Cg, const ConvGeom& g, int64_t oh0,
                int64_t oh1, T* img) {
  const int64_t H = g.H, W = g.W, OW = g.OW;
  for (int64_t c = 0; c < Cg; ++c) {
    T* im = img + c * H * W;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih0 = kh * g.dh - g.pt;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld - oh0 * OW;
        const int64_t iw0 = kw * g.dw - g.pl;
        int64_t lo, hi;
        valid_range(iw0, g.sw, W, OW, lo, hi);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t ih = oh * g.sh + ih0;
          if (ih < 0 || ih >= H) continue;
          const T* in = row + oh * OW;
          T* dst = im + ih * W + iw0;
          if (g.sw == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += in[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow * g.sw] += in[ow];
          }
        }
      }
    }
  }
}

// ---- the plan: how samples are blocked and tiled, and how work is spread ----------------------
//
// A block is nb consecutive samples. Small outputs: several samples share one GEMM (nb > 1, one
// tile of all rows). Large outputs: one sample per block, cut into tiles of rt output rows so that
// a tile's im2col stays in L2 while the GEMM reads it.

struct Plan {
  int64_t nb;       // samples per block
  int64_t nblk;     // number of blocks
  int64_t rt;       // output rows per tile (OH when nb > 1 or threaded)
  bool threaded;    // true: blocks run serially, each GEMM threaded (few blocks, big work)
  bool pointwise;   // 1x1 kernel, stride 1, no padding: col is the image itself
};

// Everything here depends on the shape only (never on the thread count).
inline Plan make_plan(const ConvGeom& g) {
  static const int64_t kCols = env_int("EMBER_CONV_COLS", 512);       // GEMM columns wanted
  static const int64_t kTile = env_int("EMBER_CONV_TILE", 256);       // tile columns (nb == 1)
  Plan p;
  const int64_t P = g.OH * g.OW;
  p.nb = P >= kCols ? 1 : std::min<int64_t>(g.N, (kCols + P - 1) / P);
  p.nb = std::max<int64_t>(p.nb, 1);
  p.nblk = (g.N + p.nb - 1) / p.nb;
  const int64_t work = 2 * g.N * g.OC * g.Cg() * g.KK() * P;
  // Threaded GEMMs need a whole sample's columns at once: only while that stays moderate
  // (<= 4M entries); beyond it, tiles keep the scratch small and threads go over samples.
  p.threaded = p.nblk < 4 && work >= (int64_t(1) << 22) &&
               g.Cg() * g.KK() * P <= (int64_t(1) << 22);
  p.rt = g.OH;
  if (p.nb == 1 && !p.threaded) p.rt = std::min(g.OH, std::max<int64_t>(1, kTile / g.OW));
  p.pointwise = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                g.pb == 0 && g.pr == 0 && g.OH == g.H && g.OW == g.W;
  return p;
}

// Convolutions below this many flops stay on the calling thread. It was 16M while every sample
// re-packed the weights and allocations page-faulted; with the packed path a 2-thread step of
// LeNet-5 (W3) went 3.8 -> 3.2-3.6 ms and of the Conv1D net (W4) 2.3 -> 1.8 ms at 1M (idle
// 2-core machine; on a busy one a parallel region costs more). EMBER_CONV_PARALLEL_WORK (read
// once) overrides it, for tuning on other machines.
static const int64_t kConvParallelWork = env_int("EMBER_CONV_PARALLEL_WORK", int64_t(1) << 20);

// Runs body(blk, threaded) over all sample blocks: in parallel over blocks, or serially with
// threaded GEMMs inside.

// The packed float path (ops/conv_packed): AVX2 builds, unless EMBER_CONV_IMPL=im2col (read once,
// for benchmarks and tests), and not for the few-huge-blocks plans that thread inside the GEMM.
// Its sample blocks are only task granularity (16-pixel panels keep the kernel busy whatever the
// block): nb samples so that a block has >= 256 output pixels. A single block of large work (one
// big image) goes to the threaded-GEMM plan instead, which splits inside the image.
constexpr int64_t kPackedCols = 256;
inline int64_t packed_nb(const ConvGeom& g) {
  const int64_t P = std::max<int64_t>(1, g.OH * g.OW);
  return std::max<int64_t>(1, std::min(g.N, (kPackedCols + P - 1) / P));
}
inline bool use_packed(const ConvGeom& g) {
  static const bool on = [] {
    const char* e = std::getenv("EMBER_CONV_IMPL");
    return conv_packed_available() && !(e && std::string(e) == "im2col");
  }();
  if (!on) return false;
  const int64_t nb = packed_nb(g), nblk = (g.N + nb - 1) / nb;
  return nblk >= 2 || 2 * g.N * g.OC * g.Cg() * g.KK() * g.OH * g.OW < (int64_t(1) << 22);
}
inline bool conv_serial(const ConvGeom& g) {
  return 2 * g.N * g.OC * g.Cg() * g.KK() * g.OH * g.OW < kConvParallelWork;
}

template <class F>
void for_blocks(const Plan& p, int64_t cost_per_block, F&& body) {
  if (p.threaded) {
    for (int64_t b = 0; b < p.nblk; ++b) body(b, true);
  } else if (p.nblk * cost_per_block < kConvParallelWork) {
    DenormalGuard guard;
    for (int64_t b = 0; b < p.nblk; ++b) body(b, false);
  } else {
    // One block per task; the GEMMs inside run on the task's thread.
    parallel_for(p.nblk, cost_per_block, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) body(b, false);
    });
  }
}

// At stride 1 the adjoint of a convolution (its input gradient, conv_transpose's forward) is
// itself a convolution: of the output side with the kernel flipped in space and transposed in
// channels, padded by d*(k-1) - p. As a forward pass its reduction runs over OCg*KH*KW (not OCg
// alone) and it gathers instead of scatter-adding. Fills a with that convolution's geometry;
// false where it does not exist (strides, padding beyond d*(k-1)).
inline bool flipped_geometry(const ConvGeom& g, ConvGeom& a) {
  const int64_t ph = g.dh * (g.KH - 1), pw = g.dw * (g.KW - 1);
  a = g;
  a.C = g.OC, a.H = g.OH, a.W = g.OW, a.OC = g.C, a.OH = g.H, a.OW = g.W;
  a.pt = ph - g.pt, a.pb = ph - g.pb, a.pl = pw - g.pl, a.pr = pw - g.pr;
  return g.sh == 1 && g.sw == 1 && g.pt <= ph && g.pb <= ph && g.pl <= pw && g.pr <= pw;
}

// Whether the input gradient (image_from_conv_side) runs as a Winograd flipped convolution.
inline bool winograd_input_grad(const ConvGeom& g) {
  ConvGeom a;
  return flipped_geometry(g, a) && winograd_applies(a);
}

// On the packed path, measured on W7/W9/LeNet shapes: the flipped convolution wins once it has
// enough output channels (Cg >= 16) and the scatter's reduction (OCg) is not longer than that;
// the scatter wins for few input channels (LeNet's 6) or OCg > Cg (32 -> 64: 7.8 vs 8.5 ms).
inline bool packed_flip_wins(const ConvGeom& g) { return g.Cg() >= 16 && g.OCg() <= g.Cg(); }

// Copies src rows of nbk samples (OCg rows of P each, sample stride OC*P) into one (OCg, nbk*P)
// matrix.
template <class T>
void gather_rows(T* dst, const T* src, int64_t nbk, int64_t OCg, int64_t OC, int64_t P) {
  const int64_t cols = nbk * P;
  for (int64_t i = 0; i < nbk; ++i)
    for (int64_t o = 0; o < OCg; ++o)
      std::memcpy(dst + o * cols + i * P, src + (i * OC + o) * P, P * sizeof(T));
}

// out (N, OC, P) = W (OC, CgKK) @ im2col(img (N, C, HW)) [+ bias per OC]:
// conv forward, and conv_transpose's input gradient.
template <class T>
// relu: out = relu(out) (relu's rule), in the packed write-out or as a pass afterwards.
void conv_side_from_image(T* out, const T* img, const T* w, const T* bias, const ConvGeom& g,
                          bool relu = false) {
  const Plan pl = make_plan(g);
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_applies(g)) {
      conv_winograd_forward(out, img, w, bias, g, conv_serial(g), relu);
      return;
    }
    if (use_packed(g) && conv_direct_forward_applies(g)) {
      conv_direct_forward(out, img, w, bias, g, conv_serial(g), relu);
      return;
    }
    if (use_packed(g) && conv_direct_oc_forward_applies(g)) {
      conv_direct_oc_forward(out, img, w, bias, g, conv_serial(g), relu);
      return;
    }
    if (use_packed(g)) {
      conv_packed_side_from_image(out, img, w, bias, g, packed_nb(g), conv_serial(g), relu);
      return;
    }
  }
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg(), OW = g.OW;
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC;
  for_blocks(pl, 2 * pl.nb * OC * CgKK * P, [&](int64_t blk, bool threaded) {
    const int64_t n0 = blk * pl.nb, nbk = std::min(pl.nb, g.N - n0);
    for (int64_t grp = 0; grp < g.G; ++grp) {
      const T* wg = w + grp * OCg * CgKK;
      const T* im = img + (n0 * C + grp * Cg) * HW;
      if (nbk == 1) {
        T* yg = out + (n0 * OC + grp * OCg) * P;
        for (int64_t oh0 = 0; oh0 < g.OH; oh0 += pl.rt) {
          const int64_t oh1 = std::min(g.OH, oh0 + pl.rt), tc = (oh1 - oh0) * OW;
          T* yt = yg + oh0 * OW;
          if (pl.pointwise) {
            mm<T>(threaded, false, false, OCg, tc, CgKK, wg, CgKK, im + oh0 * OW, HW, yt, P,
                  false);
          } else {
            T* cb = scratch<T, 0>(CgKK * tc);
            im2col(im, Cg, g, oh0, oh1, cb, tc);
            mm<T>(threaded, false, false, OCg, tc, CgKK, wg, CgKK, cb, tc, yt, P, false);
          }
          if (bias)
            for (int64_t o = 0; o < OCg; ++o) {
              const T bv = bias[grp * OCg + o];
              T* r = yt + o * P;
              for (int64_t q = 0; q < tc; ++q) r[q] += bv;
            }
        }
      } else {
        const int64_t cols = nbk * P;
        T* cb = scratch<T, 0>(CgKK * cols);
        for (int64_t i = 0; i < nbk; ++i) im2col(im + i * C * HW, Cg, g, 0, g.OH, cb + i * P, cols);
        T* tmp = scratch<T, 1>(OCg * cols);
        mm<T>(threaded, false, false, OCg, cols, CgKK, wg, CgKK, cb, cols, tmp, cols, false);
        for (int64_t i = 0; i < nbk; ++i)
          for (int64_t o = 0; o < OCg; ++o) {
            const T bv = bias ? bias[grp * OCg + o] : T(0);
            const T* s = tmp + o * cols + i * P;
            T* d = out + ((n0 + i) * OC + grp * OCg + o) * P;
            for (int64_t q = 0; q < P; ++q) d[q] = s[q] + bv;
          }
      }
    }
  });
  if (relu)
    parallel_for(g.N * OC * P, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) out[i] = out[i] < T(0) ? T(0) : out[i];
    });
}

// img (N, C, HW) = col2im(W^T (CgKK, OCg) @ src (N, OC, P)) [+ bias per C]:
// conv's input gradient, and conv_transpose forward.
template <class T>
void image_from_conv_side(T* img, const T* src, const T* w, const T* bias, const ConvGeom& g) {
  const Plan pl = make_plan(g);
  if constexpr (std::is_same_v<T, float>) {
    ConvGeom a;
    const bool flippable = flipped_geometry(g, a);
    auto flipped_weights = [&] {
      const int64_t Cg = g.Cg(), OCg = g.OCg(), KH = g.KH, KW = g.KW, KK = g.KK();
      std::vector<float> wa(static_cast<size_t>(g.C * OCg * KK));
      for (int64_t grp = 0; grp < g.G; ++grp)
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t o = 0; o < OCg; ++o)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw)
                wa[(((grp * Cg + c) * OCg + o) * KH + kh) * KW + kw] =
                    w[(((grp * OCg + o) * Cg + c) * KH + (KH - 1 - kh)) * KW + (KW - 1 - kw)];
      return wa;
    };
    if (flippable && winograd_applies(a)) {
      conv_winograd_forward(img, src, flipped_weights().data(), bias, a, conv_serial(a), false);
      return;
    }
    if (use_packed(g)) {
      if (flippable && packed_flip_wins(g)) {
        conv_packed_side_from_image(img, src, flipped_weights().data(), bias, a, packed_nb(a),
                                    conv_serial(a));
        return;
      }
      conv_packed_image_from_side(img, src, w, bias, g, packed_nb(g), conv_serial(g));
      return;
    }
  }
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg(), OW = g.OW;
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC;
  for_blocks(pl, 2 * pl.nb * OC * CgKK * P, [&](int64_t blk, bool threaded) {
    const int64_t n0 = blk * pl.nb, nbk = std::min(pl.nb, g.N - n0);
    for (int64_t grp = 0; grp < g.G; ++grp) {
      const T* wg = w + grp * OCg * CgKK;
      T* im = img + (n0 * C + grp * Cg) * HW;
      const T* sg = src + (n0 * OC + grp * OCg) * P;
      if (nbk == 1) {
        if (!pl.pointwise) std::fill(im, im + Cg * HW, T(0));
        for (int64_t oh0 = 0; oh0 < g.OH; oh0 += pl.rt) {
          const int64_t oh1 = std::min(g.OH, oh0 + pl.rt), tc = (oh1 - oh0) * OW;
          if (pl.pointwise) {
            mm<T>(threaded, true, false, CgKK, tc, OCg, wg, CgKK, sg + oh0 * OW, P,
                  im + oh0 * OW, HW, false);
          } else {
            T* cb = scratch<T, 0>(CgKK * tc);
            mm<T>(threaded, true, false, CgKK, tc, OCg, wg, CgKK, sg + oh0 * OW, P, cb, tc,
                  false);
            col2im_add(cb, tc, Cg, g, oh0, oh1, im);
          }
        }
      } else {
        const int64_t cols = nbk * P;
        T* gb = scratch<T, 1>(OCg * cols);
        gather_rows(gb, sg, nbk, OCg, OC, P);
        T* cb = scratch<T, 0>(CgKK * cols);
        mm<T>(threaded, true, false, CgKK, cols, OCg, wg, CgKK, gb, cols, cb, cols, false);
        for (int64_t i = 0; i < nbk; ++i) {
          T* imi = im + i * C * HW;
          std::fill(imi, imi + Cg * HW, T(0));
          col2im_add(cb + i * P, cols, Cg, g, 0, g.OH, imi);
        }
      }
      if (bias) add_channel_bias(img + n0 * C * HW, bias, nbk, C, grp * Cg, Cg, HW);
    }
  });
}

// dw (OC, CgKK) += sum_n src_n (OCg, P) @ im2col(img_n)^T, per group:
// conv's weight gradient (src = dy, img = x) and conv_transpose's (src = x, img = dy).
// Blocks are cut into at most kChunks chunks (by shape only); each chunk sums its blocks and tiles
// in order into its own partial, and the partials are added into dw in chunk order.
template <class T>
void weight_grad(T* dw, const T* src, const T* img, const ConvGeom& g) {
  const Plan pl = make_plan(g);
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_applies(g)) {
      conv_winograd_weight_grad(dw, src, img, g, conv_serial(g));
      return;
    }
    if (use_packed(g) && conv_direct_wgrad_applies(g)) {
      conv_direct_weight_grad(dw, src, img, g, conv_serial(g));
      return;
    }
    if (use_packed(g) && conv_direct_oc_wgrad_applies(g)) {
      conv_direct_oc_weight_grad(dw, src, img, g, conv_serial(g));
      return;
    }
    if (use_packed(g)) {
      conv_packed_weight_grad(dw, src, img, g, packed_nb(g), conv_serial(g));
      return;
    }
  }
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg(), OW = g.OW;
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, WS = OC * CgKK;
  constexpr int64_t kChunks = 16;
  const int64_t nchunks = pl.threaded ? 1 : std::min(pl.nblk, kChunks);
  // Partials live in the calling thread's scratch (one per chunk), reused across calls.
  T* part = nchunks > 1 ? scratch<T, 2>(nchunks * WS) : nullptr;
  auto run_chunk = [&](int64_t c, bool threaded) {
    const int64_t b0 = c * pl.nblk / nchunks, b1 = (c + 1) * pl.nblk / nchunks;
    T* acc = part ? part + c * WS : dw;
    bool first = part != nullptr;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * pl.nb, nbk = std::min(pl.nb, g.N - n0);
      for (int64_t grp = 0; grp < g.G; ++grp) {
        const T* sg = src + (n0 * OC + grp * OCg) * P;
        const T* im = img + (n0 * C + grp * Cg) * HW;
        T* ag = acc + grp * OCg * CgKK;
        if (nbk == 1) {
          for (int64_t oh0 = 0; oh0 < g.OH; oh0 += pl.rt) {
            const int64_t oh1 = std::min(g.OH, oh0 + pl.rt), tc = (oh1 - oh0) * OW;
            const bool add = !(first && oh0 == 0);
            if (pl.pointwise) {
              mm<T>(threaded, false, true, OCg, CgKK, tc, sg + oh0 * OW, P, im + oh0 * OW, HW,
                    ag, CgKK, add);
            } else {
              T* cb = scratch<T, 0>(CgKK * tc);
              im2col(im, Cg, g, oh0, oh1, cb, tc);
              mm<T>(threaded, false, true, OCg, CgKK, tc, sg + oh0 * OW, P, cb, tc, ag, CgKK,
                    add);
            }
          }
        } else {
          const int64_t cols = nbk * P;
          T* gb = scratch<T, 1>(OCg * cols);
          gather_rows(gb, sg, nbk, OCg, OC, P);
          T* cb = scratch<T, 0>(CgKK * cols);
          for (int64_t i = 0; i < nbk; ++i)
            im2col(im + i * C * HW, Cg, g, 0, g.OH, cb + i * P, cols);
          mm<T>(threaded, false, true, OCg, CgKK, cols, gb, cols, cb, cols, ag, CgKK, !first);
        }
      }
      first = false;
    }
  };
  if (pl.threaded) {
    run_chunk(0, true);
    return;
  }
  const int64_t chunk_cost = 2 * (pl.nblk / nchunks + 1) * pl.nb * OC * CgKK * P;
  if (nchunks * chunk_cost < kConvParallelWork) {
    DenormalGuard guard;
    for (int64_t c = 0; c < nchunks; ++c) run_chunk(c, false);
  } else {
    parallel_for(nchunks, chunk_cost, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) run_chunk(c, false);
    });
  }
  if (part) {
    // Fixed-order reduction of the partials, split over weight elements (a memory-bound pass:
    // only large weights are worth a parallel region).
    parallel_for(WS, WS * nchunks >= kConvParallelWork ? nchunks : 1, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        T s = part[e];
        for (int64_t c = 1; c < nchunks; ++c) s += part[c * WS + e];
        dw[e] += s;
      }
    });
  }
}

// db (Ch) += sum over n and the plane of data (N, Ch, S); each channel summed by one thread in a
// fixed order.
template <class T>
void channel_sum(T* db, const T* data, int64_t N, int64_t Ch, int64_t S) {
  // Memory-bound: a parallel region pays only for large gradients.
  const int64_t cost = N * Ch * S >= kConvParallelWork ? N * S : 1;
  parallel_for(Ch, cost, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      LaneSum<T> sum;
      sum.add_runs(data + c * S, S, N, Ch * S);
      db[c] += sum.total();
    }
  });
}

}  // namespace

template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvGeom& g, bool relu) {
  if (g.N == 0 || g.OC == 0) return;
  conv_side_from_image<T>(y, x, w, b, g, relu);
}

template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const ConvGeom& g) {
  if (g.N == 0) return;
  if (db) channel_sum<T>(db, dy, g.N, g.OC, g.OH * g.OW);
  if (std::is_same_v<T, float> && dw && dx && winograd_applies(g) && winograd_input_grad(g)) {
    // Both gradients by Winograd, costs within ~10% of each other: run_pair puts one per thread
    // at two threads. Measured there on W7's layers: c2 13.6 -> 13.0 ms, c3 7.6 -> 7.3, c4 13.3
    // -> 12.7, W9 22.1 -> 21.9. Not for the other methods: LeNet's second layer, whose passes
    // differ more in cost, cost W3 2-5% that way. Neither pass's arithmetic depends on threads.
    run_pair(
        kParallelWork, [&] { weight_grad<T>(dw, dy, x, g); },
        [&] { image_from_conv_side<T>(dx, dy, w, nullptr, g); });
    return;
  }
  if (dw) weight_grad<T>(dw, dy, x, g);
  if (dx) image_from_conv_side<T>(dx, dy, w, nullptr, g);
}

template <class T>
void conv_transpose2d_forward(T* y, const T* x, const T* w, const T* b, const ConvGeom& g) {
  if (g.N == 0) return;
  image_from_conv_side<T>(y, x, w, b, g);
}

template <class T>
void conv_transpose2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                               const ConvGeom& g) {
  if (g.N == 0) return;
  if (db) channel_sum<T>(db, dy, g.N, g.C, g.H * g.W);
  if (dw) weight_grad<T>(dw, x, dy, g);
  if (dx) conv_side_from_image<T>(dx, dy, w, nullptr, g);
}

ConvMethods conv2d_methods(const ConvGeom& g) {
  ConvMethods m;
  m.forward = winograd_applies(g)                                  ? "winograd"
              : use_packed(g) && (conv_direct_forward_applies(g) ||
                                  conv_direct_oc_forward_applies(g)) ? "direct"
              : use_packed(g)                                   ? "packed"
                                                                : "im2col";
  ConvGeom a;
  const bool flippable = flipped_geometry(g, a);
  if (winograd_input_grad(g)) m.input_grad = "winograd";
  else if (use_packed(g)) m.input_grad = flippable && packed_flip_wins(g) ? "packed" : "packed-scatter";
  else m.input_grad = "im2col";
  m.weight_grad = winograd_applies(g)                             ? "winograd"
                  : use_packed(g) && (conv_direct_wgrad_applies(g) ||
                                      conv_direct_oc_wgrad_applies(g)) ? "direct"
                  : use_packed(g)                                 ? "packed"
                                                                  : "im2col";
  return m;
}

#define EMBER_INSTANTIATE(T)                                                                    \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const ConvGeom&, bool);     \
  template void conv2d_backward<T>(T*, T*, T*, const T*, const T*, const T*, const ConvGeom&);  \
  template void conv_transpose2d_forward<T>(T*, const T*, const T*, const T*, const ConvGeom&); \
  template void conv_transpose2d_backward<T>(T*, T*, T*, const T*, const T*, const T*,          \
                                             const ConvGeom&);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
