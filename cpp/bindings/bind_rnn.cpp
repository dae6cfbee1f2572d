#include "bindings/common.h"

namespace ember::bind {

void bind_rnn(py::module_& m) {}

}  // namespace ember::bind
