#include "bindings/common.h"
#include "core/shapes_rnn.h"
#include "ops/rnn.h"

namespace ember::bind {

namespace {

RnnMode parse_mode(const std::string& m) {
  if (m == "RNN_TANH") return RnnMode::Tanh;
  if (m == "RNN_RELU") return RnnMode::Relu;
  if (m == "LSTM") return RnnMode::Lstm;
  if (m == "GRU") return RnnMode::Gru;
  value_error("rnn: mode must be one of 'RNN_TANH', 'RNN_RELU', 'LSTM', 'GRU', got '" + m + "'");
}

const char* op_name(RnnMode m, bool backward) {
  switch (m) {
    case RnnMode::Tanh:
    case RnnMode::Relu: return backward ? "rnn_backward" : "rnn";
    case RnnMode::Lstm: return backward ? "lstm_backward" : "lstm";
    default: return backward ? "gru_backward" : "gru";
  }
}

// An optional float argument: None, or an array of dtype d (C-contiguous).
struct Opt {
  py::array a;
  bool has = false;
  Shape shape;
  template <class T>
  const T* c() const { return has ? cptr<T>(a) : nullptr; }
  template <class T>
  T* m() { return has ? mptr<T>(a) : nullptr; }
};

Opt opt_arg(const char* op, const char* name, const py::object& o, DType d, bool writeable) {
  Opt r;
  if (o.is_none()) return r;
  r.a = o.cast<py::array>();
  check_float(op, name, r.a, d);
  if (writeable && !r.a.writeable())
    value_error(std::string(op) + ": argument '" + name + "' is read-only");
  r.has = true;
  r.shape = shape_of(r.a);
  return r;
}

void expect_shape(const char* op, const char* name, const Opt& a, const Shape& want) {
  if (a.has && a.shape != want)
    value_error(std::string(op) + ": argument '" + name + "' has shape " +
                ember::shape_str(a.shape) + ", expected " + ember::shape_str(want));
}

// Returns (hs, cs or None, gates or None, ghn or None); see ops/rnn.h for their layout.
py::tuple rnn_forward_py(const std::string& mode_s, const py::array& x, const py::object& h0o,
                         const py::object& c0o, const py::array& w_ih, const py::array& w_hh,
                         const py::object& b_iho, const py::object& b_hho, bool reverse,
                         bool training) {
  const RnnMode mode = parse_mode(mode_s);
  const char* op = op_name(mode, false);
  const bool lstm = mode == RnnMode::Lstm, gru = mode == RnnMode::Gru;
  DType d = float_dtype(op, "input", x);
  check_float(op, "weight_ih", w_ih, d);
  check_float(op, "weight_hh", w_hh, d);
  Opt h0 = opt_arg(op, "h0", h0o, d, false), c0 = opt_arg(op, "c0", c0o, d, false);
  Opt b_ih = opt_arg(op, "bias_ih", b_iho, d, false);
  Opt b_hh = opt_arg(op, "bias_hh", b_hho, d, false);
  if (c0.has && !lstm) value_error(std::string(op) + ": c0 is only used by LSTM");
  const RnnDims dm = rnn_dims(op, rnn_gates(mode), shape_of(x), shape_of(w_ih), shape_of(w_hh),
                              b_ih.has ? &b_ih.shape : nullptr, b_hh.has ? &b_hh.shape : nullptr,
                              h0.has ? &h0.shape : nullptr, c0.has ? &c0.shape : nullptr);
  const RnnSizes sz{mode, dm.S, dm.N, dm.I, dm.H, reverse};
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto hs = empty<T>({dm.S + 1, dm.N, dm.H});
    py::object cs = py::none(), gates_o = py::none(), ghn_o = py::none();
    py::array_t<T> csa, gates = empty<T>({dm.S, dm.N, dm.G}), ghn;
    if (lstm) {
      csa = empty<T>({dm.S + 1, dm.N, dm.H});
      cs = csa;
    }
    if (gru && training) {
      ghn = empty<T>({dm.S, dm.N, dm.H});
      ghn_o = ghn;
    }
    if (training && mode != RnnMode::Tanh && mode != RnnMode::Relu) gates_o = gates;
    T* hsp = hs.mutable_data();
    T* csp = lstm ? csa.mutable_data() : nullptr;
    T* gp = gates.mutable_data();
    T* ghnp = (gru && training) ? ghn.mutable_data() : nullptr;
    {
      py::gil_scoped_release nogil;
      rnn_forward<T>(hsp, csp, gp, ghnp, cptr<T>(x), h0.c<T>(), c0.c<T>(), cptr<T>(w_ih),
                     cptr<T>(w_hh), b_ih.c<T>(), b_hh.c<T>(), sz);
    }
    return py::make_tuple(hs, cs, gates_o, ghn_o);
  });
}

