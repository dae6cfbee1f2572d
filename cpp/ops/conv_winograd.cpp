#include "ops/conv_winograd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/gemm_kernel.h"
#include "core/parallel.h"

namespace ember {

#ifdef EMBER_GEMM_KERNEL

namespace {

using gk::kMR;
using gk::kNR;

constexpr int64_t kKC = 256;  // k-block over input channels (a V panel of 16 KiB stays in L1)
constexpr int64_t kXi = 16;   // positions in a transformed 4x4 tile

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

inline int64_t env_int(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : dflt;
}

// Tiles per block wanted (whole tile rows are taken until at least this many): a block's V
// (16 x C x tiles floats) and one pair of panels' M stay in L2 next to the packed weights.
const int64_t kBlockTiles = env_int("EMBER_WINO_TILES", 32);

// Equal k-blocks of at most kKC over the C input channels (a function of C only).
struct KSplit {
  int64_t n, len;
  explicit KSplit(int64_t C) : n((C + kKC - 1) / kKC), len((C + n - 1) / n) {}
  int64_t k0(int64_t b) const { return b * len; }
  int64_t kc(int64_t b, int64_t C) const { return std::min(C, (b + 1) * len) - b * len; }
};

struct Geo {
  int64_t TH, TW;           // tile rows and columns per image (2x2 outputs per tile)
  int64_t rows_per_block;   // whole tile rows per block
  int64_t nblk;             // blocks over all N*TH tile rows
  int64_t tbp;              // tiles per block, rounded up to whole 16-tile panels
  int64_t np;               // panels per block
  int64_t nstrip;           // 6-row strips of output channels
  // V's layout, Vp[xi][panel][c][16]: a panel is C rows of 16 tiles, plus one cache line, and
  // an xi is np panels plus one more line. Without the extra lines, the 16 xi (and the panels)
  // of one channel would sit a multiple of 4 KiB apart, all in one L1 set.
  int64_t pstride, xstride;
  explicit Geo(const ConvGeom& g) {
    TH = (g.OH + 1) / 2, TW = (g.OW + 1) / 2;
    rows_per_block = std::max<int64_t>(1, (kBlockTiles + TW - 1) / TW);
    rows_per_block = std::min(rows_per_block, g.N * TH);
    nblk = (g.N * TH + rows_per_block - 1) / rows_per_block;
    tbp = round_up(rows_per_block * TW, kNR);
    np = tbp / kNR;
    nstrip = (g.OC + kMR - 1) / kMR;
    pstride = g.C * kNR + kNR;
    xstride = np * pstride + kNR;
  }
};

// U = G g G^T for every (oc, c), formed in double and rounded once, packed as the micro-kernel's
// A operand: per xi, per k-block, 6-row strips of output channels, k-major inside a strip (zero
// rows past OC).
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
std::vector<float> transform_weights(const float* w, const ConvGeom& g, const Geo& geo,
                                     const KSplit& ks) {
  const int64_t C = g.C, OC = g.OC, per_xi = geo.nstrip * kMR * C;
  std::vector<float> up(static_cast<size_t>(kXi * per_xi), 0.f);
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t c = 0; c < C; ++c) {
      const float* k = w + (oc * C + c) * 9;
      double t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        const double g0 = k[j], g1 = k[3 + j], g2 = k[6 + j];
        t[0][j] = g0;
        t[1][j] = 0.5 * (g0 + g1 + g2);
        t[2][j] = 0.5 * (g0 - g1 + g2);
        t[3][j] = g2;
      }
      const int64_t b = c / ks.len, kk = c - ks.k0(b), kc = ks.kc(b, C);
      const int64_t s = oc / kMR, r = oc % kMR;
      const int64_t off = ks.k0(b) * kMR * geo.nstrip + s * kc * kMR + kk * kMR + r;
      for (int a = 0; a < 4; ++a) {
        const double u[4] = {t[a][0], 0.5 * (t[a][0] + t[a][1] + t[a][2]),
                             0.5 * (t[a][0] - t[a][1] + t[a][2]), t[a][2]};
        for (int bb = 0; bb < 4; ++bb)
          up[static_cast<size_t>((a * 4 + bb) * per_xi + off)] = static_cast<float>(u[bb]);
      }
    }
  return up;
}

