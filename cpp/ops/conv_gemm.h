// ember/ops/conv_gemm: a single-threaded float GEMM with an AVX2/FMA register-blocked micro-kernel (6 x 16),
// for the shapes convolution produces (M = a few dozen channels, N = a tile of output pixels,
// K = C*KH*KW), where it runs faster than Eigen's general GEMM.
//
//   C (M x N, row stride ldc) = / += A (M x K) * B (K x N)
//   A(m, k) = A[m*sam + k*sak]; B(k, n) = B[k*sbk + n*sbn]  (any strides: plain or transposed)
//
// B is packed panel by panel (KC x 16, zero-padded) into a per-thread buffer; A is read in place by
// broadcasts. The order of every floating-point operation depends on the shape only.
// Called inside our own parallel loops: it never starts threads.
#pragma once

#include <cstdint>

namespace ember {

// True when the AVX2/FMA kernel was compiled in (otherwise callers use Eigen).
bool conv_gemm_available();

void conv_sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, int64_t sak,
                const float* B, int64_t sbk, int64_t sbn, float* C, int64_t ldc, bool acc);

}  // namespace ember
