#include "bindings/common.h"

namespace ember::bind {

void bind_loss(py::module_& m) {}

}  // namespace ember::bind
