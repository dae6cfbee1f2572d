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

#include "core/fill.h"
#include "core/parallel.h"

namespace ember::eltwise {

constexpr int64_t kBlock = 64;  // a multiple of every packet size (16 floats on AVX-512)
template <class T> using Blk = Eigen::Array<T, kBlock, 1>;
template <class T> using CMap = Eigen::Map<const Blk<T>>;

namespace detail {
// An input is either a pointer to n values or a Fill (one value for every element: the
// gradient of a full sum, which is a stride-0 broadcast and is never materialized).
template <class Block, class T>
inline auto whole(const T* p, int64_t i) { return Eigen::Map<const Block>(p + i); }
template <class Block, class T>
inline auto whole(const Fill<T>& f, int64_t) { return Block::Constant(f.value); }
template <class Block, class T>
inline void pad_copy(Block& dst, const T* p, int64_t i, int64_t len) {
  dst.setZero();
  std::memcpy(dst.data(), p + i, sizeof(T) * len);
}
template <class Block, class T>
inline void pad_copy(Block& dst, const Fill<T>& f, int64_t, int64_t) { dst.setConstant(f.value); }

// Software prefetch of block b's inputs kAhead elements ahead of where the block reads. The
// hardware prefetchers stop at every 4 KiB page and ramp up again behind it, which a loop that
// spends a few dozen cycles per vector on exp/tanh polynomials does not hide: over 4M floats at
// one thread, fetching 1024 elements (4 KiB of floats) ahead took tanh 4.30 -> 3.71 ms and
// sigmoid 4.38 -> 3.69 (median of 25 in one process, same blocked Eigen evaluation); relu,
// whose loop is all memory, 3.70 -> 3.53. 256 to 2048 ahead read about the same; 4096 and more
// less. A prefetch never faults, so the addresses past the end of the array are harmless (they
// are formed as integers: a pointer past the end would be undefined behaviour).
constexpr int64_t kAhead = 1024;
template <class T>
inline void prefetch_block(const T* p, int64_t i) {
#if defined(__GNUC__)
  const uintptr_t q = reinterpret_cast<uintptr_t>(p) + uintptr_t(i + kAhead) * sizeof(T);
  for (uintptr_t off = 0; off < kBlock * sizeof(T); off += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(q + off));
#else
  (void)p, (void)i;
#endif
}
template <class T>
inline void prefetch_block(const Fill<T>&, int64_t) {}

template <class P> struct elem { using type = std::remove_cv_t<std::remove_pointer_t<P>>; };
template <class T> struct elem<Fill<T>> { using type = T; };
template <class P> using elem_t = typename elem<std::remove_cv_t<P>>::type;

// Evaluates f on block b (elements [b*B, b*B + len)) of B-element blocks into r.
template <class T, int B, class F, class... P, size_t... I>
inline int64_t eval_block(Eigen::Array<T, B, 1>& r, int64_t b, int64_t n, F& f,
                          std::index_sequence<I...>, const P&... in) {
  using Block = Eigen::Array<T, B, 1>;
  const int64_t i = b * B, len = std::min<int64_t>(B, n - i);
  if (len == B) {
    f(r, whole<Block>(in, i)...);
  } else {
    std::array<Block, sizeof...(P)> pad;
    (pad_copy(pad[I], in, i, len), ...);
    f(r, static_cast<const Block&>(pad[I])...);
  }
  return len;
}
}  // namespace detail

// Runs body(i0, i1) over [b, e) in chunks of kBlock elements, each chunk first prefetching the
// inputs' lines kAhead elements ahead as map() does: for plain loops that need no Eigen math
// (relu), whose inputs are pointers or Fills.
template <class F, class... P>
inline void chunked(int64_t b, int64_t e, F&& body, const P&... in) {
  for (int64_t c = b; c < e; c += kBlock) {
    (detail::prefetch_block(in, c), ...);
    body(c, std::min(e, c + kBlock));
  }
}

// out[i] = f(in...)[i] for i < n. f(Blk<T>& r, const auto&... x) assigns an Eigen array
// expression of the input blocks to r. cost: rough flops per element (for the thread threshold).
template <class T, class F, class... P>
void map(T* out, int64_t n, int64_t cost, F f, const P&... in) {
  static_assert((std::is_same_v<T, detail::elem_t<P>> && ...),
                "all inputs share the output's type");
  const int64_t nb = (n + kBlock - 1) / kBlock;
  parallel_for(nb, cost * kBlock, [&](int64_t b0, int64_t b1) {
    Blk<T> r;
    for (int64_t b = b0; b < b1; ++b) {
      (detail::prefetch_block(in, b * kBlock), ...);
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
        (detail::prefetch_block(in, b * kBlock), ...);
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
// Same scheme with kRowBlock-element blocks (a short row, e.g. 10 classes, pads to 16, not 64),
// so a row's results depend on its values only, never on its address (which changes with every
// allocation) or on which thread runs it. f takes (auto& r, const auto&... x).
constexpr int64_t kRowBlock = 16;  // still a multiple of every packet size
template <class T> using RowBlk = Eigen::Array<T, kRowBlock, 1>;

// out[i] = f(in...)[i] for i < n (out may be one of the inputs). Returns the sum of the outputs,
// accumulated blockwise into a vector so the summation order is fixed.
template <class T, class F, class... P>
T map_row(T* out, int64_t n, F f, const P*... in) {
  static_assert((std::is_same_v<T, P> && ...), "all inputs share the output's type");
  RowBlk<T> r, acc = RowBlk<T>::Zero();
  const int64_t nb = (n + kRowBlock - 1) / kRowBlock;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t len = detail::eval_block(r, b, n, f, std::index_sequence_for<P...>{}, in...);
    if (len == kRowBlock) acc += r;
    else acc.head(len) += r.head(len);
    std::memcpy(out + b * kRowBlock, r.data(), sizeof(T) * len);
  }
  return acc.sum();
}

// Sum over i < n of f(in...)[i], in a fixed order.
template <class T, class F, class... P>
T sum_row(int64_t n, F f, const P*... in) {
  static_assert((std::is_same_v<T, P> && ...), "all inputs share one type");
  RowBlk<T> r, acc = RowBlk<T>::Zero();
  const int64_t nb = (n + kRowBlock - 1) / kRowBlock;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t len = detail::eval_block(r, b, n, f, std::index_sequence_for<P...>{}, in...);
    if (len == kRowBlock) acc += r;
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
