//===- gemm_check.cu - the CUDA GEMM launchers on a GPU, vs the host -------===//
//
// A standalone program (scripts/gpu-check.sh builds and runs it where a GPU
// is lent; without one it prints "no GPU: skipped" and exits 0):
//
//   nvcc -arch=sm_90a -std=c++17 -O3 -I. test/cuda/gemm_check.cu
//       build/runtime/kernels/libKilnKernels.a -lcublasLt -lcudart
//       -Xcompiler -fopenmp -lopenblas -o gemm_check
//
// 1. Every launcher of runtime/kernels/cuda/Gemm.cuh, GroupedGemm.cuh and
//    GemmFp8.cuh on seeded random inputs against the host kernel of the
//    same name (libKilnKernels), per element:
//      |gpu - host| <= c sum_l |a_l b_l| + r max(|gpu|, |host|)
//    with sum_l |a_l b_l| computed in double (scales included for FP8) and
//      c = 2 K 2^-24  f32 accumulation of K terms in two orders (cuBLASLt
//                     with CUBLAS_COMPUTE_32F, Kiln's tiled kernel, OpenBLAS):
//                     the worst case; TF32 (2^-11) would fail it at once;
//      c = 4 K 2^-24  Kiln's FP8 kernels (plus one rounding per 128-block
//                     promotion on each side);
//      c = 2^-8       cuBLASLt's block-scaled FP8: Hopper's FP8 tensor cores
//                     accumulate each 128-deep block with a narrower
//                     accumulator (DeepSeek-V3 3.3.2: about 14 bits), so
//                     only a loose bound holds; a wrong scale layout or
//                     operand mapping is off by O(1) and fails it anyway;
//      r = 2^-7 (bf16), 2^-10 (f16), 0 (f32): the two roundings of nearby
//                     f32 sums to the result type.
//    The measured max(error / bound) is printed for each.
// 2. Kiln's tiled GPU kernels against the reference-order kernels run on
//    the GPU: bit for bit for bf16, f16 and e4m3 operands (exact products,
//    K in order), within c = 2 K 2^-24 for f32 (FMA vs multiply-add).
// 3. A CUDA graph captured after an eager warm-up step replays the GEMMs
//    (cuBLASLt plans and scratch from the cache) with the eager bits.
// 4. TFLOPS of cuBLASLt bf16 and FP8 GEMMs at 4096^3 and DeepSeek-V3-like
//    shapes (8192 tokens x 7168 x 2048, both ways), and of Kiln's grouped
//    kernels, against H100 SXM dense peaks (989 bf16, 1979 FP8 TFLOPS).
// Markdown tables on stdout; exit status 1 if any check fails.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Dense.h"
#include "runtime/kernels/MoE.h"
#include "runtime/kernels/NarrowGemm.h"
#include "runtime/kernels/Precision.h"

#include "runtime/kernels/cuda/Gemm.cuh"
#include "runtime/kernels/cuda/GemmFp8.cuh"
#include "runtime/kernels/cuda/GroupedGemm.cuh"

#include "test/cuda/DeviceCopies.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

using namespace kiln;
using kernels::Bf16;
using kernels::E4m3;
using kernels::F16;

using test::toDevice;
using test::toHost;

namespace {

cudaStream_t stream;
int failures = 0;
std::vector<std::string> accuracyRows, perfRows;

template <typename T> T *deviceZeros(size_t n) {
  T *p = nullptr;
  KILN_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  KILN_CUDA_CHECK(cudaMemset(p, 0, std::max<size_t>(n, 1) * sizeof(T)));
  return p;
}

std::vector<float> randomFloats(uint64_t seed, size_t n, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}
template <typename T> std::vector<T> narrowed(const std::vector<float> &x) {
  std::vector<T> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = kernels::narrowTo<T>(x[i]);
  return out;
}
template <typename T> std::vector<float> widened(const std::vector<T> &x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = kernels::widen(x[i]);
  return out;
}
template <typename T> double roundingOf() { return 0.0; }
template <> double roundingOf<Bf16>() { return 0x1.0p-7; }
template <> double roundingOf<F16>() { return 0x1.0p-10; }
template <typename T> const char *typeName() { return "f32"; }
template <> const char *typeName<Bf16>() { return "bf16"; }
template <> const char *typeName<F16>() { return "f16"; }

/// sum_l |A(i, l) B(l, j)| of out [m, n], in double.
std::vector<double> absProduct(int64_t m, int64_t n, int64_t k,
                               const std::function<double(int64_t, int64_t)> &a,
                               const std::function<double(int64_t, int64_t)> &b) {
  std::vector<double> out(size_t(m * n), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l)
        s += std::fabs(a(i, l) * b(l, j));
      out[i * n + j] = s;
    }
  return out;
}

