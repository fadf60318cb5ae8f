//===- CudaShimGemmTest.cpp - cuda/Gemm*.cuh on the CPU shim --------------===//
//
// runtime/kernels/cuda/Gemm.cuh, GroupedGemm.cuh and GemmFp8.cuh's launchers
// run through Device.cuh's grid loop: the cuBLASLt calls become Gemm.cuh's
// reference kernel evaluating the very LtGemm the GPU would pass (so the
// row-major -> column-major mapping, the FP8 transposes and the scale
// reorders are all exercised), the grouped and fallback FP8 GEMMs their
// reference-order kernels. The host kernels sum with OpenBLAS in its own
// blocked order, so each launcher is checked twice:
//
//   - on integer-valued inputs, where every partial sum is exact whatever
//     the order (|values| <= 8, so |sums| stay far below 2^24): bit for bit,
//     including the FP8 block promotion (real, non-integer scales), the
//     bf16/f16 rounding of results and the zero rows past the experts;
//   - on random inputs: |got - want| <= c K 2^-24 sum_l |a_l b_l| per
//     element, the worst-case f32 accumulation error of two summation
//     orders of K terms (c = 2; 4 for FP8, whose per-block promotions add
//     one more rounding per 128 terms to each side), plus, for bf16/f16
//     results, the two roundings of nearby f32 values (2^-7 / 2^-10 of the
//     magnitude).
//
// Also: zero rows, the host's size messages and the device error that bad
// expert offsets record (no crash, nothing out of bounds).
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Dense.h"
#include "runtime/kernels/MoE.h"
#include "runtime/kernels/NarrowGemm.h"
#include "runtime/kernels/Precision.h"

#include "runtime/kernels/cuda/Gemm.cuh"
#include "runtime/kernels/cuda/GemmFp8.cuh"
#include "runtime/kernels/cuda/GroupedGemm.cuh"

#include <algorithm>
#include <functional>

using namespace kiln;
using namespace kiln::test;
using kernels::Bf16;
using kernels::E4m3;
using kernels::F16;

namespace {

// Sizes that leave partial blocks and tiles.
constexpr int64_t kRows = 37, kIn = 70, kOut = 45;

/// `n` integers in [-8, 8] as floats, seeded.
std::vector<float> smallInts(uint64_t seed, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  std::vector<int32_t> ids = randomIds(seed, n, 17);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = float(ids[i] - 8);
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

/// Relative rounding of one result of type T (0 for f32).
template <typename T> double resultRounding() { return 0.0; }
template <> double resultRounding<Bf16>() { return 0x1.0p-7; }
template <> double resultRounding<F16>() { return 0x1.0p-10; }

/// |got - want| <= c K 2^-24 absDot + rounding * max(|got|, |want|) per
/// element (see the file comment); absDot[i] = sum over the contraction of
/// |a b| (times the scales for FP8).
::testing::AssertionResult withinGemmBound(const std::vector<float> &got,
                                           const std::vector<float> &want,
                                           const std::vector<double> &absDot, int64_t k, double c,
                                           double rounding) {
  if (got.size() != want.size() || got.size() != absDot.size())
    return ::testing::AssertionFailure() << "sizes differ";
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i]));
    const double bound =
        c * double(k) * 0x1.0p-24 * absDot[i] +
        rounding * std::max(std::fabs(double(got[i])), std::fabs(double(want[i]))) + 1e-30;
    worst = std::max(worst, err / bound);
    if (!(err <= bound))
      return ::testing::AssertionFailure() << "element " << i << ": " << got[i] << " vs host "
                                           << want[i] << ", error " << err << " > bound " << bound;
  }
  std::printf("  max error / bound = %.3g over %zu elements\n", worst, got.size());
  return ::testing::AssertionSuccess();
}

/// absDot of a row-major product out [m, n] = sum_l A(i, l) B(l, j).
std::vector<double> absProduct(int64_t m, int64_t n, int64_t k,
                               const std::function<double(int64_t, int64_t)> &a,
                               const std::function<double(int64_t, int64_t)> &b) {
  std::vector<double> out(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < k; ++l)
        out[i * n + j] += std::fabs(a(i, l) * b(l, j));
  return out;
}

