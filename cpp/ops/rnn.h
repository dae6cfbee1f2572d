// ember/ops/rnn: whole-sequence recurrent layers (one layer, one direction per call).
//
// Dimension legend: S = sequence length (steps), N = batch, I = input size, H = hidden size,
// G = gates * H (gates: 1 for RNN, 4 for LSTM in torch's order i,f,g,o, 3 for GRU in torch's
// order r,z,n). Data is time-major: x (S, N, I). Weights are torch's: w_ih (G, I), w_hh (G, H),
// b_ih (G), b_hh (G).
//
// State arrays hold S+1 time slots in *time* order: hs[t] for t in [0, S] (same for cs).
//   forward direction: the state before time t is hs[t], the state after it is hs[t+1];
//                      so hs[0] = h0, output y = hs[1:], h_n = hs[S].
//   reverse direction: time runs S-1 .. 0; the state before time t is hs[t+1], after it hs[t];
//                      so hs[S] = h0, output y = hs[:S], h_n = hs[0].
// Either way the S "previous states" used at times 0..S-1 are one contiguous (S*N, H) block,
// which lets the backward pass form dW_hh with one GEMM over all steps.
//
// Forward work: one GEMM (S*N, I) x (I, G) for the input projection of all steps, then per step
// one recurrent GEMM (N, H) x (H, G) and one fused pass of gate nonlinearities.
// Backward work: per step one fused gate-gradient pass and one GEMM (N, G) x (G, H); then
// dx, dW_ih, dW_hh as one GEMM each over all steps, and deterministic column sums for biases.
// Parameter gradients accumulate (+=); input gradients (dx, dh0, dc0) overwrite (=).
// Results are bitwise identical at any thread count.
#pragma once

#include <cstdint>

namespace ember {

enum class RnnMode : int { Tanh = 0, Relu = 1, Lstm = 2, Gru = 3 };

inline int64_t rnn_gates(RnnMode m) {
  return m == RnnMode::Lstm ? 4 : m == RnnMode::Gru ? 3 : 1;
}

struct RnnSizes {
  RnnMode mode;
  int64_t S, N, I, H;
  bool reverse;
  bool h0_zero = false;  // backward: the initial state was zero (lets dW_hh skip its rows)
};

// hs (S+1, N, H)    hidden states (see above), written
// cs (S+1, N, H)    LSTM cell states, written (null for other modes)
// gates (S, N, G)   workspace; on return holds the gate activations backward needs
//                   (LSTM: i,f,g,o; GRU: r,z,n; RNN: unused afterwards)
// ghn (S, N, H)     GRU only: W_hn h + b_hn per step (saved for backward); may be null when no
//                   backward will follow
// h0, c0 (N, H)     initial states; null means zeros
// b_ih, b_hh (G)    may be null (bias=False)
template <class T>
void rnn_forward(T* hs, T* cs, T* gates, T* ghn, const T* x, const T* h0, const T* c0,
                 const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const RnnSizes& s);

// dy (S, N, H)      gradient of the outputs y (the hs slots after each step); null means zero
// dhn (N, H)        gradient of the final hidden state (added to dy's last step); null: zero
// dcn (N, H)        LSTM: gradient of the final cell state; null means zero
// dx (S, N, I)      overwritten; skipped when null
// dh0, dc0 (N, H)   overwritten (dc0: LSTM only); each skipped when null
// dw_ih, dw_hh, db_ih, db_hh   accumulated (+=); each skipped when null
template <class T>
void rnn_backward(T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                  const T* dhn, const T* dcn, const T* x, const T* hs, const T* cs, const T* gates,
                  const T* ghn, const T* w_ih, const T* w_hh, const RnnSizes& s);

}  // namespace ember
