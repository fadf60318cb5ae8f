//===- CudaShimDenseTest.cpp - cuda/Dense.cuh on the CPU shim -------------===//
//
// runtime/kernels/cuda/Dense.cuh's launchers run through Device.cuh's grid
// loop and match runtime/kernels/Dense.h's host kernels bit for bit (the
// reference-order row kernels included; the GPU's block-per-row kernels are
// bounded by scripts/gpu-check.sh where a GPU is lent).
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Dense.h"

#include "runtime/kernels/cuda/Dense.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

// Sizes that leave a partial block and more than one block.
constexpr int64_t kElements = 1000, kRows = 37, kHidden = 70;

TEST(CudaShimDense, SiluMatchesTheHost) {
  const std::vector<float> x = randomFloats(1, kElements, 3.0), dy = randomFloats(2, kElements);
  std::vector<float> y(kElements), want(kElements), dx(kElements), wantDx(kElements);
  cuda::siluForward(nullptr, y.data(), x.data(), kElements);
  kernels::siluForward(want.data(), x.data(), kElements);
  EXPECT_TRUE(sameBits(y, want));
  cuda::siluBackward(nullptr, dx.data(), dy.data(), x.data(), kElements);
  kernels::siluBackward(wantDx.data(), dy.data(), x.data(), kElements);
  EXPECT_TRUE(sameBits(dx, wantDx));
}

TEST(CudaShimDense, RmsNormForwardMatchesTheHost) {
  const std::vector<float> x = randomFloats(3, kRows * kHidden),
                           gamma = randomFloats(4, kHidden, 0.5);
  std::vector<float> y(kRows * kHidden), want(kRows * kHidden);
  cuda::rmsNormForward(nullptr, y.data(), x.data(), gamma.data(), kRows, kHidden, 1e-6f);
  kernels::rmsNormForward(want.data(), x.data(), gamma.data(), kRows, kHidden, 1e-6f);
  EXPECT_TRUE(sameBits(y, want));
}

TEST(CudaShimDense, RmsNormForwardWithZeroRowsWritesNothing) {
  std::vector<float> gamma = randomFloats(4, kHidden), y(1, 7.0f);
  cuda::rmsNormForward(nullptr, y.data(), nullptr, gamma.data(), 0, kHidden, 1e-6f);
  EXPECT_EQ(y[0], 7.0f);
}

TEST(CudaShimDense, RmsNormBackwardMatchesTheHost) {
  const std::vector<float> x = randomFloats(5, kRows * kHidden),
                           dy = randomFloats(6, kRows * kHidden),
                           gamma = randomFloats(7, kHidden, 0.5);
  std::vector<float> dx(kRows * kHidden), dgamma(kHidden), wantDx(kRows * kHidden),
      wantDgamma(kHidden);
  cuda::rmsNormBackward(nullptr, dx.data(), dgamma.data(), dy.data(), x.data(), gamma.data(),
                        kRows, kHidden, 1e-5f);
  kernels::rmsNormBackward(wantDx.data(), wantDgamma.data(), dy.data(), x.data(), gamma.data(),
                           kRows, kHidden, 1e-5f);
  EXPECT_TRUE(sameBits(dx, wantDx));
  EXPECT_TRUE(sameBits(dgamma, wantDgamma));
}

TEST(CudaShimDense, RmsNormBackwardWithZeroRowsZeroesDgamma) {
  const std::vector<float> gamma = randomFloats(7, kHidden);
  std::vector<float> dgamma(kHidden, 3.0f);
  cuda::rmsNormBackward(nullptr, nullptr, dgamma.data(), nullptr, nullptr, gamma.data(), 0,
                        kHidden, 1e-5f);
  EXPECT_TRUE(sameBits(dgamma, std::vector<float>(kHidden, 0.0f)));
}

// dgamma's chunked order (kDgammaChunkRows rows, then the chunks in order),
// the launcher's on the GPU and the shim alike, is the host's: the same
// bits over several chunks and a partial one.
TEST(CudaShimDense, RmsNormDgammaChunksAreTheHostsBits) {
  const int64_t rows = 3 * kernels::kDgammaChunkRows + 5;
  const std::vector<float> x = randomFloats(8, rows * kHidden),
                           dy = randomFloats(9, rows * kHidden),
                           gamma = randomFloats(10, kHidden, 0.5);
  std::vector<float> dx(rows * kHidden), inv(rows), dgamma(kHidden), wantDx(rows * kHidden),
      wantDgamma(kHidden);
  kernels::rmsNormBackward(wantDx.data(), wantDgamma.data(), dy.data(), x.data(), gamma.data(),
                           rows, kHidden, 1e-5f);
  const int64_t chunks = (rows + kernels::kDgammaChunkRows - 1) / kernels::kDgammaChunkRows;
  std::vector<float> partial(chunks * kHidden);
  KILN_LAUNCH(cuda::rmsNormBackwardRowKernel, cuda::blocksFor(rows), cuda::kBlock, 0, nullptr,
              dx.data(), inv.data(), dy.data(), x.data(), gamma.data(), rows, kHidden, 1e-5f);
  KILN_LAUNCH(cuda::rmsNormDgammaChunkKernel, cuda::blocksFor(chunks * kHidden), cuda::kBlock,
              0, nullptr, partial.data(), dy.data(), x.data(), inv.data(), rows, kHidden);
  KILN_LAUNCH(cuda::columnSumKernel, cuda::blocksFor(kHidden), cuda::kBlock, 0, nullptr,
              dgamma.data(), partial.data(), chunks, kHidden);
  EXPECT_TRUE(sameBits(dx, wantDx));
  EXPECT_TRUE(sameBits(dgamma, wantDgamma));
}

