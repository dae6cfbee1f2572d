#include "bindings/common.h"

namespace ember::bind {

void bind_pool(py::module_& m) {}

}  // namespace ember::bind
