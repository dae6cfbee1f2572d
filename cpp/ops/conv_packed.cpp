#include "ops/conv_packed.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/gemm_kernel.h"
#include "core/parallel.h"

namespace ember {

#ifdef EMBER_GEMM_KERNEL

namespace {

using gk::kMR;
using gk::kNR;
using gk::kGridNB;
using gk::micro_grid;

// k-block length over the reduction: a packed 16-column panel (<= 16 KiB) and a 6-row weight
// strip (<= 6 KiB) stay in L1 while the micro-kernel runs.
constexpr int64_t kKC = 256;

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Equal k-blocks of at most kmax over a reduction of length K (a function of K only).
struct KBlocks {
  int64_t n, len;
  KBlocks(int64_t K, int64_t kmax) : n((K + kmax - 1) / kmax), len((K + n - 1) / n) {}
};

// The block's group channels with the zero padding written out: (nbk, Cg, Hp, Wp) with
// Hp = pt + H + pb, Wp = pl + W + pr. Every window the convolution reads lies inside it, so
// gathering a panel (and scattering an input gradient) needs no bounds checks at all.
struct Padded {
  int64_t Hp, Wp, plane, sample;  // plane = Hp*Wp, sample = Cg*plane
  explicit Padded(const ConvGeom& g)
      : Hp(g.pt + g.H + g.pb), Wp(g.pl + g.W + g.pr), plane(Hp * Wp), sample(g.Cg() * Hp * Wp) {}
};

// d[0, n) = s[0, n), then d[n, n + z) = 0: one image row and the zeros after it. Vector moves
// (masked at the ends) in place of std::copy / std::fill, whose library calls cost more than the
// copy for the short rows of small images (a Conv1d signal of 20 or 40 values): a W4 profile had
// pad_in with its memmove / memset calls at ~12% of the step. With this and the LaneSum tail
// (core/reduce), a W4 step ran 1.06-1.09x (in-process A/B against the previous build).
inline void copy_zero_run(float* d, const float* s, int64_t n, int64_t z) {
#if defined(__AVX512F__)
  const int64_t e = n + z;
  for (int64_t t = 0; t < e; t += 16) {
    const int64_t nv = std::min<int64_t>(16, std::max<int64_t>(0, n - t));
    const __mmask16 lm = static_cast<__mmask16>((1u << nv) - 1u);  // lanes read from s
    const __mmask16 sm = t + 16 <= e ? __mmask16(0xFFFF)
                                     : static_cast<__mmask16>((1u << (e - t)) - 1u);
    _mm512_mask_storeu_ps(d + t, sm, _mm512_maskz_loadu_ps(lm, s + t));
  }
#else
  std::copy(s, s + n, d);
  std::fill(d + n, d + n + z, 0.f);
#endif
}
inline void zero_run(float* d, int64_t n) { copy_zero_run(d, d, 0, n); }

// xp (nbk samples, padded) = x's Cg channels (sample stride C*H*W) with zero borders. Each plane
// is written front to back: the top rows and the first left border, then per image row its values
// and the zeros up to the next row's values (right border + next left border). The geometry is
// held in locals: the vector stores may alias anything, which made the compiler reload it from
// g and pd after every store.
void pad_in(float* xp, const float* x, int64_t nbk, const ConvGeom& g, const Padded& pd) {
  const int64_t Cg = g.Cg(), HW = g.H * g.W, W = g.W, H = g.H, C = g.C;
  const int64_t Wp = pd.Wp, plane = pd.plane, sample = pd.sample, pt = g.pt, pl = g.pl;
  const int64_t gap = Wp - W;  // right border + the next row's left border
  for (int64_t i = 0; i < nbk; ++i)
    for (int64_t c = 0; c < Cg; ++c) {
      float* d = xp + i * sample + c * plane;
      const float* sp = x + i * C * HW + c * HW;
      if (H == 0) {
        zero_run(d, plane);
        continue;
      }
      zero_run(d, pt * Wp + pl);
      float* r = d + pt * Wp + pl;
      for (int64_t h = 0; h + 1 < H; ++h, r += Wp) copy_zero_run(r, sp + h * W, W, gap);
      // the last row: its right border, then the bottom rows
      copy_zero_run(r, sp + (H - 1) * W, W, plane - (r + W - d));
    }
}

// x's Cg channels (sample stride C*H*W) = the interior of xp.
void unpad_out(float* x, const float* xp, int64_t nbk, const ConvGeom& g, const Padded& pd) {
  // (geometry in locals: see pad_in)
  const int64_t Cg = g.Cg(), HW = g.H * g.W, W = g.W, H = g.H, C = g.C;
  const int64_t Wp = pd.Wp, plane = pd.plane, sample = pd.sample, off = g.pt * pd.Wp + g.pl;
  for (int64_t i = 0; i < nbk; ++i)
    for (int64_t c = 0; c < Cg; ++c) {
      const float* sp = xp + i * sample + c * plane + off;
      float* d = x + i * C * HW + c * HW;
      for (int64_t h = 0; h < H; ++h) copy_zero_run(d + h * W, sp + h * Wp, W, 0);
    }
}

// Row k = (c, kh, kw) of a group's im2col sits at off[k] = c*plane + kh*dh*Wp + kw*dw from a
// column's window origin in the padded block.
std::vector<int64_t> make_table(const ConvGeom& g, const Padded& pd) {
  std::vector<int64_t> tab(g.Cg() * g.KK());
  for (int64_t c = 0; c < g.Cg(); ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw)
        tab[(c * g.KH + kh) * g.KW + kw] = c * pd.plane + kh * g.dh * pd.Wp + kw * g.dw;
  return tab;
}

// Floats of slack after the gather targets and the padded block: vector moves may run up to
// 16 floats past (8 outputs at stride 2).
constexpr int64_t kSlack = 32;

// A run of columns [joff, joff+len) of a panel or tile that lie in one output row of one sample.
struct Seg {
  int64_t joff, len;
  int64_t i, q;     // sample within the block, first output pixel (oh*OW + ow)
  int64_t origin;   // window origin in the padded block: i*sample + oh*sh*Wp + ow*sw
};

// Splits block columns [j0, j0+n) (column j = sample j / P, pixel j % P) into segments.
void make_segments(std::vector<Seg>& segs, int64_t j0, int64_t n, const ConvGeom& g,
                   const Padded& pd) {
  const int64_t P = g.OH * g.OW;
  segs.clear();
  for (int64_t j = j0; j < j0 + n;) {
    Seg s;
    s.i = j / P;
    s.q = j % P;
    const int64_t oh = s.q / g.OW, ow = s.q % g.OW;
    s.len = std::min(g.OW - ow, j0 + n - j);
    s.joff = j - j0;
    s.origin = s.i * pd.sample + oh * g.sh * pd.Wp + ow * g.sw;
    segs.push_back(s);
    j += s.len;
  }
}

// 8 outputs at input stride sw (1 or 2) from p: p[0..8), or p[0], p[2], ..., p[14].
inline __m256 load8(const float* p, int64_t sw) {
  if (sw == 1) return _mm256_loadu_ps(p);
  const __m256 e = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8),
                                     _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

// A tile of `width` pixels (a 16-pixel panel, or the input gradient's kGridNB panels) that is one
// whole run of one output row at stride 1: the common case, whole vector moves per row.
inline bool whole_row_tile(const std::vector<Seg>& segs, const ConvGeom& g, int64_t width) {
  return segs.size() == 1 && segs[0].len == width && g.sw == 1;
}

// dst row k (stride ld) = im2col rows [k0, k0+nk) at the segments' columns, read from the padded
// block xp. Columns [ncols, ld) are zeroed when ld == kNR (a partial panel).
void gather(float* dst, int64_t ld, int64_t ncols, const float* xp, const int64_t* tab,
            int64_t k0, int64_t nk, const std::vector<Seg>& segs, const ConvGeom& g) {
  const int64_t sw = g.sw;
  if (ld == kNR && whole_row_tile(segs, g, kNR)) {
    const float* base = xp + segs[0].origin;
    for (int64_t k = 0; k < nk; ++k) {
      const float* src = base + tab[k0 + k];
      _mm256_store_ps(dst + k * kNR, _mm256_loadu_ps(src));
      _mm256_store_ps(dst + k * kNR + 8, _mm256_loadu_ps(src + 8));
    }
    return;
  }
  for (int64_t k = 0; k < nk; ++k) {
    float* d = dst + k * ld;
    for (const Seg& s : segs) {
      const float* src = xp + s.origin + tab[k0 + k];
      float* dd = d + s.joff;
      if (sw <= 2) {
        // 8 outputs per move; the last one runs past the segment into slots that a later
        // segment, a later row or the tail zeroing below overwrites (buffers carry kSlack floats).
        for (int64_t t = 0; t < s.len; t += 8) _mm256_storeu_ps(dd + t, load8(src + t * sw, sw));
      } else {
        for (int64_t t = 0; t < s.len; ++t) dd[t] = src[t * sw];
      }
    }
    if (ld == kNR)
      for (int64_t t = ncols; t < kNR; ++t) d[t] = 0.f;
  }
}

// The weight gradient's B panel straight from the padded block: bp row t (kNR floats) = im2col
// rows [j0, j0+nr) at block column t (columns given by the segments, kc of them), zero past nr.
// Eight columns of eight rows at a time are loaded along the rows and transposed in registers,
// so there is no intermediate (nr x kc) copy to write and transpose again.
void gather_t(float* bp, const float* xp, const int64_t* tab, int64_t j0, int64_t nr,
              const std::vector<Seg>& segs, const ConvGeom& g) {
  const int64_t sw = g.sw;
  for (const Seg& s : segs) {
    const float* base = xp + s.origin;
    float* d = bp + s.joff * kNR;
    int64_t t = 0;
    if (sw <= 2) {
      for (; t + 8 <= s.len; t += 8) {
        for (int64_t h = 0; h < kNR; h += 8) {
          __m256 r[8];
          for (int64_t i = 0; i < 8; ++i)
            r[i] = h + i < nr ? load8(base + tab[j0 + h + i] + t * sw, sw) : _mm256_setzero_ps();
          gk::transpose8x8_store(r, d + t * kNR + h, kNR);
        }
      }
    }
    for (; t < s.len; ++t)
      for (int64_t j = 0; j < kNR; ++j)
        d[t * kNR + j] = j < nr ? base[tab[j0 + j] + t * sw] : 0.f;
  }
}

// The adjoint of gather for a tile of columns: padded block xp += col rows [0, nk) (row stride
// ld, a multiple of 8: the tile's width).
void scatter_add(float* xp, const float* col, int64_t ld, const int64_t* tab, int64_t nk,
                 const std::vector<Seg>& segs, const ConvGeom& g) {
  const int64_t sw = g.sw;
  if (whole_row_tile(segs, g, ld)) {
    // Rows (c, kh, kw) and (c, kh, kw+1) overlap shifted by one element: adding them back to back
    // would load what the previous store has not yet written (a store-forwarding stall each time).
    // kw outermost keeps consecutive updates on different image rows; the order is still fixed.
    float* base = xp + segs[0].origin;
    const int64_t KW = g.KW, rows = nk / KW;
    for (int64_t kw = 0; kw < KW; ++kw)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t k = r * KW + kw;
        float* dst = base + tab[k];
        const float* c = col + k * ld;
        for (int64_t t = 0; t < ld; t += 8)
          _mm256_storeu_ps(dst + t, _mm256_add_ps(_mm256_loadu_ps(dst + t), _mm256_load_ps(c + t)));
      }
    return;
  }
  if (sw == 1) {
    // Segments (< 16 pixels, one per output row crossed): whole 8-lane read-modify-writes, then
    // single floats. Segment outermost, then kw, then (c, kh): consecutive updates land on
    // different image rows, so no load waits on a recent partly overlapping store (row-major
    // order stalled on store forwarding: LeNet's 6->16 dx spent two thirds of its time here).
    const int64_t KW = g.KW, rows = nk / KW;
    for (const Seg& s : segs)
      for (int64_t kw = 0; kw < KW; ++kw)
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t k = r * KW + kw;
          float* dst = xp + s.origin + tab[k];
          const float* cs = col + k * ld + s.joff;
          int64_t t = 0;
          for (; t + 8 <= s.len; t += 8)
            _mm256_storeu_ps(dst + t,
                             _mm256_add_ps(_mm256_loadu_ps(dst + t), _mm256_loadu_ps(cs + t)));
          for (; t < s.len; ++t) dst[t] += cs[t];
        }
    return;
  }
  if (sw == 2) {
    // 8 outputs per step: their values spread to the even lanes of 16 (odd lanes and lanes past
    // the segment add +0 to this task's private padded block), same loop order as above.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i i0 = _mm256_setr_epi32(0, 1, 0, 0, 2, 3, 0, 0);
    const __m256i i1 = _mm256_setr_epi32(4, 5, 0, 0, 6, 7, 0, 0);
    const __m256 zero = _mm256_setzero_ps();
    const int64_t KW = g.KW, rows = nk / KW;
    for (const Seg& s : segs)
      for (int64_t kw = 0; kw < KW; ++kw)
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t k = r * KW + kw;
          float* dst = xp + s.origin + tab[k];
          const float* cs = col + k * ld + s.joff;
          for (int64_t t = 0; t < s.len; t += 8) {
            __m256 v = _mm256_loadu_ps(cs + t);
            if (s.len - t < 8)
              v = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                                       _mm256_set1_epi32(static_cast<int>(s.len - t)), lane)));
            const __m256 lo = _mm256_unpacklo_ps(_mm256_permutevar8x32_ps(v, i0), zero);
            const __m256 hi = _mm256_unpacklo_ps(_mm256_permutevar8x32_ps(v, i1), zero);
            float* d = dst + 2 * t;
            _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), lo));
            _mm256_storeu_ps(d + 8, _mm256_add_ps(_mm256_loadu_ps(d + 8), hi));
          }
        }
    return;
  }
  for (int64_t k = 0; k < nk; ++k) {
    const float* c = col + k * ld;
    for (const Seg& s : segs) {
      float* dst = xp + s.origin + tab[k];
      const float* cs = c + s.joff;
      for (int64_t t = 0; t < s.len; ++t) dst[t * sw] += cs[t];
    }
  }
}

