//===- KernelMathTest.cpp - expFaithful and the lane reductions ----------------===//
//
// runtime/kernels/KernelMath.h: expFaithful against e^x in f64 over a sweep of
// every 37th f32 bit pattern in [-110, 90] (about 6e7 values, subnormal
// results included): below 1 ulp of the exact value everywhere, exact
// specials (NaN, +-inf, 0 below the range, +inf above it). laneSum and
// laneMax against their documented order, written out by hand.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/KernelMath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using kiln::kernels::expFaithful;
using kiln::kernels::laneMax;
using kiln::kernels::laneSum;

namespace {

float floatOf(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// The spacing of f32 values at the exact value e (2^-149 among subnormals).
double ulpAt(double e) {
  const float f = float(e);
  if (f < std::numeric_limits<float>::min())
    return std::ldexp(1.0, -149);
  return double(std::nextafter(f, HUGE_VALF)) - double(f);
}

TEST(KernelMath, ExpFaithfulIsFaithfulOverEveryExponent) {
  double worst = 0.0;
  float worstAt = 0.0f;
  int64_t tested = 0;
  for (uint64_t u = 0; u <= 0xFFFFFFFFu; u += 37) {
    const float x = floatOf(uint32_t(u));
    if (!(x >= -110.0f && x <= 90.0f))
      continue;
    ++tested;
    const double exact = std::exp(double(x));
    const float got = expFaithful(x);
    if (exact > double(std::numeric_limits<float>::max())) {
      ASSERT_EQ(got, HUGE_VALF) << "x = " << x;
      continue;
    }
    const double err = std::fabs(double(got) - exact) / ulpAt(exact);
    if (err > worst) {
      worst = err;
      worstAt = x;
    }
  }
  std::printf("expFaithful: %lld values, largest error %.3f ulp at x = %.9g\n", (long long)tested,
              worst, worstAt);
  EXPECT_GT(tested, 50000000);
  EXPECT_LT(worst, 1.0) << "at x = " << worstAt;
}

TEST(KernelMath, ExpFaithfulSpecials) {
  EXPECT_EQ(expFaithful(0.0f), 1.0f);
  EXPECT_EQ(expFaithful(-0.0f), 1.0f);
  EXPECT_EQ(expFaithful(HUGE_VALF), HUGE_VALF);
  EXPECT_EQ(expFaithful(-HUGE_VALF), 0.0f);
  EXPECT_EQ(expFaithful(89.0f), HUGE_VALF);
  EXPECT_EQ(expFaithful(-104.0f), 0.0f);
  EXPECT_TRUE(std::isnan(expFaithful(std::nanf(""))));
  EXPECT_GT(expFaithful(-103.0f), 0.0f); // a subnormal, not flushed
  EXPECT_LT(expFaithful(-103.0f), std::numeric_limits<float>::min());
  EXPECT_LT(expFaithful(88.72283f), HUGE_VALF);
}

TEST(KernelMath, LaneSumAddsEightRunningSumsAsATree) {
  std::vector<float> x(29);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::ldexp(1.0f + float(i) / 7.0f, int(i % 5) * 9 - 18); // order matters
  float lane[8] = {};
  for (size_t i = 0; i + 8 <= 24; i += 8)
    for (int l = 0; l < 8; ++l)
      lane[l] += x[i + size_t(l)];
  for (size_t i = 24; i < x.size(); ++i)
    lane[0] += x[i];
  const float want =
      ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  EXPECT_EQ(laneSum(int64_t(x.size()), [&](int64_t i) { return x[size_t(i)]; }), want);
  EXPECT_EQ(laneSum(0, [&](int64_t i) { return x[size_t(i)]; }), 0.0f);
}

TEST(KernelMath, LaneMaxIsTheMaximumAtEveryLength) {
  for (int64_t n = 1; n < 40; ++n) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      x[size_t(i)] = float((i * 37) % 23) - 11.0f;
    float want = x[0];
    for (float v : x)
      want = std::max(want, v);
    EXPECT_EQ(laneMax(n, [&](int64_t i) { return x[size_t(i)]; }), want) << "n = " << n;
  }
}

} // namespace
