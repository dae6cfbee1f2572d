#include "bindings/common.h"
#include "core/shapes_norm.h"
#include "ops/norm.h"

namespace ember::bind {

namespace {

// An optional float array argument: None -> empty; else checked for dtype and (when given) shape.
py::array opt_array(const char* op, const char* name, const py::object& o, DType d,
                    const Shape* expect, bool writeable = false) {
  if (o.is_none()) return py::array();
  auto a = o.cast<py::array>();
  check_float(op, name, a, d);
  if (expect && shape_of(a) != *expect)
    value_error(std::string(op) + ": " + name + " shape " + shape_str(a) + " does not match " +
                ember::shape_str(*expect));
  if (writeable && !a.writeable()) value_error(std::string(op) + ": " + name + " is read-only");
  return a;
}

template <class T>
const T* cp_or_null(const py::object& o, const py::array& a) {
  return o.is_none() ? nullptr : cptr<T>(a);
}
template <class T>
T* mp_or_null(const py::object& o, py::array& a) {
  return o.is_none() ? nullptr : mptr<T>(a);
}

void check_stats(const char* op, const py::array& mean, const py::array& rstd, DType d,
                 int64_t n) {
  check_float(op, "mean", mean, d);
  check_float(op, "rstd", rstd, d);
  if (mean.size() != n || rstd.size() != n)
    value_error(std::string(op) + ": saved mean/rstd must hold " + std::to_string(n) +
                " values, got " + std::to_string(mean.size()) + " and " +
                std::to_string(rstd.size()));
}

void check_same(const char* op, const char* name, const py::array& a, const Shape& s) {
  if (shape_of(a) != s)
    value_error(std::string(op) + ": " + name + " shape " + shape_str(a) +
                " does not match input shape " + ember::shape_str(s));
}

py::tuple layer_norm_forward_py(const py::array& x, const Shape& normalized, const py::object& w,
                                const py::object& b, double eps) {
  const char* op = "layer_norm";
  DType d = float_dtype(op, "input", x);
  py::array wa = opt_array(op, "weight", w, d, nullptr), ba = opt_array(op, "bias", b, d, nullptr);
  Shape ws = w.is_none() ? Shape{} : shape_of(wa), bs = b.is_none() ? Shape{} : shape_of(ba);
  const Shape xs = shape_of(x);
  auto [R, D] = layer_norm_dims(xs, normalized, w.is_none() ? nullptr : &ws,
                                b.is_none() ? nullptr : &bs);
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto y = empty<T>(xs);
    auto mean = empty<T>({R}), rstd = empty<T>({R});
    T *yp = y.mutable_data(), *mp = mean.mutable_data(), *rp = rstd.mutable_data();
    const T *xp = cptr<T>(x), *wp = cp_or_null<T>(w, wa), *bp = cp_or_null<T>(b, ba);
    {
      py::gil_scoped_release nogil;
      layer_norm_forward<T>(yp, mp, rp, xp, wp, bp, R, D, eps);
    }
    return py::make_tuple(y, mean, rstd);
  });
}

py::object layer_norm_backward_py(const py::array& dy, const py::array& x, const py::array& mean,
                                  const py::array& rstd, const py::object& w, bool need_dx,
                                  const py::object& dw, const py::object& db) {
  const char* op = "layer_norm_backward";
  DType d = float_dtype(op, "grad_output", dy);
  check_float(op, "input", x, d);
  const Shape xs = shape_of(x);
  check_same(op, "grad_output", dy, xs);
  const int64_t R = mean.size();
  if (R <= 0 || x.size() % R != 0)
    value_error(std::string(op) + ": saved statistics do not fit input shape " + shape_str(x));
  const int64_t D = x.size() / R;
  check_stats(op, mean, rstd, d, R);
  const Shape ps{D};
  auto flat_ok = [&](const char* name, const py::object& o, bool wr) {
    py::array a = opt_array(op, name, o, d, nullptr, wr);
    if (!o.is_none() && a.size() != D)
      value_error(std::string(op) + ": " + name + " must hold " + std::to_string(D) +
                  " values, got shape " + shape_str(a));
    return a;
  };
  py::array wa = flat_ok("weight", w, false), dwa = flat_ok("grad_weight", dw, true),
            dba = flat_ok("grad_bias", db, true);
  return dispatch(d, [&](auto tag) -> py::object {
    using T = decltype(tag);
    py::array dx;
    T* dxp = nullptr;
    if (need_dx) {
      dx = empty<T>(xs);
      dxp = mptr<T>(dx);
    }
    T *dwp = mp_or_null<T>(dw, dwa), *dbp = mp_or_null<T>(db, dba);
    const T* wp = cp_or_null<T>(w, wa);
    {
      py::gil_scoped_release nogil;
      layer_norm_backward<T>(dxp, dwp, dbp, cptr<T>(dy), cptr<T>(x), cptr<T>(mean),
                             cptr<T>(rstd), wp, R, D);
    }
    if (need_dx) return std::move(dx);
    return py::none();
  });
}

