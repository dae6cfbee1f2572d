// Bindings of core/reduce: the full sum behind Tensor.sum() / Tensor.mean() with no axis.
#include "bindings/common.h"
#include "core/reduce.h"

namespace ember::bind {

void bind_reduce(py::module_& m) {
  // Returns a 0-d array of x's dtype (numpy's x.sum() has the same dtype; ours is summed in
  // double from float chunk sums, so it is at least as accurate).
  m.def("sum_all", [](const py::array& x) -> py::array {
    const DType d = float_dtype("sum", "input", x);
    return dispatch(d, [&](auto tag) -> py::array {
      using T = decltype(tag);
      const T* p = cptr<T>(x);
      const int64_t n = x.size();
      double s;
      {
        py::gil_scoped_release nogil;
        s = sum_all(p, n);
      }
      auto out = empty<T>({});
      *out.mutable_data() = static_cast<T>(s);
      return std::move(out);
    });
  }, py::arg("x"));
}

}  // namespace ember::bind
