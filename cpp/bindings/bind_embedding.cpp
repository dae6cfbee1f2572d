#include "bindings/common.h"

namespace ember::bind {

void bind_embedding(py::module_& m) {}

}  // namespace ember::bind
