// Bindings for the fused optimizer updates (ops/optim): every array is checked (dtype, contiguity,
// writeability, shape) before the GIL is released around the kernel; the kernels write in place.
#include <cmath>
#include <limits>

#include "bindings/common.h"
#include "ops/optim.h"

namespace ember::bind {

namespace {

// The parameter: fixes the dtype; must be writeable.
DType check_param(const char* op, const py::array& p) {
  DType d = float_dtype(op, "param", p);
  if (!p.writeable()) value_error(std::string(op) + ": param is read-only");
  return d;
}

// An array that must match p's dtype and shape; `writable` for state buffers.
void check_like(const char* op, const char* name, const py::array& a, const py::array& p, DType d,
                bool writable) {
  check_float(op, name, a, d);
  if (shape_of(a) != shape_of(p))
    value_error(std::string(op) + ": " + name + " shape " + shape_str(a) +
                " does not match param shape " + shape_str(p));
  if (writable && !a.writeable()) value_error(std::string(op) + ": " + name + " is read-only");
}

// An optional state buffer: None -> null array (returns false).
bool opt_like(const char* op, const char* name, const py::object& o, py::array& out,
              const py::array& p, DType d) {
  if (o.is_none()) return false;
  out = o.cast<py::array>();
  check_like(op, name, out, p, d, true);
  return true;
}

template <class T>
T* mp_or_null(py::array& a, bool has) {
  return has ? mptr<T>(a) : nullptr;
}

void sgd_step_py(py::array p, const py::array& g, const py::object& buf, double lr,
                 double momentum, double dampening, double weight_decay, bool nesterov,
                 bool maximize, bool first_step) {
  const char* op = "sgd_step";
  DType d = check_param(op, p);
  check_like(op, "grad", g, p, d, false);
  py::array b;
  const bool has_b = opt_like(op, "momentum_buffer", buf, b, p, d);
  if (momentum != 0 && !has_b) value_error("sgd_step: momentum != 0 needs a momentum_buffer");
  SgdOptions o{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step};
  dispatch(d, [&](auto tag) {
    using T = decltype(tag);
    T* pp = mptr<T>(p);
    const T* gp = cptr<T>(g);
    T* bp = mp_or_null<T>(b, has_b);
    py::gil_scoped_release nogil;
    sgd_update<T>(pp, gp, bp, p.size(), o);
  });
}

void adam_step_py(py::array p, const py::array& g, py::array m, py::array v,
                  const py::object& vmax, int64_t step, double lr, double beta1, double beta2,
                  double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled) {
  const char* op = "adam_step";
  DType d = check_param(op, p);
  check_like(op, "grad", g, p, d, false);
  check_like(op, "exp_avg", m, p, d, true);
  check_like(op, "exp_avg_sq", v, p, d, true);
  py::array vm;
  const bool has_vm = opt_like(op, "max_exp_avg_sq", vmax, vm, p, d);
  if (amsgrad && !has_vm) value_error("adam_step: amsgrad needs max_exp_avg_sq");
  if (step < 1) value_error("adam_step: step must be >= 1, got " + std::to_string(step));
  AdamOptions o{lr, beta1, beta2, eps, weight_decay, step, amsgrad, maximize, decoupled};
  dispatch(d, [&](auto tag) {
    using T = decltype(tag);
    T *pp = mptr<T>(p), *mp = mptr<T>(m), *vp = mptr<T>(v), *vmp = mp_or_null<T>(vm, has_vm);
    const T* gp = cptr<T>(g);
    py::gil_scoped_release nogil;
    adam_update<T>(pp, gp, mp, vp, vmp, p.size(), o);
  });
}

void rmsprop_step_py(py::array p, const py::array& g, py::array sq, const py::object& gavg,
                     const py::object& buf, double lr, double alpha, double eps,
                     double weight_decay, double momentum, bool centered, bool maximize) {
  const char* op = "rmsprop_step";
  DType d = check_param(op, p);
  check_like(op, "grad", g, p, d, false);
  check_like(op, "square_avg", sq, p, d, true);
  py::array ga, b;
  const bool has_ga = opt_like(op, "grad_avg", gavg, ga, p, d);
  const bool has_b = opt_like(op, "momentum_buffer", buf, b, p, d);
  if (centered && !has_ga) value_error("rmsprop_step: centered needs grad_avg");
  if (momentum > 0 && !has_b) value_error("rmsprop_step: momentum > 0 needs a momentum_buffer");
  RmspropOptions o{lr, alpha, eps, weight_decay, momentum, centered, maximize};
  dispatch(d, [&](auto tag) {
    using T = decltype(tag);
    T *pp = mptr<T>(p), *sp = mptr<T>(sq);
    T *gap = mp_or_null<T>(ga, has_ga), *bp = mp_or_null<T>(b, has_b);
    const T* gp = cptr<T>(g);
    py::gil_scoped_release nogil;
    rmsprop_update<T>(pp, gp, sp, gap, bp, p.size(), o);
  });
}

void adagrad_step_py(py::array p, const py::array& g, py::array sum, int64_t step, double lr,
                     double lr_decay, double weight_decay, double eps, bool maximize) {
  const char* op = "adagrad_step";
  DType d = check_param(op, p);
  check_like(op, "grad", g, p, d, false);
  check_like(op, "sum", sum, p, d, true);
  if (step < 1) value_error("adagrad_step: step must be >= 1, got " + std::to_string(step));
  AdagradOptions o{lr, lr_decay, weight_decay, eps, step, maximize};
  dispatch(d, [&](auto tag) {
    using T = decltype(tag);
    T *pp = mptr<T>(p), *sp = mptr<T>(sum);
    const T* gp = cptr<T>(g);
    py::gil_scoped_release nogil;
    adagrad_update<T>(pp, gp, sp, p.size(), o);
  });
}

// The p-norm of all arrays together (as if concatenated), in double. root=false returns the
// reduction before the final root (sum |x|^p, or max/min |x|, or the nonzero count).
double norm_py(const std::vector<py::array>& xs, double p, bool root) {
  const char* op = "grad_norm";
  const double inf = std::numeric_limits<double>::infinity();
  const bool is_max = p == inf, is_min = p == -inf;
  if (std::isnan(p)) value_error("grad_norm: norm_type must not be NaN");
  std::vector<DType> ds;
  for (const auto& x : xs) ds.push_back(float_dtype(op, "tensors", x));
  double r = is_min ? inf : 0.0;
  for (size_t k = 0; k < xs.size(); ++k) {
    double part = dispatch(ds[k], [&](auto tag) {
      using T = decltype(tag);
      const T* xp = cptr<T>(xs[k]);
      const int64_t n = xs[k].size();
      py::gil_scoped_release nogil;
      return norm_partial<T>(xp, n, p);
    });
    if (std::isnan(part) || std::isnan(r))
      r = std::numeric_limits<double>::quiet_NaN();
    else if (is_max)
      r = std::max(r, part);
    else if (is_min)
      r = std::min(r, part);
    else
      r += part;
  }
  if (!root || is_max || is_min || p == 0 || p == 1) return r;
  if (p == 2) return std::sqrt(r);
  return std::pow(r, 1.0 / p);
}

void scale_py(const std::vector<py::array>& xs, double s) {
  for (auto x : xs) {
    DType d = float_dtype("scale_", "tensors", x);
    if (!x.writeable()) value_error("scale_: a tensor is read-only");
    dispatch(d, [&](auto tag) {
      using T = decltype(tag);
      T* xp = mptr<T>(x);
      py::gil_scoped_release nogil;
      scale_inplace<T>(xp, x.size(), s);
    });
  }
}

void clamp_py(const std::vector<py::array>& xs, double lo, double hi) {
  for (auto x : xs) {
    DType d = float_dtype("clamp_", "tensors", x);
    if (!x.writeable()) value_error("clamp_: a tensor is read-only");
    dispatch(d, [&](auto tag) {
      using T = decltype(tag);
      T* xp = mptr<T>(x);
      py::gil_scoped_release nogil;
      clamp_inplace<T>(xp, x.size(), lo, hi);
    });
  }
}

void penalty_backward_py(py::array dx, const py::array& x, double coef, int kind) {
  const char* op = "penalty_backward";
  if (kind != 1 && kind != 2) value_error("penalty_backward: kind must be 1 (L1) or 2 (L2)");
  DType d = float_dtype(op, "grad", dx);
  if (!dx.writeable()) value_error("penalty_backward: grad is read-only");
  check_float(op, "param", x, d);
  if (shape_of(x) != shape_of(dx))
    value_error(std::string(op) + ": grad shape " + shape_str(dx) +
                " does not match param shape " + shape_str(x));
  dispatch(d, [&](auto tag) {
    using T = decltype(tag);
    T* dp = mptr<T>(dx);
    const T* xp = cptr<T>(x);
    py::gil_scoped_release nogil;
    penalty_backward<T>(dp, xp, x.size(), coef, kind);
  });
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", &sgd_step_py, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
        py::arg("nesterov"), py::arg("maximize"), py::arg("first_step"),
        "Fused in-place SGD update of one parameter (torch.optim.SGD's math)");
  m.def("adam_step", &adam_step_py, py::arg("param"), py::arg("grad"), py::arg("exp_avg"),
        py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"), py::arg("step"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("amsgrad"), py::arg("maximize"), py::arg("decoupled_weight_decay"),
        "Fused in-place Adam/AdamW update of one parameter; step counts from 1");
  m.def("rmsprop_step", &rmsprop_step_py, py::arg("param"), py::arg("grad"),
        py::arg("square_avg"), py::arg("grad_avg"), py::arg("momentum_buffer"), py::arg("lr"),
        py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
        py::arg("centered"), py::arg("maximize"),
        "Fused in-place RMSprop update of one parameter");
  m.def("adagrad_step", &adagrad_step_py, py::arg("param"), py::arg("grad"), py::arg("sum"),
        py::arg("step"), py::arg("lr"), py::arg("lr_decay"), py::arg("weight_decay"),
        py::arg("eps"), py::arg("maximize"), "Fused in-place Adagrad update of one parameter");
  m.def("grad_norm", &norm_py, py::arg("tensors"), py::arg("norm_type") = 2.0,
        py::arg("root") = true, "p-norm of several arrays taken together, in double");
  m.def("scale_", &scale_py, py::arg("tensors"), py::arg("factor"), "x *= factor, in place");
  m.def("clamp_", &clamp_py, py::arg("tensors"), py::arg("min"), py::arg("max"),
        "x = clamp(x, min, max), in place");
  m.def("penalty_backward", &penalty_backward_py, py::arg("grad"), py::arg("param"),
        py::arg("coef"), py::arg("kind"),
        "grad += coef * sign(param) (kind 1) or coef * param (kind 2), in place");
}

}  // namespace ember::bind
