// ember/core/shapes_loss: shapes of the loss functions' inputs and outputs.
#pragma once

#include "core/shapes.h"

namespace ember {

// Pointwise losses: target (and a weight, once broadcast) must have the input's shape.
inline void check_same_shape(const char* op, const char* name, const Shape& input,
                             const Shape& other) {
  if (input != other)
    fail(std::string(op) + ": " + name + " shape " + shape_str(other) +
         " does not match input shape " + shape_str(input));
}

// Class losses: input (N, C, d1, ...) or unbatched (C,); class targets (N, d1, ...) or ();
// probability targets have the input's shape. The input is viewed as (N, C, inner).
struct ClassDims {
  int64_t N, C, inner;
  Shape per_sample;  // the loss shape for reduction='none' (== the class-target shape)
};

inline ClassDims class_loss_dims(const char* op, const Shape& input) {
  if (input.empty()) fail(std::string(op) + ": input must have at least 1 dimension, got a scalar");
  ClassDims r{1, 0, 1, {}};
  if (input.size() == 1) {
    r.C = input[0];
  } else {
    r.N = input[0];
    r.C = input[1];
    r.per_sample.push_back(input[0]);
    for (size_t i = 2; i < input.size(); ++i) {
      r.inner *= input[i];
      r.per_sample.push_back(input[i]);
    }
  }
  if (r.C == 0 && r.N * r.inner > 0)
    fail(std::string(op) + ": input of shape " + shape_str(input) + " has 0 classes");
  return r;
}

inline void check_class_target(const char* op, const Shape& input, const Shape& target,
                               const ClassDims& d, bool allow_prob) {
  if (target == d.per_sample) return;
  if (allow_prob && target == input) return;
  std::string expect = "expected " + shape_str(d.per_sample) + " for class indices";
  if (allow_prob) expect += " or " + shape_str(input) + " for class probabilities";
  fail(std::string(op) + ": target shape " + shape_str(target) + " does not match input shape " +
       shape_str(input) + " (" + expect + ")");
}

}  // namespace ember