/// Records one bounded comparison (see the file comment).
void expectWithin(const std::string &name, const std::string &shape, const std::vector<float> &got,
                  const std::vector<float> &want, const std::vector<double> &absDot, double c,
                  double rounding) {
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i]));
    const double bound =
        c * absDot[i] + rounding * std::max(std::fabs(double(got[i])), std::fabs(double(want[i]))) +
        1e-30;
    worst = std::max(worst, err / bound);
    bad += !(err <= bound);
  }
  const bool ok = bad == 0 && got.size() == want.size();
  failures += !ok;
  char row[512];
  std::snprintf(row, sizeof row, "| %s | %s | vs host, c = %.3g | %.3g | %s |", name.c_str(),
                shape.c_str(), c, worst, ok ? "pass" : "FAIL");
  accuracyRows.push_back(row);
}

/// Records one bit-for-bit comparison.
void expectSameBits(const std::string &name, const std::string &shape,
                    const std::vector<float> &got, const std::vector<float> &want) {
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    bad += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  const bool ok = bad == 0 && got.size() == want.size();
  failures += !ok;
  char row[512];
  std::snprintf(row, sizeof row, "| %s | %s | bit for bit | %zu differ | %s |", name.c_str(),
                shape.c_str(), bad, ok ? "pass" : "FAIL");
  accuracyRows.push_back(row);
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d)
    s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

//===----------------------------------------------------------------------===//
// 1-2: accuracy
//===----------------------------------------------------------------------===//

template <typename T> void checkLinears() {
  const int64_t rows = 300, in = 384, out = 264;
  const std::vector<T> x = narrowed<T>(randomFloats(1, rows * in)),
                       w = narrowed<T>(randomFloats(2, out * in, 0.5f)),
                       dy = narrowed<T>(randomFloats(3, rows * out));
  const std::vector<float> xf = widened(x), wf = widened(w), dyf = widened(dy);
  T *dX = toDevice(x), *dW = toDevice(w), *dDy = toDevice(dy);
  const double u = 0x1.0p-24, r = roundingOf<T>();
  const std::string shape = dims({rows, in, out}) + " " + typeName<T>();
  {
    T *dY = deviceZeros<T>(rows * out);
    std::vector<T> want(rows * out);
    cuda::linearForward(stream, dY, dX, dW, rows, in, out);
    kernels::linearForward(want.data(), x.data(), w.data(), rows, in, out);
    expectWithin("linearForward", shape, widened(toHost(dY, rows * out)), widened(want),
                 absProduct(
                     rows, out, in, [&](int64_t i, int64_t l) { return xf[i * in + l]; },
                     [&](int64_t l, int64_t j) { return wf[j * in + l]; }),
                 2 * in * u, r);
    KILN_CUDA_CHECK(cudaFree(dY));
  }
  {
    T *dDx = deviceZeros<T>(rows * in);
    std::vector<T> want(rows * in);
    cuda::linearDgrad(stream, dDx, dDy, dW, rows, in, out);
    kernels::linearDgrad(want.data(), dy.data(), w.data(), rows, in, out);
    expectWithin("linearDgrad", shape, widened(toHost(dDx, rows * in)), widened(want),
                 absProduct(
                     rows, in, out, [&](int64_t i, int64_t l) { return dyf[i * out + l]; },
                     [&](int64_t l, int64_t j) { return wf[l * in + j]; }),
                 2 * out * u, r);
    KILN_CUDA_CHECK(cudaFree(dDx));
  }
  {
    T *dDw = deviceZeros<T>(out * in);
    std::vector<T> want(out * in);
    cuda::linearWgrad(stream, dDw, dDy, dX, rows, in, out);
    kernels::linearWgrad(want.data(), dy.data(), x.data(), rows, in, out);
    expectWithin("linearWgrad", shape, widened(toHost(dDw, out * in)), widened(want),
                 absProduct(
                     out, in, rows, [&](int64_t i, int64_t l) { return dyf[l * out + i]; },
                     [&](int64_t l, int64_t j) { return xf[l * in + j]; }),
                 2 * rows * u, r);
    KILN_CUDA_CHECK(cudaFree(dDw));
  }
  KILN_CUDA_CHECK(cudaFree(dX));
  KILN_CUDA_CHECK(cudaFree(dW));
  KILN_CUDA_CHECK(cudaFree(dDy));
}

// 6 experts (one empty) over 900 of 1000 rows.
const std::vector<int32_t> kOffsets = {0, 130, 130, 400, 401, 700, 900};
constexpr int64_t kRows = 1000, kExperts = 6, kK = 320, kN = 200;

