//===- CudaShimGrpoTest.cpp - cuda/Grpo.cuh on the CPU shim ---------------===//
//
// runtime/kernels/cuda/Grpo.cuh's launchers run through Device.cuh's grid
// loop and match runtime/kernels/Grpo.h's host kernels bit for bit (the
// reference-order kernels: a thread per position, one thread for the f64
// sums), over every aggregation, with and without the data-parallel count,
// masked positions (whose targets are never read) and a fully masked row.
// The loss and dloss scalars the launchers take by device pointer are host
// variables here. Targets out of range are device error records. The GPU's
// block-per-position kernels are bounded where a GPU is lent
// (scripts/gpu-check.sh).
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Grpo.h"

#include "runtime/kernels/cuda/Grpo.cuh"

using namespace kiln;
using namespace kiln::test;
using kernels::GrpoAggregation;

namespace {

// Positions and a vocabulary that leave partial blocks.
constexpr int64_t kRows = 5, kSeq = 7, kVocab = 300;
constexpr int64_t kPositions = kRows * kSeq;

/// A GRPO batch: row 2 fully masked, scattered masked positions with
/// targets out of range (never read), a fractional mask weight.
struct Batch {
  std::vector<float> logits = randomFloats(1, kPositions *kVocab, 2.0);
  std::vector<int32_t> targets = randomIds(2, kPositions, kVocab);
  std::vector<float> mask = std::vector<float>(kPositions, 1.0f);
  std::vector<float> advantages = randomFloats(3, kRows);
  std::vector<float> oldLogprobs = randomFloats(4, kPositions, 0.3);
  std::vector<float> refLogprobs = randomFloats(5, kPositions, 0.3);

