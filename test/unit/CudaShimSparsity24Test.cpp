//===- CudaShimSparsity24Test.cpp - cuda/Sparsity24.cuh on the CPU shim ---===//
//
// runtime/kernels/cuda/Sparsity24.cuh's launchers run through Device.cuh's
// grid loop and match runtime/kernels/Sparsity24.h's host kernels bit for
// bit: masks with ties, NaN and -0, the three steps of the mask update (in
// place too), compression of rows whose last metadata word is partial and
// of groups with fewer than 2 nonzeros, and the round trip. A group with 3
// nonzeros and an invalid nibble are device errors.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Sparsity24.h"

#include "runtime/kernels/cuda/Sparsity24.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

/// Weights with ties, NaN and -0 among them.
std::vector<float> awkwardWeights(uint64_t seed, int64_t n) {
  std::vector<float> w = randomFloats(seed, n);
  for (int64_t i = 0; i < n; i += 9)
    w[i] = -w[i + 1 < n ? i + 1 : i]; // equal magnitudes
  if (n > 13) {
    w[5] = NAN;
    w[13] = -0.0f;
  }
  return w;
}

TEST(CudaShimSparsity24, MaskMatchesTheHost) {
  const int64_t n = 1204; // 301 groups: more than one block
  const std::vector<float> w = awkwardWeights(1, n);
  std::vector<float> mask(n), want(n);
  cuda::sparsityMask24(nullptr, w.data(), n, mask.data());
  kernels::sparsityMask24(w.data(), n, want.data());
  EXPECT_TRUE(sameBits(mask, want));
}

TEST(CudaShimSparsity24, MaskUpdateMatchesTheHostAtEveryStep) {
  const int64_t n = 1028;
  const std::vector<float> w = awkwardWeights(2, n), old = randomFloats(3, n);
  for (int64_t step : {1, 4, 5, 6, 9}) // start 5, every 2: dense, dense, select, keep, select
    for (bool inPlace : {false, true}) {
      // In place: the mask is the output; else the output starts as junk.
      std::vector<float> got = inPlace ? old : std::vector<float>(n, 3.0f), want(n);
      ASSERT_TRUE(cuda::sparsityMaskUpdate24(nullptr, w.data(), inPlace ? got.data() : old.data(),
                                             step, 5, 2, n, got.data()));
      ASSERT_TRUE(kernels::sparsityMaskUpdate24(w.data(), old.data(), step, 5, 2, n, want.data()));
      EXPECT_TRUE(sameBits(got, want)) << "step " << step << (inPlace ? " in place" : "");
    }
  std::string error, wantError;
  std::vector<float> out(8);
  EXPECT_FALSE(
      cuda::sparsityMaskUpdate24(nullptr, w.data(), old.data(), 0, 1, 1, 8, out.data(), &error));
  EXPECT_FALSE(
      kernels::sparsityMaskUpdate24(w.data(), old.data(), 0, 1, 1, 8, out.data(), &wantError));
  EXPECT_EQ(error, wantError);
  EXPECT_FALSE(
      cuda::sparsityMaskUpdate24(nullptr, w.data(), old.data(), 1, 1, 1, 6, out.data(), &error));
  EXPECT_FALSE(
      kernels::sparsityMaskUpdate24(w.data(), old.data(), 1, 1, 1, 6, out.data(), &wantError));
  EXPECT_EQ(error, wantError);
}

/// 2:4-sparse rows: the mask applied, then some groups thinned to 1 or 0
/// nonzeros (zeros stored at the lowest free positions), NaN kept.
TEST(CudaShimSparsity24, CompressAndDecompressMatchTheHost) {
  for (int64_t cols : {4, 40, 64, 100})
    for (int64_t rows : {1, 37}) {
      std::vector<float> dense = awkwardWeights(10 + cols, rows * cols), mask(rows * cols);
      kernels::sparsityMask24(dense.data(), rows * cols, mask.data());
      for (int64_t i = 0; i < rows * cols; ++i)
        dense[i] = mask[i] != 0.0f ? dense[i] : 0.0f;
      for (int64_t i = 0; i < rows * cols; i += 11)
        dense[i] = 0.0f;
      const int64_t words = kernels::metadataWordsPerRow(cols);
      std::vector<float> values(rows * cols / 2, 9.0f), wantValues(rows * cols / 2, 9.0f);
      std::vector<uint32_t> meta(rows * words), wantMeta(rows * words);
      std::string error;
      ASSERT_TRUE(
          cuda::compress24(nullptr, dense.data(), rows, cols, values.data(), meta.data(), error));
      ASSERT_TRUE(
          kernels::compress24(dense.data(), rows, cols, wantValues.data(), wantMeta.data(), error));
      EXPECT_TRUE(sameBits(values, wantValues)) << rows << "x" << cols;
      EXPECT_EQ(meta, wantMeta) << rows << "x" << cols;
      std::vector<float> back(rows * cols, 5.0f), wantBack(rows * cols, 5.0f);
      ASSERT_TRUE(
          cuda::decompress24(nullptr, values.data(), meta.data(), rows, cols, back.data(), error));
      ASSERT_TRUE(kernels::decompress24(wantValues.data(), wantMeta.data(), rows, cols,
                                        wantBack.data(), error));
      EXPECT_TRUE(sameBits(back, wantBack)) << rows << "x" << cols;
    }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimSparsity24, BadColumnsAreRejectedAsTheHostRejectsThem) {
  std::vector<float> dense(6), values(3);
  std::vector<uint32_t> meta(1);
  std::string error, wantError;
  EXPECT_FALSE(cuda::compress24(nullptr, dense.data(), 1, 6, values.data(), meta.data(), error));
  EXPECT_FALSE(kernels::compress24(dense.data(), 1, 6, values.data(), meta.data(), wantError));
  EXPECT_EQ(error, wantError);
  EXPECT_FALSE(cuda::decompress24(nullptr, values.data(), meta.data(), 1, 6, dense.data(), error));
  EXPECT_FALSE(kernels::decompress24(values.data(), meta.data(), 1, 6, dense.data(), wantError));
  EXPECT_EQ(error, wantError);
}

TEST(CudaShimSparsity24, DenseGroupsAndBadNibblesAreDeviceErrors) {
  const int64_t rows = 2, cols = 40; // 10 groups a row, 2 words
  std::vector<float> dense(rows * cols, 0.0f), values(rows * cols / 2);
  std::vector<uint32_t> meta(rows * 2);
  dense[cols + 4 * 3 + 0] = dense[cols + 4 * 3 + 1] = dense[cols + 4 * 3 + 3] = 1.0f;
  std::string error;
  EXPECT_TRUE(
      cuda::compress24(nullptr, dense.data(), rows, cols, values.data(), meta.data(), error));
  cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kNotSparse24);
  EXPECT_EQ(e.index, 10 + 3);              // row 1, group 3
  EXPECT_EQ((meta[2] >> 12) & 0xFu, 0x4u); // skipped: the default nibble
  meta[3] = (meta[3] & ~0xF0u) | 0x30u;    // row 1, group 9: 0x3 is not valid
  std::vector<float> back(rows * cols, 5.0f);
  EXPECT_TRUE(
      cuda::decompress24(nullptr, values.data(), meta.data(), rows, cols, back.data(), error));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadSparsityMetadata);
  EXPECT_EQ(e.index, 10 + 9);
  EXPECT_EQ(back[cols + 36], 5.0f); // the bad group left alone
  EXPECT_EQ(back[cols + 32], 0.0f);
}

} // namespace