// Per-thread buffers (grow-only, reused across calls; scratch slots 10-15 are conv's).
inline float* buf_a(size_t n) { return gk::scratch<10>(n); }
inline float* buf_b(size_t n) { return gk::scratch<11>(n); }
inline float* buf_c(size_t n) { return gk::scratch<12>(n); }
inline float* buf_pad(size_t n) { return gk::scratch<13>(n); }
// Caller-thread buffers shared read-only with the team (packed weights, partial sums).
inline float* buf_shared(size_t n) { return gk::scratch<14>(n); }
inline float* buf_partial(size_t n) { return gk::scratch<15>(n); }
std::vector<Seg>& seg_buf() {
  thread_local std::vector<Seg> v;
  return v;
}

template <class F>
void run_tasks(int64_t n, int64_t cost, bool serial, F&& f) {
  if (serial) {
    DenormalGuard guard;
    for (int64_t t = 0; t < n; ++t) f(t);
    return;
  }
  parallel_for(n, cost, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) f(t);
  });
}

// dw[e] += the chunks' partials part[c * WS + e] summed in chunk order (the weight gradients'
// fixed-order reduction), split over weight elements when there are many.
void add_partials(float* dw, const float* part, int64_t nchunks, int64_t WS, bool serial) {
  const bool big = !serial && WS * nchunks >= (int64_t(1) << 24);
  parallel_for(WS, big ? nchunks : 1, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      float s = part[e];
      for (int64_t c = 1; c < nchunks; ++c) s += part[c * WS + e];
      dw[e] += s;
    }
  });
}

// The fixed-order reduction of the direct weight gradients: sample blocks of nb samples cut
// into at most 16 chunks of consecutive blocks (by the shape only); chunk(b0, b1, emit) sums
// blocks [b0, b1) and hands each weight element's sum to emit(e, v), which stores it in the
// chunk's partial (or adds it to dw when there is one chunk); the partials are then added to dw
// in chunk order. block_flops: the work of one block, for the threading threshold.
template <class F>
void direct_wgrad_chunks(float* dw, int64_t N, int64_t nb, int64_t WS, int64_t block_flops,
                         bool serial, F&& chunk) {
  const int64_t nblk = (N + nb - 1) / nb;
  constexpr int64_t kChunks = 16;
  const int64_t nchunks = std::min(nblk, kChunks);
  float* part = nchunks > 1 ? buf_partial(static_cast<size_t>(nchunks * WS)) : nullptr;
  run_tasks(nchunks, (nblk + nchunks - 1) / nchunks * block_flops, serial, [&](int64_t ch) {
    float* out = part ? part + ch * WS : dw;
    chunk(ch * nblk / nchunks, (ch + 1) * nblk / nchunks,
          [&](int64_t e, float v) { out[e] = part ? v : out[e] + v; });
  });
  if (part) add_partials(dw, part, nchunks, WS, serial);
}

}  // namespace

bool conv_packed_available() { return true; }

