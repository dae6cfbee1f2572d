#include "ops/rnn.h"

#include <Eigen/Core>
#include <algorithm>
#include <memory>
#include <vector>

#include "core/gemm.h"
#include "core/parallel.h"

namespace ember {

namespace {

template <class T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using CVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Rough flops per batch row of a gate pass, per gate column: only weighed against the
// parallel-work threshold (a transcendental costs ~10-20 flops vectorized).
constexpr int64_t kGateCost = 4;

// Deterministic column sums: out[c] += sum_r a[r, c], each column reduced in row order by one
// thread.
template <class T>
void colsum_acc(T* out, const T* a, int64_t rows, int64_t cols) {
  parallel_for(cols, rows, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = a + r * cols;
      for (int64_t c = c0; c < c1; ++c) out[c] += row[c];
    }
  });
}

// Slot of hs/cs holding the state before (prev) and after (out) time t.
inline int64_t prev_slot(const RnnSizes& s, int64_t t) { return s.reverse ? t + 1 : t; }
inline int64_t out_slot(const RnnSizes& s, int64_t t) { return s.reverse ? t : t + 1; }

}  // namespace

template <class T>
void rnn_forward(T* hs, T* cs, T* gates, T* ghn, const T* x, const T* h0, const T* c0,
                 const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const RnnSizes& s) {
  const RnnMode mode = s.mode;
  const int64_t S = s.S, N = s.N, I = s.I, H = s.H;
  const int64_t G = rnn_gates(mode) * H, NH = N * H, NG = N * G;
  const bool lstm = mode == RnnMode::Lstm, gru = mode == RnnMode::Gru;

  // Initial states into their slots.
  const int64_t s0 = s.reverse ? S : 0;
  if (h0) std::copy(h0, h0 + NH, hs + s0 * NH);
  else std::fill(hs + s0 * NH, hs + (s0 + 1) * NH, T(0));
  if (lstm) {
    if (c0) std::copy(c0, c0 + NH, cs + s0 * NH);
    else std::fill(cs + s0 * NH, cs + (s0 + 1) * NH, T(0));
  }
  if (S == 0 || N == 0) return;

  // One bias vector added in the gate pass: b_ih + b_hh, except GRU's n gate, whose b_hn sits
  // inside r * (W_hn h + b_hn) and is added to the recurrent part instead.
  std::vector<T> bias(G, T(0));
  for (int64_t g = 0; g < G; ++g) {
    if (b_ih) bias[g] += b_ih[g];
    if (b_hh && !(gru && g >= 2 * H)) bias[g] += b_hh[g];
  }
  const T* b_hn = (gru && b_hh) ? b_hh + 2 * H : nullptr;

  // Input projection of all steps at once: gates (S*N, G) = x (S*N, I) w_ih^T. All GEMMs here
  // go through core/gemm (float: the packed AVX2 kernel, which replaced Eigen blocks here: W6's
  // LSTM step 19.6 -> 15.4 ms, the GRU's 14.5 -> 11.4 ms at 1 thread).
  gemm<T>(false, true, S * N, G, I, x, w_ih, gates, false);

  std::vector<T> hproj(gru ? NG : 0), ghn_local(gru && !ghn ? NH : 0);
  const CVec<T> bv(bias.data(), G);
  // w_hh^T packed once for the S recurrent products (they differ only in h).
  const PackedB<T> whh(true, H, G, w_hh, N);

  for (int64_t step = 0; step < S; ++step) {
    const int64_t t = s.reverse ? S - 1 - step : step;
    const T* hp = hs + prev_slot(s, t) * NH;
    T* ho = hs + out_slot(s, t) * NH;
    T* a = gates + t * NG;
    const bool h_is_zero = step == 0 && !h0;
    // Recurrent GEMM: (N, H) x (H, G), accumulated onto the input projection (GRU: kept apart,
    // since its n gate multiplies the recurrent part by r).
    if (gru) {
      if (h_is_zero) std::fill(hproj.begin(), hproj.end(), T(0));
      else whh.multiply(N, hp, hproj.data(), false);
    } else if (!h_is_zero) {
      whh.multiply(N, hp, a, true);
    }
    T* ghn_t = gru ? (ghn ? ghn + t * NH : ghn_local.data()) : nullptr;
    const T* cp_all = lstm ? cs + prev_slot(s, t) * NH : nullptr;
    T* co_all = lstm ? cs + out_slot(s, t) * NH : nullptr;

    // Fused gate pass, one batch row at a time.
    parallel_for(N, G * kGateCost, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        T* ar = a + n * G;
        Vec<T> av(ar, G);
        Vec<T> hv(ho + n * H, H);
        if (mode == RnnMode::Tanh) {
          hv = (av + bv).tanh();
        } else if (mode == RnnMode::Relu) {
          hv = (av + bv).max(T(0));
        } else if (lstm) {
          av += bv;
          Vec<T> i(ar, H), f(ar + H, H), g(ar + 2 * H, H), o(ar + 3 * H, H);
          i = i.logistic();
          f = f.logistic();
          g = g.tanh();
          o = o.logistic();
          Vec<T> c(co_all + n * H, H);
          c = f * CVec<T>(cp_all + n * H, H) + i * g;
          hv = o * c.tanh();
        } else {  // GRU
          const T* hr = hproj.data() + n * G;
          Vec<T> r(ar, H), z(ar + H, H), nn(ar + 2 * H, H);
          Vec<T> hn(ghn_t + n * H, H);
          r = (r + CVec<T>(hr, H) + bv.segment(0, H)).logistic();
          z = (z + CVec<T>(hr + H, H) + bv.segment(H, H)).logistic();
          if (b_hn) hn = CVec<T>(hr + 2 * H, H) + CVec<T>(b_hn, H);
          else hn = CVec<T>(hr + 2 * H, H);
          nn = (nn + bv.segment(2 * H, H) + r * hn).tanh();
          hv = nn + z * (CVec<T>(hp + n * H, H) - nn);
        }
      }
    });
  }
}

