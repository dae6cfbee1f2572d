#include "bindings/common.h"
#include "ops/linear.h"

#include <algorithm>
#include <memory>
#include <vector>

namespace ember::bind {

namespace {

// Flatten all leading dims of x into M rows.
int64_t rows_of(const Shape& s) {
  int64_t m = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) m *= s[i];
  return m;
}

py::array linear_forward_py(const py::array& x, const py::array& w, const py::object& b,
                            bool relu) {
  const char* op = "linear";
  DType d = float_dtype(op, "input", x);
  check_float(op, "weight", w, d);
  py::array barr;
  const bool has_b = !b.is_none();
  Shape bshape;
  if (has_b) {
    barr = b.cast<py::array>();
    check_float(op, "bias", barr, d);
    bshape = shape_of(barr);
  }
  const Shape xs = shape_of(x), ws = shape_of(w);
  const Shape ys = linear_output_shape(xs, ws, has_b ? &bshape : nullptr);
  const int64_t M = rows_of(xs), K = ws[1], N = ws[0];
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(ys);
    T* yp = y.mutable_data();
    const T *xp = cptr<T>(x), *wp = cptr<T>(w), *bp = has_b ? cptr<T>(barr) : nullptr;
    {
      // The GIL is released around the kernel only: `return y` below touches a Python object.
      py::gil_scoped_release nogil;
      linear_forward<T>(yp, xp, wp, bp, M, K, N, relu);
    }
    return y;
  });
}

// A run of Linear(+ReLU) layers in one call, for inference: layers is a sequence of
// (weight, bias or None, relu). Each layer is checked as linear_forward checks it; the
// intermediate activations live in two C++ buffers and the GIL is released once for the run.
py::array linear_chain_py(const py::array& x, const py::sequence& layers) {
  const char* op = "linear";
  const DType d = float_dtype(op, "input", x);
  struct Layer {
    py::array w, b;
    bool has_b, relu;
    int64_t K, N;
  };
  std::vector<Layer> ls;
  ls.reserve(layers.size());
  Shape cur = shape_of(x);
  for (const auto& item : layers) {
    const auto t = item.cast<py::tuple>();
    if (t.size() != 3) value_error("linear_chain: each layer is (weight, bias, relu)");
    Layer l;
    l.w = t[0].cast<py::array>();
    check_float(op, "weight", l.w, d);
    l.has_b = !t[1].is_none();
    Shape bshape;
    if (l.has_b) {
      l.b = t[1].cast<py::array>();
      check_float(op, "bias", l.b, d);
      bshape = shape_of(l.b);
    }
    l.relu = t[2].cast<bool>();
    const Shape ws = shape_of(l.w);
    cur = linear_output_shape(cur, ws, l.has_b ? &bshape : nullptr);
    l.K = ws[1];
    l.N = ws[0];
    ls.push_back(std::move(l));
  }
  if (ls.empty()) value_error("linear_chain: no layers");
  const int64_t M = rows_of(cur);
  int64_t widest = 0;
  for (size_t i = 0; i + 1 < ls.size(); ++i) widest = std::max(widest, ls[i].N);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(cur);
    T* yp = y.mutable_data();
    const size_t nbuf = static_cast<size_t>(M * widest);
    std::unique_ptr<T[]> ping(new T[nbuf]), pong(new T[nbuf]);  // not zeroed: written first
    {
      py::gil_scoped_release nogil;
      const T* in = cptr<T>(x);
      for (size_t i = 0; i < ls.size(); ++i) {
        const Layer& l = ls[i];
        T* out = i + 1 == ls.size() ? yp : (i % 2 == 0 ? ping.get() : pong.get());
        linear_forward<T>(out, in, cptr<T>(l.w), l.has_b ? cptr<T>(l.b) : nullptr, M, l.K, l.N,
                          l.relu);
        in = out;
      }
    }
    return y;
  });
}

