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

} // namespace