template <class T>
void rnn_backward(T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                  const T* dhn, const T* dcn, const T* x, const T* hs, const T* cs, const T* gates,
                  const T* ghn, const T* w_ih, const T* w_hh, const RnnSizes& s) {
  const RnnMode mode = s.mode;
  const int64_t S = s.S, N = s.N, I = s.I, H = s.H;
  const int64_t G = rnn_gates(mode) * H, NH = N * H, NG = N * G;
  const bool lstm = mode == RnnMode::Lstm, gru = mode == RnnMode::Gru;

  // Running gradients of the hidden (and cell) state flowing back through time.
  std::vector<T> dh(NH, T(0)), dc(lstm ? NH : 0, T(0));
  // w_hh (G x H) packed once for the per-step products dh_prev = dgh_t w_hh.
  const PackedB<T> whh(false, G, H, w_hh, N);
  if (dhn) std::copy(dhn, dhn + NH, dh.begin());  // h_n is the state after the last step
  if (lstm && dcn) std::copy(dcn, dcn + NH, dc.begin());
  // Gradients of the gate pre-activations, time order. GRU's input side (dgx) and recurrent
  // side (dgh) differ in the n gate (the recurrent part is scaled by r); the others share one.
  // (Uninitialized: every element is written by the gate passes before it is read.)
  std::unique_ptr<T[]> dgx_buf(new T[S * NG]), dgh_buf(gru ? new T[S * NG] : nullptr);
  T* dgx = dgx_buf.get();
  T* dgh = gru ? dgh_buf.get() : dgx;

  for (int64_t k = S - 1; k >= 0; --k) {
    const int64_t t = s.reverse ? S - 1 - k : k;  // the k-th step the forward pass ran
    const T* hp_all = hs + prev_slot(s, t) * NH;
    const T* ho_all = hs + out_slot(s, t) * NH;
    const T* dy_t = dy ? dy + t * NH : nullptr;
    const T* g_t = gates ? gates + t * NG : nullptr;
    T* dgx_t = dgx + t * NG;
    T* dgh_t = dgh + t * NG;

    parallel_for(N, G * kGateCost, [&](int64_t n0, int64_t n1) {
      std::vector<T> scratch(2 * H);
      Vec<T> dhv(scratch.data(), H), tmp(scratch.data() + H, H);
      for (int64_t n = n0; n < n1; ++n) {
        if (dy_t) dhv = CVec<T>(dh.data() + n * H, H) + CVec<T>(dy_t + n * H, H);
        else dhv = CVec<T>(dh.data() + n * H, H);
        const T* gr = g_t + n * G;
        T* dgr = dgx_t + n * G;
        if (mode == RnnMode::Tanh) {
          const CVec<T> h(ho_all + n * H, H);
          Vec<T>(dgr, H) = dhv * (T(1) - h.square());
        } else if (mode == RnnMode::Relu) {
          const CVec<T> h(ho_all + n * H, H);
          Vec<T>(dgr, H) = (h > T(0)).select(dhv, T(0));
        } else if (lstm) {
          const CVec<T> i(gr, H), f(gr + H, H), g(gr + 2 * H, H), o(gr + 3 * H, H);
          const CVec<T> c(cs + out_slot(s, t) * NH + n * H, H);
          const CVec<T> cp(cs + prev_slot(s, t) * NH + n * H, H);
          Vec<T> dcv(dc.data() + n * H, H);
          tmp = c.tanh();
          dcv += dhv * o * (T(1) - tmp.square());
          Vec<T>(dgr, H) = dcv * g * i * (T(1) - i);
          Vec<T>(dgr + H, H) = dcv * cp * f * (T(1) - f);
          Vec<T>(dgr + 2 * H, H) = dcv * i * (T(1) - g.square());
          Vec<T>(dgr + 3 * H, H) = dhv * tmp * o * (T(1) - o);
          dcv *= f;
        } else {  // GRU
          const CVec<T> r(gr, H), z(gr + H, H), nn(gr + 2 * H, H);
          const CVec<T> hn(ghn + t * NH + n * H, H);
          const CVec<T> hp(hp_all + n * H, H);
          Vec<T> dr(dgr, H), dz(dgr + H, H), dn(dgr + 2 * H, H);
          T* dghr = dgh_t + n * G;
          dz = dhv * (hp - nn) * z * (T(1) - z);
          dn = dhv * (T(1) - z) * (T(1) - nn.square());
          dr = dn * hn * r * (T(1) - r);
          Vec<T>(dghr, 2 * H) = CVec<T>(dgr, 2 * H);
          Vec<T>(dghr + 2 * H, H) = dn * r;
          Vec<T>(dh.data() + n * H, H) = dhv * z;  // the direct path h_prev -> h
        }
      }
    });
    // dh_prev (N, H) = dgh_t (N, G) w_hh (G, H)   (GRU: added to its direct path); after the
    // first step (k == 0) that is dh0, which may not be wanted.
    if (k > 0 || dh0) whh.multiply(N, dgh_t, dh.data(), gru);
  }

  if (dh0) std::copy(dh.begin(), dh.end(), dh0);
  if (lstm && dc0) std::copy(dc.begin(), dc.end(), dc0);
  if (S == 0 || N == 0) {
    if (dx) std::fill(dx, dx + S * N * I, T(0));
    return;
  }
  const T* hprev = hs + (s.reverse ? NH : 0);  // (S*N, H) block of the states before each time
  // With h0 = 0 the first step's rows add nothing to dW_hh: leave them out of the GEMM.
  const int64_t skip = (s.h0_zero && !s.reverse) ? 1 : 0, rows_hh = (s.h0_zero ? S - 1 : S) * N;
  if (dx) gemm<T>(false, false, S * N, I, G, dgx, w_ih, dx, false);     // (SN,G)(G,I)
  if (dw_ih) gemm<T>(true, false, G, I, S * N, dgx, x, dw_ih, true);    // (G,SN)(SN,I)
  if (dw_hh)
    gemm<T>(true, false, G, H, rows_hh, dgh + skip * NG, hprev + skip * NH, dw_hh,
                                true);  // (G,SN)(SN,H)
  if (gru) {
    if (db_ih) colsum_acc(db_ih, dgx, S * N, G);
    if (db_hh) colsum_acc(db_hh, dgh, S * N, G);
  } else if (db_ih || db_hh) {
    // Both biases get the same gradient: sum once, add to each.
    std::vector<T> sum(G, T(0));
    colsum_acc(sum.data(), dgx, S * N, G);
    for (T* db : {db_ih, db_hh})
      if (db)
        for (int64_t g = 0; g < G; ++g) db[g] += sum[g];
  }
}

#define EMBER_INSTANTIATE(T)                                                                   \
  template void rnn_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,         \
                               const T*, const T*, const T*, const RnnSizes&);                 \
  template void rnn_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,      \
                                const T*, const T*, const T*, const T*, const T*, const T*,    \
                                const T*, const RnnSizes&);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