  Batch() {
    for (int64_t i = 0; i < kPositions; ++i) {
      oldLogprobs[i] -= 5.5f;
      refLogprobs[i] -= 5.5f;
      if (i / kSeq == 2 || i % 5 == 3) {
        mask[i] = 0.0f;
        targets[i] = i % 2 ? -7 : int32_t(kVocab + 3);
      }
    }
    mask[1] = 0.5f;
  }
};

struct Config {
  GrpoAggregation aggregation;
  float beta, temperature;
  bool withCount;
};

const Config kConfigs[] = {
    {GrpoAggregation::TokenMean, 0.0f, 1.0f, false},
    {GrpoAggregation::TokenMean, 0.04f, 0.7f, true},
    {GrpoAggregation::SeqMeanTokenMean, 0.04f, 1.0f, false},
    {GrpoAggregation::SeqMeanTokenMean, 0.0f, 1.3f, true},
    {GrpoAggregation::SeqMeanTokenSumNorm, 0.1f, 1.0f, false},
    {GrpoAggregation::SeqMeanTokenSumNorm, 0.04f, 0.9f, true},
};

TEST(CudaShimGrpo, TokenLogprobsMatchesTheHost) {
  (void)cuda::takeDeviceError();
  const Batch b;
  const std::vector<int32_t> targets = randomIds(7, kPositions, kVocab);
  for (float temperature : {1.0f, 0.6f}) {
    std::vector<float> got(kPositions, -1.0f), want(kPositions, -2.0f);
    cuda::tokenLogprobs(nullptr, got.data(), b.logits.data(), targets.data(), kPositions, kVocab,
                        temperature);
    kernels::tokenLogprobs(want.data(), b.logits.data(), targets.data(), kPositions, kVocab,
                           temperature);
    EXPECT_TRUE(sameBits(got, want)) << "temperature " << temperature;
  }
  cuda::tokenLogprobs(nullptr, nullptr, nullptr, nullptr, 0, kVocab, 1.0f); // no positions
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimGrpo, TokenLogprobsRecordsABadTarget) {
  (void)cuda::takeDeviceError();
  const Batch b;
  std::vector<int32_t> targets = randomIds(7, kPositions, kVocab);
  targets[9] = int32_t(kVocab);
  targets[20] = -1;
  std::vector<float> got(kPositions, -1.0f);
  cuda::tokenLogprobs(nullptr, got.data(), b.logits.data(), targets.data(), kPositions, kVocab,
                      1.0f);
  const cuda::DeviceErrorRecord record = cuda::takeDeviceError();
  EXPECT_EQ(record.code, cuda::kIdOutOfRange);
  EXPECT_EQ(record.index, 9);
  EXPECT_EQ(got[9], -1.0f); // skipped
  EXPECT_EQ(got[20], -1.0f);
  EXPECT_NE(got[10], -1.0f);
}

TEST(CudaShimGrpo, GrpoLossForwardMatchesTheHost) {
  (void)cuda::takeDeviceError();
  const Batch b;
  const float count = 17.0f;
  for (const Config &c : kConfigs) {
    const float *countPtr = c.withCount ? &count : nullptr;
    float got = -1.0f;
    cuda::grpoLossForward(nullptr, &got, b.logits.data(), b.targets.data(), b.mask.data(),
                          b.advantages.data(), b.oldLogprobs.data(), b.refLogprobs.data(), kRows,
                          kSeq, kVocab, c.temperature, 0.2f, 0.28f, c.beta, c.aggregation, kSeq,
                          countPtr);
    const float want = kernels::grpoLossForward(
        b.logits.data(), b.targets.data(), b.mask.data(), b.advantages.data(), b.oldLogprobs.data(),
        b.refLogprobs.data(), kRows, kSeq, kVocab, c.temperature, 0.2f, 0.28f, c.beta,
        c.aggregation, kSeq, countPtr);
    EXPECT_TRUE(sameBits({got}, {want})) << int(c.aggregation) << ", count " << c.withCount;
  }
  // No positions: a zero loss, as the host's.
  for (int64_t rows : {0, 3}) {
    float got = -1.0f;
    cuda::grpoLossForward(nullptr, &got, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, rows,
                          0, kVocab, 1.0f, 0.2f, 0.2f, 0.0f, GrpoAggregation::SeqMeanTokenMean, 0);
    EXPECT_TRUE(sameBits({got}, {0.0f}));
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimGrpo, GrpoLossBackwardMatchesTheHost) {
  (void)cuda::takeDeviceError();
  const Batch b;
  const float count = 17.0f, dloss = 0.75f;
  for (const Config &c : kConfigs) {
    const float *countPtr = c.withCount ? &count : nullptr;
    std::vector<float> got(kPositions * kVocab, -1.0f), want(kPositions * kVocab, -2.0f);
    cuda::grpoLossBackward(nullptr, got.data(), b.logits.data(), b.targets.data(), b.mask.data(),
                           b.advantages.data(), b.oldLogprobs.data(), b.refLogprobs.data(), &dloss,
                           kRows, kSeq, kVocab, c.temperature, 0.2f, 0.28f, c.beta, c.aggregation,
                           kSeq, countPtr);
    kernels::grpoLossBackward(want.data(), b.logits.data(), b.targets.data(), b.mask.data(),
                              b.advantages.data(), b.oldLogprobs.data(), b.refLogprobs.data(),
                              dloss, kRows, kSeq, kVocab, c.temperature, 0.2f, 0.28f, c.beta,
                              c.aggregation, kSeq, countPtr);
    EXPECT_TRUE(sameBits(got, want)) << int(c.aggregation) << ", count " << c.withCount;
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimGrpo, GrpoLossRecordsABadTarget) {
  (void)cuda::takeDeviceError();
  Batch b;
  b.targets[12] = int32_t(kVocab) + 100; // mask 1 there
  ASSERT_NE(b.mask[12], 0.0f);
  float loss = -1.0f;
  cuda::grpoLossForward(nullptr, &loss, b.logits.data(), b.targets.data(), b.mask.data(),
                        b.advantages.data(), b.oldLogprobs.data(), b.refLogprobs.data(), kRows,
                        kSeq, kVocab, 1.0f, 0.2f, 0.2f, 0.0f, GrpoAggregation::TokenMean, 0);
  cuda::DeviceErrorRecord record = cuda::takeDeviceError();
  EXPECT_EQ(record.code, cuda::kIdOutOfRange);
  EXPECT_EQ(record.index, 12);
  EXPECT_TRUE(std::isfinite(loss)); // the position counted as a zero loss

  const float dloss = 1.0f;
  std::vector<float> dlogits(kPositions * kVocab, -1.0f);
  cuda::grpoLossBackward(nullptr, dlogits.data(), b.logits.data(), b.targets.data(), b.mask.data(),
                         b.advantages.data(), b.oldLogprobs.data(), b.refLogprobs.data(), &dloss,
                         kRows, kSeq, kVocab, 1.0f, 0.2f, 0.2f, 0.0f, GrpoAggregation::TokenMean,
                         0);
  record = cuda::takeDeviceError();
  EXPECT_EQ(record.code, cuda::kIdOutOfRange);
  EXPECT_EQ(record.index, 12);
  for (int64_t c = 0; c < kVocab; ++c)
    ASSERT_EQ(dlogits[12 * kVocab + c], 0.0f) << c; // a zero row
}

} // namespace