template <typename T> void checkGrouped() {
  const std::vector<T> x = narrowed<T>(randomFloats(10, kRows * kK)),
                       w = narrowed<T>(randomFloats(11, kExperts * kN * kK, 0.5f)),
                       dy = narrowed<T>(randomFloats(12, kRows * kN));
  const std::vector<float> xf = widened(x), wf = widened(w), dyf = widened(dy);
  T *dX = toDevice(x), *dW = toDevice(w), *dDy = toDevice(dy);
  int32_t *dOffsets = toDevice(kOffsets);
  const double u = 0x1.0p-24, r = roundingOf<T>();
  const std::string shape =
      dims({kRows, kK, kN}) + " E" + std::to_string(kExperts) + " " + typeName<T>();
  auto expertOf = [](int64_t row) {
    int64_t e = 0;
    while (e + 1 < kExperts && kOffsets[e + 1] <= row)
      ++e;
    return row < kOffsets[kExperts] ? e : int64_t(-1);
  };
  const bool exact = !std::is_same<T, float>::value;
  // Forward and dgrad.
  for (bool dgrad : {false, true}) {
    const int64_t inner = dgrad ? kN : kK, cols = dgrad ? kK : kN;
    T *dOut = deviceZeros<T>(kRows * cols), *dRef = deviceZeros<T>(kRows * cols);
    std::vector<T> want(kRows * cols);
    std::string error;
    if (dgrad) {
      cuda::groupedMatmulDgrad(stream, dDy, dW, dOffsets, kRows, kN, kExperts, kK, dOut);
      kernels::groupedMatmulDgrad(dy.data(), w.data(), kOffsets.data(), kRows, kN, kExperts, kK,
                                  want.data(), &error);
    } else {
      cuda::groupedMatmul(stream, dX, dW, dOffsets, kRows, kK, kExperts, kN, dOut);
      kernels::groupedMatmul(x.data(), w.data(), kOffsets.data(), kRows, kK, kExperts, kN,
                             want.data(), &error);
    }
    cuda::groupedGemmRowsReferenceKernel<T>
        <<<cuda::blocksFor(kRows * cols), cuda::kBlock, 0, stream>>>(
            dRef, dgrad ? dDy : dX, dW, dOffsets, kRows, inner, cols, kExperts, dgrad ? cols : 1,
            dgrad ? 1 : inner);
    KILN_CUDA_LAUNCHED();
    const std::vector<float> got = widened(toHost(dOut, kRows * cols));
    const std::vector<float> &a = dgrad ? dyf : xf;
    std::vector<double> absDot(kRows * cols, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < kRows; ++i) {
      const int64_t e = expertOf(i);
      for (int64_t j = 0; e >= 0 && j < cols; ++j) {
        double s = 0;
        for (int64_t l = 0; l < inner; ++l)
          s += std::fabs(double(a[i * inner + l]) *
                         wf[e * kN * kK + (dgrad ? l * kK + j : j * kK + l)]);
        absDot[i * cols + j] = s;
      }
    }
    expectWithin(dgrad ? "groupedMatmulDgrad" : "groupedMatmul", shape, got, widened(want), absDot,
                 2 * inner * u, r);
    const std::vector<float> ref = widened(toHost(dRef, kRows * cols));
    if (exact)
      expectSameBits(std::string(dgrad ? "groupedMatmulDgrad" : "groupedMatmul") +
                         " tiled vs reference kernel",
                     shape, got, ref);
    else
      expectWithin(std::string(dgrad ? "groupedMatmulDgrad" : "groupedMatmul") +
                       " tiled vs reference kernel",
                   shape, got, ref, absDot, 2 * inner * u, 0);
    KILN_CUDA_CHECK(cudaFree(dOut));
    KILN_CUDA_CHECK(cudaFree(dRef));
  }
  // Wgrad.
  {
    T *dOut = deviceZeros<T>(kExperts * kN * kK), *dRef = deviceZeros<T>(kExperts * kN * kK);
    std::vector<T> want(kExperts * kN * kK);
    std::string error;
    cuda::groupedMatmulWgrad(stream, dDy, dX, dOffsets, kRows, kN, kK, kExperts, dOut);
    kernels::groupedMatmulWgrad(dy.data(), x.data(), kOffsets.data(), kRows, kN, kK, kExperts,
                                want.data(), &error);
    cuda::groupedGemmWgradReferenceKernel<T>
        <<<cuda::blocksFor(kExperts * kN * kK), cuda::kBlock, 0, stream>>>(dRef, dDy, dX, dOffsets,
                                                                           kRows, kN, kK, kExperts);
    KILN_CUDA_LAUNCHED();
    std::vector<double> absDot(kExperts * kN * kK, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < kExperts * kN * kK; ++t) {
      const int64_t e = t / (kN * kK), i = (t / kK) % kN, j = t % kK;
      double s = 0;
      for (int64_t row = kOffsets[e]; row < kOffsets[e + 1]; ++row)
        s += std::fabs(double(dyf[row * kN + i]) * xf[row * kK + j]);
      absDot[t] = s;
    }
    const std::vector<float> got = widened(toHost(dOut, kExperts * kN * kK));
    expectWithin("groupedMatmulWgrad", shape, got, widened(want), absDot, 2 * kRows * u, r);
    const std::vector<float> ref = widened(toHost(dRef, kExperts * kN * kK));
    if (exact)
      expectSameBits("groupedMatmulWgrad tiled vs reference kernel", shape, got, ref);
    else
      expectWithin("groupedMatmulWgrad tiled vs reference kernel", shape, got, ref, absDot,
                   2 * kRows * u, 0);
    KILN_CUDA_CHECK(cudaFree(dOut));
    KILN_CUDA_CHECK(cudaFree(dRef));
  }
  KILN_CUDA_CHECK(cudaFree(dX));
  KILN_CUDA_CHECK(cudaFree(dW));
  KILN_CUDA_CHECK(cudaFree(dDy));
  KILN_CUDA_CHECK(cudaFree(dOffsets));
}

