// Bindings of ops/activation. Forward: f(x, params) -> y. Backward: f(grad_output, saved,
// params) -> grad_input, where `saved` is the input x or the output y as the kernel documents.
#include "bindings/common.h"
#include "core/shapes_activation.h"
#include "ops/activation.h"

namespace ember::bind {

namespace {

// grad_output as a C-contiguous array of x's dtype and shape (converted only when it is not).
template <class T>
py::array_t<T, py::array::c_style> grad_like(const char* op, const py::object& g,
                                             const py::array& like) {
  auto out = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(g);
  if (!out) type_error(std::string(op) + ": grad_output must be a float array");
  if (shape_of(out) != shape_of(like))
    value_error(std::string(op) + ": grad_output shape " + shape_str(out) +
                " does not match shape " + shape_str(like));
  return out;
}

// y = kernel(x): kernel(T* y, const T* x, int64_t n) for the dtype of x.
template <class K>
py::array unary(const char* op, const py::array& x, K kernel) {
  const DType d = float_dtype(op, "input", x);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(shape_of(x));
    T* yp = y.mutable_data();
    const T* xp = cptr<T>(x);
    const int64_t n = x.size();
    {
      py::gil_scoped_release nogil;
      kernel(yp, xp, n);
    }
    return std::move(y);
  });
}

// True (and the value in *v) when g is x's shape and dtype but holds one value broadcast to every
// element (all strides 0, as np.broadcast_to makes for the gradient of a full sum or mean).
template <class T>
bool broadcast_scalar(const py::object& g, const py::array& like, T* v) {
  if (!py::isinstance<py::array>(g)) return false;
  const auto a = py::reinterpret_borrow<py::array>(g);
  if (!a.dtype().is(py::dtype::of<T>()) || a.size() < 2 || shape_of(a) != shape_of(like))
    return false;
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) > 1 && a.strides(i) != 0) return false;
  *v = *static_cast<const T*>(a.data());
  return true;
}

// dx = kernel(dy, saved): kernel(T* dx, G dy, const T* saved, int64_t n), with dy a contiguous
// array (G = const T*) or, for a broadcast scalar gradient, Fill<T> (nothing materialized).
template <class K>
py::array unary_backward(const char* op, const py::object& dy, const py::array& saved, K kernel) {
  const DType d = float_dtype(op, "saved", saved);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dx = empty<T>(shape_of(saved));
    T* dxp = dx.mutable_data();
    const T* sp = cptr<T>(saved);
    const int64_t n = saved.size();
    T value;
    if (broadcast_scalar<T>(dy, saved, &value)) {
      py::gil_scoped_release nogil;
      kernel(dxp, Fill<T>{value}, sp, n);
    } else {
      auto g = grad_like<T>(op, dy, saved);
      const T* gp = g.data();
      py::gil_scoped_release nogil;
      kernel(dxp, gp, sp, n);
    }
    return std::move(dx);
  });
}

// The kernels are templates; these generic lambdas pick the instantiation from the pointer type.
#define EMBER_FWD(name, ...) [&](auto* y, const auto* x, int64_t n) { name(y, x, n, ##__VA_ARGS__); }
#define EMBER_BWD(name, ...)                                                   \
  [&](auto* dx, auto dy, const auto* s, int64_t n) { name(dx, dy, s, n, ##__VA_ARGS__); }

py::array softmax_py(const py::array& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  const DType d = float_dtype(op, "input", x);
  const Dims3 v = reduce_dim_view(op, shape_of(x), dim);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(shape_of(x));
    T* yp = y.mutable_data();
    const T* xp = cptr<T>(x);
    {
      py::gil_scoped_release nogil;
      softmax_forward<T>(yp, xp, v.outer, v.D, v.inner, log);
    }
    return std::move(y);
  });
}

py::array softmax_backward_py(const py::object& dy, const py::array& y, int64_t dim, bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  const DType d = float_dtype(op, "output", y);
  const Dims3 v = reduce_dim_view(op, shape_of(y), dim);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto g = grad_like<T>(op, dy, y);
    auto dx = empty<T>(shape_of(y));
    T* dxp = dx.mutable_data();
    const T *gp = g.data(), *yp = cptr<T>(y);
    {
      py::gil_scoped_release nogil;
      softmax_backward<T>(dxp, gp, yp, v.outer, v.D, v.inner, log);
    }
    return std::move(dx);
  });
}

}  // namespace

