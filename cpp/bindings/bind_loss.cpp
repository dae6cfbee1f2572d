// Bindings of ops/loss. Forward functions return the loss (shape of the per-element or
// per-sample losses for reduction='none', a 0-d array otherwise); class losses also return what
// their backward needs. Backward functions return (grad_input, grad_target), None where not
// requested.
#include <cmath>

#include "bindings/common.h"
#include "core/shapes_loss.h"
#include "ops/loss.h"

namespace ember::bind {

namespace {

Reduction parse_reduction(const char* op, const std::string& r) {
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  value_error(std::string(op) + ": reduction must be 'none', 'mean' or 'sum', got '" + r + "'");
}

template <class T>
py::array_t<T> alloc_loss(Reduction r, const Shape& per) {
  return empty<T>(r == Reduction::none ? per : Shape{});
}

// An optional float argument: None -> empty array; else checked for dtype and `shape`.
py::array optional_float(const char* op, const char* name, const py::object& o, DType d,
                         const Shape& shape) {
  if (o.is_none()) return py::array();
  py::array a = o.cast<py::array>();
  check_float(op, name, a, d);
  if (shape_of(a) != shape)
    value_error(std::string(op) + ": " + name + " shape " + shape_str(a) + " does not match " +
                ember::shape_str(shape));
  return a;
}

// dy as a C-contiguous array of T holding `count` values (the forward output's size).
template <class T>
py::array_t<T, py::array::c_style> grad_values(const char* op, const py::object& dy,
                                               const Shape& expect) {
  auto g = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(dy);
  if (!g) type_error(std::string(op) + ": grad_output must be a float array");
  if (shape_of(g) != expect)
    value_error(std::string(op) + ": grad_output shape " + shape_str(g) +
                " does not match loss shape " + ember::shape_str(expect));
  return g;
}

py::object maybe(bool want, py::array& a) { return want ? py::object(a) : py::object(py::none()); }

// ---- pointwise losses -------------------------------------------------------------------------
// kind: 0 mse, 1 l1, 2 bce, 3 bce_with_logits
const char* kPointName[] = {"mse_loss", "l1_loss", "binary_cross_entropy",
                            "binary_cross_entropy_with_logits"};

py::array pointwise_forward(int kind, const py::array& x, const py::array& t,
                            const std::string& reduction, const py::object& weight,
                            const py::object& pos_weight) {
  const char* op = kPointName[kind];
  const Reduction red = parse_reduction(op, reduction);
  const DType d = float_dtype(op, "input", x);
  check_float(op, "target", t, d);
  const Shape xs = shape_of(x);
  check_same_shape(op, "target", xs, shape_of(t));
  const py::array w = optional_float(op, "weight", weight, d, xs);
  const py::array pw = optional_float(op, "pos_weight", pos_weight, d, xs);
  const int64_t n = x.size();
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T *xp = cptr<T>(x), *tp = cptr<T>(t);
    const T* wp = weight.is_none() ? nullptr : cptr<T>(w);
    const T* pwp = pos_weight.is_none() ? nullptr : cptr<T>(pw);
    if (kind == 2) {
      int64_t bad = first_outside_unit(xp, n);
      if (bad >= 0)
        value_error(std::string(op) + ": all elements of input should be between 0 and 1, got " +
                    std::to_string(static_cast<double>(xp[bad])) + " at flat index " +
                    std::to_string(bad));
      bad = first_outside_unit(tp, n);
      if (bad >= 0)
        value_error(std::string(op) + ": all elements of target should be between 0 and 1, got " +
                    std::to_string(static_cast<double>(tp[bad])) + " at flat index " +
                    std::to_string(bad));
    }
    auto out = alloc_loss<T>(red, xs);
    T* op_ = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      switch (kind) {
        case 0: mse_loss_forward<T>(op_, xp, tp, n, red); break;
        case 1: l1_loss_forward<T>(op_, xp, tp, n, red); break;
        case 2: bce_forward<T>(op_, xp, tp, wp, n, red); break;
        default: bce_with_logits_forward<T>(op_, xp, tp, wp, pwp, n, red); break;
      }
    }
    return std::move(out);
  });
}