//===----------------------------------------------------------------------===//
// Linear GEMMs (cuBLASLt's mapping)
//===----------------------------------------------------------------------===//

enum class Linear { kForward, kDgrad, kWgrad };

/// Runs one linear launcher and its host kernel on T operands made from
/// `first` and `second` (x/dy and w/x as the op takes them); returns both
/// results widened.
template <typename T>
std::pair<std::vector<float>, std::vector<float>>
runLinear(Linear op, const std::vector<float> &first, const std::vector<float> &second) {
  const std::vector<T> a = narrowed<T>(first), b = narrowed<T>(second);
  const int64_t size = op == Linear::kForward ? kRows * kOut
                       : op == Linear::kDgrad ? kRows * kIn
                                              : kOut * kIn;
  std::vector<T> got(size), want(size);
  switch (op) {
  case Linear::kForward:
    cuda::linearForward(nullptr, got.data(), a.data(), b.data(), kRows, kIn, kOut);
    kernels::linearForward(want.data(), a.data(), b.data(), kRows, kIn, kOut);
    break;
  case Linear::kDgrad:
    cuda::linearDgrad(nullptr, got.data(), a.data(), b.data(), kRows, kIn, kOut);
    kernels::linearDgrad(want.data(), a.data(), b.data(), kRows, kIn, kOut);
    break;
  case Linear::kWgrad:
    cuda::linearWgrad(nullptr, got.data(), a.data(), b.data(), kRows, kIn, kOut);
    kernels::linearWgrad(want.data(), a.data(), b.data(), kRows, kIn, kOut);
    break;
  }
  return {widened(got), widened(want)};
}

/// Operand sizes of each op: (x, w), (dy, w), (dy, x).
std::pair<int64_t, int64_t> linearSizes(Linear op) {
  if (op == Linear::kForward)
    return {kRows * kIn, kOut * kIn};
  if (op == Linear::kDgrad)
    return {kRows * kOut, kOut * kIn};
  return {kRows * kOut, kRows * kIn};
}

/// absDot of each op's result from its (narrowed) operands.
template <typename T>
std::vector<double> linearAbsDot(Linear op, const std::vector<float> &first,
                                 const std::vector<float> &second) {
  const std::vector<float> a = widened(narrowed<T>(first)), b = widened(narrowed<T>(second));
  if (op == Linear::kForward) // x [rows, in] w [out, in]^T
    return absProduct(
        kRows, kOut, kIn, [&](int64_t i, int64_t l) { return a[i * kIn + l]; },
        [&](int64_t l, int64_t j) { return b[j * kIn + l]; });
  if (op == Linear::kDgrad) // dy [rows, out] w [out, in]
    return absProduct(
        kRows, kIn, kOut, [&](int64_t i, int64_t l) { return a[i * kOut + l]; },
        [&](int64_t l, int64_t j) { return b[l * kIn + j]; });
  return absProduct( // dy [rows, out]^T x [rows, in]
      kOut, kIn, kRows, [&](int64_t i, int64_t l) { return a[l * kOut + i]; },
      [&](int64_t l, int64_t j) { return b[l * kIn + j]; });
}

template <typename T> void checkLinear(Linear op, uint64_t seed) {
  auto [firstSize, secondSize] = linearSizes(op);
  const int64_t k = op == Linear::kForward ? kIn : op == Linear::kDgrad ? kOut : kRows;
  // Exact: every order gives the same sums.
  {
    const std::vector<float> first = smallInts(seed, firstSize),
                             second = smallInts(seed + 1, secondSize);
    auto [got, want] = runLinear<T>(op, first, second);
    EXPECT_TRUE(sameBits(got, want));
  }
  // Random: within the accumulation bound.
  {
    const std::vector<float> first = randomFloats(seed + 2, firstSize),
                             second = randomFloats(seed + 3, secondSize, 0.5);
    auto [got, want] = runLinear<T>(op, first, second);
    EXPECT_TRUE(withinGemmBound(got, want, linearAbsDot<T>(op, first, second), k, 2.0,
                                resultRounding<T>()));
  }
}

