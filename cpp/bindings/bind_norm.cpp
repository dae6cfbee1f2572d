#include "bindings/common.h"

namespace ember::bind {

void bind_norm(py::module_& m) {}

}  // namespace ember::bind