namespace {

// Pixel-major forward: out^T (pixels x OCg) = im2col^T (pixels x CgKK) @ W^T (CgKK x OCg), so the
// output channels fill whole 16-wide panels (OCg = 16, 32, 48, ... waste nothing, where the
// channel-major form pads 32 rows to 36). A strips are 6 pixels (6 neighbours of one image row:
// one 8-float move per k), W^T is packed once per call, each block of kPM pixels accumulates in
// a (kPM x Npad) tile that is transposed into the output at the end.
constexpr int64_t kPM = 120;  // pixels per tile: 120 x 256 floats of A (120 KiB) stay in L2

void side_from_image_pm(float* out, const float* img, const float* w, const float* bias,
                        const ConvGeom& g, int64_t nb, bool serial, bool relu) {
  // relu's rule x < 0 ? 0 : x is max(0, x) with 0 first: NaN and -0 come back as they are.
  const __m256 lo = relu ? _mm256_setzero_ps() : _mm256_set1_ps(-INFINITY);
  const float flo = relu ? 0.f : -INFINITY;
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg();
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, G = g.G;
  const int64_t Np = round_up(OCg, kNR);
  const KBlocks kb(CgKK, kKC);
  const Padded pd(g);
  // W^T panels, packed once: group grp, k-block at pc -> Wt + grp*Np*CgKK + pc*Np, panel at +j*kc.
  float* Wt = buf_shared(static_cast<size_t>(G * Np * CgKK));
  for (int64_t grp = 0; grp < G; ++grp)
    for (int64_t pc = 0; pc < CgKK; pc += kb.len) {
      const int64_t kc = std::min(kb.len, CgKK - pc);
      for (int64_t j = 0; j < Np; j += kNR)
        gk::pack_b_panel<true>(Wt + grp * Np * CgKK + pc * Np + j * kc, w + grp * OCg * CgKK, 1,
                               CgKK, pc, kc, j, std::min(kNR, OCg - j));
    }
  const std::vector<int64_t> tab = make_table(g, pd);
  const int64_t nblk = (g.N + nb - 1) / nb;
  run_tasks(nblk, 2 * nb * P * OC * CgKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0), cols = nbk * P;
    std::vector<Seg>& segs = seg_buf();
    // Slack past the ends: the 8-float moves below touch two floats beyond a 6-pixel strip.
    float* Ap = buf_a(static_cast<size_t>(kPM * kb.len + 8));
    float* Ct = buf_c(static_cast<size_t>(kPM * Np));
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + kSlack));
    for (int64_t grp = 0; grp < G; ++grp) {
      pad_in(xp, img + (n0 * C + grp * Cg) * HW, nbk, g, pd);
      const float* wg = Wt + grp * Np * CgKK;
      for (int64_t m0 = 0; m0 < cols; m0 += kPM) {
        const int64_t mc = std::min(kPM, cols - m0), mp = round_up(mc, kMR);
        make_segments(segs, m0, mc, g, pd);
        for (int64_t pc = 0; pc < CgKK; pc += kb.len) {
          const int64_t kc = std::min(kb.len, CgKK - pc);
          const int64_t* tk = tab.data() + pc;
          // A strips: Ap[s*kc + k*6 + i] = im2col row pc+k at pixel m0+s+i (zero past mc).
          size_t sg = 0;
          for (int64_t s = 0; s < mp; s += kMR) {
            float* ad = Ap + s * kc;
            while (sg + 1 < segs.size() && segs[sg].joff + segs[sg].len <= s) ++sg;
            const Seg& seg = segs[sg];
            const int64_t sw = g.sw;
            if (sw <= 2 && s + kMR <= seg.joff + seg.len) {  // 6 neighbours in one row
              const float* base = xp + seg.origin + (s - seg.joff) * sw;
              for (int64_t k = 0; k < kc; ++k) _mm256_storeu_ps(ad + k * kMR, load8(base + tk[k], sw));
              continue;
            }
            if (sw <= 2 && s + kMR <= mc && sg + 1 < segs.size() &&
                s + kMR <= segs[sg + 1].joff + segs[sg + 1].len) {
              // The strip crosses one row end: two 8-output moves per k, the second (lanes from
              // the next row on) overwriting the first's tail. Later stores fix the slack lanes.
              const Seg& nx = segs[sg + 1];
              const int64_t a = nx.joff - s;
              const float* b0 = xp + seg.origin + (s - seg.joff) * sw;
              const float* b1 = xp + nx.origin;
              for (int64_t k = 0; k < kc; ++k) {
                _mm256_storeu_ps(ad + k * kMR, load8(b0 + tk[k], sw));
                _mm256_storeu_ps(ad + k * kMR + a, load8(b1 + tk[k], sw));
              }
              continue;
            }
            for (int64_t i = 0; i < kMR; ++i) {
              const int64_t j = s + i;
              if (j >= mc) {
                for (int64_t k = 0; k < kc; ++k) ad[k * kMR + i] = 0.f;
                continue;
              }
              size_t q = sg;
              while (segs[q].joff + segs[q].len <= j) ++q;
              const float* src = xp + segs[q].origin + (j - segs[q].joff) * g.sw;
              for (int64_t k = 0; k < kc; ++k) ad[k * kMR + i] = src[tk[k]];
            }
          }
          micro_grid(kc, Ap, kMR * kc, mp, wg + pc * Np, kNR * kc, Np, Ct, Np, pc > 0);
        }
        // out[n, grp*OCg + o, q] = Ct[pixel, o] + bias, per run of one sample's pixels.
        for (int64_t j = 0; j < mc;) {
          const int64_t col = m0 + j, i = col / P, q = col % P;
          const int64_t len = std::min(mc - j, P - q);
          float* d0 = out + ((n0 + i) * OC + grp * OCg) * P + q;
          const float* c0 = Ct + j * Np;
          int64_t o = 0;
          for (; o + 8 <= OCg; o += 8) {  // 8 channels x 8 pixels through a register transpose
            const __m256 vb = bias ? _mm256_loadu_ps(bias + grp * OCg + o) : _mm256_setzero_ps();
            int64_t t = 0;
            for (; t + 8 <= len; t += 8) {
              const float* c = c0 + t * Np + o;
              __m256 r0 = _mm256_add_ps(_mm256_loadu_ps(c + 0 * Np), vb);
              __m256 r1 = _mm256_add_ps(_mm256_loadu_ps(c + 1 * Np), vb);
              __m256 r2 = _mm256_add_ps(_mm256_loadu_ps(c + 2 * Np), vb);
              __m256 r3 = _mm256_add_ps(_mm256_loadu_ps(c + 3 * Np), vb);
              __m256 r4 = _mm256_add_ps(_mm256_loadu_ps(c + 4 * Np), vb);
              __m256 r5 = _mm256_add_ps(_mm256_loadu_ps(c + 5 * Np), vb);
              __m256 r6 = _mm256_add_ps(_mm256_loadu_ps(c + 6 * Np), vb);
              __m256 r7 = _mm256_add_ps(_mm256_loadu_ps(c + 7 * Np), vb);
              gk::transpose8x8(r0, r1, r2, r3, r4, r5, r6, r7);
              float* d = d0 + o * P + t;
              _mm256_storeu_ps(d + 0 * P, _mm256_max_ps(lo, r0));
              _mm256_storeu_ps(d + 1 * P, _mm256_max_ps(lo, r1));
              _mm256_storeu_ps(d + 2 * P, _mm256_max_ps(lo, r2));
              _mm256_storeu_ps(d + 3 * P, _mm256_max_ps(lo, r3));
              _mm256_storeu_ps(d + 4 * P, _mm256_max_ps(lo, r4));
              _mm256_storeu_ps(d + 5 * P, _mm256_max_ps(lo, r5));
              _mm256_storeu_ps(d + 6 * P, _mm256_max_ps(lo, r6));
              _mm256_storeu_ps(d + 7 * P, _mm256_max_ps(lo, r7));
            }
            for (; t < len; ++t)
              for (int64_t r = 0; r < 8; ++r) {
                const float v = c0[t * Np + o + r] + (bias ? bias[grp * OCg + o + r] : 0.f);
                d0[(o + r) * P + t] = v < flo ? flo : v;
              }
          }
          for (; o < OCg; ++o) {
            const float bv = bias ? bias[grp * OCg + o] : 0.f;
            for (int64_t t = 0; t < len; ++t) {
              const float v = c0[t * Np + o] + bv;
              d0[o * P + t] = v < flo ? flo : v;
            }
          }
          j += len;
        }
      }
    }
  });
}

// Row-virtual pixels (below): v = oh * Wp + ow of one sample, ow over the padded width Wp.
// Calls f(t, oh, ow, len) for each output-row piece of v0 .. v0 + n - 1: t its offset from v0,
// len its pixels with ow < OW (0 for a piece of dropped columns only).
template <class F>
void for_row_pieces(int64_t v0, int64_t n, int64_t Wp, int64_t OW, F&& f) {
  int64_t oh = v0 / Wp, ow = v0 - oh * Wp;
  for (int64_t t = 0; t < n; ow = 0, ++oh) {
    const int64_t run = std::min(n - t, Wp - ow);
    f(t, oh, ow, std::max<int64_t>(0, std::min(run, OW - ow)));
    t += run;
  }
}