// d[0, cnt) = lanes [0, cnt) of v, cnt <= 8 (no masked store: vmaskmovps stores are slow on
// AMD cores).
inline void store_lanes(float* d, __m256 v, int64_t cnt) {
  __m128 h = _mm256_castps256_ps128(v);
  if (cnt >= 4) {
    _mm_storeu_ps(d, h);
    h = _mm256_extractf128_ps(v, 1);
    d += 4, cnt -= 4;
    if (cnt == 4) {
      _mm_storeu_ps(d, h);
      return;
    }
  }
  if (cnt >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(d), h);
    h = _mm_movehl_ps(h, h);
    d += 2, cnt -= 2;
  }
  if (cnt) _mm_store_ss(d, h);
}

// Stores lanes [0, cnt) of v as tiles t, t+1, ... of the block's panel layout (row stride 16
// within a panel, panel stride pstride).
inline void store_tiles(float* base, int64_t pstride, int64_t t, int64_t cnt, __m256 v) {
  const int64_t lane = t % kNR;
  float* d = base + (t / kNR) * pstride + lane;
  if (lane + cnt <= kNR) {  // inside one panel
    if (cnt == 8) _mm256_storeu_ps(d, v);
    else store_lanes(d, v, cnt);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (int64_t i = 0; i < cnt; ++i) {
    const int64_t ti = t + i;
    base[(ti / kNR) * pstride + ti % kNR] = tmp[i];
  }
}

// Where 8 input columns [s, s + 8) of a row of W values lie: all inside (full), none inside
// (zero) or some (masked load; masked-off lanes are never touched).
struct ColVec {
  int64_t s;  // first input column (may be negative)
  int kind;   // 0 zero, 1 full, 2 masked
  __m256i mask;
};

inline __m256 load_cols(const float* row, const ColVec& cv) {
  if (!row || cv.kind == 0) return _mm256_setzero_ps();
  if (cv.kind == 1) return _mm256_loadu_ps(row + cv.s);
  return _mm256_maskload_ps(row + cv.s, cv.mask);
}

// Even and odd columns of the 16 values a, b: (v0 v2 .. v14), (v1 v3 .. v15).
inline void deinterleave(__m256 a, __m256 b, __m256& ev, __m256& od) {
  ev = _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  od = _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

// For each group of 8 tiles of a tile row (tx0 = 8 * group), the 8-column loads of a row of
// `width` values it needs: columns 2 tx0 + shift + offs[k].
template <int K>
std::vector<ColVec> column_vectors(int64_t TW, int64_t shift, int64_t width,
                                   const int64_t (&offs)[K]) {
  const int64_t ngroups = (TW + 7) / 8;
  std::vector<ColVec> cvs(static_cast<size_t>(K * ngroups));
  for (int64_t gr = 0; gr < ngroups; ++gr)
    for (int k = 0; k < K; ++k) {
      ColVec& cv = cvs[static_cast<size_t>(K * gr + k)];
      cv.s = 16 * gr + shift + offs[k];
      const int64_t lo = std::max<int64_t>(0, -cv.s), hi = std::min<int64_t>(8, width - cv.s);
      cv.kind = hi <= lo ? 0 : (lo == 0 && hi == 8 ? 1 : 2);
      alignas(32) int32_t m[8];
      for (int64_t i = 0; i < 8; ++i) m[i] = (i >= lo && i < hi) ? -1 : 0;
      cv.mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
    }
  return cvs;
}

// The input side's loads: a tile's 4x4 patch starts at column 2 tx - pl.
constexpr int64_t kInputOffs[4] = {0, 8, 2, 10};
inline std::vector<ColVec> input_columns(const ConvGeom& g, int64_t TW) {
  return column_vectors(TW, -g.pl, g.W, kInputOffs);
}

// V = B^T d B, v[a * 4 + b], of 4x4 patches d[i][j] (8 of them, one per lane); d is overwritten.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
inline void input_patch_transform(__m256 (&d)[4][4], __m256 v[kXi]) {
  for (int j = 0; j < 4; ++j) {  // in place: d[a][j] = (B^T d)[a][j]
    const __m256 d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j];
    d[0][j] = _mm256_sub_ps(d0, d2);
    d[1][j] = _mm256_add_ps(d1, d2);
    d[2][j] = _mm256_sub_ps(d2, d1);
    d[3][j] = _mm256_sub_ps(d1, d3);
  }
  for (int a = 0; a < 4; ++a) {
    v[a * 4 + 0] = _mm256_sub_ps(d[a][0], d[a][2]);
    v[a * 4 + 1] = _mm256_add_ps(d[a][1], d[a][2]);
    v[a * 4 + 2] = _mm256_sub_ps(d[a][2], d[a][1]);
    v[a * 4 + 3] = _mm256_sub_ps(d[a][1], d[a][3]);
  }
}

// V of 8 neighbouring tiles of one channel (lane = tile), v[a * 4 + b]. rp: the four input rows
// under the tile row (null: outside the image); cv: the group's four column loads.
inline void input_tiles(const float* const rp[4], const ColVec* cv, __m256 v[kXi]) {
  __m256 d[4][4];  // d[i][j]
  for (int i = 0; i < 4; ++i) {
    deinterleave(load_cols(rp[i], cv[0]), load_cols(rp[i], cv[1]), d[i][0], d[i][1]);
    deinterleave(load_cols(rp[i], cv[2]), load_cols(rp[i], cv[3]), d[i][2], d[i][3]);
  }
  input_patch_transform(d, v);
}

// V of the block's tile rows [r0, r1) (of all N*TH), in panel layout
//   Vp[xi][panel][c][16]  (tile t of the block at panel t/16, lane t%16).
// 8 tiles at a time, one tile per lane: the 4x4 patch element d[i][j] of tiles tx0..tx0+7 is
// column 2 tx + j of input row 2 ty - pt + i, so each row's 16 columns from 2 tx0 - pl (and from
// 2 tx0 - pl + 2) de-interleave into j = 0, 1 (and 2, 3). Rows outside the image are zero, and
// columns outside it are masked off (ColVec): no padded copy of the input is made.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  V = B^T d B
void input_transform(float* Vp, const float* x, const ConvGeom& g, const Geo& geo,
                     const std::vector<ColVec>& cvs, int64_t r0, int64_t r1) {
  const int64_t C = g.C, H = g.H, W = g.W, TW = geo.TW;
  const int64_t pstride = geo.pstride, xstride = geo.xstride;
  const int64_t tb = (r1 - r0) * TW;
  if (tb % kNR)  // zero the lanes past the last tile (they are multiplied, never read)
    for (int64_t xi = 0; xi < kXi; ++xi) {
      float* p = Vp + xi * xstride + (tb / kNR) * pstride;
      for (int64_t c = 0; c < C; ++c)
        std::fill(p + c * kNR + tb % kNR, p + c * kNR + kNR, 0.f);
    }
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t n = row / geo.TH, ty = row % geo.TH, tbase = (row - r0) * TW;
    for (int64_t c = 0; c < C; ++c) {
      const float* img = x + (n * C + c) * H * W;
      const float* rp[4];
      for (int i = 0; i < 4; ++i) {
        const int64_t ih = 2 * ty - g.pt + i;
        rp[i] = (ih < 0 || ih >= H) ? nullptr : img + ih * W;
      }
      // The next channels' rows are a plane away (H*W floats), where the hardware prefetchers
      // do not follow: ask for those of channel c + 4 now, while this channel's arithmetic
      // runs. Same-process A/B against one channel ahead (W7's layers, forward, 1 and 2
      // threads, two runs): medians 1.01-1.10x; two channels ahead read between the two.
      constexpr int64_t kAhead = 4;
      if (c + kAhead < C)
        for (int i = 0; i < 4; ++i)
          if (rp[i])
            for (int64_t k = 0; k < W; k += 16) _mm_prefetch(
                reinterpret_cast<const char*>(rp[i] + kAhead * H * W + k), _MM_HINT_T0);
      float* vc = Vp + c * kNR;
      for (int64_t tx = 0, gr = 0; tx < TW; tx += 8, ++gr) {
        __m256 v[kXi];
        input_tiles(rp, cvs.data() + 4 * gr, v);
        const int64_t cnt = std::min<int64_t>(8, TW - tx), t = tbase + tx;
        if (cnt == 8 && t % kNR <= kNR - 8) {  // whole vectors inside one panel
          float* d = vc + (t / kNR) * pstride + t % kNR;
#pragma GCC unroll 16
          for (int64_t xi = 0; xi < kXi; ++xi) _mm256_storeu_ps(d + xi * xstride, v[xi]);
        } else {
          for (int64_t xi = 0; xi < kXi; ++xi)
            store_tiles(vc + xi * xstride, pstride, t, cnt, v[xi]);
        }
      }
    }
  }
}

