// ember/ops/embedding: lookup-table gather and its scatter-add backward.
//
// Dimension legend: V = num_embeddings (table rows), D = embedding_dim, n = number of ids.
// ids are validated (0 <= id < V) by the caller before these run.
#pragma once

#include <cstdint>

namespace ember {

// y (n, D) = weight[ids] (n rows gathered from weight (V, D)).
template <class T>
void embedding_forward(T* y, const T* weight, const int64_t* ids, int64_t n, int64_t D);

// dweight (V, D) += scatter of dy (n, D) into rows ids (accumulate); rows equal to padding_idx
// (pass -1 for none) receive nothing, rows never looked up are not touched at all.
// Columns are split over threads and every thread walks the ids in order, so repeated ids are
// summed in a fixed order: bitwise identical at any thread count.
template <class T>
void embedding_backward(T* dweight, const T* dy, const int64_t* ids, int64_t n, int64_t D,
                        int64_t padding_idx);

}  // namespace ember