// Stride-1 forward over row-virtual pixels, for images whose output rows are not whole panels:
// pixel v = oh * Wp + ow of a sample, with ow over the padded width Wp instead of OW. Its window
// origin in the padded block is v itself, so consecutive pixels read consecutive floats for every
// k: a 16-pixel panel is two vector moves per k, with no row segments, where a panel crossing a
// row end took a move per row per k. The Wp - OW = dw (KW - 1) columns past each row are computed
// and dropped (the caller takes this path only when they are at most a quarter of OW). kGridNB
// panels per micro_grid call: with AVX-512 a 6-row weight strip (LeNet's first layer) runs 6 x 32
// tiles. Each output is the same k-ordered chain as on the segment path, so the same bits.
void side_from_image_rows(float* out, const float* img, const float* Wpk, const float* bias,
                          const ConvGeom& g, int64_t nb, bool serial, bool relu,
                          const std::vector<int64_t>& tab) {
  const __m256 lo = relu ? _mm256_setzero_ps() : _mm256_set1_ps(-INFINITY);
  const float flo = relu ? 0.f : -INFINITY;
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg();
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, G = g.G, OW = g.OW;
  const int64_t Mp = round_up(OCg, kMR);
  const KBlocks kb(CgKK, kKC);
  const Padded pd(g);
  const int64_t Wp = pd.Wp, Pv = g.OH * Wp;
  constexpr int64_t kVN = kGridNB * kNR;  // pixels per micro_grid call
  // A sample's last panel reads up to Wp + 16 floats past its padded block (see the bound in
  // the loop): slack after the last one, zeroed.
  const int64_t tail = Wp + kNR;
  const int64_t nblk = (g.N + nb - 1) / nb;
  run_tasks(nblk, 2 * nb * Pv * OC * CgKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0);
    float* Bp = buf_b(static_cast<size_t>(kGridNB * kb.len * kNR));
    float* Ct = buf_c(static_cast<size_t>(Mp * kVN));
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + tail + kSlack));
    std::fill(xp + nbk * pd.sample, xp + nbk * pd.sample + tail, 0.f);
    for (int64_t grp = 0; grp < G; ++grp) {
      pad_in(xp, img + (n0 * C + grp * Cg) * HW, nbk, g, pd);
      const float* wg = Wpk + grp * Mp * CgKK;
      for (int64_t i = 0; i < nbk; ++i) {
        const float* xs = xp + i * pd.sample;
        float* os = out + ((n0 + i) * OC + grp * OCg) * P;
        for (int64_t v0 = 0; v0 < Pv; v0 += kVN) {
          const int64_t ncols = std::min(kVN, Pv - v0);
          for (int64_t pc = 0; pc < CgKK; pc += kb.len) {
            const int64_t kc = std::min(kb.len, CgKK - pc);
            const int64_t* tk = tab.data() + pc;
            // Reads reach v0 + 16 q + 15 + tab[k] < Pv + 16 + (Cg - 1) plane + (Hp - OH) Wp + Wp
            // = sample + Wp + 16 (stride 1: dh (KH - 1) = Hp - OH, dw (KW - 1) < Wp).
            for (int64_t q = 0; q * kNR < ncols; ++q) {
              const float* src = xs + v0 + q * kNR;
              float* d = Bp + q * kNR * kc;
              for (int64_t k = 0; k < kc; ++k) {
                _mm256_store_ps(d + k * kNR, _mm256_loadu_ps(src + tk[k]));
                _mm256_store_ps(d + k * kNR + 8, _mm256_loadu_ps(src + tk[k] + 8));
              }
            }
            micro_grid(kc, wg + pc * Mp, kMR * kc, Mp, Bp, kNR * kc, ncols, Ct, kVN, pc > 0);
          }
          // Pixels v0 .. v0 + ncols - 1 row by row; columns ow >= OW are dropped.
          for_row_pieces(v0, ncols, Wp, OW, [&](int64_t t, int64_t oh, int64_t ow, int64_t len) {
            for (int64_t o = 0; o < OCg; ++o) {
              const float bv = bias ? bias[grp * OCg + o] : 0.f;
              const __m256 vb = _mm256_set1_ps(bv);
              float* d = os + o * P + oh * OW + ow;
              const float* c = Ct + o * kVN + t;
              int64_t u = 0;
              for (; u + 8 <= len; u += 8) {
                const __m256 x = _mm256_add_ps(_mm256_loadu_ps(c + u), vb);
                _mm256_storeu_ps(d + u, _mm256_max_ps(lo, x));
              }
              for (; u < len; ++u) {
                const float x = c[u] + bv;
                d[u] = x < flo ? flo : x;
              }
            }
          });
        }
      }
    }
  });
}

// The input gradient over row-virtual pixels (see side_from_image_rows): the output gradient is
// gathered with zeros at the columns ow >= OW, so their im2col columns come out as +0 and their
// scatter adds +0 (a sum that starts at +0 never holds -0, so that changes no bits). What is
// left is two-panel GEMMs and whole-vector scatters, one run of kGridNB * 16 floats per k, where
// the segment path added row pieces and single floats per k (half of LeNet's 6->16 input
// gradient). Taken when the extra columns are at most half of OW: the scatter costs about a
// third per real pixel of what the segments did.
void image_from_side_rows(float* img, const float* src, const float* WTp, const float* bias,
                          const ConvGeom& g, int64_t nb, bool serial,
                          const std::vector<int64_t>& tab) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg();
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, G = g.G, OW = g.OW;
  const int64_t Mp = round_up(CgKK, kMR);
  const KBlocks kb(OCg, kKC);
  const Padded pd(g);
  const int64_t Wp = pd.Wp, Pv = g.OH * Wp;
  constexpr int64_t kVN = kGridNB * kNR;
  // The scatter of a sample's last rows reaches up to Wp floats past its padded block (adding +0).
  const int64_t tail = Wp + kVN;
  const int64_t nblk = (g.N + nb - 1) / nb;
  run_tasks(nblk, 2 * nb * Pv * OC * CgKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0);
    float* Bp = buf_b(static_cast<size_t>(kGridNB * kb.len * kNR));
    float* Ct = buf_c(static_cast<size_t>(Mp * kVN));
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + tail + kSlack));
    const int64_t KW = g.KW, rows = CgKK / KW;
    for (int64_t grp = 0; grp < G; ++grp) {
      std::fill(xp, xp + nbk * pd.sample + tail, 0.f);
      for (int64_t i = 0; i < nbk; ++i) {
        float* xs = xp + i * pd.sample;
        const float* ss = src + ((n0 + i) * OC + grp * OCg) * P;
        for (int64_t v0 = 0; v0 < Pv; v0 += kVN) {
          const int64_t ncols = std::min(kVN, Pv - v0);
          const int64_t npan = (ncols + kNR - 1) / kNR;
          for (int64_t pc = 0; pc < OCg; pc += kb.len) {
            const int64_t kc = std::min(kb.len, OCg - pc);
            // Bp panel q row k = output-gradient channel pc + k at virtual pixels v0 + 16 q + t:
            // zero, then the real row pieces.
            for (int64_t q = 0; q < npan; ++q)
              std::fill(Bp + q * kNR * kc, Bp + (q + 1) * kNR * kc, 0.f);
            for_row_pieces(v0, ncols, Wp, OW, [&](int64_t t, int64_t oh, int64_t ow, int64_t len) {
              for (int64_t u = 0; u < len; ++u) {
                const int64_t tt = t + u;
                float* d = Bp + (tt / kNR) * kNR * kc + tt % kNR;
                const float* r = ss + pc * P + oh * OW + ow + u;
                for (int64_t k = 0; k < kc; ++k) d[k * kNR] = r[k * P];
              }
            });
            micro_grid(kc, WTp + grp * Mp * OCg + pc * Mp, kMR * kc, Mp, Bp, kNR * kc, ncols, Ct,
                       kVN, pc > 0);
          }
          // xp += the im2col columns, kw outermost (as scatter_add: consecutive updates of
          // overlapping runs would wait on store forwarding).
          float* base = xs + v0;
          for (int64_t kw = 0; kw < KW; ++kw)
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t k = r * KW + kw;
              float* dst = base + tab[k];
              const float* c = Ct + k * kVN;
              int64_t t = 0;
              for (; t + 8 <= ncols; t += 8)
                _mm256_storeu_ps(dst + t,
                                 _mm256_add_ps(_mm256_loadu_ps(dst + t), _mm256_loadu_ps(c + t)));
              for (; t < ncols; ++t) dst[t] += c[t];
            }
        }
      }
      unpad_out(img + (n0 * C + grp * Cg) * HW, xp, nbk, g, pd);
      if (bias) add_channel_bias(img + n0 * C * HW, bias, nbk, C, grp * Cg, Cg, HW);
    }
  });
}

}  // namespace