/// A quantized matrix on both sides.
struct Fp8 {
  std::vector<E4m3> values;
  std::vector<float> scales, dequantized;
  kernels::Fp8Tiles tiles;
  E4m3 *dValues;
  float *dScales;
  kernels::ScaledOperand host(bool kMajor) const {
    return {values.data(), scales.data(), tiles, kMajor};
  }
  kernels::ScaledOperand device(bool kMajor) const { return {dValues, dScales, tiles, kMajor}; }
};
Fp8 quantized(uint64_t seed, kernels::Fp8Tiles tiles) {
  Fp8 q;
  q.tiles = tiles;
  const int64_t perMatrix = (tiles.rows / tiles.matrices + tiles.tileRows - 1) / tiles.tileRows;
  q.values.resize(tiles.rows * tiles.cols);
  q.scales.resize(tiles.matrices * perMatrix *
                  ((tiles.cols + tiles.tileCols - 1) / tiles.tileCols));
  q.dequantized.resize(tiles.rows * tiles.cols);
  const std::vector<float> x = randomFloats(seed, tiles.rows * tiles.cols);
  kernels::quantizeFp8(q.values.data(), q.scales.data(), x.data(), tiles);
  kernels::dequantizeFp8(q.dequantized.data(), q.values.data(), q.scales.data(), tiles);
  q.dValues = toDevice(q.values);
  q.dScales = toDevice(q.scales);
  return q;
}
void release(Fp8 &q) {
  KILN_CUDA_CHECK(cudaFree(q.dValues));
  KILN_CUDA_CHECK(cudaFree(q.dScales));
}

/// One scaledMatmul pattern: through cuBLASLt (if it has an algorithm) and
/// Kiln's tiled kernel, each against the host; tiled vs reference bits.
template <typename Out>
void checkScaledMatmul(const char *name, kernels::Fp8Tiles lhsTiles, bool lhsKMajor,
                       kernels::Fp8Tiles rhsTiles, bool rhsKMajor, int64_t m, int64_t n,
                       int64_t k) {
  Fp8 lhs = quantized(20, lhsTiles), rhs = quantized(21, rhsTiles);
  std::vector<Out> want(m * n);
  kernels::scaledMatmul(want.data(), lhs.host(lhsKMajor), rhs.host(rhsKMajor), m, n, k);
  const std::vector<double> absDot = absProduct(
      m, n, k,
      [&](int64_t i, int64_t l) {
        return lhs.dequantized[lhsKMajor ? l * lhsTiles.cols + i : i * lhsTiles.cols + l];
      },
      [&](int64_t l, int64_t j) {
        return rhs.dequantized[rhsKMajor ? l * rhsTiles.cols + j : j * rhsTiles.cols + l];
      });
  const std::string shape = dims({m, n, k}) + " -> " + typeName<Out>();
  Out *dOut = deviceZeros<Out>(m * n), *dTiled = deviceZeros<Out>(m * n),
      *dRef = deviceZeros<Out>(m * n);
  const kernels::ScaledOperand a = lhs.device(lhsKMajor), b = rhs.device(rhsKMajor);
  const bool eligible = cuda::scaledMatmulTakesCublasLt(dOut, a, b, m, n, k);
  if (eligible && cuda::scaledMatmulCublasLt(stream, dOut, a, b, m, n, k))
    expectWithin(std::string("scaledMatmul ") + name + " cuBLASLt", shape,
                 widened(toHost(dOut, m * n)), widened(want), absDot, 0x1.0p-8, roundingOf<Out>());
  else {
    accuracyRows.push_back(std::string("| scaledMatmul ") + name + " cuBLASLt | " + shape +
                           " | not taken (" + (eligible ? "no algorithm" : "not eligible") +
                           ") | - | FAIL |");
    ++failures;
  }
  cuda::scaledGemmTiledKernel<Out>
      <<<dim3(unsigned((m + 63) / 64), unsigned((n + 63) / 64)), cuda::kTileThreads, 0, stream>>>(
          dTiled, a, b, m, n, k);
  KILN_CUDA_LAUNCHED();
  cuda::scaledGemmReferenceKernel<Out>
      <<<cuda::blocksFor(m * n), cuda::kBlock, 0, stream>>>(dRef, a, b, m, n, k);
  KILN_CUDA_LAUNCHED();
  const std::vector<float> tiled = widened(toHost(dTiled, m * n));
  expectWithin(std::string("scaledMatmul ") + name + " Kiln kernel", shape, tiled, widened(want),
               absDot, 4 * k * 0x1.0p-24, roundingOf<Out>());
  expectSameBits(std::string("scaledMatmul ") + name + " tiled vs reference kernel", shape, tiled,
                 widened(toHost(dRef, m * n)));
  KILN_CUDA_CHECK(cudaFree(dOut));
  KILN_CUDA_CHECK(cudaFree(dTiled));
  KILN_CUDA_CHECK(cudaFree(dRef));
  release(lhs);
  release(rhs);
}

