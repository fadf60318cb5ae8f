//===- CudaShimLossTest.cpp - cuda/Loss.cuh on the CPU shim ---------------===//
//
// runtime/kernels/cuda/Loss.cuh's launchers run through Device.cuh's grid
// loop and match runtime/kernels/Loss.h's host kernels bit for bit: masks
// that are 0, fractional and above 1, masked positions with targets out of
// range (never read), label smoothing, a global token count, no positions.
// A target out of range at an unmasked position is a device error. (The
// GPU's block-per-position kernels are bounded by scripts/gpu-check.sh where
// a GPU is lent.)
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Loss.h"

#include "runtime/kernels/cuda/Loss.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

/// Seeded logits, targets and a mask with zeros, fractions and 2s; every
/// 7th position is masked with a target out of range (the host never reads
/// it).
struct Batch {
  int64_t positions, vocab;
  std::vector<float> logits, mask;
  std::vector<int32_t> targets;

  Batch(uint64_t seed, int64_t positions, int64_t vocab)
      : positions(positions), vocab(vocab), logits(randomFloats(seed, positions * vocab, 4.0)),
        mask(positions), targets(randomIds(seed + 1, positions, vocab)) {
    for (int64_t i = 0; i < positions; ++i) {
      mask[i] = i % 5 == 0 ? 0.0f : i % 3 == 0 ? 0.5f : i % 11 == 0 ? 2.0f : 1.0f;
      if (i % 7 == 0) {
        mask[i] = 0.0f;
        targets[i] = i % 2 ? -3 : int32_t(vocab);
      }
    }
  }
};

// A partial block of positions, and more than one block; a long row.
const int64_t kShapes[][2] = {{37, 300}, {301, 37}, {9, 5000}};

TEST(CudaShimLoss, ForwardMatchesTheHost) {
  for (const auto &shape : kShapes)
    for (float smoothing : {0.0f, 0.1f}) {
      Batch b(shape[0], shape[0], shape[1]);
      const float got = cuda::crossEntropyForward(nullptr, b.logits.data(), b.targets.data(),
                                                  b.mask.data(), b.positions, b.vocab, smoothing);
      const float want = kernels::crossEntropyForward(b.logits.data(), b.targets.data(),
                                                      b.mask.data(), b.positions, b.vocab,
                                                      smoothing);
      EXPECT_TRUE(sameBits({got}, {want})) << shape[0] << " x " << shape[1];
      // The device-scalar overload writes the same bits.
      float loss = -1.0f;
      cuda::crossEntropyForward(nullptr, &loss, b.logits.data(), b.targets.data(), b.mask.data(),
                                b.positions, b.vocab, smoothing);
      EXPECT_TRUE(sameBits({loss}, {want}));
    }
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimLoss, ForwardWithACountMatchesTheHost) {
  Batch b(3, 37, 300);
  const float count = 123.0f;
  const float got = cuda::crossEntropyForward(nullptr, b.logits.data(), b.targets.data(),
                                              b.mask.data(), b.positions, b.vocab, 0.1f, &count);
  const float want = kernels::crossEntropyForward(b.logits.data(), b.targets.data(),
                                                  b.mask.data(), b.positions, b.vocab, 0.1f,
                                                  &count);
  EXPECT_TRUE(sameBits({got}, {want}));
}

TEST(CudaShimLoss, ForwardOfNothingIsZero) {
  Batch b(4, 6, 10);
  std::fill(b.mask.begin(), b.mask.end(), 0.0f);
  EXPECT_EQ(cuda::crossEntropyForward(nullptr, b.logits.data(), b.targets.data(), b.mask.data(),
                                      b.positions, b.vocab, 0.0f),
            0.0f);
  const float zero = 0.0f;
  EXPECT_EQ(cuda::crossEntropyForward(nullptr, nullptr, nullptr, nullptr, 0, 10, 0.0f), 0.0f);
  EXPECT_EQ(cuda::crossEntropyForward(nullptr, nullptr, nullptr, nullptr, 0, 10, 0.0f, &zero),
            0.0f);
}