void conv_packed_side_from_image(float* out, const float* img, const float* w, const float* bias,
                                 const ConvGeom& g, int64_t nb, bool serial, bool relu) {
  // Pixel-major when the output channels fill 16-wide panels better than 6-row strips.
  {
    const int64_t OCg = g.OCg();
    const double cm = double(round_up(OCg, kMR)) / OCg, pm = double(round_up(OCg, kNR)) / OCg;
    if (pm + 0.05 < cm) {
      side_from_image_pm(out, img, w, bias, g, nb, serial, relu);
      return;
    }
  }
  const __m256 lo = relu ? _mm256_setzero_ps() : _mm256_set1_ps(-INFINITY);
  const float flo = relu ? 0.f : -INFINITY;
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg();
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, G = g.G;
  const int64_t Mp = round_up(OCg, kMR);
  const KBlocks kb(CgKK, kKC);
  const Padded pd(g);
  // Weights, packed once: group grp, k-block at pc -> Wp + grp*Mp*CgKK + pc*Mp (strips of 6 rows).
  float* Wp = buf_shared(static_cast<size_t>(G * Mp * CgKK));
  for (int64_t grp = 0; grp < G; ++grp)
    for (int64_t pc = 0; pc < CgKK; pc += kb.len)
      gk::pack_a<false>(Wp + grp * Mp * CgKK + pc * Mp, w + grp * OCg * CgKK, CgKK, 1, 0, OCg,
                        pc, std::min(kb.len, CgKK - pc));
  const std::vector<int64_t> tab = make_table(g, pd);
  const int64_t nblk = (g.N + nb - 1) / nb;
  if (g.sw == 1 && g.sh == 1 && g.OW % kNR != 0 && 4 * pd.Wp <= 5 * g.OW) {
    side_from_image_rows(out, img, Wp, bias, g, nb, serial, relu, tab);
    return;
  }
  run_tasks(nblk, 2 * nb * P * OC * CgKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0), cols = nbk * P;
    std::vector<Seg>& segs = seg_buf();
    float* Bp = buf_b(static_cast<size_t>(kb.len * kNR + kSlack));
    float* Ct = buf_c(static_cast<size_t>(Mp * kNR));
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + kSlack));
    for (int64_t grp = 0; grp < G; ++grp) {
      pad_in(xp, img + (n0 * C + grp * Cg) * HW, nbk, g, pd);
      const float* wg = Wp + grp * Mp * CgKK;
      for (int64_t j0 = 0; j0 < cols; j0 += kNR) {
        const int64_t nr = std::min(kNR, cols - j0);
        make_segments(segs, j0, nr, g, pd);
        for (int64_t pc = 0; pc < CgKK; pc += kb.len) {
          const int64_t kc = std::min(kb.len, CgKK - pc);
          gather(Bp, kNR, nr, xp, tab.data(), pc, kc, segs, g);
          micro_grid(kc, wg + pc * Mp, kMR * kc, Mp, Bp, 0, kNR, Ct, kNR, pc > 0);
        }
        for (const Seg& s : segs) {
          float* dst = out + ((n0 + s.i) * OC + grp * OCg) * P + s.q;
          const float* src = Ct + s.joff;
          for (int64_t o = 0; o < OCg; ++o) {
            const float bv = bias ? bias[grp * OCg + o] : 0.f;
            float* d = dst + o * P;
            const float* c = src + o * kNR;
            if (s.len == kNR) {
              const __m256 vb = _mm256_set1_ps(bv);
              _mm256_storeu_ps(d, _mm256_max_ps(lo, _mm256_add_ps(_mm256_load_ps(c), vb)));
              _mm256_storeu_ps(d + 8, _mm256_max_ps(lo, _mm256_add_ps(_mm256_load_ps(c + 8), vb)));
            } else {
              for (int64_t t = 0; t < s.len; ++t) {
                const float v = c[t] + bv;
                d[t] = v < flo ? flo : v;
              }
            }
          }
        }
      }
    }
  });
}

void conv_packed_image_from_side(float* img, const float* src, const float* w, const float* bias,
                                 const ConvGeom& g, int64_t nb, bool serial) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg();
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, G = g.G;
  const int64_t Mp = round_up(CgKK, kMR);
  const KBlocks kb(OCg, kKC);
  const Padded pd(g);
  // W^T packed once: group grp, k-block at pc -> WTp + grp*Mp*OCg + pc*Mp.
  float* WTp = buf_shared(static_cast<size_t>(G * Mp * OCg));
  for (int64_t grp = 0; grp < G; ++grp)
    for (int64_t pc = 0; pc < OCg; pc += kb.len)
      gk::pack_a<true>(WTp + grp * Mp * OCg + pc * Mp, w + grp * OCg * CgKK, 1, CgKK, 0, CgKK, pc,
                       std::min(kb.len, OCg - pc));
  const std::vector<int64_t> tab = make_table(g, pd);
  const int64_t nblk = (g.N + nb - 1) / nb;
  if (g.sw == 1 && g.sh == 1 && g.OW % kNR != 0 && 2 * pd.Wp <= 3 * g.OW) {
    image_from_side_rows(img, src, WTp, bias, g, nb, serial, tab);
    return;
  }
  // Windows overlap: a block's image is written by one task only, in a fixed order.
  // Tiles of kGridNB panels (32 pixels with AVX-512): one 16-pixel panel at a time ran 12 x 16
  // micro-kernel tiles, one broadcast per FMA. In-process A/B of input gradients: W4's stride-2
  // Conv1d layers 1.01-1.025x, W7's 32 -> 64 layer 1.01x, LeNet's 6 -> 16 layer 1.00x; the
  // scatter (scatter_add), not the GEMM, is most of this pass on such small images.
  constexpr int64_t kTile = kGridNB * kNR;
  run_tasks(nblk, 2 * nb * P * OC * CgKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0), cols = nbk * P;
    std::vector<Seg>& segs = seg_buf();
    float* Bp = buf_b(static_cast<size_t>(kGridNB * kb.len * kNR + kSlack));
    float* Ct = buf_c(static_cast<size_t>(Mp * kTile + kSlack));
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + kSlack));
    for (int64_t grp = 0; grp < G; ++grp) {
      std::fill(xp, xp + nbk * pd.sample, 0.f);
      for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
        const int64_t nr = std::min(kTile, cols - j0);
        for (int64_t pc = 0; pc < OCg; pc += kb.len) {
          const int64_t kc = std::min(kb.len, OCg - pc);
          // Panel q's row k = src channel grp*OCg + pc + k at the panel's pixels.
          for (int64_t q = 0; q * kNR < nr; ++q) {
            const int64_t pj = j0 + q * kNR, pn = std::min(kNR, cols - pj);
            make_segments(segs, pj, pn, g, pd);
            for (int64_t k = 0; k < kc; ++k) {
              float* d = Bp + q * kNR * kc + k * kNR;
              for (const Seg& s : segs) {
                const float* r = src + ((n0 + s.i) * OC + grp * OCg + pc + k) * P + s.q;
                if (s.len == kNR) {
                  _mm256_store_ps(d, _mm256_loadu_ps(r));
                  _mm256_store_ps(d + 8, _mm256_loadu_ps(r + 8));
                } else {
                  copy_zero_run(d + s.joff, r, s.len, 0);
                }
              }
              for (int64_t t = pn; t < kNR; ++t) d[t] = 0.f;
            }
          }
          micro_grid(kc, WTp + grp * Mp * OCg + pc * Mp, kMR * kc, Mp, Bp, kNR * kc, nr, Ct,
                     kTile, pc > 0);
        }
        make_segments(segs, j0, nr, g, pd);
        scatter_add(xp, Ct, kTile, tab.data(), CgKK, segs, g);
      }
      unpad_out(img + (n0 * C + grp * Cg) * HW, xp, nbk, g, pd);
      if (bias) add_channel_bias(img + n0 * C * HW, bias, nbk, C, grp * Cg, Cg, HW);
    }
  });
}

void conv_packed_weight_grad(float* dw, const float* src, const float* img, const ConvGeom& g,
                             int64_t nb, bool serial) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, Cg = g.Cg(), OCg = g.OCg();
  const int64_t CgKK = Cg * g.KK(), C = g.C, OC = g.OC, G = g.G, WS = OC * CgKK;
  const int64_t Mp = round_up(OCg, kMR);
  const int64_t nblk = (g.N + nb - 1) / nb;
  const Padded pd(g);
  // The reduction runs over pixels in column blocks of <= kKC (a function of the shape only);
  // im2col rows are gathered 16 at a time (a panel, <= 16 KiB; kGridNB panels per micro_grid)
  // straight into Bp (gather_t).
  const int64_t kcmax = kKC;
  constexpr int64_t kChunks = 16;
  const int64_t nchunks = std::min(nblk, kChunks);
  float* part = nchunks > 1 ? buf_partial(static_cast<size_t>(nchunks * WS)) : nullptr;
  const std::vector<int64_t> tab = make_table(g, pd);
  const int64_t chunk_cost = 2 * ((nblk + nchunks - 1) / nchunks) * nb * P * OC * CgKK;
  run_tasks(nchunks, chunk_cost, serial, [&](int64_t ch) {
    const int64_t b0 = ch * nblk / nchunks, b1 = (ch + 1) * nblk / nchunks;
    float* acc = part ? part + ch * WS : dw;
    std::vector<Seg>& segs = seg_buf();
    float* Ap = buf_a(static_cast<size_t>(Mp * kcmax + 8));
    float* Bp = buf_b(static_cast<size_t>(kGridNB * kcmax * kNR + kSlack));
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + kSlack));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0), cols = nbk * P;
      const KBlocks kb(cols, kcmax);
      for (int64_t grp = 0; grp < G; ++grp) {
        pad_in(xp, img + (n0 * C + grp * Cg) * HW, nbk, g, pd);
        float* ag = acc + grp * OCg * CgKK;
        for (int64_t c0 = 0; c0 < cols; c0 += kb.len) {
          const int64_t kc = std::min(kb.len, cols - c0);
          const bool load_c = !(part && blk == b0 && c0 == 0);
          make_segments(segs, c0, kc, g, pd);
          // Ap: src rows (channels grp*OCg + o) at these columns, in strips of 6, zero rows past
          // OCg. Eight columns at a time: rows o..o+5 (and two zero rows) transposed in registers,
          // each column stored as 8 floats at its k*6 slot, ascending, so every store overwrites
          // the previous one's two spare lanes (Ap has 8 floats of slack at the end).
          for (int64_t s = 0; s < Mp; s += kMR) {
            float* ad = Ap + s * kc;
            const float* rows[8] = {};  // rows 6 and 7 stay null: the transposes' zero rows
            for (const Seg& sg : segs) {
              for (int64_t r = 0; r < kMR; ++r)
                rows[r] = s + r < OCg ? src + ((n0 + sg.i) * OC + grp * OCg + s + r) * P + sg.q
                                      : nullptr;
              float* a = ad + sg.joff * kMR;
              int64_t t = 0;
              for (; t + 8 <= sg.len; t += 8) {
                __m256 r[8];
                for (int64_t q = 0; q < 8; ++q)
                  r[q] = rows[q] ? _mm256_loadu_ps(rows[q] + t) : _mm256_setzero_ps();
                gk::transpose8x8_store(r, a + t * kMR, kMR);
              }
              for (; t < sg.len; ++t)
                for (int64_t r = 0; r < kMR; ++r) a[t * kMR + r] = rows[r] ? rows[r][t] : 0.f;
            }
          }
          // kGridNB panels at a time: with AVX-512, a 6-row Ap (OCg <= 6, LeNet's first layer)
          // then runs 6 x 32 tiles, twelve FMA chains instead of six.
          for (int64_t j0 = 0; j0 < CgKK; j0 += kGridNB * kNR) {
            const int64_t ncols = std::min(kGridNB * kNR, CgKK - j0);
            for (int64_t q = 0; q * kNR < ncols; ++q)
              gather_t(Bp + q * kNR * kc, xp, tab.data(), j0 + q * kNR,
                       std::min(kNR, ncols - q * kNR), segs, g);
            micro_grid(kc, Ap, kMR * kc, OCg, Bp, kNR * kc, ncols, ag + j0, CgKK, load_c);
          }
        }
      }
    }
  });
  if (part) add_partials(dw, part, nchunks, WS, serial);
}