template <typename Out> void checkScaledGrouped() {
  const int64_t k = 384, n = 256;
  for (bool transposeRhs : {true, false}) {
    const int64_t wRows = transposeRhs ? n : k, wCols = transposeRhs ? k : n;
    Fp8 lhs = quantized(30, {kRows, k, 1, 128});
    Fp8 w = quantized(31, {kExperts * wRows, wCols, 128, 128, kExperts});
    int32_t *dOffsets = toDevice(kOffsets);
    std::vector<Out> want(kRows * n);
    std::string error;
    kernels::scaledGroupedMatmul(want.data(), lhs.values.data(), lhs.scales.data(), w.values.data(),
                                 w.scales.data(), kOffsets.data(), kRows, k, kExperts, wRows, wCols,
                                 transposeRhs, &error);
    Out *dOut = deviceZeros<Out>(kRows * n), *dRef = deviceZeros<Out>(kRows * n);
    cuda::scaledGroupedMatmul(stream, dOut, lhs.dValues, lhs.dScales, w.dValues, w.dScales,
                              dOffsets, kRows, k, kExperts, wRows, wCols, transposeRhs, nullptr);
    cuda::scaledGroupedGemmReferenceKernel<Out>
        <<<cuda::blocksFor(kRows * n), cuda::kBlock, 0, stream>>>(
            dRef, lhs.dValues, lhs.dScales, w.dValues, w.dScales, dOffsets, kRows, k, kExperts,
            wRows, wCols, transposeRhs);
    KILN_CUDA_LAUNCHED();
    std::vector<double> absDot(kRows * n, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < kRows; ++r) {
      int64_t e = 0;
      while (e + 1 < kExperts && kOffsets[e + 1] <= r)
        ++e;
      for (int64_t j = 0; r < kOffsets[kExperts] && j < n; ++j) {
        double s = 0;
        for (int64_t l = 0; l < k; ++l)
          s += std::fabs(double(lhs.dequantized[r * k + l]) *
                         w.dequantized[e * wRows * wCols + (transposeRhs ? j * k + l : l * n + j)]);
        absDot[r * n + j] = s;
      }
    }
    const std::string shape = dims({kRows, k, n}) + " E" + std::to_string(kExperts) +
                              (transposeRhs ? " W^T" : " W") + " -> " + typeName<Out>();
    const std::vector<float> got = widened(toHost(dOut, kRows * n));
    expectWithin("scaledGroupedMatmul", shape, got, widened(want), absDot, 4 * k * 0x1.0p-24,
                 roundingOf<Out>());
    expectSameBits("scaledGroupedMatmul tiled vs reference kernel", shape, got,
                   widened(toHost(dRef, kRows * n)));
    KILN_CUDA_CHECK(cudaFree(dOut));
    KILN_CUDA_CHECK(cudaFree(dRef));
    KILN_CUDA_CHECK(cudaFree(dOffsets));
    release(lhs);
    release(w);
  }
}

