// Bindings for ops/conv: conv1d/conv2d (nd = 1 or 2) and conv_transpose1d/2d, forward and
// backward. Shapes and padding are resolved by core/shapes_conv.h only.
#include "bindings/common.h"
#include "core/shapes_conv.h"
#include "ops/conv.h"

namespace ember::bind {

namespace {

using IntVec = std::vector<int64_t>;

const char* conv_name(int nd) { return nd == 1 ? "conv1d" : "conv2d"; }
const char* convt_name(int nd) { return nd == 1 ? "conv_transpose1d" : "conv_transpose2d"; }

void check_nd(int nd) {
  if (nd != 1 && nd != 2) value_error("conv: nd must be 1 or 2, got " + std::to_string(nd));
}

// Optional bias array: checked dtype, returns its shape through *shape.
bool get_opt(const char* op, const char* name, const py::object& o, DType d, py::array& out,
             Shape& shape) {
  if (o.is_none()) return false;
  out = o.cast<py::array>();
  check_float(op, name, out, d);
  shape = shape_of(out);
  return true;
}

// A gradient buffer to accumulate into: same dtype, expected shape, writeable.
bool get_grad(const char* op, const char* name, const py::object& o, DType d, const Shape& expect,
              py::array& out) {
  if (o.is_none()) return false;
  out = o.cast<py::array>();
  check_float(op, name, out, d);
  if (shape_of(out) != expect)
    value_error(std::string(op) + ": " + name + " shape " + shape_str(out) +
                " does not match expected shape " + ember::shape_str(expect));
  if (!out.writeable()) value_error(std::string(op) + ": " + name + " is read-only");
  return true;
}

void check_grad_output(const char* op, const py::array& dy, const Shape& expect) {
  if (shape_of(dy) != expect)
    value_error(std::string(op) + ": grad_output shape " + shape_str(dy) +
                " does not match output shape " + ember::shape_str(expect));
}

py::array conv_forward_py(const py::array& x, const py::array& w, const py::object& b,
                          const IntVec& stride, const IntVec& padding, const IntVec& dilation,
                          int64_t groups, const std::string& padding_mode, int nd, bool relu) {
  check_nd(nd);
  const char* op = conv_name(nd);
  DType d = float_dtype(op, "input", x);
  check_float(op, "weight", w, d);
  py::array ba;
  Shape bs;
  const bool has_b = get_opt(op, "bias", b, d, ba, bs);
  const ConvGeom g = conv_geometry(op, shape_of(x), shape_of(w), has_b ? &bs : nullptr, stride,
                                   padding, dilation, groups, padding_mode, nd);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(conv_output_shape(g, nd));
    T* yp = y.mutable_data();
    const T *xp = cptr<T>(x), *wp = cptr<T>(w), *bp = has_b ? cptr<T>(ba) : nullptr;
    {
      py::gil_scoped_release nogil;
      conv2d_forward<T>(yp, xp, wp, bp, g, relu);
    }
    return y;
  });
}

py::object conv_backward_py(const py::array& dy, const py::array& x, const py::array& w,
                            const IntVec& stride, const IntVec& padding, const IntVec& dilation,
                            int64_t groups, const std::string& padding_mode, int nd, bool need_dx,
                            const py::object& dw, const py::object& db) {
  check_nd(nd);
  const char* op = nd == 1 ? "conv1d_backward" : "conv2d_backward";
  DType d = float_dtype(op, "grad_output", dy);
  check_float(op, "input", x, d);
  check_float(op, "weight", w, d);
  const Shape xs = shape_of(x), ws = shape_of(w);
  const ConvGeom g =
      conv_geometry(op, xs, ws, nullptr, stride, padding, dilation, groups, padding_mode, nd);
  check_grad_output(op, dy, conv_output_shape(g, nd));
  py::array dwa, dba;
  const bool has_dw = get_grad(op, "grad_weight", dw, d, ws, dwa);
  const bool has_db = get_grad(op, "grad_bias", db, d, Shape{g.OC}, dba);
  return dispatch(d, [&](auto tag) -> py::object {
    using T = decltype(tag);
    py::array dx;
    T* dxp = nullptr;
    if (need_dx) {
      dx = empty<T>(xs);
      dxp = mptr<T>(dx);
    }
    T* dwp = has_dw ? mptr<T>(dwa) : nullptr;
    T* dbp = has_db ? mptr<T>(dba) : nullptr;
    {
      py::gil_scoped_release nogil;
      conv2d_backward<T>(dxp, dwp, dbp, cptr<T>(dy), cptr<T>(x), cptr<T>(w), g);
    }
    if (need_dx) return std::move(dx);
    return py::none();
  });
}

