#include "bindings/common.h"

namespace ember::bind {

void bind_conv(py::module_& m) {}

}  // namespace ember::bind