template <typename Out> void checkScaledGroupedWgrad() {
  const int64_t k = 256, n = 192;
  const int64_t scaleRows = kernels::fp8GroupedScaleRows(kRows, kExperts, 128);
  const std::vector<float> dyf = randomFloats(40, kRows * n), xf = randomFloats(41, kRows * k);
  std::vector<E4m3> dy(kRows * n), x(kRows * k);
  std::vector<float> dyScales(scaleRows * n), xScales(scaleRows * k);
  std::string error;
  kernels::quantizeFp8Grouped(dy.data(), dyScales.data(), dyf.data(), kOffsets.data(), kRows, n,
                              kExperts, 128, 1, &error);
  kernels::quantizeFp8Grouped(x.data(), xScales.data(), xf.data(), kOffsets.data(), kRows, k,
                              kExperts, 128, 1, &error);
  std::vector<Out> want(kExperts * n * k);
  kernels::scaledGroupedMatmulWgrad(want.data(), dy.data(), dyScales.data(), x.data(),
                                    xScales.data(), kOffsets.data(), kRows, n, k, kExperts, &error);
  E4m3 *dDy = toDevice(dy), *dX = toDevice(x);
  float *dDyScales = toDevice(dyScales), *dXScales = toDevice(xScales);
  int32_t *dOffsets = toDevice(kOffsets);
  Out *dOut = deviceZeros<Out>(kExperts * n * k), *dRef = deviceZeros<Out>(kExperts * n * k);
  cuda::scaledGroupedMatmulWgrad(stream, dOut, dDy, dDyScales, dX, dXScales, dOffsets, kRows, n, k,
                                 kExperts, nullptr);
  cuda::scaledGroupedWgradGemmReferenceKernel<Out>
      <<<cuda::blocksFor(kExperts * n * k), cuda::kBlock, 0, stream>>>(
          dRef, dDy, dDyScales, dX, dXScales, dOffsets, kRows, n, k, kExperts);
  KILN_CUDA_LAUNCHED();
  // |dequantized| products: each row's scale from its expert's tile.
  std::vector<double> absDot(kExperts * n * k, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < kExperts * n * k; ++t) {
    const int64_t e = t / (n * k), i = (t / k) % n, j = t % k;
    const int64_t base = kernels::fp8GroupedScaleRowBase(kOffsets[e], e, 128);
    double s = 0;
    for (int64_t r = kOffsets[e]; r < kOffsets[e + 1]; ++r) {
      const int64_t tile = base + (r - kOffsets[e]) / 128;
      s += std::fabs(double(kernels::widen(dy[r * n + i])) * dyScales[tile * n + i] *
                     kernels::widen(x[r * k + j]) * xScales[tile * k + j]);
    }
    absDot[t] = s;
  }
  const std::string shape =
      dims({kRows, n, k}) + " E" + std::to_string(kExperts) + " -> " + typeName<Out>();
  const std::vector<float> got = widened(toHost(dOut, kExperts * n * k));
  expectWithin("scaledGroupedMatmulWgrad", shape, got, widened(want), absDot, 4 * kRows * 0x1.0p-24,
               roundingOf<Out>());
  expectSameBits("scaledGroupedMatmulWgrad tiled vs reference kernel", shape, got,
                 widened(toHost(dRef, kExperts * n * k)));
  for (void *p : {(void *)dDy, (void *)dX, (void *)dDyScales, (void *)dXScales, (void *)dOffsets,
                  (void *)dOut, (void *)dRef})
    KILN_CUDA_CHECK(cudaFree(p));
}

//===----------------------------------------------------------------------===//
// 3: CUDA-graph capture after an eager step
//===----------------------------------------------------------------------===//

void checkGraphCapture() {
  const int64_t rows = 256, in = 512, out = 384;
  const std::vector<Bf16> x = narrowed<Bf16>(randomFloats(50, rows * in)),
                          w = narrowed<Bf16>(randomFloats(51, out * in));
  Bf16 *dX = toDevice(x), *dW = toDevice(w), *dY = deviceZeros<Bf16>(rows * out);
  Fp8 lhs = quantized(52, {rows, in, 1, 128}), weight = quantized(53, {in, out, 128, 128});
  float *dDx = deviceZeros<float>(rows * out);
  int32_t *dOffsets = toDevice(std::vector<int32_t>{0, 100, 256});
  Bf16 *dG = deviceZeros<Bf16>(rows * out);
  auto step = [&] {
    cuda::linearForward(stream, dY, dX, dW, rows, in, out);
    // Dgrad pattern: the weights stored [K, N] go through the scratch.
    cuda::scaledMatmul(stream, dDx, lhs.device(false), weight.device(true), rows, out, in);
    cuda::groupedMatmul(stream, dX, dW, dOffsets, rows, in, 2, out / 2, dG);
  };
  step(); // eager: fills the plan cache and sizes the scratch
  const std::vector<Bf16> y0 = toHost(dY, rows * out), g0 = toHost(dG, rows * out);
  const std::vector<float> dx0 = toHost(dDx, rows * out);
  KILN_CUDA_CHECK(cudaMemset(dY, 0, rows * out * sizeof(Bf16)));
  KILN_CUDA_CHECK(cudaMemset(dDx, 0, rows * out * sizeof(float)));
  KILN_CUDA_CHECK(cudaMemset(dG, 0, rows * out * sizeof(Bf16)));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  KILN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  step();
  KILN_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  KILN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  KILN_CUDA_CHECK(cudaGraphLaunch(exec, stream));
  std::vector<float> eager = widened(y0), replay = widened(toHost(dY, rows * out));
  std::vector<float> eagerAll = eager, replayAll = replay;
  eagerAll.insert(eagerAll.end(), dx0.begin(), dx0.end());
  const std::vector<float> dx1 = toHost(dDx, rows * out);
  replayAll.insert(replayAll.end(), dx1.begin(), dx1.end());
  const std::vector<float> ge = widened(g0), gr = widened(toHost(dG, rows * out));
  eagerAll.insert(eagerAll.end(), ge.begin(), ge.end());
  replayAll.insert(replayAll.end(), gr.begin(), gr.end());
  expectSameBits("CUDA graph replay vs eager step", "linear bf16 + scaledMatmul + grouped",
                 replayAll, eagerAll);
  KILN_CUDA_CHECK(cudaGraphExecDestroy(exec));
  KILN_CUDA_CHECK(cudaGraphDestroy(graph));
  for (void *p : {(void *)dX, (void *)dW, (void *)dY, (void *)dDx, (void *)dOffsets, (void *)dG})
    KILN_CUDA_CHECK(cudaFree(p));
  release(lhs);
  release(weight);
}