py::tuple pointwise_backward(int kind, const py::object& dy, const py::array& x,
                             const py::array& t, const std::string& reduction,
                             const py::object& weight, const py::object& pos_weight,
                             bool need_dx, bool need_dt) {
  const char* op = kPointName[kind];
  const Reduction red = parse_reduction(op, reduction);
  const DType d = float_dtype(op, "input", x);
  check_float(op, "target", t, d);
  const Shape xs = shape_of(x);
  check_same_shape(op, "target", xs, shape_of(t));
  const py::array w = optional_float(op, "weight", weight, d, xs);
  const py::array pw = optional_float(op, "pos_weight", pos_weight, d, xs);
  const int64_t n = x.size();
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto g = grad_values<T>(op, dy, red == Reduction::none ? xs : Shape{});
    py::array dx = need_dx ? py::array(empty<T>(xs)) : py::array();
    py::array dt = need_dt ? py::array(empty<T>(xs)) : py::array();
    T* dxp = need_dx ? mptr<T>(dx) : nullptr;
    T* dtp = need_dt ? mptr<T>(dt) : nullptr;
    const T *xp = cptr<T>(x), *tp = cptr<T>(t), *gp = g.data();
    const T* wp = weight.is_none() ? nullptr : cptr<T>(w);
    const T* pwp = pos_weight.is_none() ? nullptr : cptr<T>(pw);
    {
      py::gil_scoped_release nogil;
      switch (kind) {
        case 0: mse_loss_backward<T>(dxp, dtp, gp, xp, tp, n, red); break;
        case 1: l1_loss_backward<T>(dxp, dtp, gp, xp, tp, n, red); break;
        case 2: bce_backward<T>(dxp, dtp, gp, xp, tp, wp, n, red); break;
        default: bce_with_logits_backward<T>(dxp, dtp, gp, xp, tp, wp, pwp, n, red); break;
      }
    }
    return py::make_tuple(maybe(need_dx, dx), maybe(need_dt, dt));
  });
}

// ---- class losses -----------------------------------------------------------------------------
// Class targets as C-contiguous int64, checked: integer dtype (or float holding whole numbers),
// every value in [0, C) or equal to ignore_index.
py::array_t<int64_t> class_targets(const char* op, const py::array& target, int64_t C,
                                   int64_t ignore_index) {
  py::array_t<int64_t, py::array::c_style> t;
  const char kind = target.dtype().kind();
  if (kind == 'f') {
    auto f = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(target);
    t = py::array_t<int64_t, py::array::c_style>(std::vector<py::ssize_t>(
        f.shape(), f.shape() + f.ndim()));
    const double* fp = f.data();
    int64_t* tp = t.mutable_data();
    for (py::ssize_t i = 0; i < f.size(); ++i) {
      const double v = fp[i];
      if (std::isnan(v))
        value_error(std::string(op) + ": target holds NaN at flat index " + std::to_string(i) +
                    "; class targets must be integers");
      if (v != std::floor(v) || std::fabs(v) > 9.0e15)
        value_error(std::string(op) + ": target holds " + std::to_string(v) + " at flat index " +
                    std::to_string(i) + "; class targets must be whole numbers");
      tp[i] = static_cast<int64_t>(v);
    }
  } else if (kind == 'i' || kind == 'u') {
    t = check_index(op, "target", target);
  } else {
    type_error(std::string(op) + ": target must hold integer class indices, got " +
               dtype_str(target));
  }
  const int64_t* tp = t.data();
  for (py::ssize_t i = 0; i < t.size(); ++i) {
    const int64_t v = tp[i];
    if ((v < 0 || v >= C) && v != ignore_index)
      index_error(std::string(op) + ": target " + std::to_string(v) + " at flat index " +
                  std::to_string(i) + " is out of bounds for " + std::to_string(C) +
                  " classes (valid: 0 to " + std::to_string(C - 1) + ", or ignore_index=" +
                  std::to_string(ignore_index) + ")");
  }
  return t;
}

py::array class_weight(const char* op, const py::object& weight, DType d, int64_t C) {
  return optional_float(op, "weight", weight, d, Shape{C});
}

