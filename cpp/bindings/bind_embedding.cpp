#include "bindings/common.h"
#include "core/shapes_norm.h"
#include "ops/embedding.h"

namespace ember::bind {

namespace {

// Every id must lie in [0, V): the first one that does not raises IndexError naming it.
void check_ids(const char* op, const int64_t* ids, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      index_error(std::string(op) + ": index " + std::to_string(ids[i]) +
                  " is out of range for an embedding table of " + std::to_string(V) +
                  " rows (valid indices are 0 to " + std::to_string(V - 1) + ")");
}

py::array embedding_forward_py(const py::array& weight, const py::array& ids_in) {
  const char* op = "embedding";
  DType d = float_dtype(op, "weight", weight);
  auto ids = check_index(op, "input", ids_in);
  const Shape ws = shape_of(weight);
  const Shape ys = embedding_output_shape(shape_of(ids), ws);
  const int64_t n = ids.size(), V = ws[0], D = ws[1];
  const int64_t* ip = ids.data();
  check_ids(op, ip, n, V);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(ys);
    T* yp = y.mutable_data();
    const T* wp = cptr<T>(weight);
    {
      // The GIL is released around the kernel only: `return y` touches a Python object.
      py::gil_scoped_release nogil;
      embedding_forward<T>(yp, wp, ip, n, D);
    }
    return y;
  });
}

// grad_weight (V, D) += scatter of grad_output (ids.shape + (D,)) into the looked-up rows.
void embedding_backward_py(py::array& grad_weight, const py::array& dy, const py::array& ids_in,
                           int64_t padding_idx) {
  const char* op = "embedding_backward";
  DType d = float_dtype(op, "grad_weight", grad_weight);
  check_float(op, "grad_output", dy, d);
  if (!grad_weight.writeable()) value_error("embedding_backward: grad_weight is read-only");
  auto ids = check_index(op, "input", ids_in);
  const Shape ws = shape_of(grad_weight);
  const Shape ys = embedding_output_shape(shape_of(ids), ws);
  if (shape_of(dy) != ys)
    value_error("embedding_backward: grad_output shape " + shape_str(dy) + " does not match " +
                ember::shape_str(ys));
  const int64_t n = ids.size(), V = ws[0], D = ws[1];
  const int64_t* ip = ids.data();
  check_ids(op, ip, n, V);
  dispatch(d, [&](auto tag) {
    using T = decltype(tag);
    T* gp = mptr<T>(grad_weight);
    const T* dp = cptr<T>(dy);
    {
      py::gil_scoped_release nogil;
      embedding_backward<T>(gp, dp, ip, n, D, padding_idx);
    }
    return 0;
  });
}

}  // namespace

void bind_embedding(py::module_& m) {
  m.def("embedding_forward", &embedding_forward_py, py::arg("weight"), py::arg("ids"),
        "weight[ids]: ids of any integer shape -> ids.shape + (embedding_dim,)");
  m.def("embedding_backward", &embedding_backward_py, py::arg("grad_weight"),
        py::arg("grad_output"), py::arg("ids"), py::arg("padding_idx") = -1,
        "Accumulates grad_output into the looked-up rows of grad_weight (padding_idx rows skipped)");
}

}  // namespace ember::bind