// y for the 16 tiles of panel p of the block starting at tile row r0, from Mp (panel p's 16
// products of output channel oc and position xi at Mp + oc * kMRow + xi * kMXi; one output
// channel's products are 2 KiB in a row: no 4 KiB-strided loads that share L1 sets):
//   A^T = [1 1 1 0; 0 1 -1 -1],  Y = A^T m A, + bias, then max(lo, .) (relu's rule or no-op).
constexpr int64_t kMXi = 2 * kNR;      // Mp[oc][xi][32]: the products of a pair of panels
constexpr int64_t kMRow = kXi * kMXi;  // from one output channel to the next
void output_transform(float* y, const float* Mp, const float* bias, const ConvGeom& g,
                      const Geo& geo, int64_t r0, int64_t p, int64_t tb, __m256 lo) {
  const int64_t OC = g.OC, OH = g.OH, OW = g.OW, TW = geo.TW, P = OH * OW;
  for (int64_t h = 0; h < 2; ++h) {
    const int64_t t0 = p * kNR + h * 8;  // first tile of this group of 8, in the block
    if (t0 >= tb) break;
    const int64_t cnt = std::min<int64_t>(8, tb - t0);
    const int64_t row = r0 + t0 / TW, tx = t0 % TW;
    const int64_t n = row / geo.TH, ty = row % geo.TH;
    // Fast path: 8 whole tiles of one tile row, both output rows inside the image.
    const bool fast = cnt == 8 && tx + 8 <= TW && 2 * tx + 16 <= OW && 2 * ty + 1 < OH;
    for (int64_t oc = 0; oc < OC; ++oc) {
      const float* m = Mp + oc * kMRow + h * 8;
      constexpr int64_t xstr = kMXi;  // from one xi to the next
      __m256 s0[4], s1[4];
      for (int b = 0; b < 4; ++b) {
        const __m256 m0 = _mm256_load_ps(m + (0 + b) * xstr), m1 = _mm256_load_ps(m + (4 + b) * xstr);
        const __m256 m2 = _mm256_load_ps(m + (8 + b) * xstr), m3 = _mm256_load_ps(m + (12 + b) * xstr);
        s0[b] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        s1[b] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
      }
      const __m256 bv = _mm256_set1_ps(bias ? bias[oc] : 0.f);
      __m256 y00 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]), bv);
      __m256 y01 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]), bv);
      __m256 y10 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]), bv);
      __m256 y11 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]), bv);
      y00 = _mm256_max_ps(lo, y00), y01 = _mm256_max_ps(lo, y01);
      y10 = _mm256_max_ps(lo, y10), y11 = _mm256_max_ps(lo, y11);
      if (fast) {
        float* d = y + (n * OC + oc) * P + 2 * ty * OW + 2 * tx;
        const __m256 a = _mm256_unpacklo_ps(y00, y01), b = _mm256_unpackhi_ps(y00, y01);
        _mm256_storeu_ps(d, _mm256_permute2f128_ps(a, b, 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(a, b, 0x31));
        const __m256 c = _mm256_unpacklo_ps(y10, y11), e = _mm256_unpackhi_ps(y10, y11);
        _mm256_storeu_ps(d + OW, _mm256_permute2f128_ps(c, e, 0x20));
        _mm256_storeu_ps(d + OW + 8, _mm256_permute2f128_ps(c, e, 0x31));
        continue;
      }
      // Otherwise: the two output rows of the group interleaved (tile i's columns at 2i, 2i+1),
      // then copied out in runs of tiles that share a tile row, clipped to the image.
      alignas(32) float rows[2][16];
      {
        const __m256 a = _mm256_unpacklo_ps(y00, y01), b = _mm256_unpackhi_ps(y00, y01);
        _mm256_store_ps(rows[0], _mm256_permute2f128_ps(a, b, 0x20));
        _mm256_store_ps(rows[0] + 8, _mm256_permute2f128_ps(a, b, 0x31));
        const __m256 c = _mm256_unpacklo_ps(y10, y11), e = _mm256_unpackhi_ps(y10, y11);
        _mm256_store_ps(rows[1], _mm256_permute2f128_ps(c, e, 0x20));
        _mm256_store_ps(rows[1] + 8, _mm256_permute2f128_ps(c, e, 0x31));
      }
      for (int64_t i = 0; i < cnt;) {
        const int64_t ti = t0 + i, rw = r0 + ti / TW, tix = ti % TW;
        const int64_t seg = std::min(cnt - i, TW - tix);  // tiles left in this tile row
        const int64_t ni = rw / geo.TH, tyi = rw % geo.TH, ow0 = 2 * tix;
        const int64_t ncol = std::min(2 * seg, OW - ow0);
        float* d = y + (ni * OC + oc) * P + 2 * tyi * OW + ow0;
        std::memcpy(d, rows[0] + 2 * i, ncol * sizeof(float));
        if (2 * tyi + 1 < OH) std::memcpy(d + OW, rows[1] + 2 * i, ncol * sizeof(float));
        i += seg;
      }
    }
  }
}