void bind_activation(py::module_& m) {
  using py::arg;
  m.def("relu_forward", [](const py::array& x) { return unary("relu", x, EMBER_FWD(relu_forward)); },
        arg("x"));
  m.def("relu_backward", [](const py::object& dy, const py::array& y) {
    return unary_backward("relu_backward", dy, y, EMBER_BWD(relu_backward));
  }, arg("grad_output"), arg("output"));

  m.def("leaky_relu_forward", [](const py::array& x, double slope) {
    return unary("leaky_relu", x, [&](auto* y, const auto* xp, int64_t n) {
      using T = std::remove_pointer_t<decltype(y)>;
      leaky_relu_forward<T>(y, xp, n, T(slope));
    });
  }, arg("x"), arg("negative_slope"));
  m.def("leaky_relu_backward", [](const py::object& dy, const py::array& x, double slope) {
    return unary_backward("leaky_relu_backward", dy, x,
                          [&](auto* dx, auto g, const auto* xp, int64_t n) {
      using T = std::remove_pointer_t<decltype(dx)>;
      leaky_relu_backward<T>(dx, g, xp, n, T(slope));
    });
  }, arg("grad_output"), arg("input"), arg("negative_slope"));

  m.def("elu_forward", [](const py::array& x, double alpha) {
    return unary("elu", x, [&](auto* y, const auto* xp, int64_t n) {
      using T = std::remove_pointer_t<decltype(y)>;
      elu_forward<T>(y, xp, n, T(alpha));
    });
  }, arg("x"), arg("alpha"));
  m.def("elu_backward", [](const py::object& dy, const py::array& x, double alpha) {
    return unary_backward("elu_backward", dy, x,
                          [&](auto* dx, auto g, const auto* xp, int64_t n) {
      using T = std::remove_pointer_t<decltype(dx)>;
      elu_backward<T>(dx, g, xp, n, T(alpha));
    });
  }, arg("grad_output"), arg("input"), arg("alpha"));

  m.def("sigmoid_forward", [](const py::array& x) {
    return unary("sigmoid", x, EMBER_FWD(sigmoid_forward));
  }, arg("x"));
  m.def("sigmoid_backward", [](const py::object& dy, const py::array& y) {
    return unary_backward("sigmoid_backward", dy, y, EMBER_BWD(sigmoid_backward));
  }, arg("grad_output"), arg("output"));

  m.def("tanh_forward", [](const py::array& x) { return unary("tanh", x, EMBER_FWD(tanh_forward)); },
        arg("x"));
  m.def("tanh_backward", [](const py::object& dy, const py::array& y) {
    return unary_backward("tanh_backward", dy, y, EMBER_BWD(tanh_backward));
  }, arg("grad_output"), arg("output"));

  m.def("gelu_forward", [](const py::array& x, bool approx) {
    return unary("gelu", x, EMBER_FWD(gelu_forward, approx));
  }, arg("x"), arg("approximate_tanh"));
  m.def("gelu_backward", [](const py::object& dy, const py::array& x, bool approx) {
    return unary_backward("gelu_backward", dy, x, EMBER_BWD(gelu_backward, approx));
  }, arg("grad_output"), arg("input"), arg("approximate_tanh"));

  m.def("silu_forward", [](const py::array& x) { return unary("silu", x, EMBER_FWD(silu_forward)); },
        arg("x"));
  m.def("silu_backward", [](const py::object& dy, const py::array& x) {
    return unary_backward("silu_backward", dy, x, EMBER_BWD(silu_backward));
  }, arg("grad_output"), arg("input"));

  m.def("step_forward", [](const py::array& x, double value) {
    return unary("step", x, [&](auto* y, const auto* xp, int64_t n) {
      using T = std::remove_pointer_t<decltype(y)>;
      step_forward<T>(y, xp, n, T(value));
    });
  }, arg("x"), arg("value_at_zero"));

  m.def("softmax_forward", &softmax_py, arg("x"), arg("dim"), arg("log") = false);
  m.def("softmax_backward", &softmax_backward_py, arg("grad_output"), arg("output"), arg("dim"),
        arg("log") = false);
}

#undef EMBER_FWD
#undef EMBER_BWD

}  // namespace ember::bind