//===----------------------------------------------------------------------===//
// 4: throughput
//===----------------------------------------------------------------------===//

/// Deterministic device fill: finite values of T from a hash.
template <typename T>
__global__ void gemmCheckFillKernel(T *p, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = cuda::globalThread(); i < n; i += cuda::gridThreads()) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = kernels::narrowTo<T>(scale * (float(h % 2001) / 1000.0f - 1.0f));
  }
}
template <typename T> T *deviceRandom(int64_t n, uint32_t seed, float scale = 1.0f) {
  T *p = deviceZeros<T>(n);
  gemmCheckFillKernel<T><<<cuda::blocksFor(n), cuda::kBlock, 0, stream>>>(p, n, seed, scale);
  KILN_CUDA_LAUNCHED();
  return p;
}

/// Milliseconds per call of `run` (after two warm-up calls).
double timeMs(const std::function<void()> &run, int iterations) {
  run();
  run();
  cudaEvent_t start, stop;
  KILN_CUDA_CHECK(cudaEventCreate(&start));
  KILN_CUDA_CHECK(cudaEventCreate(&stop));
  KILN_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iterations; ++i)
    run();
  KILN_CUDA_CHECK(cudaEventRecord(stop, stream));
  KILN_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  KILN_CUDA_CHECK(cudaEventDestroy(start));
  KILN_CUDA_CHECK(cudaEventDestroy(stop));
  return ms / iterations;
}

void perfRow(const std::string &name, int64_t m, int64_t n, int64_t k, double ms, double peak) {
  const double tflops = 2.0 * double(m) * double(n) * double(k) / (ms * 1e-3) / 1e12;
  char row[512];
  std::snprintf(row, sizeof row, "| %s | %s | %.3f | %.1f | %.0f | %.1f%% |", name.c_str(),
                dims({m, n, k}).c_str(), ms, tflops, peak, 100.0 * tflops / peak);
  perfRows.push_back(row);
}

void measureBf16(int64_t m, int64_t n, int64_t k) {
  Bf16 *x = deviceRandom<Bf16>(m * k, 1), *w = deviceRandom<Bf16>(n * k, 2),
       *y = deviceZeros<Bf16>(m * n);
  const double ms = timeMs([&] { cuda::linearForward(stream, y, x, w, m, k, n); }, 20);
  perfRow("bf16 linearForward (cuBLASLt)", m, n, k, ms, 989.0);
  for (void *p : {(void *)x, (void *)w, (void *)y})
    KILN_CUDA_CHECK(cudaFree(p));
}

void measureFp8(int64_t m, int64_t n, int64_t k) {
  // Fprop tiles: x [m, k] 1x128, W [n, k] 128x128; bf16 result.
  E4m3 *x = deviceRandom<E4m3>(m * k, 3, 400.0f), *w = deviceRandom<E4m3>(n * k, 4, 400.0f);
  float *xs = deviceRandom<float>(m * (k / 128), 5, 0.01f),
        *ws = deviceRandom<float>(((n + 127) / 128) * (k / 128), 6, 0.01f);
  Bf16 *y = deviceZeros<Bf16>(m * n);
  const kernels::ScaledOperand lhs{x, xs, {m, k, 1, 128}, false},
      rhs{w, ws, {n, k, 128, 128}, false};
  const bool lt = cuda::scaledMatmulTakesCublasLt(y, lhs, rhs, m, n, k);
  const double ms = timeMs([&] { cuda::scaledMatmul(stream, y, lhs, rhs, m, n, k); }, 20);
  perfRow(std::string("fp8 scaledMatmul fprop (") + (lt ? "cuBLASLt" : "Kiln kernel") + ")", m, n,
          k, ms, 1979.0);
  for (void *p : {(void *)x, (void *)w, (void *)xs, (void *)ws, (void *)y})
    KILN_CUDA_CHECK(cudaFree(p));
}