py::array convt_forward_py(const py::array& x, const py::array& w, const py::object& b,
                           const IntVec& stride, const IntVec& padding,
                           const IntVec& output_padding, const IntVec& dilation, int64_t groups,
                           int nd) {
  check_nd(nd);
  const char* op = convt_name(nd);
  DType d = float_dtype(op, "input", x);
  check_float(op, "weight", w, d);
  py::array ba;
  Shape bs;
  const bool has_b = get_opt(op, "bias", b, d, ba, bs);
  const ConvGeom g = conv_transpose_geometry(op, shape_of(x), shape_of(w), has_b ? &bs : nullptr,
                                             stride, padding, output_padding, dilation, groups,
                                             nd);
  return dispatch(d, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = empty<T>(conv_transpose_output_shape(g, nd));
    T* yp = y.mutable_data();
    const T *xp = cptr<T>(x), *wp = cptr<T>(w), *bp = has_b ? cptr<T>(ba) : nullptr;
    {
      py::gil_scoped_release nogil;
      conv_transpose2d_forward<T>(yp, xp, wp, bp, g);
    }
    return y;
  });
}

py::object convt_backward_py(const py::array& dy, const py::array& x, const py::array& w,
                             const IntVec& stride, const IntVec& padding,
                             const IntVec& output_padding, const IntVec& dilation, int64_t groups,
                             int nd, bool need_dx, const py::object& dw, const py::object& db) {
  check_nd(nd);
  const char* op = nd == 1 ? "conv_transpose1d_backward" : "conv_transpose2d_backward";
  DType d = float_dtype(op, "grad_output", dy);
  check_float(op, "input", x, d);
  check_float(op, "weight", w, d);
  const Shape xs = shape_of(x), ws = shape_of(w);
  const ConvGeom g = conv_transpose_geometry(op, xs, ws, nullptr, stride, padding,
                                             output_padding, dilation, groups, nd);
  check_grad_output(op, dy, conv_transpose_output_shape(g, nd));
  py::array dwa, dba;
  const bool has_dw = get_grad(op, "grad_weight", dw, d, ws, dwa);
  const bool has_db = get_grad(op, "grad_bias", db, d, Shape{g.C}, dba);
  return dispatch(d, [&](auto tag) -> py::object {
    using T = decltype(tag);
    py::array dx;
    T* dxp = nullptr;
    if (need_dx) {
      dx = empty<T>(xs);
      dxp = mptr<T>(dx);
    }
    T* dwp = has_dw ? mptr<T>(dwa) : nullptr;
    T* dbp = has_db ? mptr<T>(dba) : nullptr;
    {
      py::gil_scoped_release nogil;
      conv_transpose2d_backward<T>(dxp, dwp, dbp, cptr<T>(dy), cptr<T>(x), cptr<T>(w), g);
    }
    if (need_dx) return std::move(dx);
    return py::none();
  });
}

// A convolution's geometry from shapes alone (no arrays): for the shape and method queries.
ConvGeom shape_geometry(const Shape& x, const Shape& w, const IntVec& stride,
                        const IntVec& padding, const IntVec& dilation, int64_t groups,
                        const std::string& padding_mode, int nd) {
  check_nd(nd);
  return conv_geometry(conv_name(nd), x, w, nullptr, stride, padding, dilation, groups,
                       padding_mode, nd);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv_forward", &conv_forward_py, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("padding_mode"), py::arg("nd"), py::arg("relu") = false,
        "conv1d (nd=1) / conv2d (nd=2) forward; padding_mode '' (use padding), 'same', 'valid'; "
        "relu=True: then max(y, 0), fused");
  m.def("conv_backward", &conv_backward_py, py::arg("grad_output"), py::arg("x"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("padding_mode"), py::arg("nd"), py::arg("need_input_grad"),
        py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none(),
        "Returns grad_input (or None); accumulates into grad_weight and grad_bias in place");
  m.def("conv_output_shape",
        [](const Shape& x, const Shape& w, const IntVec& stride, const IntVec& padding,
           const IntVec& dilation, int64_t groups, const std::string& padding_mode, int nd) {
          return conv_output_shape(
              shape_geometry(x, w, stride, padding, dilation, groups, padding_mode, nd), nd);
        });
  m.def("conv_methods",
        [](const Shape& x, const Shape& w, const IntVec& stride, const IntVec& padding,
           const IntVec& dilation, int64_t groups, const std::string& padding_mode, int nd) {
          const ConvMethods cm = conv2d_methods(
              shape_geometry(x, w, stride, padding, dilation, groups, padding_mode, nd));
          py::dict d;
          d["forward"] = cm.forward;
          d["input_grad"] = cm.input_grad;
          d["weight_grad"] = cm.weight_grad;
          return d;
        },
        "The method each pass of a float32 convolution of these shapes runs (for tests and "
        "diagnostics): 'winograd', 'packed', 'packed-scatter', 'direct' (forward and weight "
        "gradient) or 'im2col'");
  m.def("conv_transpose_forward", &convt_forward_py, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("nd"));
  m.def("conv_transpose_backward", &convt_backward_py, py::arg("grad_output"), py::arg("x"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("nd"), py::arg("need_input_grad"),
        py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none());
  m.def("conv_transpose_output_shape",
        [](const Shape& x, const Shape& w, const IntVec& stride, const IntVec& padding,
           const IntVec& output_padding, const IntVec& dilation, int64_t groups, int nd) {
          check_nd(nd);
          ConvGeom g = conv_transpose_geometry(convt_name(nd), x, w, nullptr, stride, padding,
                                               output_padding, dilation, groups, nd);
          return conv_transpose_output_shape(g, nd);
        });
}

}  // namespace ember::bind
