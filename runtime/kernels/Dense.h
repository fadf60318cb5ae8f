//===- Dense.h - host kernels of the dense kiln ops -----------------------===//
//
// f32, row-major, sizes explicit. Each function is the host kernel of one op
// of KilnDenseOps.td / KilnGradOps.td and overwrites its outputs (gradients
// are not accumulated into). Leading dimensions are flattened into `rows`
// (or `tokens`); ids are int32.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DENSE_H
#define KILN_RUNTIME_DENSE_H

#include <cstdint>

namespace kiln::kernels {

/// kiln.embedding: out[t, :] = table[ids[t], :]. table [vocab, hidden].
void embeddingForward(float *out, const float *table, const int32_t *ids, int64_t tokens,
                      int64_t vocab, int64_t hidden);
/// kiln.embedding_grad: dtable[v, :] = sum_{t : ids[t] = v} dout[t, :], in
/// token order (parallel over hidden columns, so no races).
void embeddingBackward(float *dtable, const float *dout, const int32_t *ids, int64_t tokens,
                       int64_t vocab, int64_t hidden);

/// kiln.linear: y [rows, out] = x [rows, in] @ w [out, in]^T.
void linearForward(float *y, const float *x, const float *w, int64_t rows, int64_t in,
                   int64_t out);
/// kiln.linear_dgrad: dx [rows, in] = dy [rows, out] @ w [out, in].
void linearDgrad(float *dx, const float *dy, const float *w, int64_t rows, int64_t in,
                 int64_t out);
/// kiln.linear_wgrad: dw [out, in] = dy [rows, out]^T @ x [rows, in].
void linearWgrad(float *dw, const float *dy, const float *x, int64_t rows, int64_t in,
                 int64_t out);

/// kiln.rms_norm: y = x / sqrt(mean(x^2) + epsilon) * gamma, per row of
/// `hidden`.
void rmsNormForward(float *y, const float *x, const float *gamma, int64_t rows,
                    int64_t hidden, float epsilon);
/// kiln.rms_norm_grad: dx and dgamma (summed over rows in row order).
void rmsNormBackward(float *dx, float *dgamma, const float *dy, const float *x,
                     const float *gamma, int64_t rows, int64_t hidden, float epsilon);

/// kiln.silu and kiln.silu_grad over n elements.
void siluForward(float *y, const float *x, int64_t n);
void siluBackward(float *dx, const float *dy, const float *x, int64_t n);

/// kiln.swiglu (silu(gate) * up) and kiln.swiglu_grad over n elements.
void swigluForward(float *y, const float *gate, const float *up, int64_t n);
void swigluBackward(float *dgate, float *dup, const float *dy, const float *gate,
                    const float *up, int64_t n);

/// kiln.scale: y = factor * x over n elements (y may alias x).
void scale(float *y, const float *x, int64_t n, float factor);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_DENSE_H
