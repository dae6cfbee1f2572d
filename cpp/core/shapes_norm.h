// ember/core/shapes_norm: shape rules of layer norm, batch norm, dropout and embedding.
#pragma once

#include <utility>

#include "core/shapes.h"

namespace ember {

// LayerNorm over the trailing normalized_shape: returns (R, D) = (rows, normalized size).
// weight and bias (nullable) must equal normalized_shape.
inline std::pair<int64_t, int64_t> layer_norm_dims(const Shape& x, const Shape& normalized,
                                                   const Shape* w, const Shape* b) {
  if (normalized.empty())
    fail("layer_norm: normalized_shape must have at least 1 dimension, got ()");
  for (auto d : normalized)
    if (d <= 0) fail("layer_norm: normalized_shape " + shape_str(normalized) +
                     " must have positive sizes");
  const size_t k = normalized.size();
  bool ok = x.size() >= k;
  for (size_t i = 0; ok && i < k; ++i) ok = x[x.size() - k + i] == normalized[i];
  if (!ok)
    fail("layer_norm: input shape " + shape_str(x) + " does not end with normalized_shape " +
         shape_str(normalized));
  if (w && *w != normalized)
    fail("layer_norm: weight shape " + shape_str(*w) + " does not match normalized_shape " +
         shape_str(normalized));
  if (b && *b != normalized)
    fail("layer_norm: bias shape " + shape_str(*b) + " does not match normalized_shape " +
         shape_str(normalized));
  int64_t R = 1, D = 1;
  for (size_t i = 0; i < x.size() - k; ++i) R *= x[i];
  for (auto d : normalized) D *= d;
  return {R, D};
}

struct BatchNormDims {
  int64_t N, C, S;
};

// BatchNorm over (N, C, *): per-channel statistics over N and the trailing (spatial) dims.
inline BatchNormDims batch_norm_dims(const Shape& x) {
  if (x.size() < 2)
    fail("batch_norm: input must have at least 2 dimensions (N, C, ...), got shape " +
         shape_str(x));
  int64_t S = 1;
  for (size_t i = 2; i < x.size(); ++i) S *= x[i];
  return {x[0], x[1], S};
}

// Embedding: ids of any shape, weight (V, D) -> ids.shape + (D,).
inline Shape embedding_output_shape(const Shape& ids, const Shape& w) {
  if (w.size() != 2)
    fail("embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape " +
         shape_str(w));
  Shape out = ids;
  out.push_back(w[1]);
  return out;
}

}  // namespace ember
