//===- Dense.cpp - host kernels of the dense kiln ops ---------------------===//
//
// OpenMP loops with static schedules over independent outputs (rows, or
// column blocks where rows would race), OpenBLAS sgemm for the linears. Every
// reduction runs in a fixed order, so two runs with the same thread count
// (and, except for sgemm, any thread count) give the same bits.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Dense.h"
#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/KernelCheck.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

namespace kiln::kernels {

namespace {
/// Columns per task of the column-parallel scatters and reductions.
constexpr int64_t kColumnBlock = 16;
} // namespace

//===----------------------------------------------------------------------===//
// kernel launchers
//===----------------------------------------------------------------------===//

void embeddingForward(float *out, const float *table, const int32_t *ids, int64_t tokens,
                      int64_t vocab, int64_t hidden) {
  KILN_KERNEL_CHECK(tokens >= 0 && vocab > 0 && hidden > 0,
                    "expects tokens >= 0, vocab > 0, hidden > 0, got %lld, %lld, %lld",
                    (long long)tokens, (long long)vocab, (long long)hidden);
  for (int64_t t = 0; t < tokens; ++t)
    KILN_KERNEL_CHECK(ids[t] >= 0 && ids[t] < vocab,
                      "token id %d at position %lld is outside the table [0, %lld)", ids[t],
                      (long long)t, (long long)vocab);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t)
    std::copy_n(table + int64_t(ids[t]) * hidden, hidden, out + t * hidden);
}

void embeddingBackward(float *dtable, const float *dout, const int32_t *ids, int64_t tokens,
                       int64_t vocab, int64_t hidden) {
  KILN_KERNEL_CHECK(tokens >= 0 && vocab > 0 && hidden > 0,
                    "expects tokens >= 0, vocab > 0, hidden > 0, got %lld, %lld, %lld",
                    (long long)tokens, (long long)vocab, (long long)hidden);
  for (int64_t t = 0; t < tokens; ++t)
    KILN_KERNEL_CHECK(ids[t] >= 0 && ids[t] < vocab,
                      "token id %d at position %lld is outside the table [0, %lld)", ids[t],
                      (long long)t, (long long)vocab);
  std::fill_n(dtable, vocab * hidden, 0.0f);
  // Each task owns a block of columns and walks the tokens in order: no two
  // threads touch one element, and each element's sum has a fixed order.
  int64_t blocks = (hidden + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    int64_t c0 = blk * kColumnBlock, c1 = std::min(hidden, c0 + kColumnBlock);
    for (int64_t t = 0; t < tokens; ++t) {
      float *row = dtable + int64_t(ids[t]) * hidden;
      const float *src = dout + t * hidden;
      for (int64_t c = c0; c < c1; ++c)
        row[c] += src[c];
    }
  }
}

static void checkLinear(int64_t rows, int64_t in, int64_t out) {
  KILN_KERNEL_CHECK(rows >= 0 && in > 0 && out > 0,
                    "expects rows >= 0, in > 0, out > 0, got %lld, %lld, %lld",
                    (long long)rows, (long long)in, (long long)out);
}

void linearForward(float *y, const float *x, const float *w, int64_t rows, int64_t in,
                   int64_t out) {
  checkLinear(rows, in, out);
  if (rows == 0)
    return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in,
              0.0f, y, out);
}

void linearDgrad(float *dx, const float *dy, const float *w, int64_t rows, int64_t in,
                 int64_t out) {
  checkLinear(rows, in, out);
  if (rows == 0)
    return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, out, w, in,
              0.0f, dx, in);
}

void linearWgrad(float *dw, const float *dy, const float *x, int64_t rows, int64_t in,
                 int64_t out) {
  checkLinear(rows, in, out);
  if (rows == 0) {
    std::fill_n(dw, out * in, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dy, out, x, in,
              0.0f, dw, in);
}

void rmsNormForward(float *y, const float *x, const float *gamma, int64_t rows,
                    int64_t hidden, float epsilon) {
  KILN_KERNEL_CHECK(rows >= 0 && hidden > 0 && epsilon >= 0,
                    "expects rows >= 0, hidden > 0, epsilon >= 0, got %lld, %lld, %g",
                    (long long)rows, (long long)hidden, epsilon);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const float *px = x + i * hidden;
    float *py = y + i * hidden;
    float inv = rmsInverseRow(px, hidden, epsilon);
    for (int64_t j = 0; j < hidden; ++j)
      py[j] = px[j] * inv * gamma[j];
  }
}

void rmsNormBackward(float *dx, float *dgamma, const float *dy, const float *x,
                     const float *gamma, int64_t rows, int64_t hidden, float epsilon) {
  KILN_KERNEL_CHECK(rows >= 0 && hidden > 0 && epsilon >= 0,
                    "expects rows >= 0, hidden > 0, epsilon >= 0, got %lld, %lld, %g",
                    (long long)rows, (long long)hidden, epsilon);
  // One task per chunk of kDgammaChunkRows rows: each row's dx, r (g - n
  // mean(g n)) with g = dy gamma and n = x r, and the chunk's partial dgamma
  // sum_i dy[i, j] n[i, j] over its rows in order, while the rows are in
  // cache; then dgamma sums the partials in chunk order, columns in parallel.
  // The order is fixed by the chunking alone: the same bits for any thread
  // count, and the GPU's (cuda/Dense.cuh).
  const int64_t chunks = (rows + kDgammaChunkRows - 1) / kDgammaChunkRows;
  std::vector<float> partial(chunks * hidden, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; ++k) {
    float *sum = partial.data() + k * hidden;
    for (int64_t i = k * kDgammaChunkRows; i < std::min(rows, (k + 1) * kDgammaChunkRows); ++i) {
      const float *px = x + i * hidden, *pdy = dy + i * hidden;
      const float inv = rmsNormGradRow(dx + i * hidden, pdy, px, gamma, hidden, epsilon);
      for (int64_t j = 0; j < hidden; ++j)
        sum[j] += pdy[j] * (px[j] * inv);
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < hidden; ++j) {
    float total = 0.0f;
    for (int64_t k = 0; k < chunks; ++k)
      total += partial[k * hidden + j];
    dgamma[j] = total;
  }
}

void siluForward(float *y, const float *x, int64_t n) {
  KILN_KERNEL_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    y[i] = siluValue(x[i]);
}

void siluBackward(float *dx, const float *dy, const float *x, int64_t n) {
  KILN_KERNEL_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    dx[i] = dy[i] * siluDerivative(x[i]);
}

void swigluForward(float *y, const float *gate, const float *up, int64_t n) {
  KILN_KERNEL_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    y[i] = swigluValue(gate[i], up[i]);
}

void swigluBackward(float *dgate, float *dup, const float *dy, const float *gate,
                    const float *up, int64_t n) {
  KILN_KERNEL_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    swigluGradient(dy[i], gate[i], up[i], &dgate[i], &dup[i]);
}

void scale(float *y, const float *x, int64_t n, float factor) {
  KILN_KERNEL_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    y[i] = factor * x[i];
}

} // namespace kiln::kernels
