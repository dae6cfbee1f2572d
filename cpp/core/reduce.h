// ember/core/reduce: the sum of a contiguous run, vectorized in a fixed order.
//
// A plain `s += p[i]` loop is one dependent add per element (the compiler may not reorder float
// additions): about 4 cycles each. Sixteen independent partial sums (lane j takes elements
// j, j+16, ...) vectorize without reordering any single chain, and they are combined in a fixed
// tree: the result depends on n only, never on threads or alignment.
#pragma once

#include <cstdint>

namespace ember {

template <class T>
inline T sum_contig(const T* p, int64_t n) {
  constexpr int L = 16;
  T acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) acc[j] += p[i + j];
  for (int j = 0; i + j < n; ++j) acc[j] += p[i + j];
  for (int w = L / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

}  // namespace ember