TEST(CudaShimGemm, LinearF32MatchesTheHost) {
  checkLinear<float>(Linear::kForward, 10);
  checkLinear<float>(Linear::kDgrad, 20);
  checkLinear<float>(Linear::kWgrad, 30);
}

TEST(CudaShimGemm, LinearBf16MatchesTheHost) {
  checkLinear<Bf16>(Linear::kForward, 40);
  checkLinear<Bf16>(Linear::kDgrad, 50);
  checkLinear<Bf16>(Linear::kWgrad, 60);
}

TEST(CudaShimGemm, LinearF16MatchesTheHost) {
  checkLinear<F16>(Linear::kForward, 70);
  checkLinear<F16>(Linear::kDgrad, 80);
  checkLinear<F16>(Linear::kWgrad, 90);
}

TEST(CudaShimGemm, LinearZeroRows) {
  // Forward and dgrad write nothing; wgrad zeroes dw, as the host does.
  const std::vector<float> w = randomFloats(100, kOut * kIn);
  std::vector<float> y(4, 7.0f), dw(kOut * kIn, 7.0f), want(kOut * kIn, 7.0f);
  cuda::linearForward(nullptr, y.data(), nullptr, w.data(), 0, kIn, kOut);
  cuda::linearDgrad(nullptr, y.data(), nullptr, w.data(), 0, kIn, kOut);
  EXPECT_TRUE(sameBits(y, std::vector<float>(4, 7.0f)));
  cuda::linearWgrad(nullptr, dw.data(), nullptr, nullptr, 0, kIn, kOut);
  kernels::linearWgrad(want.data(), nullptr, nullptr, 0, kIn, kOut);
  EXPECT_TRUE(sameBits(dw, want));
  std::vector<Bf16> dwNarrow(kOut * kIn, Bf16{0x4000}), wantNarrow(kOut * kIn, Bf16{0x4000});
  cuda::linearWgrad(nullptr, dwNarrow.data(), nullptr, nullptr, 0, kIn, kOut);
  kernels::linearWgrad(wantNarrow.data(), nullptr, nullptr, 0, kIn, kOut);
  EXPECT_TRUE(sameBits(widened(dwNarrow), widened(wantNarrow)));
}

//===----------------------------------------------------------------------===//
// Grouped GEMMs
//===----------------------------------------------------------------------===//

// 4 experts, one empty, over 52 of 60 rows (8 rows of capacity past them).
constexpr int64_t kGroupRows = 60, kExperts = 4, kGroupK = 70, kGroupN = 33;
const std::vector<int32_t> kGroupOffsets = {0, 5, 5, 40, 52};

enum class Grouped { kForward, kDgrad, kWgrad };