TEST(CudaShimLoss, BackwardMatchesTheHost) {
  for (const auto &shape : kShapes)
    for (float smoothing : {0.0f, 0.1f}) {
      Batch b(shape[0] + 10, shape[0], shape[1]);
      const int64_t n = b.positions * b.vocab;
      std::vector<float> got(n, 9.0f), gotDevice(n, 9.0f), want(n);
      const float dloss = 0.75f;
      cuda::crossEntropyBackward(nullptr, got.data(), b.logits.data(), b.targets.data(),
                                 b.mask.data(), b.positions, b.vocab, smoothing, dloss);
      cuda::crossEntropyBackward(nullptr, gotDevice.data(), b.logits.data(), b.targets.data(),
                                 b.mask.data(), b.positions, b.vocab, smoothing, &dloss);
      kernels::crossEntropyBackward(want.data(), b.logits.data(), b.targets.data(),
                                    b.mask.data(), b.positions, b.vocab, smoothing, dloss);
      EXPECT_TRUE(sameBits(got, want)) << shape[0] << " x " << shape[1];
      EXPECT_TRUE(sameBits(gotDevice, want)) << shape[0] << " x " << shape[1];
    }
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimLoss, BackwardWithACountMatchesTheHost) {
  Batch b(5, 37, 300);
  const int64_t n = b.positions * b.vocab;
  const float count = 77.0f;
  std::vector<float> got(n), want(n);
  cuda::crossEntropyBackward(nullptr, got.data(), b.logits.data(), b.targets.data(),
                             b.mask.data(), b.positions, b.vocab, 0.0f, 1.5f, &count);
  kernels::crossEntropyBackward(want.data(), b.logits.data(), b.targets.data(), b.mask.data(),
                                b.positions, b.vocab, 0.0f, 1.5f, &count);
  EXPECT_TRUE(sameBits(got, want));
}

TEST(CudaShimLoss, BackwardOfAnAllZeroMaskIsZero) {
  Batch b(6, 6, 10);
  std::fill(b.mask.begin(), b.mask.end(), 0.0f);
  std::vector<float> got(6 * 10, 9.0f);
  cuda::crossEntropyBackward(nullptr, got.data(), b.logits.data(), b.targets.data(),
                             b.mask.data(), b.positions, b.vocab, 0.1f, 1.0f);
  EXPECT_TRUE(sameBits(got, std::vector<float>(6 * 10, 0.0f)));
  cuda::crossEntropyBackward(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 10, 0.1f, 1.0f);
}

TEST(CudaShimLoss, TargetOutOfRangeIsADeviceError) {
  Batch b(7, 9, 10);
  for (int32_t bad : {-1, 10}) {
    b.mask[4] = 1.0f;
    b.targets[4] = bad;
    cuda::crossEntropyForward(nullptr, b.logits.data(), b.targets.data(), b.mask.data(),
                              b.positions, b.vocab, 0.0f);
    cuda::DeviceErrorRecord error = cuda::takeDeviceError();
    EXPECT_EQ(error.code, cuda::kIdOutOfRange);
    EXPECT_EQ(error.index, 4);
    // The gradient's row for it is zero; the others are the host's.
    std::vector<float> got(9 * 10, 9.0f), want(9 * 10);
    cuda::crossEntropyBackward(nullptr, got.data(), b.logits.data(), b.targets.data(),
                               b.mask.data(), b.positions, b.vocab, 0.0f, 1.0f);
    error = cuda::takeDeviceError();
    EXPECT_EQ(error.code, cuda::kIdOutOfRange);
    EXPECT_EQ(error.index, 4);
    for (int64_t c = 0; c < 10; ++c)
      EXPECT_EQ(got[4 * 10 + c], 0.0f);
    b.targets[4] = 2; // the host refuses the bad target: compare with this one's weight
    kernels::crossEntropyBackward(want.data(), b.logits.data(), b.targets.data(), b.mask.data(),
                                  b.positions, b.vocab, 0.0f, 1.0f);
    for (int64_t i = 0; i < 9; ++i) {
      if (i == 4)
        continue;
      EXPECT_TRUE(sameBits({got.begin() + i * 10, got.begin() + i * 10 + 10},
                           {want.begin() + i * 10, want.begin() + i * 10 + 10}))
          << "position " << i;
    }
  }
}

} // namespace