// Returns (dx or None, dh0 or None, dc0 or None); accumulates into the given weight/bias grads.
py::tuple rnn_backward_py(const std::string& mode_s, const py::object& dyo, const py::object& dhno,
                          const py::object& dcno,
                          const py::array& x, const py::array& hs, const py::object& cso,
                          const py::object& gateso, const py::object& ghno,
                          const py::array& w_ih, const py::array& w_hh, bool reverse,
                          bool need_dx, const py::object& dw_iho, const py::object& dw_hho,
                          const py::object& db_iho, const py::object& db_hho, bool need_dh0,
                          bool h0_zero) {
  const RnnMode mode = parse_mode(mode_s);
  const char* op = op_name(mode, true);
  const bool lstm = mode == RnnMode::Lstm, gru = mode == RnnMode::Gru;
  DType d = float_dtype(op, "input", x);
  check_float(op, "hs", hs, d);
  check_float(op, "weight_ih", w_ih, d);
  check_float(op, "weight_hh", w_hh, d);
  Opt dy = opt_arg(op, "grad_output", dyo, d, false), dcn = opt_arg(op, "grad_cn", dcno, d, false);
  Opt dhn = opt_arg(op, "grad_hn", dhno, d, false);
  Opt cs = opt_arg(op, "cs", cso, d, false), gates = opt_arg(op, "gates", gateso, d, false);
  Opt ghn = opt_arg(op, "ghn", ghno, d, false);
  Opt dw_ih = opt_arg(op, "grad_weight_ih", dw_iho, d, true);
  Opt dw_hh = opt_arg(op, "grad_weight_hh", dw_hho, d, true);
  Opt db_ih = opt_arg(op, "grad_bias_ih", db_iho, d, true);
  Opt db_hh = opt_arg(op, "grad_bias_hh", db_hho, d, true);
  const RnnDims dm = rnn_dims(op, rnn_gates(mode), shape_of(x), shape_of(w_ih), shape_of(w_hh),
                              nullptr, nullptr, nullptr, nullptr);
  const Shape state{dm.S + 1, dm.N, dm.H}, out{dm.S, dm.N, dm.H}, nh{dm.N, dm.H};
  if (shape_of(hs) != state)
    value_error(std::string(op) + ": argument 'hs' has shape " + shape_str(hs) + ", expected " +
                ember::shape_str(state));
  expect_shape(op, "grad_output", dy, out);
  expect_shape(op, "grad_cn", dcn, nh);
  expect_shape(op, "grad_hn", dhn, nh);
  expect_shape(op, "cs", cs, state);
  expect_shape(op, "gates", gates, Shape{dm.S, dm.N, dm.G});
  expect_shape(op, "ghn", ghn, out);
  expect_shape(op, "grad_weight_ih", dw_ih, shape_of(w_ih));
  expect_shape(op, "grad_weight_hh", dw_hh, shape_of(w_hh));
  expect_shape(op, "grad_bias_ih", db_ih, Shape{dm.G});
  expect_shape(op, "grad_bias_hh", db_hh, Shape{dm.G});
  if ((lstm && (!cs.has || !gates.has)) || (gru && (!gates.has || !ghn.has)))
    value_error(std::string(op) + ": the saved forward state is missing (was the forward run "
                "with training=False?)");
  const RnnSizes sz{mode, dm.S, dm.N, dm.I, dm.H, reverse, h0_zero};
  return dispatch(d, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    py::object dx_o = py::none(), dc0_o = py::none(), dh0_o = py::none();
    py::array_t<T> dx, dc0, dh0;
    if (need_dh0) {
      dh0 = empty<T>(nh);
      dh0_o = dh0;
    }
    if (need_dx) {
      dx = empty<T>(shape_of(x));
      dx_o = dx;
    }
    if (lstm) {
      dc0 = empty<T>(nh);
      dc0_o = dc0;
    }
    T* dxp = need_dx ? dx.mutable_data() : nullptr;
    T* dc0p = lstm ? dc0.mutable_data() : nullptr;
    T* dh0p = need_dh0 ? dh0.mutable_data() : nullptr;
    {
      py::gil_scoped_release nogil;
      rnn_backward<T>(dxp, dh0p, dc0p, dw_ih.m<T>(), dw_hh.m<T>(), db_ih.m<T>(), db_hh.m<T>(),
                      dy.c<T>(), dhn.c<T>(), dcn.c<T>(), cptr<T>(x), cptr<T>(hs), cs.c<T>(),
                      gates.c<T>(), ghn.c<T>(), cptr<T>(w_ih), cptr<T>(w_hh), sz);
    }
    return py::make_tuple(dx_o, dh0_o, dc0_o);
  });
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def("rnn_forward", &rnn_forward_py, py::arg("mode"), py::arg("x"), py::arg("h0"),
        py::arg("c0"), py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih"),
        py::arg("bias_hh"), py::arg("reverse") = false, py::arg("training") = true,
        "One recurrent layer-direction over a whole time-major sequence. Returns (hs, cs, "
        "gates, ghn): hs (S+1, N, H) holds h0 and every output state in time order.");
  m.def("rnn_backward", &rnn_backward_py, py::arg("mode"), py::arg("grad_output"),
        py::arg("grad_hn"), py::arg("grad_cn"), py::arg("x"), py::arg("hs"), py::arg("cs"),
        py::arg("gates"),
        py::arg("ghn"), py::arg("weight_ih"), py::arg("weight_hh"), py::arg("reverse"),
        py::arg("need_input_grad"), py::arg("grad_weight_ih") = py::none(),
        py::arg("grad_weight_hh") = py::none(), py::arg("grad_bias_ih") = py::none(),
        py::arg("grad_bias_hh") = py::none(), py::arg("need_h0_grad") = true,
        py::arg("h0_zero") = false,
        "Backward through time. grad_output (S, N, H), grad_hn and grad_cn (N, H) may each be "
        "None (zero). Returns (dx or None, dh0 or None, dc0 or None); accumulates weight and "
        "bias gradients in place. h0_zero: the forward ran from a zero initial state.");
}

}  // namespace ember::bind