#if defined(__AVX512F__)
namespace {

// vacc[r][s] (16-lane partial sums, r stride ldv, s stride 16) += the block's output rows of
// src row (oc0 + r) times the padded image row kh below them shifted right by s (s < S): one
// (c, kh) pair, R output channels. Per 16 pixels: R gradient loads and S image loads for R * S
// FMAs, in registers; lanes past OW are masked off on both sides (never read, so a non-finite
// value outside every real window cannot reach dw).
template <int R, int S>
void direct_wgrad_pass(float* vacc, int64_t ldv, const float* src, int64_t src_oc,
                       int64_t src_n, const float* xp, int64_t xp_n, int64_t Wp, int64_t nbk,
                       int64_t OH, int64_t OW) {
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_load_ps(vacc + r * ldv + s * 16);
  const int64_t rem = OW % 16;
  const __mmask16 tail = rem ? static_cast<__mmask16>((1u << rem) - 1u) : __mmask16(0xFFFF);
  for (int64_t i = 0; i < nbk; ++i)
    for (int64_t oh = 0; oh < OH; ++oh) {
      const float* y = src + i * src_n + oh * OW;
      const float* x = xp + i * xp_n + oh * Wp;
      for (int64_t ow = 0; ow < OW; ow += 16) {
        const __mmask16 m = ow + 16 <= OW ? __mmask16(0xFFFF) : tail;
        __m512 yv[R];
        for (int r = 0; r < R; ++r) yv[r] = _mm512_maskz_loadu_ps(m, y + r * src_oc + ow);
        for (int s = 0; s < S; ++s) {
          const __m512 xv = _mm512_maskz_loadu_ps(m, x + ow + s);
          for (int r = 0; r < R; ++r) acc[r][s] = _mm512_fmadd_ps(yv[r], xv, acc[r][s]);
        }
      }
    }
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) _mm512_store_ps(vacc + r * ldv + s * 16, acc[r][s]);
}

template <int S>
void direct_wgrad_pass_r(int R, float* vacc, int64_t ldv, const float* src, int64_t src_oc,
                         int64_t src_n, const float* xp, int64_t xp_n, int64_t Wp, int64_t nbk,
                         int64_t OH, int64_t OW) {
  switch (R) {
    case 4: return direct_wgrad_pass<4, S>(vacc, ldv, src, src_oc, src_n, xp, xp_n, Wp, nbk, OH, OW);
    case 3: return direct_wgrad_pass<3, S>(vacc, ldv, src, src_oc, src_n, xp, xp_n, Wp, nbk, OH, OW);
    case 2: return direct_wgrad_pass<2, S>(vacc, ldv, src, src_oc, src_n, xp, xp_n, Wp, nbk, OH, OW);
    default: return direct_wgrad_pass<1, S>(vacc, ldv, src, src_oc, src_n, xp, xp_n, Wp, nbk, OH, OW);
  }
}

}  // namespace

// out rows oh of R output channels (out: the first one's plane, planes P apart) for the V
// 16-pixel vectors from ow0 (lanes past OW masked off in m): the sum over the C*KK taps in the
// packed GEMM's k order (c, kh, kw), each an FMA of the broadcast weight with the padded image
// row below shifted by kw, from zero; then + bias (+0 without one) and max(lo, .), as the packed
// write-out does. The same operations in the same order as the packed path: the same bits.
template <int R, int V>
void direct_fwd_tile(float* out, int64_t P, int64_t OW, const float* xs, const Padded& pd,
                     const float* w, int64_t CKK, const float* bias, __m512 lo,
                     const ConvGeom& g, int64_t oh, int64_t ow0, const __mmask16* m) {
  __m512 acc[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  const int64_t KW = g.KW, KK = g.KK();
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const float* row = xs + c * pd.plane + (oh + kh) * pd.Wp + ow0;
      const float* wk = w + c * KK + kh * KW;
      for (int64_t kw = 0; kw < KW; ++kw) {
        __m512 xv[V];
#pragma GCC unroll 2
        for (int v = 0; v < V; ++v) xv[v] = _mm512_maskz_loadu_ps(m[v], row + kw + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < R; ++r) {
          const __m512 wv = _mm512_set1_ps(wk[r * CKK + kw]);
#pragma GCC unroll 2
          for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
        }
      }
    }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.f);
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      // max(lo, .) with NaN passing (vmaxps returns its second operand then), written as the
      // all-lanes masked form: GCC 12 warns about _mm512_max_ps's undefined source at -O2.
      const __m512 t = _mm512_add_ps(acc[r][v], bv);
      _mm512_mask_storeu_ps(out + r * P + oh * OW + ow0 + 16 * v, m[v],
                            _mm512_mask_max_ps(t, __mmask16(0xFFFF), lo, t));
    }
  }
}

template <int V>
void direct_fwd_tile_r(int R, float* out, int64_t P, int64_t OW, const float* xs,
                       const Padded& pd, const float* w, int64_t CKK, const float* bias,
                       __m512 lo, const ConvGeom& g, int64_t oh, int64_t ow0,
                       const __mmask16* m) {
  switch (R) {
#define EMBER_DIRECT_R(RR)                                                                 \
  case RR:                                                                                 \
    return direct_fwd_tile<RR, V>(out, P, OW, xs, pd, w, CKK, bias, lo, g, oh, ow0, m);
    EMBER_DIRECT_R(6) EMBER_DIRECT_R(5) EMBER_DIRECT_R(4) EMBER_DIRECT_R(3) EMBER_DIRECT_R(2)
#undef EMBER_DIRECT_R
    default: return direct_fwd_tile<1, V>(out, P, OW, xs, pd, w, CKK, bias, lo, g, oh, ow0, m);
  }
}

// Output channels along the lanes (9 to 16 of them: LeNet's 6 -> 16 layer, 150 taps): acc[r][p]
// holds the 16 channels of pixel ow0 + p of output row oh + r, each tap one FMA of the tap's
// 16 weights (Wt, tap-major, zero past OC) with the broadcast image value. k-blocks as the
// packed path's (kb): each block's sum from zero, added to the running sum kept in T
// ([r * NP + p][16]); T ends with the sums. The same operations in the same order as the packed
// GEMM. Pixels past OW are computed from the row's slack and never stored. offs[k]: where tap k
// (c, kh, kw) reads in a padded sample, relative to the output pixel.
template <int RW, int NP>  // RW: 1 or 2
void direct_fwd_oc_tile(float* T, const float* xs, const Padded& pd, const float* Wt,
                        const int64_t* offs, int64_t CKK, const KBlocks& kb, int64_t oh,
                        int64_t ow0) {
  const float* x0 = xs + oh * pd.Wp + ow0;
  for (int64_t pc = 0; pc < CKK; pc += kb.len) {
    const int64_t pe = std::min(CKK, pc + kb.len);
    __m512 acc[RW][NP];
#pragma GCC unroll 2
    for (int r = 0; r < RW; ++r)
#pragma GCC unroll 12
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t k = pc; k < pe; ++k) {
      const float* row0 = x0 + offs[k];
      const float* row1 = row0 + (RW > 1 ? pd.Wp : 0);
      asm("" : "+r"(row1));  // its own base register, so that the 12 loads use displacements
      const __m512 wv = _mm512_load_ps(Wt + k * 16);
#pragma GCC unroll 12
      for (int p = 0; p < NP; ++p)
        acc[0][p] = _mm512_fmadd_ps(_mm512_set1_ps(row0[p]), wv, acc[0][p]);
      if constexpr (RW > 1) {
#pragma GCC unroll 12
        for (int p = 0; p < NP; ++p)
          acc[RW - 1][p] = _mm512_fmadd_ps(_mm512_set1_ps(row1[p]), wv, acc[RW - 1][p]);
      }
    }
#pragma GCC unroll 2
    for (int r = 0; r < RW; ++r)
#pragma GCC unroll 12
      for (int p = 0; p < NP; ++p) {
        float* t = T + (r * NP + p) * 16;
        _mm512_store_ps(t, pc == 0 ? acc[r][p] : _mm512_add_ps(_mm512_load_ps(t), acc[r][p]));
      }
  }
}

