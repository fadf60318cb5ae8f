//===- NarrowGemm.h - bf16 / f16 overloads of the GEMM kernels ------------===//
//
// The linear and grouped-matmul kernels of Dense.h and MoE.h for operands
// and results that kiln-mixed-precision lowered to bf16 or f16 (all of one
// type). bf16 runs through oneDNN where Kiln has it (OneDnnMatmul.h; the
// grouped GEMMs one matmul per expert). f16, and bf16 without oneDNN, widen
// the operands to f32, run the f32 kernel, and store the result rounded to
// the narrow type: the products of two bf16 (8-bit significands) or two f16
// (11-bit) values are exact in f32, so either way this is a narrow GEMM with
// f32 accumulation, as tensor cores compute it; only the summation order
// differs. Exact up to that order, then one rounding per result.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_NARROWGEMM_H
#define KILN_RUNTIME_NARROWGEMM_H

#include "runtime/kernels/PrecisionMath.h"

#include <cstdint>
#include <string>

namespace kiln::kernels {

#define KILN_NARROW_GEMMS(T)                                                                 \
  void linearForward(T *y, const T *x, const T *w, int64_t rows, int64_t in, int64_t out);   \
  void linearDgrad(T *dx, const T *dy, const T *w, int64_t rows, int64_t in, int64_t out);   \
  void linearWgrad(T *dw, const T *dy, const T *x, int64_t rows, int64_t in, int64_t out);   \
  bool groupedMatmul(const T *x, const T *weight, const int32_t *offsets, int64_t rows,      \
                     int64_t k, int64_t experts, int64_t n, T *out,                          \
                     std::string *error = nullptr);                                          \
  bool groupedMatmulDgrad(const T *dy, const T *weight, const int32_t *offsets, int64_t rows, \
                          int64_t n, int64_t experts, int64_t k, T *dx,                      \
                          std::string *error = nullptr);                                     \
  bool groupedMatmulWgrad(const T *dy, const T *x, const int32_t *offsets, int64_t rows,     \
                          int64_t n, int64_t k, int64_t experts, T *dweight,                 \
                          std::string *error = nullptr);

KILN_NARROW_GEMMS(Bf16)
KILN_NARROW_GEMMS(F16)

#undef KILN_NARROW_GEMMS

} // namespace kiln::kernels

#endif // KILN_RUNTIME_NARROWGEMM_H
