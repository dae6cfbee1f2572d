// ember/ops/norm: layer norm and batch norm (one fused forward, one fused backward each), and the
// dropout mask multiply.
//
// Dimension legends:
//   layer norm: R = rows (all leading dims flattened), D = normalized size (trailing dims flattened)
//   batch norm: N = batch, C = channels, S = spatial size (L, or H*W; 1 for (N, C) input),
//               M = N*S values per channel
// Parameter gradients accumulate (+=); input gradients overwrite (=). Every pointer documented as
// nullable may be null, which skips that output (or, for gamma/beta, means gamma = 1, beta = 0).
// Statistics are accumulated in double for float and double alike.
#pragma once

#include <cstdint>

namespace ember {

// y (R, D) = (x - mean) * rstd * gamma + beta; saves mean (R) and rstd (R) = 1/sqrt(var + eps),
// var biased. gamma, beta (D) nullable.
template <class T>
void layer_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta,
                        int64_t R, int64_t D, double eps);

// dx (R, D) = rstd * (g - mean_D(g) - xhat * mean_D(g * xhat)), g = dy * gamma   (dx nullable)
// dgamma (D) += sum_R dy * xhat ; dbeta (D) += sum_R dy                          (both nullable)
// Parameter sums are reduced over fixed blocks of rows (block size independent of the thread
// count) and the block partials summed in block order, so they are bitwise reproducible.
template <class T>
void layer_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                         const T* rstd, const T* gamma, int64_t R, int64_t D);

// Training (use_batch_stats): mean/var over N and S per channel; saves mean (C) and
// rstd (C) = 1/sqrt(var_biased + eps); when running_mean/var are given (nullable) updates them in
// place: r = (1 - momentum) * r + momentum * stat, with the unbiased variance (M / (M - 1)).
// Eval: normalizes with the running statistics, and writes them (as mean, 1/sqrt(var + eps)) to
// mean and rstd for the backward.
template <class T>
void batch_norm_forward(T* y, T* mean, T* rstd, T* running_mean, T* running_var, const T* x,
                        const T* gamma, const T* beta, int64_t N, int64_t C, int64_t S,
                        bool use_batch_stats, double momentum, double eps);

// dx (N, C, S): batch stats: gamma*rstd*(dy - mean_M(dy) - xhat * mean_M(dy * xhat));
//               running stats: gamma*rstd*dy.                                    (dx nullable)
// dgamma (C) += sum dy * xhat ; dbeta (C) += sum dy                              (both nullable)
template <class T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                         const T* rstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                         bool use_batch_stats);

// Dropout multiply in one pass: u (n_mask) are uniform [0, 1) draws, one per group of `inner`
// consecutive elements (inner = 1: elementwise dropout; inner = H*W: whole channels).
// y[i*inner + j] = u[i] >= p ? x[i*inner + j] * scale : 0. The backward is the same call with the
// output gradient in place of x.
template <class T>
void dropout_apply(T* y, const T* x, const T* u, int64_t n_mask, int64_t inner, T p, T scale);

}  // namespace ember
