// ember/core/gemm: row-major C = op(A) * op(B) (+ C).
//
// float with AVX2+FMA (native builds): a packed BLIS-style GEMM with a 6x16 micro-kernel (tiles
// of 12x32 on zmm registers with AVX-512) for M >= 12 (gemm.cpp explains the blocking);
// otherwise (double, tiny M, portable builds) Eigen's single-threaded GEMM over fixed blocks as
// described below. EMBER_GEMM_FORCE=eigen|packed in
// the environment (read once) pins the float choice, for benchmarks.
//
//   op(A): M x K  (A stored M x K, or K x M when trans_a)
//   op(B): K x N  (B stored K x N, or N x K when trans_b)
//   C:     M x N, overwritten (accumulate = false) or added to (accumulate = true)
//
// Threads (Eigen path): the larger of M and N is cut into blocks whose size depends only on the shape, and
// blocks are handed to threads. Each block is the same Eigen call whatever the thread count, so
// the result is bitwise identical at 1 and N threads.
#pragma once

#include <cstdint>

namespace ember {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, const T* B,
          T* C, bool accumulate);

// C = op(A) op(B) + bias (one value per column; may be null), then ReLU if relu (x < 0 ? 0 : x,
// as ops/activation). The epilogue is applied to each tile of C as the micro-kernel stores it
// (packed float path) or as one pass after the product (others). For linear layers.
template <class T>
void gemm_bias_act(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                   const T* B, T* C, const T* bias, bool relu);

// op(B) (K x N) packed once for several products C (=|+=) A op(B) with the same B and A (M x K)
// row-major: an RNN's recurrent weights across its time steps. multiply() gives exactly what
// gemm(false, trans_b, M, N, K, A, B, C, accumulate) gives (the same k-blocks and micro-kernel
// calls); on the packed float path it skips re-packing B on every call. B is read at
// construction (packed) or at each multiply (other paths) and must not change meanwhile.
// rows_hint: the M the products will have (packing is skipped where that M takes another path).
template <class T>
class PackedB {
 public:
  PackedB(bool trans_b, int64_t K, int64_t N, const T* B, int64_t rows_hint);
  ~PackedB();
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;
  void multiply(int64_t M, const T* A, T* C, bool accumulate) const;

 private:
  bool tb_;
  int64_t K_, N_;
  const T* B_;
  float* packed_ = nullptr;  // float packed path only
};

}  // namespace ember