// ---- weight gradient ---------------------------------------------------------------------
//
// With U = G g G^T and M = U .* V per tile, y = A^T M A gives dM = A dY A^T and
//   dg = G^T [ sum over tiles of (A dY A^T) .* V ] G.
// The sum over tiles is, per xi, a GEMM whose reduction runs over tiles:
//   S[xi] (OC x C) += Yh[xi] (OC x tiles) @ V[xi]^T (tiles x C)
// on the micro-kernel with Yh packed as 6-row strips of output channels and V^T as 16-channel
// panels, both k(= tile)-major (weight_grad_block).

struct WGeo {
  int64_t TH, TW, rows_per_block, nblk, tbk;  // tbk: most tiles in a block
  int64_t nstrip, ncp;                        // 6-row strips of OC, 16-column panels of C
  // Ap[xi][strip][tile][6] and Bp[xi][panel][tile][16], each strip / panel / xi followed by a
  // spare cache line (the 8-float stores of 6-wide rows spill 2 floats; and no 4 KiB strides).
  int64_t astrip, axi, bpanel, bxi;
  explicit WGeo(const ConvGeom& g) {
    TH = (g.OH + 1) / 2, TW = (g.OW + 1) / 2;
    rows_per_block = std::min(std::max<int64_t>(1, (64 + TW - 1) / TW), g.N * TH);
    nblk = (g.N * TH + rows_per_block - 1) / rows_per_block;
    tbk = rows_per_block * TW;
    nstrip = (g.OC + kMR - 1) / kMR, ncp = (g.C + kNR - 1) / kNR;
    astrip = tbk * kMR + kNR, axi = nstrip * astrip + kNR;
    bpanel = tbk * kNR + kNR, bxi = ncp * bpanel + kNR;
  }
};

