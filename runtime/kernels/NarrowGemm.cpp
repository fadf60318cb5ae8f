//===- NarrowGemm.cpp - bf16 / f16 GEMMs through the f32 kernels ----------===//

#include "runtime/kernels/NarrowGemm.h"
#include "runtime/kernels/Dense.h"
#include "runtime/kernels/ExpertOffsets.h"
#include "runtime/kernels/MoE.h"
#include "runtime/kernels/OneDnnMatmul.h"

#include <algorithm>
#include <optional>
#include <vector>

namespace kiln::kernels {

namespace {

template <typename T> std::vector<float> widened(const T *x, int64_t n) {
  std::vector<float> out(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    out[i] = widen(x[i]);
  return out;
}

template <typename T> void storeNarrow(T *out, const std::vector<float> &x) {
  int64_t n = int64_t(x.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    out[i] = narrowTo<T>(x[i]);
}

/// Runs `f32Kernel(result, a, b)` on widened copies of a [aCount] and
/// b [bCount] and stores the [resultCount] result narrowed.
template <typename T, typename Kernel>
auto throughF32(T *result, int64_t resultCount, const T *a, int64_t aCount, const T *b,
                int64_t bCount, Kernel f32Kernel) {
  std::vector<float> wa = widened(a, aCount), wb = widened(b, bCount), wr(resultCount);
  auto status = f32Kernel(wr.data(), wa.data(), wb.data());
  storeNarrow(result, wr);
  return status;
}

/// c [m, n] = a [m, k] x b [k, n] (strided views) through oneDNN: for bf16
/// where Kiln has it (OneDnnMatmul.h), true; f16, and bf16 without oneDNN,
/// false: the caller widens to the f32 kernels.
bool oneDnnMatmul(Bf16 *c, const Bf16 *a, const Bf16 *b, int64_t m, int64_t k, int64_t n,
                  int64_t aRow, int64_t aCol, int64_t bRow, int64_t bCol) {
  if (!onednn::available())
    return false;
  onednn::matmulBf16(c, a, b, m, k, n, aRow, aCol, bRow, bCol);
  return true;
}
bool oneDnnMatmul(F16 *, const F16 *, const F16 *, int64_t, int64_t, int64_t, int64_t, int64_t,
                  int64_t, int64_t) {
  return false;
}

// The grouped expert GEMMs through oneDNN: one bf16 matmul per non-empty
// expert over its contiguous rows, the experts spread over the threads and
// each expert's matmul on its one thread (an expert's GEMM is small: 256
// rows of 256x256 in r1-mini, where forking a team per matmul costs about
// as much as it computes; 0.587 against 0.725 ms per grouped GEMM measured
// here). Each thread has its own oneDNN scratchpad (OneDnnMatmul.cpp), and
// an expert's result does not depend on which thread or how many run it.
// Each returns the kernel's status, or std::nullopt where oneDNN cannot run
// it (f16, a build without oneDNN): the caller then widens to the f32
// kernel.

/// out_e [m_e, outCols] = in_e [m_e, inCols] x B_e over each expert's rows,
/// B_e the expert's [inCols, outCols] block of `weight` seen with strides
/// (bRow, bCol); rows past the last offset (capacity) are zero.
void rowsPerExpert(Bf16 *out, const Bf16 *in, const Bf16 *weight, const int32_t *offsets,
                   int64_t experts, int64_t rows, int64_t inCols, int64_t outCols, int64_t bRow,
                   int64_t bCol) {
#pragma omp parallel for schedule(dynamic)
  for (int64_t e = 0; e < experts; ++e)
    onednn::matmulBf16(out + int64_t(offsets[e]) * outCols, in + int64_t(offsets[e]) * inCols,
                       weight + e * inCols * outCols, offsets[e + 1] - offsets[e], inCols,
                       outCols, inCols, 1, bRow, bCol);
  std::fill(out + int64_t(offsets[experts]) * outCols, out + rows * outCols,
            narrowTo<Bf16>(0.0f));
}

std::optional<bool> oneDnnGroupedMatmul(const Bf16 *x, const Bf16 *weight,
                                        const int32_t *offsets, int64_t rows, int64_t k,
                                        int64_t experts, int64_t n, Bf16 *out,
                                        std::string *error) {
  if (!onednn::available())
    return std::nullopt;
  if (!checkGroupedGemm(error, "grouped_matmul", k, n, experts, offsets, rows))
    return false;
  rowsPerExpert(out, x, weight, offsets, experts, rows, k, n, 1, k); // x_e weight_e^T
  return true;
}

std::optional<bool> oneDnnGroupedMatmulDgrad(const Bf16 *dy, const Bf16 *weight,
                                             const int32_t *offsets, int64_t rows, int64_t n,
                                             int64_t experts, int64_t k, Bf16 *dx,
                                             std::string *error) {
  if (!onednn::available())
    return std::nullopt;
  if (!checkGroupedGemm(error, "grouped_matmul_dgrad", k, n, experts, offsets, rows))
    return false;
  rowsPerExpert(dx, dy, weight, offsets, experts, rows, n, k, k, 1); // dy_e weight_e
  return true;
}

std::optional<bool> oneDnnGroupedMatmulWgrad(const Bf16 *dy, const Bf16 *x,
                                             const int32_t *offsets, int64_t rows, int64_t n,
                                             int64_t k, int64_t experts, Bf16 *dweight,
                                             std::string *error) {
  if (!onednn::available())
    return std::nullopt;
  if (!checkGroupedGemm(error, "grouped_matmul_wgrad", k, n, experts, offsets, rows))
    return false;
  // dy_e^T [n, m] x_e [m, k]; an empty expert's is an empty sum: zero.
#pragma omp parallel for schedule(dynamic)
  for (int64_t e = 0; e < experts; ++e)
    onednn::matmulBf16(dweight + e * n * k, dy + int64_t(offsets[e]) * n,
                       x + int64_t(offsets[e]) * k, n, offsets[e + 1] - offsets[e], k, 1, n,
                       k, 1, /*depthVaries=*/true);
  return true;
}

std::optional<bool> oneDnnGroupedMatmul(const F16 *, const F16 *, const int32_t *, int64_t,
                                        int64_t, int64_t, int64_t, F16 *, std::string *) {
  return std::nullopt;
}
std::optional<bool> oneDnnGroupedMatmulDgrad(const F16 *, const F16 *, const int32_t *, int64_t,
                                             int64_t, int64_t, int64_t, F16 *, std::string *) {
  return std::nullopt;
}
std::optional<bool> oneDnnGroupedMatmulWgrad(const F16 *, const F16 *, const int32_t *, int64_t,
                                             int64_t, int64_t, int64_t, F16 *, std::string *) {
  return std::nullopt;
}

} // namespace

#define KILN_NARROW_GEMMS(T)                                                                 \
  void linearForward(T *y, const T *x, const T *w, int64_t rows, int64_t in, int64_t out) {  \
    if (oneDnnMatmul(y, x, w, rows, in, out, in, 1, 1, in)) /* x [rows, in] w^T [in, out] */ \
      return;                                                                                \
    throughF32(y, rows * out, x, rows * in, w, out * in, [&](float *r, float *a, float *b) { \
      linearForward(r, a, b, rows, in, out);                                                 \
      return 0;                                                                              \
    });                                                                                      \
  }                                                                                          \
  void linearDgrad(T *dx, const T *dy, const T *w, int64_t rows, int64_t in, int64_t out) {  \
    if (oneDnnMatmul(dx, dy, w, rows, out, in, out, 1, in, 1)) /* dy [rows, out] w [out, in] */ \
      return;                                                                                \
    throughF32(dx, rows * in, dy, rows * out, w, out * in, [&](float *r, float *a, float *b) { \
      linearDgrad(r, a, b, rows, in, out);                                                   \
      return 0;                                                                              \
    });                                                                                      \
  }                                                                                          \
  void linearWgrad(T *dw, const T *dy, const T *x, int64_t rows, int64_t in, int64_t out) {  \
    if (oneDnnMatmul(dw, dy, x, out, rows, in, 1, out, in, 1)) /* dy^T [out, rows] x [rows, in] */ \
      return;                                                                                \
    throughF32(dw, out * in, dy, rows * out, x, rows * in, [&](float *r, float *a, float *b) { \
      linearWgrad(r, a, b, rows, in, out);                                                   \
      return 0;                                                                              \
    });                                                                                      \
  }                                                                                          \
  bool groupedMatmul(const T *x, const T *weight, const int32_t *offsets, int64_t rows,      \
                     int64_t k, int64_t experts, int64_t n, T *out, std::string *error) {    \
    if (auto status = oneDnnGroupedMatmul(x, weight, offsets, rows, k, experts, n, out, error)) \
      return *status;                                                                        \
    return throughF32(out, rows * n, x, rows * k, weight, experts * n * k,                   \
                      [&](float *r, float *a, float *b) {                                    \
                        return groupedMatmul(a, b, offsets, rows, k, experts, n, r, error);  \
                      });                                                                    \
  }                                                                                          \
  bool groupedMatmulDgrad(const T *dy, const T *weight, const int32_t *offsets, int64_t rows, \
                          int64_t n, int64_t experts, int64_t k, T *dx, std::string *error) { \
    if (auto status =                                                                        \
            oneDnnGroupedMatmulDgrad(dy, weight, offsets, rows, n, experts, k, dx, error))   \
      return *status;                                                                        \
    return throughF32(dx, rows * k, dy, rows * n, weight, experts * n * k,                   \
                      [&](float *r, float *a, float *b) {                                    \
                        return groupedMatmulDgrad(a, b, offsets, rows, n, experts, k, r,     \
                                                  error);                                    \
                      });                                                                    \
  }                                                                                          \
  bool groupedMatmulWgrad(const T *dy, const T *x, const int32_t *offsets, int64_t rows,     \
                          int64_t n, int64_t k, int64_t experts, T *dweight,                 \
                          std::string *error) {                                              \
    if (auto status =                                                                        \
            oneDnnGroupedMatmulWgrad(dy, x, offsets, rows, n, k, experts, dweight, error))   \
      return *status;                                                                        \
    return throughF32(dweight, experts * n * k, dy, rows * n, x, rows * k,                   \
                      [&](float *r, float *a, float *b) {                                    \
                        return groupedMatmulWgrad(a, b, offsets, rows, n, k, experts, r,     \
                                                  error);                                    \
                      });                                                                    \
  }

KILN_NARROW_GEMMS(Bf16)
KILN_NARROW_GEMMS(F16)

#undef KILN_NARROW_GEMMS

} // namespace kiln::kernels