TEST(CudaShimDense, SwigluMatchesTheHost) {
  const std::vector<float> gate = randomFloats(11, kElements, 3.0),
                           up = randomFloats(12, kElements), dy = randomFloats(13, kElements);
  std::vector<float> y(kElements), want(kElements);
  cuda::swigluForward(nullptr, y.data(), gate.data(), up.data(), kElements);
  kernels::swigluForward(want.data(), gate.data(), up.data(), kElements);
  EXPECT_TRUE(sameBits(y, want));
  std::vector<float> dgate(kElements), dup(kElements), wantDgate(kElements), wantDup(kElements);
  cuda::swigluBackward(nullptr, dgate.data(), dup.data(), dy.data(), gate.data(), up.data(),
                       kElements);
  kernels::swigluBackward(wantDgate.data(), wantDup.data(), dy.data(), gate.data(), up.data(),
                          kElements);
  EXPECT_TRUE(sameBits(dgate, wantDgate));
  EXPECT_TRUE(sameBits(dup, wantDup));
}

TEST(CudaShimDense, ScaleMatchesTheHostInPlace) {
  const std::vector<float> x = randomFloats(14, kElements);
  std::vector<float> y = x, want(kElements);
  cuda::scale(nullptr, y.data(), y.data(), kElements, -0.37f);
  kernels::scale(want.data(), x.data(), kElements, -0.37f);
  EXPECT_TRUE(sameBits(y, want));
}

TEST(CudaShimDense, EmbeddingMatchesTheHost) {
  const int64_t tokens = 301, vocab = 23;
  const std::vector<float> table = randomFloats(15, vocab * kHidden),
                           dout = randomFloats(16, tokens * kHidden);
  // Repeated ids, so the gradient sums several tokens per row; some rows
  // get none (zero).
  const std::vector<int32_t> ids = randomIds(17, tokens, vocab - 3);
  std::vector<float> out(tokens * kHidden), want(tokens * kHidden);
  cuda::embeddingForward(nullptr, out.data(), table.data(), ids.data(), tokens, vocab, kHidden);
  kernels::embeddingForward(want.data(), table.data(), ids.data(), tokens, vocab, kHidden);
  EXPECT_TRUE(sameBits(out, want));
  std::vector<float> dtable(vocab * kHidden, 5.0f), wantDtable(vocab * kHidden);
  cuda::embeddingBackward(nullptr, dtable.data(), dout.data(), ids.data(), tokens, vocab,
                          kHidden);
  kernels::embeddingBackward(wantDtable.data(), dout.data(), ids.data(), tokens, vocab, kHidden);
  EXPECT_TRUE(sameBits(dtable, wantDtable));
  EXPECT_EQ(cuda::takeDeviceError().code, cuda::kNoError);
}

TEST(CudaShimDense, EmbeddingIdOutOfRangeIsADeviceError) {
  const int64_t tokens = 5, vocab = 4, hidden = 3;
  const std::vector<float> table = randomFloats(18, vocab * hidden),
                           dout = randomFloats(19, tokens * hidden);
  for (int32_t bad : {-1, 4}) {
    const std::vector<int32_t> ids = {0, 3, bad, 1, 2};
    std::vector<float> out(tokens * hidden, 9.0f);
    cuda::embeddingForward(nullptr, out.data(), table.data(), ids.data(), tokens, vocab, hidden);
    cuda::DeviceErrorRecord error = cuda::takeDeviceError();
    EXPECT_EQ(error.code, cuda::kIdOutOfRange);
    EXPECT_EQ(error.index, 2);
    for (int64_t c = 0; c < hidden; ++c) {
      EXPECT_EQ(out[2 * hidden + c], 0.0f);
      EXPECT_EQ(out[3 * hidden + c], table[1 * hidden + c]);
    }
    // The gradient leaves the bad token out of every sum.
    std::vector<float> dtable(vocab * hidden);
    cuda::embeddingBackward(nullptr, dtable.data(), dout.data(), ids.data(), tokens, vocab,
                            hidden);
    error = cuda::takeDeviceError();
    EXPECT_EQ(error.code, cuda::kIdOutOfRange);
    EXPECT_EQ(error.index, 2);
    for (int64_t c = 0; c < hidden; ++c)
      EXPECT_EQ(dtable[1 * hidden + c], dout[3 * hidden + c]);
  }
}

TEST(CudaShimDense, EmbeddingWithZeroTokens) {
  std::vector<float> out(1, 7.0f), dtable(4 * 3, 7.0f);
  cuda::embeddingForward(nullptr, out.data(), nullptr, nullptr, 0, 4, 3);
  EXPECT_EQ(out[0], 7.0f);
  cuda::embeddingBackward(nullptr, dtable.data(), nullptr, nullptr, 0, 4, 3);
  EXPECT_TRUE(sameBits(dtable, std::vector<float>(4 * 3, 0.0f)));
}

} // namespace