py::tuple batch_norm_forward_py(const py::array& x, const py::object& w, const py::object& b,
                                const py::object& rm, const py::object& rv, bool training,
                                double momentum, double eps) {
  const char* op = "batch_norm";
  DType d = float_dtype(op, "input", x);
  const Shape xs = shape_of(x);
  auto [N, C, S] = batch_norm_dims(xs);
  const Shape cs{C};
  py::array wa = opt_array(op, "weight", w, d, &cs), ba = opt_array(op, "bias", b, d, &cs);
  py::array rma = opt_array(op, "running_mean", rm, d, &cs, training),
            rva = opt_array(op, "running_var", rv, d, &cs, training);
  if (rm.is_none() != rv.is_none())
    value_error("batch_norm: running_mean and running_var must be given together");
  if (!training && rm.is_none())
    value_error("batch_norm: running_mean and running_var are required when training=False");
  if (training && N * S <= 1)
    value_error("batch_norm: expected more than 1 value per channel when training, got input "
                "shape " + shape_str(x));
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto y = empty<T>(xs);
    auto mean = empty<T>(cs), rstd = empty<T>(cs);
    T *yp = y.mutable_data(), *mp = mean.mutable_data(), *rp = rstd.mutable_data();
    // In eval the running stats are only read; the kernel takes them as T* either way.
    T* rmp = rm.is_none() ? nullptr : static_cast<T*>(const_cast<void*>(rma.data()));
    T* rvp = rv.is_none() ? nullptr : static_cast<T*>(const_cast<void*>(rva.data()));
    const T *xp = cptr<T>(x), *wp = cp_or_null<T>(w, wa), *bp = cp_or_null<T>(b, ba);
    {
      py::gil_scoped_release nogil;
      // Training with running stats updates them in place; eval only reads them.
      batch_norm_forward<T>(yp, mp, rp, rmp, rvp, xp, wp, bp, N, C, S, training, momentum, eps);
    }
    return py::make_tuple(y, mean, rstd);
  });
}

py::object batch_norm_backward_py(const py::array& dy, const py::array& x, const py::array& mean,
                                  const py::array& rstd, const py::object& w, bool training,
                                  bool need_dx, const py::object& dw, const py::object& db) {
  const char* op = "batch_norm_backward";
  DType d = float_dtype(op, "grad_output", dy);
  check_float(op, "input", x, d);
  const Shape xs = shape_of(x);
  check_same(op, "grad_output", dy, xs);
  auto [N, C, S] = batch_norm_dims(xs);
  const Shape cs{C};
  check_stats(op, mean, rstd, d, C);
  py::array wa = opt_array(op, "weight", w, d, &cs), dwa = opt_array(op, "grad_weight", dw, d, &cs, true),
            dba = opt_array(op, "grad_bias", db, d, &cs, true);
  return dispatch(d, [&](auto tag) -> py::object {
    using T = decltype(tag);
    py::array dx;
    T* dxp = nullptr;
    if (need_dx) {
      dx = empty<T>(xs);
      dxp = mptr<T>(dx);
    }
    T *dwp = mp_or_null<T>(dw, dwa), *dbp = mp_or_null<T>(db, dba);
    const T* wp = cp_or_null<T>(w, wa);
    {
      py::gil_scoped_release nogil;
      batch_norm_backward<T>(dxp, dwp, dbp, cptr<T>(dy), cptr<T>(x), cptr<T>(mean),
                             cptr<T>(rstd), wp, N, C, S, training);
    }
    if (need_dx) return std::move(dx);
    return py::none();
  });
}

// y = x * (u >= p) * scale with one uniform draw u per group of x.size / u.size elements.
py::array dropout_apply_py(const py::array& x, const py::array& u, double p, double scale) {
  const char* op = "dropout";
  DType d = float_dtype(op, "input", x);
  check_float(op, "mask", u, d);
  const int64_t n = u.size();
  if ((n == 0 && x.size() != 0) || (n > 0 && x.size() % n != 0))
    value_error("dropout: mask shape " + shape_str(u) + " does not divide input shape " +
                shape_str(x));
  const int64_t inner = n > 0 ? x.size() / n : 0;
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(shape_of(x));
    T* yp = y.mutable_data();
    const T *xp = cptr<T>(x), *up = cptr<T>(u);
    {
      // The GIL is released around the kernel only: `return y` touches a Python object.
      py::gil_scoped_release nogil;
      dropout_apply<T>(yp, xp, up, n, inner, T(p), T(scale));
    }
    return y;
  });
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("layer_norm_forward", &layer_norm_forward_py, py::arg("x"), py::arg("normalized_shape"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
        "Returns (y, mean, rstd); mean and rstd are flat, one per row");
  m.def("layer_norm_backward", &layer_norm_backward_py, py::arg("grad_output"), py::arg("x"),
        py::arg("mean"), py::arg("rstd"), py::arg("weight"), py::arg("need_input_grad"),
        py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none(),
        "Returns grad_input (or None); accumulates into grad_weight and grad_bias in place");
  m.def("batch_norm_forward", &batch_norm_forward_py, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("running_mean"), py::arg("running_var"), py::arg("training"),
        py::arg("momentum"), py::arg("eps"),
        "Returns (y, mean, rstd); in training updates running_mean/var in place");
  m.def("batch_norm_backward", &batch_norm_backward_py, py::arg("grad_output"), py::arg("x"),
        py::arg("mean"), py::arg("rstd"), py::arg("weight"), py::arg("training"),
        py::arg("need_input_grad"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(),
        "Returns grad_input (or None); accumulates into grad_weight and grad_bias in place");
  m.def("dropout_apply", &dropout_apply_py, py::arg("x"), py::arg("u"), py::arg("p"),
        py::arg("scale"), "x * (u >= p) * scale, u broadcast over trailing groups");
}

}  // namespace ember::bind