// Returns (loss, lse, target): target is the checked int64 class-index array, or the float
// probability array when target has the input's shape and a float dtype.
py::tuple cross_entropy_forward_py(const py::array& x, const py::array& target,
                                   const py::object& weight, const std::string& reduction,
                                   int64_t ignore_index, double label_smoothing) {
  const char* op = "cross_entropy";
  const Reduction red = parse_reduction(op, reduction);
  const DType d = float_dtype(op, "input", x);
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    value_error(std::string(op) + ": label_smoothing must be between 0.0 and 1.0, got " +
                std::to_string(label_smoothing));
  const Shape xs = shape_of(x), ts = shape_of(target);
  const ClassDims cd = class_loss_dims(op, xs);
  const bool prob = target.dtype().kind() == 'f' && ts == xs;
  check_class_target(op, xs, ts, cd, true);
  const py::array w = class_weight(op, weight, d, cd.C);
  const ClassLoss p{cd.N, cd.C, cd.inner, red, ignore_index, label_smoothing};
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* wp = weight.is_none() ? nullptr : cptr<T>(w);
    auto out = alloc_loss<T>(red, cd.per_sample);
    Shape ls = cd.per_sample;
    ls.push_back(2);
    auto lse = empty<T>(ls);
    T *outp = out.mutable_data(), *lsep = lse.mutable_data();
    const T* xp = cptr<T>(x);
    if (prob) {
      check_float(op, "target", target, d);
      const T* tp = cptr<T>(target);
      py::gil_scoped_release nogil;
      cross_entropy_prob_forward<T>(outp, lsep, xp, tp, wp, p);
    } else {
      auto t = class_targets(op, target, cd.C, ignore_index);
      const int64_t* tp = t.data();
      {
        py::gil_scoped_release nogil;
        cross_entropy_forward<T>(outp, lsep, xp, tp, wp, p);
      }
      return py::make_tuple(std::move(out), std::move(lse), std::move(t));
    }
    return py::make_tuple(std::move(out), std::move(lse), target);
  });
}

py::tuple cross_entropy_backward_py(const py::object& dy, const py::array& x,
                                    const py::array& lse, const py::array& target,
                                    const py::object& weight, const std::string& reduction,
                                    int64_t ignore_index, double label_smoothing, bool need_dx,
                                    bool need_dt) {
  const char* op = "cross_entropy_backward";
  const Reduction red = parse_reduction(op, reduction);
  const DType d = float_dtype(op, "input", x);
  check_float(op, "lse", lse, d);
  const Shape xs = shape_of(x);
  const ClassDims cd = class_loss_dims(op, xs);
  const bool prob = target.dtype().kind() == 'f';
  if (prob) check_float(op, "target", target, d);
  else if (target.dtype().kind() != 'i' || target.itemsize() != 8 ||
           !(target.flags() & py::array::c_style))
    type_error(std::string(op) + ": target must be the int64 array cross_entropy returned");
  check_class_target(op, xs, shape_of(target), cd, prob);
  Shape lse_shape = cd.per_sample;
  lse_shape.push_back(2);
  if (shape_of(lse) != lse_shape) value_error(std::string(op) + ": lse has the wrong shape");
  const py::array w = class_weight(op, weight, d, cd.C);
  const ClassLoss p{cd.N, cd.C, cd.inner, red, ignore_index, label_smoothing};
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto g = grad_values<T>(op, dy, red == Reduction::none ? cd.per_sample : Shape{});
    const T* wp = weight.is_none() ? nullptr : cptr<T>(w);
    py::array dx = need_dx ? py::array(empty<T>(xs)) : py::array();
    py::array dt = (need_dt && prob) ? py::array(empty<T>(xs)) : py::array();
    T* dxp = need_dx ? mptr<T>(dx) : nullptr;
    T* dtp = (need_dt && prob) ? mptr<T>(dt) : nullptr;
    const T *xp = cptr<T>(x), *lp = cptr<T>(lse), *gp = g.data();
    {
      py::gil_scoped_release nogil;
      if (prob)
        cross_entropy_prob_backward<T>(dxp, dtp, gp, xp, lp, cptr<T>(target), wp, p);
      else if (dxp)
        cross_entropy_backward<T>(dxp, gp, xp, lp, cptr<int64_t>(target), wp, p);
    }
    return py::make_tuple(maybe(need_dx, dx), maybe(need_dt && prob, dt));
  });
}

