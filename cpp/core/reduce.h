// ember/core/reduce: sums of contiguous runs, vectorized in a fixed order.
//
// A plain `s += p[i]` loop is one dependent add per element (the compiler may not reorder float
// additions): about 4 cycles each. Sixteen independent partial sums (lane j takes elements
// j, j+16, ... of each run added) vectorize without reordering any single chain, and they are
// combined in a fixed tree: the result depends on the run lengths only, never on threads or
// alignment. Several runs (e.g. one channel's rows of every sample) share one set of lanes, so
// short runs do not each pay for the final tree.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/parallel.h"

namespace ember {

template <class T>
struct LaneSum {
  static constexpr int L = 16;
  T acc[L] = {};

  void add(const T* p, int64_t n) { add_runs(p, n, 1, 0); }

  // add() of `runs` runs of n values, run r at p + r * stride (one channel's plane in every
  // sample, as a bias gradient sums them), in run order.
  void add_runs(const T* p, int64_t n, int64_t runs, int64_t stride) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      // The same lane sums in one register across the runs, each run's tail (under 16) by a
      // masked load: the lanes past it add +0, which leaves every lane's bits as they are (a lane
      // that starts at +0 and adds floats is never -0, and x + 0 is x for every other x, NaN and
      // inf included). The scalar tail took every element of the short rows of a small Conv1d's
      // bias gradient (10-40 values per channel and sample) one at a time.
      const __mmask16 tail = static_cast<__mmask16>((1u << (n % L)) - 1u);
      __m512 a = _mm512_loadu_ps(acc);
      for (int64_t r = 0; r < runs; ++r) {
        const T* q = p + r * stride;
        int64_t i = 0;
        for (; i + L <= n; i += L) a = _mm512_add_ps(a, _mm512_loadu_ps(q + i));
        if (i < n) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(tail, q + i));
      }
      _mm512_storeu_ps(acc, a);
      return;
    }
#endif
    for (int64_t r = 0; r < runs; ++r) {
      const T* q = p + r * stride;
      int64_t i = 0;
      for (; i + L <= n; i += L)
        for (int j = 0; j < L; ++j) acc[j] += q[i + j];
      for (int j = 0; i + j < n; ++j) acc[j] += q[i + j];
    }
  }

  T total() const {
    T a[L];
    for (int j = 0; j < L; ++j) a[j] = acc[j];
    for (int w = L / 2; w >= 1; w /= 2)
      for (int j = 0; j < w; ++j) a[j] += a[j + w];
    return a[0];
  }
};

template <class T>
inline T sum_contig(const T* p, int64_t n) {
  LaneSum<T> s;
  s.add(p, n);
  return s.total();
}

// Sum of n contiguous values, in double. Fixed chunks of kSumChunk values are each summed with a
// LaneSum in T (chains of kSumChunk / 16 adds, so float32 keeps about the accuracy of numpy's
// pairwise sum), and the chunk sums are added in double in chunk order: threaded over chunks,
// and the same bits at any thread count.
constexpr int64_t kSumChunk = 1024;
template <class T>
double sum_all(const T* p, int64_t n) {
  const int64_t nc = (n + kSumChunk - 1) / kSumChunk;
  if (nc <= 1) return static_cast<double>(sum_contig(p, n));
  std::vector<double> part(nc);
  parallel_for(nc, kSumChunk, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = c * kSumChunk;
      part[c] = static_cast<double>(sum_contig(p + b, std::min(kSumChunk, n - b)));
    }
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

}  // namespace ember