// acc[h][kw] (the 16-channel sums of taps (c, kh0 + h, kw), [(h * KW + kw)][16] in acc_io) +=
// over every pixel of the nbk samples, in order, the pixel's 16-channel gradient vector (dyT,
// pixel-major, zero past OC) times the broadcast padded image value under the tap: NKH * KW
// FMAs per gradient load, the sums in registers through the pass.
template <int NKH, int KW>
void direct_wgrad_oc_pass(float* acc_io, const float* dyT, const float* xp, const Padded& pd,
                          int64_t nbk, int64_t c, int64_t kh0, int64_t OH, int64_t OW) {
  __m512 acc[NKH][KW];
#pragma GCC unroll 7
  for (int h = 0; h < NKH; ++h)
#pragma GCC unroll 7
    for (int kw = 0; kw < KW; ++kw) acc[h][kw] = _mm512_load_ps(acc_io + (h * KW + kw) * 16);
  for (int64_t i = 0; i < nbk; ++i)
    for (int64_t oh = 0; oh < OH; ++oh) {
      const float* rows[NKH];
#pragma GCC unroll 7
      for (int h = 0; h < NKH; ++h) {
        rows[h] = xp + i * pd.sample + c * pd.plane + (oh + kh0 + h) * pd.Wp;
        asm("" : "+r"(rows[h]));  // a base register per row: the taps are displacements
      }
      const float* d = dyT + (i * OH + oh) * OW * 16;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const __m512 dv = _mm512_load_ps(d + ow * 16);
#pragma GCC unroll 7
        for (int h = 0; h < NKH; ++h)
#pragma GCC unroll 7
          for (int kw = 0; kw < KW; ++kw)
            acc[h][kw] = _mm512_fmadd_ps(_mm512_set1_ps(rows[h][ow + kw]), dv, acc[h][kw]);
      }
    }
#pragma GCC unroll 7
  for (int h = 0; h < NKH; ++h)
#pragma GCC unroll 7
    for (int kw = 0; kw < KW; ++kw) _mm512_store_ps(acc_io + (h * KW + kw) * 16, acc[h][kw]);
}

// The passes of one channel c: groups of kernel rows whose sums fit in registers (<= 28).
template <int KW>
void direct_wgrad_oc_channel(float* acc_c, const float* dyT, const float* xp, const Padded& pd,
                             int64_t nbk, int64_t c, int64_t KH, int64_t OH, int64_t OW) {
  constexpr int kRows = 28 / KW;
  int64_t kh = 0;
  for (; kh + kRows <= KH; kh += kRows)
    direct_wgrad_oc_pass<kRows, KW>(acc_c + kh * KW * 16, dyT, xp, pd, nbk, c, kh, OH, OW);
  for (; kh < KH; ++kh)
    direct_wgrad_oc_pass<1, KW>(acc_c + kh * KW * 16, dyT, xp, pd, nbk, c, kh, OH, OW);
}

bool conv_direct_wgrad_applies(const ConvGeom& g) {
  // Few input taps (a first layer on one-channel images, LeNet's 1 -> 6 at 5x5): the GEMM form's
  // transposed im2col gather then costs more than the FMAs. LeNet's 6 -> 16 layer (150 taps)
  // measured 2x slower this way than on the packed path: only 10 pixels per row and 120 passes
  // over each block, so it stays there.
  return g.G == 1 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.KW <= kDirectMaxKW &&
         g.OC <= 16 && g.C * g.KK() <= 32;
}

// dw (OC, C*KK) += sum over samples of src (OC, P) @ im2col(img)^T, directly: per (c, kh) and
// group of <= 4 output channels, the KW shifted products of output rows with padded image rows
// accumulate in registers (direct_wgrad_pass) into 16-lane partial sums that live through the
// chunk; each is reduced across lanes once, pairwise, at the chunk's end. Chunks of sample blocks
// are fixed by the shape and summed in order: the same bits at any thread count.
void conv_direct_weight_grad(float* dw, const float* src, const float* img, const ConvGeom& g,
                             bool serial) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, C = g.C, OC = g.OC, KK = g.KK();
  const int64_t CKK = C * KK, WS = OC * CKK;
  const Padded pd(g);
  // samples per block: the block's padded images and gradient rows (~32 KiB) stay in L1/L2
  // across the C * KH * ceil(OC / 4) passes over them
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(g.N, 8192 / (pd.sample + OC * P)));
  direct_wgrad_chunks(dw, g.N, nb, WS, 2 * nb * P * OC * CKK, serial, [&](int64_t b0, int64_t b1,
                                                                          auto&& emit) {
    float* vacc = buf_c(static_cast<size_t>(16 * WS));
    std::fill(vacc, vacc + 16 * WS, 0.f);
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0);
      pad_in(xp, img + n0 * C * HW, nbk, g, pd);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t oc0 = 0; oc0 < OC; oc0 += 4) {
            const int R = static_cast<int>(std::min<int64_t>(4, OC - oc0));
            float* va = vacc + (oc0 * CKK + c * KK + kh * g.KW) * 16;
            const float* s0 = src + (n0 * OC + oc0) * P;
            const float* x0 = xp + c * pd.plane + kh * pd.Wp;
            switch (g.KW) {
#define EMBER_DIRECT_KW(S)                                                                      \
  case S:                                                                                        \
    direct_wgrad_pass_r<S>(R, va, 16 * CKK, s0, P, OC * P, x0, pd.sample, pd.Wp, nbk, g.OH, g.OW); \
    break;
              EMBER_DIRECT_KW(1) EMBER_DIRECT_KW(2) EMBER_DIRECT_KW(3) EMBER_DIRECT_KW(4)
              EMBER_DIRECT_KW(5) EMBER_DIRECT_KW(6) EMBER_DIRECT_KW(7)
#undef EMBER_DIRECT_KW
            }
          }
    }
    // lanes summed pairwise, halves first
    for (int64_t e = 0; e < WS; ++e) {
      float* t = vacc + e * 16;
      for (int w = 8; w > 0; w /= 2)
        for (int i = 0; i < w; ++i) t[i] += t[i + w];
      emit(e, t[0]);
    }
  });
}

bool conv_direct_forward_applies(const ConvGeom& g) {
  // LeNet's first layer (1 -> 6 at 5x5, 25 taps): its packed forward spends most of its time
  // gathering 25 shifted copies of each pixel into panels for 6-row tiles.
  return g.G == 1 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.OC <= 16 &&
         g.C * g.KK() <= 32;
}

// out (N, OC, OH, OW) = conv(img) + bias, relu'd when asked, directly from padded sample blocks:
// per output row, 32 pixels and up to 6 output channels at a time in registers
// (direct_fwd_tile). Blocks of samples go to threads; every output's arithmetic is fixed.
void conv_direct_forward(float* out, const float* img, const float* w, const float* bias,
                         const ConvGeom& g, bool serial, bool relu) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, C = g.C, OC = g.OC, OW = g.OW;
  const int64_t CKK = C * g.KK();
  const Padded pd(g);
  const __m512 lo = relu ? _mm512_setzero_ps() : _mm512_set1_ps(-INFINITY);
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(g.N, 8192 / pd.sample));
  const int64_t nblk = (g.N + nb - 1) / nb;
  run_tasks(nblk, 2 * nb * P * OC * CKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0);
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample));
    pad_in(xp, img + n0 * C * HW, nbk, g, pd);
    for (int64_t i = 0; i < nbk; ++i) {
      const float* xs = xp + i * pd.sample;
      float* os = out + (n0 + i) * OC * P;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow0 = 0; ow0 < OW; ow0 += 32) {
          const int64_t left = OW - ow0;
          const __mmask16 m[2] = {
              left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u),
              left >= 32 ? __mmask16(0xFFFF)
                         : left > 16 ? __mmask16((1u << (left - 16)) - 1u) : __mmask16(0)};
          for (int64_t oc0 = 0; oc0 < OC; oc0 += 6) {
            const int R = static_cast<int>(std::min<int64_t>(6, OC - oc0));
            const float* b = bias ? bias + oc0 : nullptr;
            if (left > 16)
              direct_fwd_tile_r<2>(R, os + oc0 * P, P, OW, xs, pd, w + oc0 * CKK, CKK, b, lo, g,
                                   oh, ow0, m);
            else
              direct_fwd_tile_r<1>(R, os + oc0 * P, P, OW, xs, pd, w + oc0 * CKK, CKK, b, lo, g,
                                   oh, ow0, m);
          }
        }
    }
  });
}

