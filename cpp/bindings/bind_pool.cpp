// Bindings for ops/pool: max/avg pooling (nd = 1 or 2) and adaptive average pooling 2-D.
#include "bindings/common.h"
#include "core/shapes_conv.h"
#include "ops/pool.h"

namespace ember::bind {

namespace {

using IntVec = std::vector<int64_t>;

void check_nd(const char* op, int nd) {
  if (nd != 1 && nd != 2)
    value_error(std::string(op) + ": nd must be 1 or 2, got " + std::to_string(nd));
}

std::string pname(const char* base, int nd, const char* suffix = "") {
  return std::string(base) + (nd == 1 ? "1d" : "2d") + suffix;
}

void check_dy(const std::string& op, const py::array& dy, const Shape& expect) {
  if (shape_of(dy) != expect)
    value_error(op + ": grad_output shape " + shape_str(dy) + " does not match output shape " +
                ember::shape_str(expect));
}

py::tuple max_pool_forward_py(const py::array& x, const IntVec& kernel, const IntVec& stride,
                              const IntVec& padding, const IntVec& dilation, bool ceil_mode,
                              int nd, bool with_indices) {
  check_nd("max_pool", nd);
  const std::string op = pname("max_pool", nd);
  DType d = float_dtype(op.c_str(), "input", x);
  const PoolGeom g =
      pool_geometry(op.c_str(), shape_of(x), kernel, stride, padding, dilation, ceil_mode, nd);
  const Shape ys = pool_output_shape(g, nd);
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto y = empty<T>(ys);
    py::object idx = py::none();
    int64_t* ip = nullptr;
    if (with_indices) {
      auto ia = empty<int64_t>(ys);
      ip = ia.mutable_data();
      idx = ia;
    }
    T* yp = y.mutable_data();
    const T* xp = cptr<T>(x);
    {
      py::gil_scoped_release nogil;
      max_pool2d_forward<T>(yp, ip, xp, g);
    }
    return py::make_tuple(y, idx);
  });
}

py::array max_pool_backward_py(const py::array& dy, const py::array& indices,
                               const Shape& input_shape, const IntVec& kernel,
                               const IntVec& stride, const IntVec& padding,
                               const IntVec& dilation, bool ceil_mode, int nd,
                               const py::object& relu_output) {
  check_nd("max_pool", nd);
  const std::string op = pname("max_pool", nd, "_backward");
  DType d = float_dtype(op.c_str(), "grad_output", dy);
  const PoolGeom g = pool_geometry(op.c_str(), input_shape, kernel, stride, padding, dilation,
                                   ceil_mode, nd);
  const Shape ys = pool_output_shape(g, nd);
  check_dy(op, dy, ys);
  auto idx = check_index(op.c_str(), "indices", indices);
  if (shape_of(idx) != ys)
    value_error(op + ": indices shape " + shape_str(idx) + " does not match output shape " +
                ember::shape_str(ys));
  // relu_output: the pooled output of relu(x), when the pool's input was a ReLU's output whose
  // backward is to be applied here too (nn.Sequential's Conv + ReLU + MaxPool step).
  py::array mask;
  const bool has_mask = !relu_output.is_none();
  if (has_mask) {
    mask = relu_output.cast<py::array>();
    check_float(op.c_str(), "relu_output", mask, d);
    if (shape_of(mask) != ys)
      value_error(op + ": relu_output shape " + shape_str(mask) + " does not match output shape " +
                  ember::shape_str(ys));
  }
  // Indices come from the user when return_indices is used elsewhere: the kernel bound-checks
  // them (in its pass over them); on failure the first bad one is reported.
  const int64_t plane = g.H * g.W;
  const int64_t* ip = idx.data();
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dx = empty<T>(input_shape);
    T* dxp = dx.mutable_data();
    const T* dyp = cptr<T>(dy);
    bool in_range;
    {
      py::gil_scoped_release nogil;
      in_range = max_pool2d_backward<T>(dxp, dyp, ip, g, has_mask ? cptr<T>(mask) : nullptr);
    }
    if (!in_range)
      for (py::ssize_t i = 0; i < idx.size(); ++i)
        if (ip[i] < 0 || ip[i] >= plane)
          index_error(op + ": index " + std::to_string(ip[i]) +
                      " is out of range for an input plane of " + std::to_string(plane) +
                      " elements");
    return dx;
  });
}

