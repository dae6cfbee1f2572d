#include "ops/embedding.h"

#include <algorithm>

#include "core/parallel.h"

namespace ember {

template <class T>
void embedding_forward(T* y, const T* weight, const int64_t* ids, int64_t n, int64_t D) {
  parallel_for(n, D, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::copy(weight + ids[i] * D, weight + (ids[i] + 1) * D,
                                                y + i * D);
  });
}

template <class T>
void embedding_backward(T* dweight, const T* dy, const int64_t* ids, int64_t n, int64_t D,
                        int64_t padding_idx) {
  parallel_for(D, n, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = ids[i];
      if (id == padding_idx) continue;
      T* dst = dweight + id * D;
      const T* src = dy + i * D;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

#define EMBER_INSTANTIATE(T)                                                                   \
  template void embedding_forward<T>(T*, const T*, const int64_t*, int64_t, int64_t);          \
  template void embedding_backward<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t);
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
#undef EMBER_INSTANTIATE

}  // namespace ember