// 8-column loads covering columns [shift, shift + ncols) of a row of `width` values: group q
// starts at column shift + 8 q.
std::vector<ColVec> column_groups(int64_t ncols, int64_t shift, int64_t width) {
  const int64_t offs[2] = {0, 8};
  // column_vectors' groups of 8 tiles are 16 columns each: two 8-column loads per group
  std::vector<ColVec> cvs = column_vectors((ncols + 15) / 16 * 8, shift, width, offs);
  cvs.resize(static_cast<size_t>((ncols + 7) / 8));
  return cvs;
}

// 8 rows (null: zero) x the 8-column groups of cvs, transposed: dst[8 q + m] (8 floats each) =
// column s_q + m of the 8 rows. One image row of 8 channels becomes a row of channel vectors.
inline void rows_to_channel_vectors(float* dst, const float* const rows[8],
                                    const std::vector<ColVec>& cvs) {
  for (size_t q = 0; q < cvs.size(); ++q) {
    __m256 r[8];
    for (int k = 0; k < 8; ++k) r[k] = load_cols(rows[k], cvs[q]);
    gk::transpose8x8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    for (int m = 0; m < 8; ++m) _mm256_store_ps(dst + (8 * q + m) * 8, r[m]);
  }
}

// One block of tile rows [r0, r1): S[xi] (OC x C, row stride C) (= when first, else +=)
// Yh[xi] @ V[xi]^T. The GEMMs reduce over tiles, so both operands are wanted tile-major with
// channels contiguous: the input rows under a tile row are first turned into rows of 8-channel
// vectors (one 8x8 transpose per 8 columns of 8 channels, each input row once per block where
// tile rows follow each other), and the transforms then run on channel vectors, one tile at a
// time, storing straight into the panels. (Transforming 8 tiles per vector and transposing the
// 16 results instead took four times the shuffles, which were most of this function's time.)
void weight_grad_block(float* S, const float* dy, const float* x, const ConvGeom& g,
                       const WGeo& wg, const std::vector<ColVec>& xcv,
                       const std::vector<ColVec>& ycv, int64_t r0, int64_t r1, bool first) {
  const int64_t C = g.C, OC = g.OC, H = g.H, W = g.W, OH = g.OH, OW = g.OW, TW = wg.TW;
  const int64_t tb = (r1 - r0) * TW;
  float* Ap = gk::scratch<10>(static_cast<size_t>(kXi * wg.axi));
  float* Bp = gk::scratch<11>(static_cast<size_t>(kXi * wg.bxi));
  // Rows of channel vectors: 4 input rows (ring slot (ih + pt) % 4) of xcv.size() * 8 columns.
  const int64_t xrow = static_cast<int64_t>(xcv.size()) * 64;
  const int64_t yrow = static_cast<int64_t>(ycv.size()) * 64;
  float* xt = gk::scratch<12>(static_cast<size_t>(4 * xrow + 2 * yrow));
  float* ytv = xt + 4 * xrow;
  // V^T: d[i][j] = column 2 tx - pl + j of input row 2 ty - pt + i; V = B^T d B.
  for (int64_t c0 = 0; c0 < C; c0 += 8) {
    int64_t prev_n = -1, prev_ih0 = 0;
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t n = row / wg.TH, ty = row % wg.TH, tbase = (row - r0) * TW;
      const int64_t ih0 = 2 * ty - g.pt;
      const int64_t i_new = (n == prev_n && ih0 == prev_ih0 + 2) ? 2 : 0;  // rows kept
      for (int64_t i = i_new; i < 4; ++i) {
        const int64_t ih = ih0 + i;
        const float* rows[8];
        for (int64_t k = 0; k < 8; ++k)
          rows[k] = (ih < 0 || ih >= H || c0 + k >= C) ? nullptr
                                                        : x + ((n * C + c0 + k) * H + ih) * W;
        rows_to_channel_vectors(xt + ((ih + g.pt) & 3) * xrow, rows, xcv);
      }
      prev_n = n, prev_ih0 = ih0;
      const float* xr[4];
      for (int64_t i = 0; i < 4; ++i) xr[i] = xt + ((ih0 + i + g.pt) & 3) * xrow;
      float* bp = Bp + (c0 / kNR) * wg.bpanel + tbase * kNR + c0 % kNR;
      for (int64_t tx = 0; tx < TW; ++tx) {
        __m256 d[4][4];
        for (int64_t i = 0; i < 4; ++i)
          for (int64_t j = 0; j < 4; ++j) d[i][j] = _mm256_load_ps(xr[i] + (2 * tx + j) * 8);
        __m256 v[kXi];
        input_patch_transform(d, v);
        float* dst = bp + tx * kNR;
        for (int64_t xi = 0; xi < kXi; ++xi) _mm256_store_ps(dst + xi * wg.bxi, v[xi]);
      }
    }
  }
  // Yh = A dY A^T, A = [1 0; 1 1; 1 -1; 0 -1]: y[i][j] = gradient row 2 ty + i, column 2 tx + j,
  // as vectors of a strip's 6 output channels (lanes 6, 7 zero), stored 8 floats at a time in
  // ascending tile order: each store's last 2 floats are overwritten by the next tile's (or land
  // in the strip's spare line).
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t s = 0; s < wg.nstrip; ++s) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t n = row / wg.TH, ty = row % wg.TH, tbase = (row - r0) * TW;
      for (int64_t i = 0; i < 2; ++i) {
        const int64_t oh = 2 * ty + i;
        const float* rows[8];
        for (int64_t k = 0; k < 8; ++k) {
          const int64_t oc = s * kMR + k;
          rows[k] = (k >= kMR || oc >= OC || oh >= OH) ? nullptr
                                                        : dy + ((n * OC + oc) * OH + oh) * OW;
        }
        rows_to_channel_vectors(ytv + i * yrow, rows, ycv);
      }
      float* ap = Ap + s * wg.astrip + tbase * kMR;
      for (int64_t tx = 0; tx < TW; ++tx) {
        __m256 r[4][2];  // (A dY)[a][j]
        for (int64_t j = 0; j < 2; ++j) {
          const __m256 y0 = _mm256_load_ps(ytv + (2 * tx + j) * 8);
          const __m256 y1 = _mm256_load_ps(ytv + yrow + (2 * tx + j) * 8);
          r[0][j] = y0;
          r[1][j] = _mm256_add_ps(y0, y1);
          r[2][j] = _mm256_sub_ps(y0, y1);
          r[3][j] = _mm256_sub_ps(zero, y1);
        }
        float* dst = ap + tx * kMR;
        for (int a = 0; a < 4; ++a) {
          _mm256_storeu_ps(dst + (a * 4 + 0) * wg.axi, r[a][0]);
          _mm256_storeu_ps(dst + (a * 4 + 1) * wg.axi, _mm256_add_ps(r[a][0], r[a][1]));
          _mm256_storeu_ps(dst + (a * 4 + 2) * wg.axi, _mm256_sub_ps(r[a][0], r[a][1]));
          _mm256_storeu_ps(dst + (a * 4 + 3) * wg.axi, _mm256_sub_ps(zero, r[a][1]));
        }
      }
    }
  }
  for (int64_t xi = 0; xi < kXi; ++xi)
    gk::micro_grid(tb, Ap + xi * wg.axi, wg.astrip, OC, Bp + xi * wg.bxi, wg.bpanel, C,
                   S + xi * OC * C, C, !first);
}

}  // namespace

