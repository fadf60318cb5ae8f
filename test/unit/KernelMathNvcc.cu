//===- KernelMathNvcc.cu - the kernels' math headers compile under nvcc ---===//
//
// Compile-only check (ctest HostKernelMathCompilesWithNvcc): every KILN_HD
// function of runtime/kernels/*Math.h is called from device code, so a host-
// only construct in those headers fails the build of this file.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/AttentionMath.h"
#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/KernelMath.h"
#include "runtime/kernels/PrecisionMath.h"

using namespace kiln::kernels;

__global__ void denseMath(float *y, const float *x, int64_t n) {
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n)
    return;
  float a, b;
  swigluGradient(x[i], x[i], 1.0f, &a, &b);
  y[i] = siluValue(x[i]) + siluDerivative(x[i]) + swigluValue(x[i], 2.0f) + a + b +
         sigmoidf(x[i]);
}

__global__ void rowMath(float *rows, const float *q, const float *k, const float *v,
                        int64_t len, float *scratch) {
  int64_t r = blockIdx.x;
  float *row = rows + r * len, *p = scratch + r * 2 * len, *ds = p + len;
  row[0] += rmsInverseRow(row, len, 1e-5f);
  softmaxRowInPlace(row, len);
  row[0] += crossEntropyRow(row, len, 0, 0.1f);
  crossEntropyGradRow(row, len, 0, 0.1f, 1.0f, row);
  float y0, y1;
  ropeRotatePair(row[0], row[1], 0.5f, 0.5f, &y0, &y1);
  p[0] = q[r] + k[r] + v[r];
  attentionScoreGradRow(p, ds, len, 0.125f);
  row[1] = y0 + y1 + rowMax(row, len);
}

__global__ void precisionMath(float *y, const float *x, int64_t n) {
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n)
    return;
  const float factor = fp8QuantizeFactor(x[0]), scale = fp8DequantizeScale(x[0]);
  y[i] = roundToBf16(x[i]) + roundToF16(x[i]) + roundToE4m3(x[i] * factor) * scale;
}