py::array avg_pool_forward_py(const py::array& x, const IntVec& kernel, const IntVec& stride,
                              const IntVec& padding, bool ceil_mode, bool count_include_pad,
                              int64_t divisor_override, int nd) {
  check_nd("avg_pool", nd);
  const std::string op = pname("avg_pool", nd);
  DType d = float_dtype(op.c_str(), "input", x);
  const PoolGeom g =
      pool_geometry(op.c_str(), shape_of(x), kernel, stride, padding, {1}, ceil_mode, nd);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(pool_output_shape(g, nd));
    T* yp = y.mutable_data();
    const T* xp = cptr<T>(x);
    {
      py::gil_scoped_release nogil;
      avg_pool2d_forward<T>(yp, xp, g, count_include_pad, divisor_override);
    }
    return y;
  });
}

py::array avg_pool_backward_py(const py::array& dy, const Shape& input_shape,
                               const IntVec& kernel, const IntVec& stride, const IntVec& padding,
                               bool ceil_mode, bool count_include_pad, int64_t divisor_override,
                               int nd) {
  check_nd("avg_pool", nd);
  const std::string op = pname("avg_pool", nd, "_backward");
  DType d = float_dtype(op.c_str(), "grad_output", dy);
  const PoolGeom g =
      pool_geometry(op.c_str(), input_shape, kernel, stride, padding, {1}, ceil_mode, nd);
  check_dy(op, dy, pool_output_shape(g, nd));
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dx = empty<T>(input_shape);
    T* dxp = dx.mutable_data();
    const T* dyp = cptr<T>(dy);
    {
      py::gil_scoped_release nogil;
      avg_pool2d_backward<T>(dxp, dyp, g, count_include_pad, divisor_override);
    }
    return dx;
  });
}

py::array adaptive_avg_forward_py(const py::array& x, const IntVec& output_size, int nd) {
  check_nd("adaptive_avg_pool", nd);
  const std::string op = pname("adaptive_avg_pool", nd);
  DType d = float_dtype(op.c_str(), "input", x);
  const PoolGeom g = adaptive_pool_geometry(op.c_str(), shape_of(x), output_size, nd);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(pool_output_shape(g, nd));
    T* yp = y.mutable_data();
    const T* xp = cptr<T>(x);
    {
      py::gil_scoped_release nogil;
      adaptive_avg_pool2d_forward<T>(yp, xp, g);
    }
    return y;
  });
}

py::array adaptive_avg_backward_py(const py::array& dy, const Shape& input_shape,
                                   const IntVec& output_size, int nd) {
  check_nd("adaptive_avg_pool", nd);
  const std::string op = pname("adaptive_avg_pool", nd, "_backward");
  DType d = float_dtype(op.c_str(), "grad_output", dy);
  const PoolGeom g = adaptive_pool_geometry(op.c_str(), input_shape, output_size, nd);
  check_dy(op, dy, pool_output_shape(g, nd));
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dx = empty<T>(input_shape);
    T* dxp = dx.mutable_data();
    const T* dyp = cptr<T>(dy);
    {
      py::gil_scoped_release nogil;
      adaptive_avg_pool2d_backward<T>(dxp, dyp, g);
    }
    return dx;
  });
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool_forward", &max_pool_forward_py, py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"),
        py::arg("nd"), py::arg("with_indices") = true,
        "Returns (output, indices or None); indices are flat positions in each input plane");
  m.def("max_pool_backward", &max_pool_backward_py, py::arg("grad_output"), py::arg("indices"),
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("ceil_mode"), py::arg("nd"),
        py::arg("relu_output") = py::none(),
        "dx; with relu_output (the pooled relu(x)), relu's backward is applied as well");
  m.def("avg_pool_forward", &avg_pool_forward_py, py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("nd"));
  m.def("avg_pool_backward", &avg_pool_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"),
        py::arg("nd"));
  m.def("adaptive_avg_pool_forward", &adaptive_avg_forward_py, py::arg("x"),
        py::arg("output_size"), py::arg("nd"));
  m.def("adaptive_avg_pool_backward", &adaptive_avg_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("output_size"), py::arg("nd"));
}

}  // namespace ember::bind