bool conv_direct_oc_forward_applies(const ConvGeom& g) {
  // LeNet's 6 -> 16 layer at 5x5 on 14x14: 150 taps, 10-pixel rows. Its packed forward (pixel-
  // major) gathers 150 shifted copies of each pixel into panels.
  return g.G == 1 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.OC > 8 &&
         g.OC <= 16 && g.C * g.KK() > 32 && g.OW <= 32;
}

// out (N, OC, OH, OW) with the output channels along the lanes (direct_fwd_oc_tile), two output
// rows of up to 12 pixels at a time; bias and max(lo, .) on the channel vectors, then each
// channel's pixels copied out. Blocks of samples go to threads.
void conv_direct_oc_forward(float* out, const float* img, const float* w, const float* bias,
                            const ConvGeom& g, bool serial, bool relu) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, C = g.C, OC = g.OC, OW = g.OW, OH = g.OH;
  const int64_t CKK = C * g.KK();
  const KBlocks kb(CKK, kKC);
  const Padded pd(g);
  const __m512 lo = relu ? _mm512_setzero_ps() : _mm512_set1_ps(-INFINITY);
  // weights tap-major, 16 channels per tap (zero past OC); bias likewise
  float* Wt = buf_shared(static_cast<size_t>(CKK * 16 + 16));
  std::fill(Wt, Wt + CKK * 16 + 16, 0.f);
  for (int64_t oc = 0; oc < OC; ++oc) {
    for (int64_t k = 0; k < CKK; ++k) Wt[k * 16 + oc] = w[oc * CKK + k];
    if (bias) Wt[CKK * 16 + oc] = bias[oc];
  }
  const __m512 bv = _mm512_load_ps(Wt + CKK * 16);  // +0 without a bias, as the packed path
  std::vector<int64_t> offs(static_cast<size_t>(CKK));
  for (int64_t k = 0; k < CKK; ++k) {
    const int64_t c = k / g.KK(), kh = k % g.KK() / g.KW, kw = k % g.KW;
    offs[static_cast<size_t>(k)] = c * pd.plane + kh * pd.Wp + kw;
  }
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(g.N, 8192 / pd.sample));
  const int64_t nblk = (g.N + nb - 1) / nb;
  run_tasks(nblk, 2 * nb * P * OC * CKK, serial, [&](int64_t blk) {
    const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0);
    // slack: a row chunk rounded up to 4/8/12 pixels reads up to 3 floats past a row
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample + kSlack));
    float* T = buf_c(static_cast<size_t>(2 * 12 * 16));
    pad_in(xp, img + n0 * C * HW, nbk, g, pd);
    for (int64_t i = 0; i < nbk; ++i) {
      const float* xs = xp + i * pd.sample;
      float* os = out + (n0 + i) * OC * P;
      for (int64_t oh = 0; oh < OH; oh += 2) {
        const int rw = OH - oh >= 2 ? 2 : 1;
        for (int64_t ow0 = 0; ow0 < OW; ow0 += 12) {
          const int64_t np = std::min<int64_t>(12, OW - ow0);
          const int npx = np > 8 ? 12 : np > 4 ? 8 : 4;
#define EMBER_OC_TILE(RW, NP) \
  direct_fwd_oc_tile<RW, NP>(T, xs, pd, Wt, offs.data(), CKK, kb, oh, ow0)
          if (rw == 2) {
            if (npx == 12) EMBER_OC_TILE(2, 12);
            else if (npx == 8) EMBER_OC_TILE(2, 8);
            else EMBER_OC_TILE(2, 4);
          } else {
            if (npx == 12) EMBER_OC_TILE(1, 12);
            else if (npx == 8) EMBER_OC_TILE(1, 8);
            else EMBER_OC_TILE(1, 4);
          }
#undef EMBER_OC_TILE
          for (int r = 0; r < rw; ++r) {
            for (int64_t p = 0; p < np; ++p) {
              float* t = T + (r * npx + p) * 16;
              const __m512 v = _mm512_add_ps(_mm512_load_ps(t), bv);
              _mm512_store_ps(t, _mm512_mask_max_ps(v, __mmask16(0xFFFF), lo, v));
            }
            float* orow = os + (oh + r) * OW + ow0;
            for (int64_t oc = 0; oc < OC; ++oc)
              for (int64_t p = 0; p < np; ++p) orow[oc * P + p] = T[(r * npx + p) * 16 + oc];
          }
        }
      }
    }
  });
}

bool conv_direct_oc_wgrad_applies(const ConvGeom& g) {
  return conv_direct_oc_forward_applies(g) && g.KW <= kDirectMaxKW;
}

// dw (OC, C*KK) += sum over samples of dy (OC, P) times the padded image under each tap, with
// the output channels along the lanes: per sample block, the gradient turned pixel-major
// (dyT[n][p][16]) and each channel's taps in register passes (direct_wgrad_oc_pass) over all
// the block's pixels into 16-lane sums that live through the chunk. Chunks of sample blocks are
// fixed by the shape and their partials added in order: the same bits at any thread count.
void conv_direct_oc_weight_grad(float* dw, const float* src, const float* img,
                                const ConvGeom& g, bool serial) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W, C = g.C, OC = g.OC, KK = g.KK();
  const int64_t CKK = C * KK, WS = OC * CKK;
  const Padded pd(g);
  // samples per block: their pixel-major gradient and padded images (~48 KiB) stay in L1/L2
  // across the block's C * ceil(KH / rows per pass) passes
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(g.N, 12288 / (pd.sample + 16 * P)));
  direct_wgrad_chunks(dw, g.N, nb, WS, 2 * nb * P * OC * CKK, serial, [&](int64_t b0, int64_t b1,
                                                                          auto&& emit) {
    float* acc = buf_c(static_cast<size_t>(16 * CKK));
    std::fill(acc, acc + 16 * CKK, 0.f);
    float* xp = buf_pad(static_cast<size_t>(nb * pd.sample));
    float* dyT = buf_b(static_cast<size_t>(nb * P * 16));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * nb, nbk = std::min(nb, g.N - n0);
      pad_in(xp, img + n0 * C * HW, nbk, g, pd);
      if (OC < 16) std::fill(dyT, dyT + nbk * P * 16, 0.f);  // the lanes past OC
      for (int64_t i = 0; i < nbk; ++i)
        for (int64_t oc = 0; oc < OC; ++oc) {
          const float* s = src + ((n0 + i) * OC + oc) * P;
          float* d = dyT + i * P * 16 + oc;
          for (int64_t q = 0; q < P; ++q) d[q * 16] = s[q];
        }
      for (int64_t c = 0; c < C; ++c) {
        float* ac = acc + c * KK * 16;
        switch (g.KW) {
#define EMBER_OC_KW(S)                                                                 \
  case S:                                                                              \
    direct_wgrad_oc_channel<S>(ac, dyT, xp, pd, nbk, c, g.KH, g.OH, g.OW);            \
    break;
          EMBER_OC_KW(1) EMBER_OC_KW(2) EMBER_OC_KW(3) EMBER_OC_KW(4) EMBER_OC_KW(5)
          EMBER_OC_KW(6) EMBER_OC_KW(7)
#undef EMBER_OC_KW
        }
      }
    }
    // channel-major out of the tap-major sums
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t k = 0; k < CKK; ++k) emit(oc * CKK + k, acc[k * 16 + oc]);
  });
}

#endif  // __AVX512F__

#else  // no AVX2/FMA: ops/conv.cpp uses im2col + GEMM

bool conv_packed_available() { return false; }
void conv_packed_side_from_image(float*, const float*, const float*, const float*,
                                 const ConvGeom&, int64_t, bool, bool) {}
void conv_packed_image_from_side(float*, const float*, const float*, const float*,
                                 const ConvGeom&, int64_t, bool) {}
void conv_packed_weight_grad(float*, const float*, const float*, const ConvGeom&, int64_t, bool) {}

#endif

#if !(defined(EMBER_GEMM_KERNEL) && defined(__AVX512F__))
// The direct paths are AVX-512 only; elsewhere the packed (or im2col) paths run.
bool conv_direct_oc_wgrad_applies(const ConvGeom&) { return false; }
void conv_direct_oc_weight_grad(float*, const float*, const float*, const ConvGeom&, bool) {}
bool conv_direct_oc_forward_applies(const ConvGeom&) { return false; }
void conv_direct_oc_forward(float*, const float*, const float*, const float*, const ConvGeom&,
                            bool, bool) {}
bool conv_direct_forward_applies(const ConvGeom&) { return false; }
void conv_direct_forward(float*, const float*, const float*, const float*, const ConvGeom&, bool,
                         bool) {}
bool conv_direct_wgrad_applies(const ConvGeom&) { return false; }
void conv_direct_weight_grad(float*, const float*, const float*, const ConvGeom&, bool) {}
#endif

}  // namespace ember
