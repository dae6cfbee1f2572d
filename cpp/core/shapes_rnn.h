// ember/core/shapes_rnn: shape checks for the recurrent layers (one layer, one direction).
#pragma once

#include "core/shapes.h"

namespace ember {

struct RnnDims {
  int64_t S, N, I, H, G;
};

// x (S, N, I) time-major; w_ih (gates*H, I); w_hh (gates*H, H); b_* (gates*H,); h0, c0 (N, H).
// Any of h0, c0, b_ih, b_hh may be null. Throws std::invalid_argument naming op and shapes.
inline RnnDims rnn_dims(const std::string& op, int64_t gates, const Shape& x, const Shape& w_ih,
                        const Shape& w_hh, const Shape* b_ih, const Shape* b_hh,
                        const Shape* h0, const Shape* c0) {
  if (w_ih.size() != 2 || w_ih[0] % gates != 0 || w_ih[0] == 0)
    fail(op + ": weight_ih must be 2-D (" + std::to_string(gates) +
         "*hidden_size, input_size), got shape " + shape_str(w_ih));
  const int64_t G = w_ih[0], H = G / gates, I = w_ih[1];
  if (w_hh != Shape{G, H})
    fail(op + ": weight_hh shape " + shape_str(w_hh) + " does not match weight_ih shape " +
         shape_str(w_ih) + ": expected " + shape_str(Shape{G, H}));
  if (x.size() != 3)
    fail(op + ": input must be 3-D (seq_len, batch, input_size), got shape " + shape_str(x));
  if (x[2] != I)
    fail(op + ": input.size(-1) must be equal to input_size: expected " + std::to_string(I) +
         ", got " + std::to_string(x[2]) + " (input shape " + shape_str(x) +
         ", weight_ih shape " + shape_str(w_ih) + ")");
  if (x[0] < 1)
    fail(op + ": expected a sequence length >= 1, got input shape " + shape_str(x));
  const Shape hs{x[1], H};
  if (h0 && *h0 != hs)
    fail(op + ": expected hidden state (h0) of shape " + shape_str(hs) + ", got " +
         shape_str(*h0));
  if (c0 && *c0 != hs)
    fail(op + ": expected cell state (c0) of shape " + shape_str(hs) + ", got " +
         shape_str(*c0));
  for (const Shape* b : {b_ih, b_hh})
    if (b && *b != Shape{G})
      fail(op + ": bias shape " + shape_str(*b) + " does not match weight_ih shape " +
           shape_str(w_ih) + ": expected " + shape_str(Shape{G}));
  return {x[0], x[1], I, H, G};
}

}  // namespace ember
