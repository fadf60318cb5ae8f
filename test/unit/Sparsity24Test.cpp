//===- Sparsity24Test.cpp - 2:4 selection and the compressed form ---------===//
//
// keep2of4 against a sort written here (every group over a set of values
// with ties, zeros of both signs, infinities and NaN), and the compressed
// form (values + mma.sp metadata) round-tripping masked random matrices,
// with its errors.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Optimizer.h"
#include "runtime/kernels/Sparsity24.h"
#include "runtime/kernels/SparsityMath.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace kiln::kernels {
namespace {

/// The two positions of largest magnitude (NaN largest, ties to the lower
/// position), by sorting.
unsigned keepBySorting(const float *w) {
  auto key = [&](int j) {
    float m = std::fabs(w[j]);
    return std::isnan(m) ? std::numeric_limits<float>::infinity() : m;
  };
  std::vector<int> order = {0, 1, 2, 3};
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) > key(b); });
  return (1u << order[0]) | (1u << order[1]);
}

TEST(Sparsity24, KeepsTheTwoLargestMagnitudesOfEveryGroup) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  const float values[] = {-2.0f, -1.0f, -0.0f, 0.0f, 1.0f, 2.0f, inf, nan};
  int groups = 0;
  for (float a : values)
    for (float b : values)
      for (float c : values)
        for (float d : values) {
          const float w[4] = {a, b, c, d};
          const unsigned keep = keep2of4(w);
          ASSERT_EQ(keep, keepBySorting(w)) << a << " " << b << " " << c << " " << d;
          EXPECT_TRUE(isValidMetadataNibble(metadataNibble(keep)));
          ++groups;
        }
  EXPECT_EQ(groups, 4096);
  const float w[4] = {1.0f, -3.0f, 2.0f, 0.5f};
  EXPECT_EQ(keep2of4(w), 0b0110u);
  EXPECT_EQ(metadataNibble(0b0110u), 0x9u); // positions 1 and 2
  EXPECT_EQ(metadataNibble(0b1100u), 0xEu);
  EXPECT_EQ(metadataNibble(0b0011u), 0x4u);
  for (unsigned nibble : {0x0u, 0x5u, 0x6u, 0x7u, 0xAu, 0xFu, 0x1u})
    EXPECT_FALSE(isValidMetadataNibble(nibble)) << nibble;
}

TEST(Sparsity24, CompressedFormRoundTrips) {
  std::mt19937_64 rng(24);
  std::normal_distribution<float> normal;
  for (int64_t cols : {4, 32, 72, 128}) {
    const int64_t rows = 5;
    std::vector<float> w(size_t(rows * cols)), mask(w.size());
    for (float &v : w)
      v = normal(rng);
    // Some groups with fewer than two nonzeros.
    w[0] = w[1] = w[2] = 0.0f;
    if (cols >= 8)
      w[4] = w[5] = w[6] = w[7] = 0.0f;
    sparsityMask24(w.data(), int64_t(w.size()), mask.data());
    std::vector<float> sparse(w.size());
    for (size_t i = 0; i < w.size(); ++i)
      sparse[i] = w[i] * mask[i];
    for (int64_t g = 0; g < rows * cols / 4; ++g) {
      int kept = 0;
      for (int j = 0; j < 4; ++j)
        kept += mask[size_t(4 * g + j)] == 1.0f;
      ASSERT_EQ(kept, 2) << "group " << g;
    }
    const int64_t words = metadataWordsPerRow(cols);
    std::vector<float> values(size_t(rows * cols / 2));
    std::vector<uint32_t> metadata(size_t(rows * words));
    std::string error;
    ASSERT_TRUE(compress24(sparse.data(), rows, cols, values.data(), metadata.data(), error))
        << error;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < 8 * words; ++g) {
        const unsigned nibble = (metadata[size_t(r * words + g / 8)] >> (4 * (g % 8))) & 0xFu;
        EXPECT_TRUE(isValidMetadataNibble(nibble)) << "row " << r << " group " << g;
        if (g >= cols / 4) {
          EXPECT_EQ(nibble, 0x4u) << "padding group " << g;
        }
      }
    std::vector<float> back(w.size(), -1.0f);
    ASSERT_TRUE(decompress24(values.data(), metadata.data(), rows, cols, back.data(), error))
        << error;
    EXPECT_EQ(back, sparse) << "cols " << cols;
  }
}