void measureGrouped(int64_t rows, int64_t experts, int64_t n, int64_t k) {
  std::vector<int32_t> offsets(experts + 1);
  for (int64_t e = 0; e <= experts; ++e)
    offsets[e] = int32_t(rows * e / experts);
  int32_t *dOffsets = toDevice(offsets);
  Bf16 *x = deviceRandom<Bf16>(rows * k, 7), *w = deviceRandom<Bf16>(experts * n * k, 8),
       *y = deviceZeros<Bf16>(rows * n);
  double ms =
      timeMs([&] { cuda::groupedMatmul(stream, x, w, dOffsets, rows, k, experts, n, y); }, 3);
  perfRow("bf16 groupedMatmul (Kiln kernel, E" + std::to_string(experts) + ")", rows, n, k, ms,
          989.0);
  E4m3 *qx = deviceRandom<E4m3>(rows * k, 9, 400.0f),
       *qw = deviceRandom<E4m3>(experts * n * k, 10, 400.0f);
  float *xs = deviceRandom<float>(rows * (k / 128), 11, 0.01f),
        *ws = deviceRandom<float>(experts * ((n + 127) / 128) * (k / 128), 12, 0.01f);
  ms = timeMs(
      [&] {
        cuda::scaledGroupedMatmul(stream, y, qx, xs, qw, ws, dOffsets, rows, k, experts, n, k, true,
                                  nullptr);
      },
      3);
  perfRow("fp8 scaledGroupedMatmul (Kiln kernel, E" + std::to_string(experts) + ")", rows, n, k, ms,
          1979.0);
  for (void *p : {(void *)dOffsets, (void *)x, (void *)w, (void *)y, (void *)qx, (void *)qw,
                  (void *)xs, (void *)ws})
    KILN_CUDA_CHECK(cudaFree(p));
}

} // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no GPU: skipped\n");
    return 0;
  }
  cudaDeviceProp prop;
  KILN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::printf("# CUDA GEMM check on %s (sm_%d%d)\n\n", prop.name, prop.major, prop.minor);

  checkLinears<float>();
  checkLinears<Bf16>();
  checkLinears<F16>();
  checkGrouped<float>();
  checkGrouped<Bf16>();
  checkGrouped<F16>();
  // The three patterns kiln-lower-fp8 emits; M, N multiples of 128 and 4.
  const int64_t m = 256, n = 384, k = 512;
  checkScaledMatmul<Bf16>("fprop", {m, k, 1, 128}, false, {n, k, 128, 128}, false, m, n, k);
  checkScaledMatmul<float>("dgrad", {m, k, 1, 128}, false, {k, n, 128, 128}, true, m, n, k);
  checkScaledMatmul<Bf16>("wgrad", {k, m, 128, 1}, true, {k, n, 128, 1}, true, m, n, k);
  checkScaledGrouped<Bf16>();
  checkScaledGrouped<float>();
  checkScaledGroupedWgrad<Bf16>();
  checkScaledGroupedWgrad<float>();
  checkGraphCapture();
  const cuda::DeviceErrorRecord error = cuda::takeDeviceError(stream);
  if (error.code != 0) {
    accuracyRows.push_back("| device errors | - | none expected | code " +
                           std::to_string(error.code) + " | FAIL |");
    ++failures;
  }

  std::printf("| check | shape | criterion | max error / bound | result |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const std::string &row : accuracyRows)
    std::printf("%s\n", row.c_str());

  measureBf16(4096, 4096, 4096);
  measureFp8(4096, 4096, 4096);
  for (auto [mm, nn, kk] : {std::tuple<int64_t, int64_t, int64_t>{8192, 7168, 2048},
                            std::tuple<int64_t, int64_t, int64_t>{8192, 2048, 7168}}) {
    measureBf16(mm, nn, kk);
    measureFp8(mm, nn, kk);
  }
  measureGrouped(8192, 8, 2048, 7168);
  std::printf("\n| GEMM | MxNxK | ms | TFLOPS | H100 SXM dense peak | of peak |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const std::string &row : perfRows)
    std::printf("%s\n", row.c_str());
  std::printf("\n%s: %d check(s) failed\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
