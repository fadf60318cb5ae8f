//===- OneDnnMatmulTest.cpp - bf16 linears through oneDNN ------------------===//
//
// runtime/kernels/OneDnnMatmul.h behind NarrowGemm.h's bf16 linears: on
// integer-valued bf16 inputs every product and partial sum is exact in f32,
// so forward, input gradient and weight gradient equal the exact result
// rounded to bf16 once, bit for bit; on random inputs they are within f32
// summation-order rounding of the exact result; the primitive for one shape
// serves other row counts (a runtime dimension) and transposed views. The
// grouped expert GEMMs likewise, per expert, with an empty expert (zero
// weight gradient), receive-buffer rows past the last offset (zero), and
// bad offsets refused through the error string.
// Skips, saying so, in a build without oneDNN.
//
//===----------------------------------------------------------------------===//

#include "runtime/init/SeededRng.h"
#include "runtime/kernels/NarrowGemm.h"
#include "runtime/kernels/OneDnnMatmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace kiln::kernels;

namespace {

std::vector<Bf16> values(uint64_t seed, int64_t n, bool integers) {
  kiln::init::SeededRng rng(seed, "onednn");
  std::vector<Bf16> v(static_cast<size_t>(n));
  for (Bf16 &x : v)
    x = narrowTo<Bf16>(integers ? float(std::floor(rng.uniform() * 9.0) - 4.0)
                                : float(rng.normal()));
  return v;
}

/// c [m, n] = sum_k a(i, k) b(k, j) in f64, with a(i, k) = a[i * aRow + k * aCol].
std::vector<double> exact(const std::vector<Bf16> &a, const std::vector<Bf16> &b, int64_t m,
                          int64_t k, int64_t n, int64_t aRow, int64_t aCol, int64_t bRow,
                          int64_t bCol) {
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        c[size_t(i * n + j)] += double(widen(a[size_t(i * aRow + p * aCol)])) *
                                double(widen(b[size_t(p * bRow + j * bCol)]));
  return c;
}

void expectClose(const std::vector<Bf16> &got, const std::vector<double> &want, bool exactBits,
                 const char *what) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 1e-30;
  for (double w : want)
    scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    const float rounded = widen(narrowTo<Bf16>(float(want[i])));
    if (exactBits)
      ASSERT_EQ(widen(got[i]), rounded) << what << " element " << i;
    else // one bf16 rounding (2^-8 relative) after f32 sums
      ASSERT_LE(std::fabs(double(widen(got[i])) - want[i]), 0x1p-8 * std::fabs(want[i]) +
                                                                 1e-5 * scale)
          << what << " element " << i;
  }
}

TEST(OneDnnMatmul, Bf16LinearsAreTheExactProductRoundedOnce) {
  if (!onednn::available())
    GTEST_SKIP() << "this build has no oneDNN (libdnnl-dev): bf16 linears widen to f32";
  for (const bool integers : {true, false})
    for (const int64_t rows : {37, 128, 5}) { // one primitive, several row counts
      const int64_t in = 96, out = 40;
      const std::vector<Bf16> x = values(1, rows * in, integers),
                              w = values(2, out * in, integers),
                              dy = values(3, rows * out, integers);
      std::vector<Bf16> y(size_t(rows * out)), dx(size_t(rows * in)), dw(size_t(out * in));
      linearForward(y.data(), x.data(), w.data(), rows, in, out);
      linearDgrad(dx.data(), dy.data(), w.data(), rows, in, out);
      linearWgrad(dw.data(), dy.data(), x.data(), rows, in, out);
      expectClose(y, exact(x, w, rows, in, out, in, 1, 1, in), integers, "forward");
      expectClose(dx, exact(dy, w, rows, out, in, out, 1, in, 1), integers, "dgrad");
      expectClose(dw, exact(dy, x, out, rows, in, 1, out, in, 1), integers, "wgrad");
    }
}

/// Rows [offsets[e], offsets[e+1]) of a [rows, cols], as their own matrix.
std::vector<Bf16> slice(const std::vector<Bf16> &a, int64_t cols, int64_t begin, int64_t end) {
  return std::vector<Bf16>(a.begin() + begin * cols, a.begin() + end * cols);
}

TEST(OneDnnMatmul, Bf16GroupedGemmsAreEachExpertsExactProductRoundedOnce) {
  if (!onednn::available())
    GTEST_SKIP() << "this build has no oneDNN (libdnnl-dev): bf16 grouped GEMMs widen to f32";
  const int64_t experts = 4, k = 48, n = 24, rows = 40; // rows 36..39: capacity, zero
  const std::vector<int32_t> offsets = {0, 13, 13, 30, 36};
  for (const bool integers : {true, false}) {
    const std::vector<Bf16> x = values(4, rows * k, integers),
                            w = values(5, experts * n * k, integers),
                            dy = values(6, rows * n, integers);
    std::vector<Bf16> y(size_t(rows * n), narrowTo<Bf16>(7.0f)),
        dx(size_t(rows * k), narrowTo<Bf16>(7.0f)), dw(size_t(experts * n * k));
    std::string error;
    ASSERT_TRUE(groupedMatmul(x.data(), w.data(), offsets.data(), rows, k, experts, n,
                              y.data(), &error)) << error;
    ASSERT_TRUE(groupedMatmulDgrad(dy.data(), w.data(), offsets.data(), rows, n, experts, k,
                                   dx.data(), &error)) << error;
    ASSERT_TRUE(groupedMatmulWgrad(dy.data(), x.data(), offsets.data(), rows, n, k, experts,
                                   dw.data(), &error)) << error;
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t b = offsets[e], m = offsets[e + 1] - offsets[e];
      const std::vector<Bf16> we = slice(w, n * k, e, e + 1);
      expectClose(slice(y, n, b, b + m), exact(slice(x, k, b, b + m), we, m, k, n, k, 1, 1, k),
                  integers, "grouped forward");
      expectClose(slice(dx, k, b, b + m),
                  exact(slice(dy, n, b, b + m), we, m, n, k, n, 1, k, 1), integers,
                  "grouped dgrad");
      expectClose(slice(dw, n * k, e, e + 1),
                  exact(slice(dy, n, b, b + m), slice(x, k, b, b + m), n, m, k, 1, n, k, 1),
                  integers, "grouped wgrad"); // expert 1 has no rows: zero
    }
    for (int64_t i = offsets[experts] * n; i < rows * n; ++i)
      ASSERT_EQ(widen(y[size_t(i)]), 0.0f) << "forward capacity row element " << i;
    for (int64_t i = offsets[experts] * k; i < rows * k; ++i)
      ASSERT_EQ(widen(dx[size_t(i)]), 0.0f) << "dgrad capacity row element " << i;
  }
  const std::vector<int32_t> decreasing = {0, 13, 12, 30, 36};
  std::vector<Bf16> x(size_t(rows * k)), w(size_t(experts * n * k)), y(size_t(rows * n));
  std::string error;
  EXPECT_FALSE(groupedMatmul(x.data(), w.data(), decreasing.data(), rows, k, experts, n,
                             y.data(), &error));
  EXPECT_NE(error.find("grouped_matmul: expert offsets must start at 0, never decrease"),
            std::string::npos)
      << error;
}

} // namespace