bool winograd_applies(const ConvGeom& g) {
  static const bool on = [] {
    const char* impl = std::getenv("EMBER_CONV_IMPL");  // "im2col": the reference path only
    return env_int("EMBER_CONV_WINOGRAD", 1) != 0 && !(impl && std::string(impl) == "im2col");
  }();
  // Measured at 1 thread against the packed direct convolution (forward, batch 64): 16 -> 16
  // channels on 32x32 take 4.0 vs 5.1 ms and 64 -> 64 on 4x4 0.9 vs 1.4 ms, but 16 -> 16 on 8x8
  // 0.42 vs 0.39 ms (narrow rows fill half of each 8-tile vector) and 8 -> 8 channels do not
  // pay for the transforms.
  return on && g.KH == 3 && g.KW == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
         g.G == 1 && g.C >= 16 && g.OC >= 16 && g.OH >= 2 && g.OW >= 2 &&
         (g.OW >= 16 || std::min(g.C, g.OC) >= 32);
}

void conv_winograd_forward(float* y, const float* x, const float* w, const float* bias,
                           const ConvGeom& g, bool serial, bool relu) {
  const Geo geo(g);
  const KSplit ks(g.C);
  const std::vector<float> up = transform_weights(w, g, geo, ks);
  const std::vector<ColVec> cvs = input_columns(g, geo.TW);
  const int64_t C = g.C, OC = g.OC, per_xi = geo.nstrip * kMR * C;
  const int64_t pstride = geo.pstride, xstride = geo.xstride;
  // relu's rule x < 0 ? 0 : x is max(0, x) with 0 first: NaN and -0 come back as they are.
  const __m256 lo = relu ? _mm256_setzero_ps() : _mm256_set1_ps(-INFINITY);
  auto block = [&](int64_t blk) {
    const int64_t r0 = blk * geo.rows_per_block;
    const int64_t r1 = std::min(g.N * geo.TH, r0 + geo.rows_per_block);
    const int64_t tb = (r1 - r0) * geo.TW;
    float* Vp = gk::scratch<11>(static_cast<size_t>(kXi * xstride));
    float* Mp = gk::scratch<12>(static_cast<size_t>(OC * kMRow));
    input_transform(Vp, x, g, geo, cvs, r0, r1);
    const int64_t npanels = (tb + kNR - 1) / kNR;
    // Two panels (32 tiles) per product where there are two: the micro-kernel's 12 x 32 tiles
    // (24 FMAs per 14 loads; one panel's 12 x 16 tiles issue 13 loads per 12 FMAs and were
    // bound by the load ports), and each U[xi] is read once per pair instead of once per panel.
    // The same FMAs in the same channel order per output: the same bits.
    for (int64_t p = 0; p < npanels; p += 2) {
      const int64_t npp = std::min<int64_t>(2, npanels - p);
      for (int64_t xi = 0; xi < kXi; ++xi) {
        const float* vp = Vp + xi * xstride + p * pstride;
        const float* ux = up.data() + xi * per_xi;
        float* mx = Mp + xi * kMXi;  // rows oc at stride kMRow
        for (int64_t b = 0; b < ks.n; ++b) {
          const int64_t k0 = ks.k0(b), kc = ks.kc(b, C);
          const float* ub = ux + k0 * kMR * geo.nstrip;
          gk::micro_grid(kc, ub, kc * kMR, OC, vp + k0 * kNR, pstride, npp * kNR, mx, kMRow,
                         b > 0);
        }
      }
      for (int64_t q = 0; q < npp; ++q)
        output_transform(y, Mp + q * kNR, bias, g, geo, r0, p + q, tb, lo);
    }
  };
  const int64_t cost = 2 * kXi * OC * C * geo.tbp;
  if (serial) {
    DenormalGuard guard;
    for (int64_t b = 0; b < geo.nblk; ++b) block(b);
    return;
  }
  parallel_for(geo.nblk, cost, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) block(b);
  });
}