// The weight and schedule of test/Reference/ops/sparsity_mask.mlir, whose
// expected masks the evaluator gives: the host kernel gives the same.
TEST(Sparsity24, MaskUpdateFollowsTheSchedule) {
  const float nan = std::nanf("");
  const std::vector<float> w = {1, -3, 2, 0.5f, 0, 0, -1, 1, 4, 4, 4, -4, nan, 9, -9, 1};
  const std::vector<float> m = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1};
  const std::vector<float> ones(16, 1.0f);
  const std::vector<float> selected = {0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0};
  const std::pair<int64_t, const std::vector<float> *> cases[] = {
      {4, &ones}, {5, &selected}, {7, &m}, {8, &selected}};
  for (auto [step, want] : cases) {
    std::vector<float> out(16, -1.0f);
    std::string error;
    ASSERT_TRUE(sparsityMaskUpdate24(w.data(), m.data(), step, 5, 3, 16, out.data(), &error))
        << error;
    EXPECT_EQ(out, *want) << "step " << step;
  }
  // In place, as the step keeps its mask state.
  std::vector<float> state = m;
  ASSERT_TRUE(sparsityMaskUpdate24(w.data(), state.data(), 6, 5, 3, 16, state.data()));
  EXPECT_EQ(state, m);
  std::string error;
  EXPECT_FALSE(sparsityMaskUpdate24(w.data(), m.data(), 0, 5, 3, 16, state.data(), &error));
  EXPECT_EQ(error, "sparsity_mask_2_4: step 0 is not a 1-based step (expected >= 1)");
}

// AdamW with a mask: kept entries bit for bit as without it, pruned ones
// (weight, moments) exactly zero, and zero again after another step.
TEST(Sparsity24, MaskedAdamwKeepsPrunedEntriesZero) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  const int64_t n = 64;
  std::vector<float> p(n), g(n), m(n), v(n), mask(n);
  for (int64_t i = 0; i < n; ++i) {
    p[size_t(i)] = normal(rng);
    g[size_t(i)] = normal(rng);
    m[size_t(i)] = 0.1f * normal(rng);
    v[size_t(i)] = 0.01f * std::fabs(normal(rng));
  }
  sparsityMask24(p.data(), n, mask.data());
  std::vector<float> p1 = p, m1 = m, v1 = v, p2 = p, m2 = m, v2 = v;
  ASSERT_TRUE(adamw(p1.data(), g.data(), m1.data(), v1.data(), n, 1e-3f, 5, 0.7f, 0.9f, 0.95f,
                    1e-8f, 0.1f));
  for (int step = 5; step <= 6; ++step)
    ASSERT_TRUE(maskedAdamw(p2.data(), g.data(), m2.data(), v2.data(), mask.data(), n, 1e-3f,
                            step, 0.7f, 0.9f, 0.95f, 1e-8f, 0.1f));
  std::vector<float> again = p, mAgain = m, vAgain = v;
  ASSERT_TRUE(maskedAdamw(again.data(), g.data(), mAgain.data(), vAgain.data(), mask.data(), n,
                          1e-3f, 5, 0.7f, 0.9f, 0.95f, 1e-8f, 0.1f));
  for (int64_t i = 0; i < n; ++i) {
    if (mask[size_t(i)] == 1.0f) {
      EXPECT_EQ(again[size_t(i)], p1[size_t(i)]) << i;
      EXPECT_EQ(mAgain[size_t(i)], m1[size_t(i)]) << i;
      EXPECT_EQ(vAgain[size_t(i)], v1[size_t(i)]) << i;
    } else {
      EXPECT_EQ(p2[size_t(i)], 0.0f) << i;
      EXPECT_EQ(m2[size_t(i)], 0.0f) << i;
      EXPECT_EQ(v2[size_t(i)], 0.0f) << i;
    }
  }
}

TEST(Sparsity24, CompressionErrorsSayWhere) {
  std::string error;
  std::vector<float> dense = {1, 0, 0, 0, 1, 2, 3, 0};
  std::vector<float> values(4);
  std::vector<uint32_t> metadata(1);
  EXPECT_FALSE(compress24(dense.data(), 1, 8, values.data(), metadata.data(), error));
  EXPECT_EQ(error, "not 2:4 sparse at row 0, columns 4..7: 3 nonzeros in a group of 4");
  EXPECT_FALSE(compress24(dense.data(), 1, 6, values.data(), metadata.data(), error));
  EXPECT_EQ(error, "2:4 compression needs a column count divisible by 4, got 6");
  metadata[0] = 0x44444474u; // group 1: 0x7 (positions 3 and 1: not ascending)
  std::vector<float> back(8);
  EXPECT_FALSE(decompress24(values.data(), metadata.data(), 1, 8, back.data(), error));
  EXPECT_EQ(error, "invalid 2:4 metadata nibble 0x7 at row 0, columns 4..7; expected the lower "
                   "kept index in bits 0-1 and the higher in bits 2-3");
}

} // namespace
} // namespace kiln::kernels