// Returns dx (or None). dw and db, when given, are accumulated into in place, or overwritten
// (overwrite_dw / overwrite_db: fresh buffers whose contents are never read).
py::object linear_backward_py(const py::array& dy, const py::array& x, const py::array& w,
                              bool need_dx, const py::object& dw, const py::object& db,
                              bool overwrite_dw, bool overwrite_db) {
  const char* op = "linear_backward";
  DType d = float_dtype(op, "grad_output", dy);
  check_float(op, "input", x, d);
  check_float(op, "weight", w, d);
  const Shape xs = shape_of(x), ws = shape_of(w);
  const Shape ys = linear_output_shape(xs, ws, nullptr);
  if (shape_of(dy) != ys)
    value_error(std::string(op) + ": grad_output shape " + shape_str(dy) +
                " does not match output shape " + ember::shape_str(ys));
  py::array dwa, dba;
  if (!dw.is_none()) {
    dwa = dw.cast<py::array>();
    check_float(op, "grad_weight", dwa, d);
    if (shape_of(dwa) != ws)
      value_error(std::string(op) + ": grad_weight shape " + shape_str(dwa) +
                  " does not match weight shape " + ember::shape_str(ws));
    if (!dwa.writeable()) value_error(std::string(op) + ": grad_weight is read-only");
  }
  if (!db.is_none()) {
    dba = db.cast<py::array>();
    check_float(op, "grad_bias", dba, d);
    if (shape_of(dba) != Shape{ws[0]})
      value_error(std::string(op) + ": grad_bias shape " + shape_str(dba) + " does not match (" +
                  std::to_string(ws[0]) + ",)");
    if (!dba.writeable()) value_error(std::string(op) + ": grad_bias is read-only");
  }
  const int64_t M = rows_of(xs), K = ws[1], N = ws[0];
  return dispatch(d, [&](auto tag) -> py::object {
    using T = decltype(tag);
    py::array dx;
    T* dxp = nullptr;
    if (need_dx) {
      dx = empty<T>(xs);
      dxp = mptr<T>(dx);
    }
    T* dwp = dw.is_none() ? nullptr : mptr<T>(dwa);
    T* dbp = db.is_none() ? nullptr : mptr<T>(dba);
    {
      py::gil_scoped_release nogil;
      linear_backward<T>(dxp, dwp, dbp, cptr<T>(dy), cptr<T>(x), cptr<T>(w), M, K, N,
                         overwrite_dw, overwrite_db);
    }
    if (need_dx) return std::move(dx);
    return py::none();
  });
}

// c = op(a) @ op(b) for 2-D a and b, or batched 3-D with equal batch (or a 2-D operand broadcast).
py::array matmul_py(const py::array& a, const py::array& b, bool trans_a, bool trans_b) {
  const char* op = "matmul";
  DType d = float_dtype(op, "a", a);
  check_float(op, "b", b, d);
  const Shape as = shape_of(a), bs = shape_of(b);
  if (as.size() < 2 || as.size() > 3 || bs.size() < 2 || bs.size() > 3)
    value_error("matmul: operands must be 2-D or 3-D, got shapes " + shape_str(a) + " and " +
                shape_str(b));
  const int64_t ba = as.size() == 3 ? as[0] : 1, bb = bs.size() == 3 ? bs[0] : 1;
  if (as.size() == 3 && bs.size() == 3 && ba != bb)
    value_error("matmul: batch sizes differ: shapes " + shape_str(a) + " and " + shape_str(b));
  const int64_t ar = as[as.size() - 2], ac = as.back(), br = bs[bs.size() - 2], bc = bs.back();
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t K2 = trans_b ? bc : br, N = trans_b ? br : bc;
  if (K != K2)
    value_error("matmul: shapes " + shape_str(a) + " and " + shape_str(b) +
                " cannot be multiplied (" + std::to_string(K) + " != " + std::to_string(K2) + ")");
  const int64_t batch = std::max(ba, bb);
  Shape cs = (as.size() == 3 || bs.size() == 3) ? Shape{batch, M, N} : Shape{M, N};
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto c = empty<T>(cs);
    T* cp = c.mutable_data();
    const int64_t sa = as.size() == 3 ? ar * ac : 0, sb = bs.size() == 3 ? br * bc : 0;
    {
      py::gil_scoped_release nogil;
      matmul_forward<T>(cp, cptr<T>(a), cptr<T>(b), batch, M, K, N, sa, sb, trans_a, trans_b);
    }
    return c;
  });
}

}  // namespace

void bind_linear(py::module_& m) {
  m.def("linear_forward", &linear_forward_py, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("relu") = false,
        "y = x @ weight.T + bias in one kernel (relu=True: then max(y, 0), fused)");
  m.def("linear_chain_forward", &linear_chain_py, py::arg("x"), py::arg("layers"),
        "inference through a run of Linear(+ReLU) layers: layers = [(weight, bias|None, relu)]");
  m.def("linear_backward", &linear_backward_py, py::arg("grad_output"), py::arg("x"),
        py::arg("weight"), py::arg("need_input_grad"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(), py::arg("overwrite_grad_weight") = false,
        py::arg("overwrite_grad_bias") = false,
        "Returns grad_input (or None); accumulates into grad_weight and grad_bias in place");
  m.def("linear_output_shape", [](const Shape& x, const Shape& w) {
    return linear_output_shape(x, w, nullptr);
  });
  m.def("matmul", &matmul_py, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false);
}

}  // namespace ember::bind
