// ember._core: registers each op family's bindings; nothing else lives here.
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

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
void bind_reduce(py::module_& m);
}  // namespace ember::bind

namespace {

// glibc returns every freed block above its mmap threshold (128 KiB at first, raised up to 32 MiB
// as large blocks are freed) to the kernel, and trims the heap top past 2x that. A training step
// frees and re-allocates the same activation and gradient sizes every iteration, so each step paid
// the page faults of fresh memory again: W4 (1 thread) 3.0 -> 2.3 ms per step and W7 170 -> 156
// ms when freed memory is kept instead. So ember keeps blocks up to 32 MiB in the heap and lets up
// to 256 MiB of free heap stay mapped. Off with EMBER_MALLOC_TUNING=0; a user's own
// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / GLIBC_TUNABLES wins.
bool g_malloc_tuned = false;

void tune_malloc() {
#if defined(__GLIBC__)
  const char* off = std::getenv("EMBER_MALLOC_TUNING");
  if (off && std::strcmp(off, "0") == 0) return;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
      std::getenv("GLIBC_TUNABLES"))
    return;
  g_malloc_tuned = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 &&
                   mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
#endif
}

// Bytes the allocator holds in mmap'ed blocks now (-1 where unknown): for tests of the above.
long long mmapped_bytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return static_cast<long long>(mallinfo2().hblkhd);
#else
  return -1;
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  tune_malloc();
  m.def("malloc_tuned", [] { return g_malloc_tuned; },
        "True when ember raised glibc's mmap and trim thresholds at import");
  m.def("mmapped_bytes", &mmapped_bytes, "bytes glibc holds in mmap'ed blocks (-1: unknown)");
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
  ember::bind::bind_reduce(m);
}
