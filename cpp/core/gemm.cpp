#include "core/gemm.h"

#include <Eigen/Core>
#include <algorithm>

#include "core/parallel.h"

namespace ember {

namespace {

template <class T, int Order>
using CMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0,
                        Eigen::OuterStride<>>;
template <class T>
using OutMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                          Eigen::OuterStride<>>;

// A block of op(X): rows [r0, r0+nr) and columns [c0, c0+nc) of the logical R x Ccols matrix.
// Stored row-major R x Ccols (trans=false, ld=Ccols) or row-major Ccols x R (trans=true, ld=R),
// which is the same as column-major R x Ccols.
template <class T, bool Trans>
auto block_of(const T* X, int64_t R, int64_t Ccols, int64_t r0, int64_t nr, int64_t c0,
              int64_t nc) {
  if constexpr (Trans) {
    return CMap<T, Eigen::ColMajor>(X + c0 * R + r0, nr, nc, Eigen::OuterStride<>(R));
  } else {
    return CMap<T, Eigen::RowMajor>(X + r0 * Ccols + c0, nr, nc, Eigen::OuterStride<>(Ccols));
  }
}

int64_t block_size(int64_t dim) {
  // At most ~16 blocks, never smaller than 64 rows: depends on the shape only.
  int64_t b = (dim + 15) / 16;
  b = (b + 15) / 16 * 16;
  return std::max<int64_t>(64, b);
}

template <class T, bool TA, bool TB>
void gemm_impl(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C, bool acc) {
  const bool split_m = M >= N;
  const int64_t dim = split_m ? M : N;
  const int64_t bs = block_size(dim);
  const int64_t nblocks = (dim + bs - 1) / bs;
  const int64_t other = split_m ? N : M;
  parallel_for(nblocks, 2 * bs * other * K, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * bs, len = std::min(bs, dim - s);
      const int64_t m0 = split_m ? s : 0, mn = split_m ? len : M;
      const int64_t n0 = split_m ? 0 : s, nn = split_m ? N : len;
      auto a = block_of<T, TA>(A, M, K, m0, mn, 0, K);
      auto bm = block_of<T, TB>(B, K, N, 0, K, n0, nn);
      OutMap<T> c(C + m0 * N + n0, mn, nn, Eigen::OuterStride<>(N));
      if (K == 0) {
        if (!acc) c.setZero();
      } else if (acc) {
        c.noalias() += a * bm;
      } else {
        c.noalias() = a * bm;
      }
    }
  });
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C,
          bool accumulate) {
  if (M == 0 || N == 0) return;
  if (!ta && !tb) gemm_impl<T, false, false>(M, N, K, A, B, C, accumulate);
  else if (!ta && tb) gemm_impl<T, false, true>(M, N, K, A, B, C, accumulate);
  else if (ta && !tb) gemm_impl<T, true, false>(M, N, K, A, B, C, accumulate);
  else gemm_impl<T, true, true>(M, N, K, A, B, C, accumulate);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, const float*,
                          float*, bool);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, const double*,
                           double*, bool);

}  // namespace ember
