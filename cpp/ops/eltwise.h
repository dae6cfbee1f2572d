// ember/ops/eltwise: elementwise kernels on Eigen's vectorized math (exp, tanh, erf, log...),
// evaluated in fixed blocks so that results are bitwise identical at any thread count.
//
// Eigen evaluates a dynamic-size expression with packet code in the middle and scalar code at
// the ends, and where the ends fall depends on the pointer and the length, i.e. on how a
// parallel loop cut the array. Here every element goes through the same packet code: the array
// is cut into kBlock-element blocks, each evaluated into an aligned fixed-size temporary (the
// last, partial block from zero-padded copies). Threads get whole blocks.
#pragma once

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/parallel.h"

namespace ember::eltwise {

constexpr int64_t kBlock = 64;  // a multiple of every packet size (16 floats on AVX-512)
template <class T> using Blk = Eigen::Array<T, kBlock, 1>;
template <class T> using CMap = Eigen::Map<const Blk<T>>;

namespace detail {
// Evaluates f on block b (elements [b*kBlock, b*kBlock + len)) into r.
template <class T, class F, class... P, size_t... I>
inline int64_t eval_block(Blk<T>& r, int64_t b, int64_t n, F& f, std::index_sequence<I...>,
                          const P*... in) {
  const int64_t i = b * kBlock, len = std::min<int64_t>(kBlock, n - i);
  if (len == kBlock) {
    f(r, CMap<T>(in + i)...);
  } else {
    std::array<Blk<T>, sizeof...(P)> pad;
    const T* src[] = {in...};
    for (size_t k = 0; k < sizeof...(P); ++k) {
      pad[k].setZero();
      std::memcpy(pad[k].data(), src[k] + i, sizeof(T) * len);
    }
    f(r, static_cast<const Blk<T>&>(pad[I])...);
  }
  return len;
}
}  // namespace detail

// out[i] = f(in...)[i] for i < n. f(Blk<T>& r, const auto&... x) assigns an Eigen array
// expression of the input blocks to r. cost: rough flops per element (for the thread threshold).
template <class T, class F, class... P>
void map(T* out, int64_t n, int64_t cost, F f, const P*... in) {
  static_assert((std::is_same_v<T, P> && ...), "all inputs share the output's type");
  const int64_t nb = (n + kBlock - 1) / kBlock;
  parallel_for(nb, cost * kBlock, [&](int64_t b0, int64_t b1) {
    Blk<T> r;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t len =
          detail::eval_block(r, b, n, f, std::index_sequence_for<P...>{}, in...);
      std::memcpy(out + b * kBlock, r.data(), sizeof(T) * len);
    }
  });
}

// Sum over i < n of f(in...)[i], in double. Blocks are summed in groups of a fixed size and the
// group sums added in order, so the result does not depend on the thread count.
template <class T, class F, class... P>
double map_sum(int64_t n, int64_t cost, F f, const P*... in) {
  static_assert((std::is_same_v<T, P> && ...), "all inputs share one type");
  constexpr int64_t kGroup = 64;  // blocks per partial sum
  const int64_t nb = (n + kBlock - 1) / kBlock, ng = (nb + kGroup - 1) / kGroup;
  std::vector<double> part(ng);
  parallel_for(ng, cost * kBlock * kGroup, [&](int64_t g0, int64_t g1) {
    Blk<T> r;
    for (int64_t g = g0; g < g1; ++g) {
      double s = 0;
      for (int64_t b = g * kGroup, be = std::min(nb, b + kGroup); b < be; ++b) {
        const int64_t len =
            detail::eval_block(r, b, n, f, std::index_sequence_for<P...>{}, in...);
        s += static_cast<double>(len == kBlock ? r.sum() : r.head(len).sum());
      }
      part[g] = s;
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// ---- one row on the calling thread (inside a kernel's own parallel loop) ----------------------
// Same block scheme, so a row's results depend on its values only, never on its address (which
// changes with every allocation) or on which thread runs it.

// out[i] = f(in...)[i] for i < n (out may be one of the inputs). Returns the sum of the outputs,
// accumulated blockwise into a vector so the summation order is fixed.
template <class T, class F, class... P>
T map_row(T* out, int64_t n, F f, const P*... in) {
  static_assert((std::is_same_v<T, P> && ...), "all inputs share the output's type");
  Blk<T> r, acc = Blk<T>::Zero();
  const int64_t nb = (n + kBlock - 1) / kBlock;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t len = detail::eval_block(r, b, n, f, std::index_sequence_for<P...>{}, in...);
    if (len == kBlock) acc += r;
    else acc.head(len) += r.head(len);
    std::memcpy(out + b * kBlock, r.data(), sizeof(T) * len);
  }
  return acc.sum();
}

// Sum over i < n of f(in...)[i], in a fixed order.
template <class T, class F, class... P>
T sum_row(int64_t n, F f, const P*... in) {
  static_assert((std::is_same_v<T, P> && ...), "all inputs share one type");
  Blk<T> r, acc = Blk<T>::Zero();
  const int64_t nb = (n + kBlock - 1) / kBlock;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t len = detail::eval_block(r, b, n, f, std::index_sequence_for<P...>{}, in...);
    if (len == kBlock) acc += r;
    else acc.head(len) += r.head(len);
  }
  return acc.sum();
}

// Largest value of a row of n >= 1 values. max is exact, so the order Eigen picks does not
// matter; with a NaN in the row the result may or may not be NaN, but every caller's output for
// that row is NaN either way (the NaN reaches the row's sum).
template <class T>
T max_row(const T* x, int64_t n) {
  return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x, n).maxCoeff();
}

}  // namespace ember::eltwise
