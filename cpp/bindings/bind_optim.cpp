#include "bindings/common.h"

namespace ember::bind {

void bind_optim(py::module_& m) {}

}  // namespace ember::bind
