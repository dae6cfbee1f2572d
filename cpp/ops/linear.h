// ember/ops/linear: y = x W^T + b, and matmul.
//
// Dimension legend: M = rows of x (batch, all leading dims flattened), K = in_features,
// N = out_features. Parameter gradients accumulate (+=); input gradients overwrite (=).
#pragma once

#include <cstdint>

namespace ember {

// y (M, N) = x (M, K) * w^T (K, N) + b (N) ; b may be null. relu: y = relu(y), fused (a
// Linear followed by ReLU in nn.Sequential runs as one call).
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t M, int64_t K, int64_t N,
                    bool relu = false);

// dx (M, K) = dy w            (overwrite; skipped when dx is null)
// dw (N, K) += dy^T x         (accumulate; skipped when dw is null)
// db (N)   += sum_rows dy     (accumulate; skipped when db is null)
// overwrite_dw / overwrite_db: = instead of += (a fresh, uninitialized gradient buffer: the first
// backward after zero_grad(set_to_none=True) then neither zero-fills nor re-reads it).
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t M,
                     int64_t K, int64_t N, bool overwrite_dw = false, bool overwrite_db = false);

// Batched matmul: c[i] (M, N) = op(a[i]) (M, K) * op(b[i]) (K, N) for i < batch; a stride of 0
// broadcasts one matrix over the batch. Overwrites c.
template <class T>
void matmul_forward(T* c, const T* a, const T* b, int64_t batch, int64_t M, int64_t K, int64_t N,
                    int64_t stride_a, int64_t stride_b, bool trans_a, bool trans_b);

}  // namespace ember
