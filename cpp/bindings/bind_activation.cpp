#include "bindings/common.h"

namespace ember::bind {

void bind_activation(py::module_& m) {}

}  // namespace ember::bind