template <typename T>
std::pair<std::vector<float>, std::vector<float>>
runGrouped(Grouped op, const std::vector<float> &first, const std::vector<float> &second,
           const std::vector<int32_t> &offsets) {
  const std::vector<T> a = narrowed<T>(first), b = narrowed<T>(second);
  const int64_t size = op == Grouped::kForward ? kGroupRows * kGroupN
                       : op == Grouped::kDgrad ? kGroupRows * kGroupK
                                               : kExperts * kGroupN * kGroupK;
  std::vector<T> got(size, kernels::narrowTo<T>(9.0f)), want(size, kernels::narrowTo<T>(9.0f));
  std::string error;
  switch (op) {
  case Grouped::kForward:
    EXPECT_TRUE(cuda::groupedMatmul(nullptr, a.data(), b.data(), offsets.data(), kGroupRows,
                                    kGroupK, kExperts, kGroupN, got.data(), &error));
    EXPECT_TRUE(kernels::groupedMatmul(a.data(), b.data(), offsets.data(), kGroupRows, kGroupK,
                                       kExperts, kGroupN, want.data(), &error));
    break;
  case Grouped::kDgrad:
    EXPECT_TRUE(cuda::groupedMatmulDgrad(nullptr, a.data(), b.data(), offsets.data(), kGroupRows,
                                         kGroupN, kExperts, kGroupK, got.data(), &error));
    EXPECT_TRUE(kernels::groupedMatmulDgrad(a.data(), b.data(), offsets.data(), kGroupRows, kGroupN,
                                            kExperts, kGroupK, want.data(), &error));
    break;
  case Grouped::kWgrad:
    EXPECT_TRUE(cuda::groupedMatmulWgrad(nullptr, a.data(), b.data(), offsets.data(), kGroupRows,
                                         kGroupN, kGroupK, kExperts, got.data(), &error));
    EXPECT_TRUE(kernels::groupedMatmulWgrad(a.data(), b.data(), offsets.data(), kGroupRows, kGroupN,
                                            kGroupK, kExperts, want.data(), &error));
    break;
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  return {widened(got), widened(want)};
}

template <typename T> void checkGrouped(Grouped op, uint64_t seed) {
  const int64_t firstSize = op == Grouped::kForward ? kGroupRows * kGroupK : kGroupRows * kGroupN;
  const int64_t secondSize =
      op == Grouped::kWgrad ? kGroupRows * kGroupK : kExperts * kGroupN * kGroupK;
  {
    auto [got, want] = runGrouped<T>(op, smallInts(seed, firstSize),
                                     smallInts(seed + 1, secondSize), kGroupOffsets);
    EXPECT_TRUE(sameBits(got, want));
  }
  const std::vector<float> first = randomFloats(seed + 2, firstSize),
                           second = randomFloats(seed + 3, secondSize, 0.5);
  auto [got, want] = runGrouped<T>(op, first, second, kGroupOffsets);
  const std::vector<float> a = widened(narrowed<T>(first)), b = widened(narrowed<T>(second));
  auto expertOf = [](int64_t r) {
    int64_t e = 0;
    while (e + 1 < kExperts && kGroupOffsets[e + 1] <= r)
      ++e;
    return r < kGroupOffsets[kExperts] ? e : -1;
  };
  std::vector<double> absDot;
  int64_t k = 0;
  if (op == Grouped::kWgrad) {
    k = kGroupRows;
    for (int64_t e = 0; e < kExperts; ++e)
      for (int64_t i = 0; i < kGroupN; ++i)
        for (int64_t j = 0; j < kGroupK; ++j) {
          double s = 0;
          for (int64_t r = kGroupOffsets[e]; r < kGroupOffsets[e + 1]; ++r)
            s += std::fabs(double(a[r * kGroupN + i]) * b[r * kGroupK + j]);
          absDot.push_back(s);
        }
  } else {
    const bool forward = op == Grouped::kForward;
    const int64_t inner = forward ? kGroupK : kGroupN, cols = forward ? kGroupN : kGroupK;
    k = inner;
    for (int64_t r = 0; r < kGroupRows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        double s = 0;
        const int64_t e = expertOf(r);
        for (int64_t l = 0; e >= 0 && l < inner; ++l)
          s += std::fabs(double(a[r * inner + l]) *
                         b[e * kGroupN * kGroupK + (forward ? j * kGroupK + l : l * kGroupK + j)]);
        absDot.push_back(s);
      }
  }
  EXPECT_TRUE(withinGemmBound(got, want, absDot, k, 2.0, resultRounding<T>()));
}

TEST(CudaShimGemm, GroupedF32MatchesTheHost) {
  checkGrouped<float>(Grouped::kForward, 200);
  checkGrouped<float>(Grouped::kDgrad, 210);
  checkGrouped<float>(Grouped::kWgrad, 220);
}

TEST(CudaShimGemm, GroupedBf16MatchesTheHost) {
  checkGrouped<Bf16>(Grouped::kForward, 230);
  checkGrouped<Bf16>(Grouped::kDgrad, 240);
  checkGrouped<Bf16>(Grouped::kWgrad, 250);
}

TEST(CudaShimGemm, GroupedF16MatchesTheHost) {
  checkGrouped<F16>(Grouped::kForward, 260);
  checkGrouped<F16>(Grouped::kDgrad, 270);
  checkGrouped<F16>(Grouped::kWgrad, 280);
}

TEST(CudaShimGemm, GroupedSizeErrorsAreTheHosts) {
  const std::vector<float> x(kGroupRows * kGroupK), w(kExperts * kGroupN * kGroupK);
  std::vector<float> out(kGroupRows * kGroupN);
  std::string got, want;
  EXPECT_FALSE(cuda::groupedMatmul(nullptr, x.data(), w.data(), kGroupOffsets.data(), kGroupRows, 0,
                                   kExperts, kGroupN, out.data(), &got));
  EXPECT_FALSE(kernels::groupedMatmul(x.data(), w.data(), kGroupOffsets.data(), kGroupRows, 0,
                                      kExperts, kGroupN, out.data(), &want));
  EXPECT_EQ(got, want);
  EXPECT_FALSE(cuda::groupedMatmulWgrad(nullptr, out.data(), x.data(), kGroupOffsets.data(),
                                        kGroupRows, kGroupN, kGroupK, 0, out.data(), &got));
  EXPECT_FALSE(kernels::groupedMatmulWgrad(out.data(), x.data(), kGroupOffsets.data(), kGroupRows,
                                           kGroupN, kGroupK, 0, out.data(), &want));
  EXPECT_EQ(got, want);
  EXPECT_EQ(cuda::takeDeviceError().code, 0); // nothing was launched
  // No rows at all: valid offsets, nothing to compute.
  const std::vector<int32_t> none(kExperts + 1, 0);
  EXPECT_TRUE(cuda::groupedMatmul(nullptr, x.data(), w.data(), none.data(), 0, kGroupK, kExperts,
                                  kGroupN, out.data(), &got));
  EXPECT_TRUE(kernels::groupedMatmul(x.data(), w.data(), none.data(), 0, kGroupK, kExperts,
                                     kGroupN, out.data(), &want));
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimGemm, GroupedBadOffsetsAreDeviceErrors) {
  const std::vector<float> x = randomFloats(300, kGroupRows * kGroupK),
                           w = randomFloats(301, kExperts * kGroupN * kGroupK),
                           dy = randomFloats(302, kGroupRows * kGroupN);
  std::vector<float> out(kGroupRows * kGroupN), dx(kGroupRows * kGroupK),
      dw(kExperts * kGroupN * kGroupK);
  struct Case {
    std::vector<int32_t> offsets;
    int64_t index;
  };
  const Case cases[] = {{{3, 5, 5, 40, 52}, 0},  // not starting at 0
                        {{0, 20, 5, 40, 52}, 2}, // decreasing at entry 2
                        {{0, 5, 5, 40, 61}, 4},  // past the rows
                        {{0, 5, 5, -9, 52}, 3}}; // negative
  for (const Case &c : cases) {
    EXPECT_TRUE(cuda::groupedMatmul(nullptr, x.data(), w.data(), c.offsets.data(), kGroupRows,
                                    kGroupK, kExperts, kGroupN, out.data()));
    cuda::DeviceErrorRecord error = cuda::takeDeviceError();
    EXPECT_EQ(error.code, cuda::kBadExpertOffsets);
    EXPECT_EQ(error.index, c.index);
    EXPECT_TRUE(cuda::groupedMatmulDgrad(nullptr, dy.data(), w.data(), c.offsets.data(), kGroupRows,
                                         kGroupN, kExperts, kGroupK, dx.data()));
    EXPECT_EQ(cuda::takeDeviceError().code, cuda::kBadExpertOffsets);
    EXPECT_TRUE(cuda::groupedMatmulWgrad(nullptr, dy.data(), x.data(), c.offsets.data(), kGroupRows,
                                         kGroupN, kGroupK, kExperts, dw.data()));
    EXPECT_EQ(cuda::takeDeviceError().index, c.index);
  }
}

//===----------------------------------------------------------------------===//
// FP8 GEMMs
//===----------------------------------------------------------------------===//

/// An FP8 operand stored [rows, cols] with its tiles: values and scales.
struct Fp8Matrix {
  std::vector<E4m3> values;
  std::vector<float> scales;
  kernels::Fp8Tiles tiles;
  kernels::ScaledOperand operand(bool kMajor) const {
    return {values.data(), scales.data(), tiles, kMajor};
  }
  /// The dequantized value of [r, c] (the host's scale index).
  double at(int64_t r, int64_t c) const {
    const int64_t matrixRows = tiles.rows / tiles.matrices;
    const int64_t perMatrix = (matrixRows + tiles.tileRows - 1) / tiles.tileRows;
    const int64_t s = ((r / matrixRows) * perMatrix + (r % matrixRows) / tiles.tileRows) *
                          ((tiles.cols + tiles.tileCols - 1) / tiles.tileCols) +
                      c / tiles.tileCols;
    return double(kernels::widen(values[r * tiles.cols + c])) * scales[s];
  }
};

/// Exact (integer values in [-8, 8], scales of amax / 448 for amax in
/// [0.5, 4.5)) or quantized from random floats by the host's quantizeFp8.
Fp8Matrix fp8Matrix(uint64_t seed, kernels::Fp8Tiles tiles, bool exact) {
  Fp8Matrix m{std::vector<E4m3>(tiles.rows * tiles.cols), {}, tiles};
  const int64_t perMatrix = (tiles.rows / tiles.matrices + tiles.tileRows - 1) / tiles.tileRows;
  const int64_t scaleCount =
      tiles.matrices * perMatrix * ((tiles.cols + tiles.tileCols - 1) / tiles.tileCols);
  if (exact) {
    m.values = narrowed<E4m3>(smallInts(seed, tiles.rows * tiles.cols));
    m.scales = randomFloats(seed + 1, scaleCount, 1.0);
    for (float &s : m.scales)
      s = (2.5f + std::fabs(s)) / kernels::kE4m3Max;
  } else {
    m.scales.resize(scaleCount);
    const std::vector<float> x = randomFloats(seed, tiles.rows * tiles.cols);
    kernels::quantizeFp8(m.values.data(), m.scales.data(), x.data(), tiles);
  }
  return m;
}

/// absDot of scaledMatmul's out [m, n] with the scales applied.
std::vector<double> scaledAbsDot(const Fp8Matrix &lhs, bool lhsKMajor, const Fp8Matrix &rhs,
                                 bool rhsKMajor, int64_t m, int64_t n, int64_t k) {
  return absProduct(
      m, n, k, [&](int64_t i, int64_t l) { return lhsKMajor ? lhs.at(l, i) : lhs.at(i, l); },
      [&](int64_t l, int64_t j) { return rhsKMajor ? rhs.at(l, j) : rhs.at(j, l); });
}

/// scaledMatmul against the host for Out = float, Bf16 and F16, exact and
/// random; `cublasLt` says which path the launcher must take.
void checkScaledMatmul(uint64_t seed, kernels::Fp8Tiles lhsTiles, bool lhsKMajor,
                       kernels::Fp8Tiles rhsTiles, bool rhsKMajor, int64_t m, int64_t n, int64_t k,
                       bool cublasLt) {
  for (bool exact : {true, false}) {
    const Fp8Matrix lhs = fp8Matrix(seed, lhsTiles, exact),
                    rhs = fp8Matrix(seed + 7, rhsTiles, exact);
    const kernels::ScaledOperand a = lhs.operand(lhsKMajor), b = rhs.operand(rhsKMajor);
    auto check = [&](auto zero, double rounding) {
      using Out = decltype(zero);
      std::vector<Out> got(m * n), want(m * n);
      EXPECT_EQ(cuda::scaledMatmulTakesCublasLt(got.data(), a, b, m, n, k), cublasLt);
      cuda::scaledMatmul(nullptr, got.data(), a, b, m, n, k);
      kernels::scaledMatmul(want.data(), a, b, m, n, k);
      if (exact)
        EXPECT_TRUE(sameBits(widened(got), widened(want)));
      else
        EXPECT_TRUE(withinGemmBound(widened(got), widened(want),
                                    scaledAbsDot(lhs, lhsKMajor, rhs, rhsKMajor, m, n, k), k, 4.0,
                                    rounding));
    };
    check(0.0f, 0.0);
    check(Bf16{}, 0x1.0p-7);
    check(F16{}, 0x1.0p-10);
  }
}

// cuBLASLt-eligible: M, N multiples of 4 (and of 8 for 16-bit results),
// K = 3 blocks, so the 128x128 scales need the column stride L4 = 4.
constexpr int64_t kFp8M = 12, kFp8N = 136, kFp8K = 384;

TEST(CudaShimGemm, ScaledMatmulFpropThroughCublasLtLayouts) {
  // y = x W^T: x [M, K] 1x128 (VEC128, transposed scales), W [N, K]
  // 128x128 (BLK128x128, padded to L4).
  checkScaledMatmul(400, {kFp8M, kFp8K, 1, 128}, false, {kFp8N, kFp8K, 128, 128}, false, kFp8M,
                    kFp8N, kFp8K, true);
}

TEST(CudaShimGemm, ScaledMatmulDgradThroughCublasLtLayouts) {
  // dx = dy W: W stored [K, N] (K-major: values transposed, 128x128 scales
  // transposed to p * L4 + b).
  checkScaledMatmul(410, {kFp8M, kFp8K, 1, 128}, false, {kFp8K, kFp8N, 128, 128}, true, kFp8M,
                    kFp8N, kFp8K, true);
}

TEST(CudaShimGemm, ScaledMatmulWgradThroughCublasLtLayouts) {
  // dW = dy^T x: both stored [K, other] in 128x1 tiles (values transposed,
  // scales already VEC128's).
  checkScaledMatmul(420, {kFp8K, kFp8M, 128, 1}, true, {kFp8K, kFp8N, 128, 1}, true, kFp8M, kFp8N,
                    kFp8K, true);
}

TEST(CudaShimGemm, ScaledMatmulFallsBackToKilnsKernel) {
  // M not a multiple of 4; K not a multiple of 128.
  checkScaledMatmul(430, {7, kFp8K, 1, 128}, false, {kFp8N, kFp8K, 128, 128}, false, 7, kFp8N,
                    kFp8K, false);
  checkScaledMatmul(440, {kFp8M, 300, 1, 128}, false, {kFp8N, 300, 128, 128}, false, kFp8M, kFp8N,
                    300, false);
  // BLK/BLK (cuBLASLt refuses it) and stacked matrices.
  checkScaledMatmul(450, {kFp8M, kFp8K, 128, 128}, false, {kFp8N, kFp8K, 128, 128}, false, kFp8M,
                    kFp8N, kFp8K, false);
  checkScaledMatmul(460, {kFp8M, kFp8K, 1, 128}, false, {kFp8N, kFp8K, 128, 128, 2}, false, kFp8M,
                    kFp8N, kFp8K, false);
}

// Grouped FP8: 3 experts over 200 of 210 rows, the first longer than a
// 128-row tile, the second empty.
constexpr int64_t kFp8Rows = 210, kFp8Experts = 3, kFp8GroupK = 256, kFp8GroupN = 72;
const std::vector<int32_t> kFp8Offsets = {0, 150, 150, 200};

template <typename Out> void checkScaledGrouped(uint64_t seed, bool transposeRhs) {
  // Weights [experts, wRows, wCols], each expert in its own 128x128 blocks.
  const int64_t wRows = transposeRhs ? kFp8GroupN : kFp8GroupK;
  const int64_t wCols = transposeRhs ? kFp8GroupK : kFp8GroupN;
  const Fp8Matrix lhs = fp8Matrix(seed, {kFp8Rows, kFp8GroupK, 1, 128}, true);
  const Fp8Matrix w =
      fp8Matrix(seed + 1, {kFp8Experts * wRows, wCols, 128, 128, kFp8Experts}, true);
  std::vector<Out> got(kFp8Rows * kFp8GroupN, kernels::narrowTo<Out>(5.0f)), want = got;
  std::string error;
  EXPECT_TRUE(cuda::scaledGroupedMatmul(
      nullptr, got.data(), lhs.values.data(), lhs.scales.data(), w.values.data(), w.scales.data(),
      kFp8Offsets.data(), kFp8Rows, kFp8GroupK, kFp8Experts, wRows, wCols, transposeRhs, &error));
  EXPECT_TRUE(kernels::scaledGroupedMatmul(
      want.data(), lhs.values.data(), lhs.scales.data(), w.values.data(), w.scales.data(),
      kFp8Offsets.data(), kFp8Rows, kFp8GroupK, kFp8Experts, wRows, wCols, transposeRhs, &error));
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  EXPECT_TRUE(sameBits(widened(got), widened(want)));
}

TEST(CudaShimGemm, ScaledGroupedMatmulMatchesTheHost) {
  checkScaledGrouped<float>(500, true);
  checkScaledGrouped<float>(510, false);
  checkScaledGrouped<Bf16>(520, true);
  checkScaledGrouped<F16>(530, false);
}

template <typename Out> void checkScaledGroupedWgrad(uint64_t seed) {
  // 128x1 tiles restarting at each expert: scale rows from offsets[e] / 128 + e.
  const int64_t scaleRows = kernels::fp8GroupedScaleRows(kFp8Rows, kFp8Experts, 128);
  Fp8Matrix dy = fp8Matrix(seed, {kFp8Rows, kFp8GroupN, 1, 1}, true);
  Fp8Matrix x = fp8Matrix(seed + 1, {kFp8Rows, kFp8GroupK, 1, 1}, true);
  dy.scales.resize(scaleRows * kFp8GroupN);
  x.scales.resize(scaleRows * kFp8GroupK);
  std::vector<Out> got(kFp8Experts * kFp8GroupN * kFp8GroupK, kernels::narrowTo<Out>(5.0f)),
      want = got;
  std::string error;
  EXPECT_TRUE(cuda::scaledGroupedMatmulWgrad(
      nullptr, got.data(), dy.values.data(), dy.scales.data(), x.values.data(), x.scales.data(),
      kFp8Offsets.data(), kFp8Rows, kFp8GroupN, kFp8GroupK, kFp8Experts, &error));
  EXPECT_TRUE(kernels::scaledGroupedMatmulWgrad(
      want.data(), dy.values.data(), dy.scales.data(), x.values.data(), x.scales.data(),
      kFp8Offsets.data(), kFp8Rows, kFp8GroupN, kFp8GroupK, kFp8Experts, &error));
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  EXPECT_TRUE(sameBits(widened(got), widened(want)));
}

TEST(CudaShimGemm, ScaledGroupedMatmulWgradMatchesTheHost) {
  checkScaledGroupedWgrad<float>(600);
  checkScaledGroupedWgrad<Bf16>(610);
  checkScaledGroupedWgrad<F16>(620);
}

TEST(CudaShimGemm, ScaledGroupedBadOffsetsAreDeviceErrors) {
  const Fp8Matrix lhs = fp8Matrix(700, {kFp8Rows, kFp8GroupK, 1, 128}, true);
  const Fp8Matrix w =
      fp8Matrix(701, {kFp8Experts * kFp8GroupN, kFp8GroupK, 128, 128, kFp8Experts}, true);
  const std::vector<int32_t> bad = {0, 150, 140, 200};
  std::vector<float> out(kFp8Rows * kFp8GroupN), dw(kFp8Experts * kFp8GroupN * kFp8GroupK);
  EXPECT_TRUE(cuda::scaledGroupedMatmul(
      nullptr, out.data(), lhs.values.data(), lhs.scales.data(), w.values.data(), w.scales.data(),
      bad.data(), kFp8Rows, kFp8GroupK, kFp8Experts, kFp8GroupN, kFp8GroupK, true, nullptr));
  cuda::DeviceErrorRecord error = cuda::takeDeviceError();
  EXPECT_EQ(error.code, cuda::kBadExpertOffsets);
  EXPECT_EQ(error.index, 2);
  // Wgrad reads each expert's scale rows from offsets[e] / 128 + e: a range
  // past the rows must not be read.
  const std::vector<int32_t> past = {0, 150, 150, 400};
  const int64_t scaleRows = kernels::fp8GroupedScaleRows(kFp8Rows, kFp8Experts, 128);
  const std::vector<E4m3> values(kFp8Rows * kFp8GroupK);
  const std::vector<float> scales(scaleRows * kFp8GroupK, 1.0f);
  EXPECT_TRUE(cuda::scaledGroupedMatmulWgrad(nullptr, dw.data(), values.data(), scales.data(),
                                             values.data(), scales.data(), past.data(), kFp8Rows,
                                             kFp8GroupN, kFp8GroupK, kFp8Experts, nullptr));
  error = cuda::takeDeviceError();
  EXPECT_EQ(error.code, cuda::kBadExpertOffsets);
  EXPECT_EQ(error.index, kFp8Experts);
}

} // namespace