// Returns (loss, target) with target the checked int64 array.
py::tuple nll_loss_forward_py(const py::array& x, const py::array& target,
                              const py::object& weight, const std::string& reduction,
                              int64_t ignore_index) {
  const char* op = "nll_loss";
  const Reduction red = parse_reduction(op, reduction);
  const DType d = float_dtype(op, "input", x);
  const Shape xs = shape_of(x);
  const ClassDims cd = class_loss_dims(op, xs);
  check_class_target(op, xs, shape_of(target), cd, false);
  const py::array w = class_weight(op, weight, d, cd.C);
  auto t = class_targets(op, target, cd.C, ignore_index);
  const ClassLoss p{cd.N, cd.C, cd.inner, red, ignore_index, 0.0};
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* wp = weight.is_none() ? nullptr : cptr<T>(w);
    auto out = alloc_loss<T>(red, cd.per_sample);
    T* outp = out.mutable_data();
    const T* xp = cptr<T>(x);
    const int64_t* tp = t.data();
    {
      py::gil_scoped_release nogil;
      nll_loss_forward<T>(outp, xp, tp, wp, p);
    }
    return py::make_tuple(std::move(out), t);
  });
}

py::array nll_loss_backward_py(const py::object& dy, const py::array& x, const py::array& target,
                               const py::object& weight, const std::string& reduction,
                               int64_t ignore_index) {
  const char* op = "nll_loss_backward";
  const Reduction red = parse_reduction(op, reduction);
  const DType d = float_dtype(op, "input", x);
  const Shape xs = shape_of(x);
  const ClassDims cd = class_loss_dims(op, xs);
  check_class_target(op, xs, shape_of(target), cd, false);
  if (target.dtype().kind() != 'i' || target.itemsize() != 8 ||
      !(target.flags() & py::array::c_style))
    type_error(std::string(op) + ": target must be the int64 array nll_loss returned");
  const py::array w = class_weight(op, weight, d, cd.C);
  const ClassLoss p{cd.N, cd.C, cd.inner, red, ignore_index, 0.0};
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto g = grad_values<T>(op, dy, red == Reduction::none ? cd.per_sample : Shape{});
    const T* wp = weight.is_none() ? nullptr : cptr<T>(w);
    auto dx = empty<T>(xs);
    T* dxp = dx.mutable_data();
    const T* gp = g.data();
    const int64_t* tp = cptr<int64_t>(target);
    {
      py::gil_scoped_release nogil;
      nll_loss_backward<T>(dxp, gp, tp, wp, p);
    }
    return std::move(dx);
  });
}

}  // namespace

void bind_loss(py::module_& m) {
  using py::arg;
  const auto none = py::none();
  for (int kind = 0; kind < 4; ++kind) {
    const std::string name = kPointName[kind];
    m.def((name + "_forward").c_str(),
          [kind](const py::array& x, const py::array& t, const std::string& r,
                 const py::object& w, const py::object& pw) {
            return pointwise_forward(kind, x, t, r, w, pw);
          },
          arg("input"), arg("target"), arg("reduction") = "mean", arg("weight") = none,
          arg("pos_weight") = none);
    m.def((name + "_backward").c_str(),
          [kind](const py::object& dy, const py::array& x, const py::array& t,
                 const std::string& r, const py::object& w, const py::object& pw, bool need_dx,
                 bool need_dt) {
            return pointwise_backward(kind, dy, x, t, r, w, pw, need_dx, need_dt);
          },
          arg("grad_output"), arg("input"), arg("target"), arg("reduction"), arg("weight"),
          arg("pos_weight"), arg("need_input_grad") = true, arg("need_target_grad") = false,
          "Returns (grad_input, grad_target); None where not requested");
  }
  m.def("cross_entropy_forward", &cross_entropy_forward_py, arg("input"), arg("target"),
        arg("weight") = none, arg("reduction") = "mean", arg("ignore_index") = -100,
        arg("label_smoothing") = 0.0, "Returns (loss, lse, checked_target)");
  m.def("cross_entropy_backward", &cross_entropy_backward_py, arg("grad_output"), arg("input"),
        arg("lse"), arg("target"), arg("weight"), arg("reduction"), arg("ignore_index"),
        arg("label_smoothing"), arg("need_input_grad") = true, arg("need_target_grad") = false);
  m.def("nll_loss_forward", &nll_loss_forward_py, arg("input"), arg("target"),
        arg("weight") = none, arg("reduction") = "mean", arg("ignore_index") = -100,
        "Returns (loss, checked_target)");
  m.def("nll_loss_backward", &nll_loss_backward_py, arg("grad_output"), arg("input"),
        arg("target"), arg("weight"), arg("reduction"), arg("ignore_index"));
}

}  // namespace ember::bind
