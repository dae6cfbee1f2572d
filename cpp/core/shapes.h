// ember/core/shapes: the only place output shapes are computed. Python asks _core; it never
// re-derives a size. Functions throw std::invalid_argument (ValueError in Python) with the op's
// name and the shapes involved.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember {

using Shape = std::vector<int64_t>;

inline std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '(';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ',';
  o << ')';
  return o.str();
}

[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// Linear: x (..., in) with weight (out, in) -> (..., out).
inline Shape linear_output_shape(const Shape& x, const Shape& w, const Shape* bias) {
  if (w.size() != 2)
    fail("linear: weight must be 2-D (out_features, in_features), got shape " + shape_str(w));
  if (x.empty())
    fail("linear: input must have at least 1 dimension, got a scalar");
  if (x.back() != w[1])
    fail("linear: input shape " + shape_str(x) + " does not match weight shape " + shape_str(w) +
         ": expected input last dimension " + std::to_string(w[1]) + ", got " +
         std::to_string(x.back()));
  if (bias && (bias->size() != 1 || (*bias)[0] != w[0]))
    fail("linear: bias shape " + shape_str(*bias) + " does not match weight shape " +
         shape_str(w) + ": expected (" + std::to_string(w[0]) + ",)");
  Shape out = x;
  out.back() = w[0];
  return out;
}

}  // namespace ember
