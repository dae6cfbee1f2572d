// ember._core: registers each op family's bindings; nothing else lives here.
#include <pybind11/pybind11.h>

#include "core/parallel.h"

namespace py = pybind11;

namespace ember::bind {
void bind_linear(py::module_& m);
void bind_activation(py::module_& m);
void bind_loss(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_norm(py::module_& m);
void bind_embedding(py::module_& m);
void bind_rnn(py::module_& m);
void bind_optim(py::module_& m);
}  // namespace ember::bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "ember's C++ kernels (private: use the ember package)";
  m.def("set_num_threads", &ember::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &ember::num_threads);
  m.def("measured_team_size", &ember::measured_team_size,
        "OpenMP team size that a parallel loop with ample work gets now");
  ember::bind::bind_linear(m);
  ember::bind::bind_activation(m);
  ember::bind::bind_loss(m);
  ember::bind::bind_conv(m);
  ember::bind::bind_pool(m);
  ember::bind::bind_norm(m);
  ember::bind::bind_embedding(m);
  ember::bind::bind_rnn(m);
  ember::bind::bind_optim(m);
}
