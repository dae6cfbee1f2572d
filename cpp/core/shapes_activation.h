// ember/core/shapes_activation: how softmax-like ops see a tensor.
#pragma once

#include <stdexcept>

#include "core/shapes.h"

namespace ember {

// x viewed as (outer, D, inner) around dimension `dim` (negative counts from the end). A 0-d
// tensor is one element (dim must be 0 or -1, as in torch). Bad dim -> std::out_of_range
// (IndexError in Python) naming the op.
struct Dims3 {
  int64_t outer, D, inner;
};

inline Dims3 reduce_dim_view(const char* op, const Shape& s, int64_t dim) {
  const int64_t nd = static_cast<int64_t>(s.size());
  const int64_t lo = nd == 0 ? -1 : -nd, hi = nd == 0 ? 0 : nd - 1;
  if (dim < lo || dim > hi)
    throw std::out_of_range(std::string(op) + ": dim " + std::to_string(dim) +
                            " is out of range for a tensor of shape " + shape_str(s) +
                            " (expected to be in range of [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "])");
  if (nd == 0) return {1, 1, 1};
  const int64_t d = dim < 0 ? dim + nd : dim;
  Dims3 r{1, s[d], 1};
  for (int64_t i = 0; i < d; ++i) r.outer *= s[i];
  for (int64_t i = d + 1; i < nd; ++i) r.inner *= s[i];
  return r;
}

}  // namespace ember
