// ember/core/fill: a read-only "array" whose every element is one value.
//
// Elementwise backward kernels take their incoming gradient either as a pointer to n values or
// as a Fill. The gradient of a full reduction (x.sum(), x.mean()) is one value broadcast to x's
// shape; passing it as a Fill saves materializing, and then streaming, an array of copies.
#pragma once

#include <cstdint>

namespace ember {

template <class T>
struct Fill {
  T value;
  T operator[](int64_t) const { return value; }
};

}  // namespace ember
