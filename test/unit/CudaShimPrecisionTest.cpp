//===- CudaShimPrecisionTest.cpp - cuda/Precision.cuh on the CPU shim -----===//
//
// runtime/kernels/cuda/Precision.cuh's launchers (the FP8 quantize ops; the
// scaled GEMMs are Gemm.cuh's) run through Device.cuh's grid loop and match
// runtime/kernels/Precision.h's host kernels bit for bit, values and
// scales, for every input and output element type, over tilings that leave
// partial tiles, stacked matrices, empty experts and receive-buffer rows,
// with zeros, subnormals, infinities and NaNs in the data. Bad grouped
// offsets are device error records, nothing read or written out of bounds.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Precision.h"

#include <limits>

#include "runtime/kernels/cuda/Precision.cuh"

using namespace kiln;
using namespace kiln::test;
using kernels::Bf16;
using kernels::E4m3;
using kernels::F16;
using kernels::Fp8Tiles;

namespace {

// A NaN input makes its tile's factor NaN, so its element is NaN x NaN,
// whose sign is that of whichever operand the compiler puts first (x86
// returns the first NaN; multiplication commutes): the host library and
// this test, built with other flags, disagree on it. Hence NaNs compare as
// NaNs, sign and payload aside; every other value bit for bit.

/// The e4m3 bytes as floats of the same bits, for sameBits; NaN (S.1111.111)
/// as the one positive NaN byte.
std::vector<float> bytes(const std::vector<E4m3> &v) {
  std::vector<float> out;
  for (E4m3 b : v)
    out.push_back(float((b.bits & 0x7F) == 0x7F ? 0x7F : b.bits));
  return out;
}

/// Widened to f32, every NaN as the positive quiet NaN.
template <typename T> std::vector<float> widened(const std::vector<T> &v) {
  std::vector<float> out;
  for (T x : v) {
    const float f = kernels::widen(x);
    out.push_back(f != f ? std::numeric_limits<float>::quiet_NaN() : f);
  }
  return out;
}

/// `n` values over many binades, with the awkward ones placed: an all-zero
/// stretch, subnormals, an inf and a NaN (when `specials`).
template <typename In> std::vector<In> inputs(uint64_t seed, int64_t n, bool specials) {
  std::vector<float> f = randomFloats(seed, n, 4.0);
  for (int64_t i = 0; i < n; ++i)
    f[i] = std::ldexp(f[i], int(i % 23) - 11);
  if (specials && n > 700) {
    for (int64_t i = 0; i < 140; ++i)
      f[i] = 0.0f;
    f[150] = 1e-41f;
    f[151] = -3e-39f;
    f[400] = INFINITY;
    f[600] = -NAN;
    f[610] = -1e30f;
  }
  std::vector<In> out;
  for (float x : f)
    out.push_back(kernels::narrowTo<In>(x));
  return out;
}

int64_t scaleCount(const Fp8Tiles &t) {
  const int64_t perMatrix = (t.rows / t.matrices + t.tileRows - 1) / t.tileRows;
  return t.matrices * perMatrix * ((t.cols + t.tileCols - 1) / t.tileCols);
}

// Tilings: activation rows in [1, 128] with a partial tile, a weight in
// [128, 128] blocks with partial ones, odd tiles, stacked matrices, the
// grouped weight gradient's [128, 1] columns, and no rows.
const Fp8Tiles kTilings[] = {{37, 300, 1, 128},       {200, 260, 128, 128}, {23, 19, 3, 5},
                             {2 * 37, 90, 16, 64, 2}, {150, 40, 128, 1},    {0, 64, 1, 128}};

template <typename In> void expectQuantizeMatches() {
  for (const Fp8Tiles &t : kTilings) {
    const std::vector<In> x = inputs<In>(7 + t.rows, t.rows * t.cols, true);
    std::vector<E4m3> values(x.size()), wantValues(x.size());
    std::vector<float> scales(scaleCount(t), -1.0f), wantScales(scaleCount(t), -2.0f);
    cuda::quantizeFp8(nullptr, values.data(), scales.data(), x.data(), t);
    kernels::quantizeFp8(wantValues.data(), wantScales.data(), x.data(), t);
    EXPECT_TRUE(sameBits(bytes(values), bytes(wantValues))) << t.rows << " x " << t.cols;
    EXPECT_TRUE(sameBits(scales, wantScales)) << t.rows << " x " << t.cols;
  }
}

TEST(CudaShimPrecision, QuantizeFp8MatchesTheHost) {
  expectQuantizeMatches<float>();
  expectQuantizeMatches<Bf16>();
  expectQuantizeMatches<F16>();
}

template <typename Out> void expectDequantizeMatches() {
  for (const Fp8Tiles &t : kTilings) {
    const std::vector<float> x = inputs<float>(9 + t.rows, t.rows * t.cols, true);
    std::vector<E4m3> values(x.size());
    std::vector<float> scales(scaleCount(t));
    kernels::quantizeFp8(values.data(), scales.data(), x.data(), t);
    std::vector<Out> out(x.size()), want(x.size());
    cuda::dequantizeFp8(nullptr, out.data(), values.data(), scales.data(), t);
    kernels::dequantizeFp8(want.data(), values.data(), scales.data(), t);
    EXPECT_TRUE(sameBits(widened(out), widened(want))) << t.rows << " x " << t.cols;
  }
}

TEST(CudaShimPrecision, DequantizeFp8MatchesTheHost) {
  expectDequantizeMatches<float>();
  expectDequantizeMatches<Bf16>();
  expectDequantizeMatches<F16>();
}

struct GroupedCase {
  int64_t rows, cols, tileRows, tileCols;
  std::vector<int32_t> offsets;
};

// Empty experts first, between and last; an expert of more than one tile
// row; rows past the last offset (receive-buffer capacity).
const GroupedCase kGrouped[] = {
    {194, 260, 128, 1, {0, 0, 3, 3, 133, 134, 174, 174}},
    {194, 260, 1, 128, {0, 0, 3, 3, 133, 134, 174, 174}},
    {60, 70, 16, 32, {0, 17, 17, 50}},
    {5, 9, 4, 4, {0, 0}},
};

template <typename In> void expectGroupedMatches() {
  for (const GroupedCase &g : kGrouped) {
    const int64_t experts = int64_t(g.offsets.size()) - 1;
    const std::vector<In> x = inputs<In>(5 + g.rows, g.rows * g.cols, g.rows > 100);
    const int64_t scaleCount = kernels::fp8GroupedScaleRows(g.rows, experts, g.tileRows) *
                               ((g.cols + g.tileCols - 1) / g.tileCols);
    std::vector<E4m3> values(x.size(), E4m3{0x55}), wantValues(x.size(), E4m3{0x66});
    std::vector<float> scales(scaleCount, -1.0f), wantScales(scaleCount, -2.0f);
    ASSERT_TRUE(cuda::quantizeFp8Grouped(nullptr, values.data(), scales.data(), x.data(),
                                         g.offsets.data(), g.rows, g.cols, experts, g.tileRows,
                                         g.tileCols, nullptr));
    ASSERT_TRUE(kernels::quantizeFp8Grouped(wantValues.data(), wantScales.data(), x.data(),
                                            g.offsets.data(), g.rows, g.cols, experts, g.tileRows,
                                            g.tileCols, nullptr));
    EXPECT_TRUE(sameBits(bytes(values), bytes(wantValues))) << g.rows << " x " << g.cols;
    EXPECT_TRUE(sameBits(scales, wantScales)) << g.rows << " x " << g.cols;
  }
}

TEST(CudaShimPrecision, QuantizeFp8GroupedMatchesTheHost) {
  (void)cuda::takeDeviceError();
  expectGroupedMatches<float>();
  expectGroupedMatches<Bf16>();
  expectGroupedMatches<F16>();
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimPrecision, QuantizeFp8GroupedRecordsBadOffsets) {
  constexpr int64_t kRows = 40, kCols = 130;
  struct Case {
    std::vector<int32_t> offsets;
    int64_t index; ///< the first bad entry
  };
  // Not starting at 0; decreasing (also below 0); past the rows; wildly
  // out of range both ways.
  const Case cases[] = {{{3, 10, 20}, 0},
                        {{0, 25, 12, 30}, 2},
                        {{0, 10, -5, 30}, 2},
                        {{0, 10, 41}, 2},
                        {{0, 2147483647, -2147483647 - 1, 40}, 2}};
  const std::vector<float> x = inputs<float>(3, kRows * kCols, false);
  for (const Case &c : cases)
    for (int64_t tileRows : {int64_t(1), int64_t(128), int64_t(7)}) {
      (void)cuda::takeDeviceError();
      const int64_t experts = int64_t(c.offsets.size()) - 1;
      std::vector<E4m3> values(x.size());
      std::vector<float> scales(kernels::fp8GroupedScaleRows(kRows, experts, tileRows) * 2);
      ASSERT_TRUE(cuda::quantizeFp8Grouped(nullptr, values.data(), scales.data(), x.data(),
                                           c.offsets.data(), kRows, kCols, experts, tileRows, 128,
                                           nullptr));
      const cuda::DeviceErrorRecord record = cuda::takeDeviceError();
      EXPECT_EQ(record.code, cuda::kBadExpertOffsets);
      EXPECT_EQ(record.index, c.index) << "tile rows " << tileRows;
      std::string error;
      EXPECT_FALSE(kernels::quantizeFp8Grouped(values.data(), scales.data(), x.data(),
                                               c.offsets.data(), kRows, kCols, experts, tileRows,
                                               128, &error));
    }
}

} // namespace