void conv_winograd_weight_grad(float* dw, const float* dy, const float* x, const ConvGeom& g,
                               bool serial) {
  const WGeo wg(g);
  const int64_t OC = g.OC, C = g.C, SS = kXi * OC * C;
  const std::vector<ColVec> xcv = column_groups(2 * wg.TW + 2, -g.pl, g.W);
  const std::vector<ColVec> ycv = column_groups(2 * wg.TW, 0, g.OW);
  // Blocks are summed in a fixed number of chunks (by shape only: at most 16, and at most 8M
  // floats of partial sums), each in block order into its own partial; partials are added in
  // chunk order. The result does not depend on the thread count.
  const int64_t nchunks = std::max<int64_t>(
      1, std::min({wg.nblk, int64_t(16), (int64_t(1) << 23) / std::max<int64_t>(SS, 1)}));
  // The partials, shared with the team; each chunk's first block stores instead of adding, so
  // there is no zeroing pass. Up to 8 MiB (W7's layers: 4 MiB) they live in the caller's
  // grow-only scratch (slot 16, which the blocks do not use), larger ones only for the call.
  const size_t npart = static_cast<size_t>(nchunks * SS);
  std::unique_ptr<float[]> big;
  float* part = npart <= (size_t(1) << 21) ? gk::scratch<16>(npart)
                                            : (big.reset(new float[npart]), big.get());
  auto chunk = [&](int64_t c) {
    const int64_t b0 = c * wg.nblk / nchunks, b1 = (c + 1) * wg.nblk / nchunks;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * wg.rows_per_block;
      const int64_t r1 = std::min(g.N * wg.TH, r0 + wg.rows_per_block);
      weight_grad_block(part + c * SS, dy, x, g, wg, xcv, ycv, r0, r1, b == b0);
    }
  };
  const int64_t cost = 2 * kXi * OC * C * wg.tbk * (wg.nblk / nchunks + 1);
  if (serial) {
    DenormalGuard guard;
    for (int64_t c = 0; c < nchunks; ++c) chunk(c);
  } else {
    parallel_for(nchunks, cost, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) chunk(c);
    });
  }
  // dw (oc, c) += G^T m G in double, with m[xi] = the chunks' partials summed in chunk order in
  // double; G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. Threads take ranges of output
  // channels; a range's partials are summed as one run of contiguous floats per (xi, chunk):
  // gathered per (oc, c) across 16 xi x 16 chunks, the loads missed and took 18% of W7's
  // 64 -> 64 weight gradient.
  parallel_for(OC, 2 * kXi * nchunks * C, [&](int64_t o0, int64_t o1) {
    const int64_t run = (o1 - o0) * C;
    std::vector<double> msum(static_cast<size_t>(kXi * run));
    for (int64_t xi = 0; xi < kXi; ++xi) {
      double* m = msum.data() + xi * run;
      const float* p0 = part + (xi * OC + o0) * C;
      for (int64_t i = 0; i < run; ++i) m[i] = p0[i];
      for (int64_t k = 1; k < nchunks; ++k) {
        const float* pk = p0 + k * SS;
        for (int64_t i = 0; i < run; ++i) m[i] += pk[i];
      }
    }
    for (int64_t i = 0; i < run; ++i) {
      double m[4][4];
      for (int64_t xi = 0; xi < kXi; ++xi) m[xi / 4][xi % 4] = msum[static_cast<size_t>(xi * run + i)];
      double t[3][4];  // G^T m
      for (int j = 0; j < 4; ++j) {
        t[0][j] = m[0][j] + 0.5 * (m[1][j] + m[2][j]);
        t[1][j] = 0.5 * (m[1][j] - m[2][j]);
        t[2][j] = 0.5 * (m[1][j] + m[2][j]) + m[3][j];
      }
      float* k = dw + (o0 * C + i) * 9;
      for (int r = 0; r < 3; ++r) {
        k[r * 3 + 0] += static_cast<float>(t[r][0] + 0.5 * (t[r][1] + t[r][2]));
        k[r * 3 + 1] += static_cast<float>(0.5 * (t[r][1] - t[r][2]));
        k[r * 3 + 2] += static_cast<float>(0.5 * (t[r][1] + t[r][2]) + t[r][3]);
      }
    }
  });
}

#else  // no AVX2 kernel: never chosen

bool winograd_applies(const ConvGeom&) { return false; }
void conv_winograd_forward(float*, const float*, const float*, const float*, const ConvGeom&,
                           bool, bool) {}
void conv_winograd_weight_grad(float*, const float*, const float*, const ConvGeom&, bool) {}

#endif

}  // namespace ember
