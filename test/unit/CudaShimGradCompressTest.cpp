//===- CudaShimGradCompressTest.cpp - cuda/GradCompress.cuh on the CPU shim ===//
//
// runtime/kernels/cuda/GradCompress.cuh's launchers run through Device.cuh's
// grid loop and match runtime/kernels/GradCompress.h's host kernels byte for
// byte (messages) and bit for bit (residuals, sums): ties in magnitude at
// the k-th place (the lower indices win), NaN and inf (first, and a NaN
// scale), k = n, k = 1, in place and not, int8 and f32; decompression of
// several ranks' messages at unaligned offsets. A bad message index is a
// device error. The GPU's one-block select is left to scripts/gpu-check.sh.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/GradCompress.h"
#include "runtime/kernels/GradCompressMath.h"

#include "runtime/kernels/cuda/GradCompress.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

/// Gradients whose magnitudes tie a lot (a coarse grid), with -0 and, when
/// asked, a NaN and an inf.
std::vector<float> tiedGrads(uint64_t seed, int64_t n, bool nonFinite) {
  std::vector<float> v = randomFloats(seed, n);
  for (float &x : v)
    x = std::round(x * 4.0f) / 4.0f;
  v[1] = -0.0f;
  if (nonFinite && n > 20) {
    v[7] = NAN;
    v[20] = -INFINITY;
  }
  return v;
}

TEST(CudaShimGradCompress, CompressMatchesTheHost) {
  for (int64_t n : {1, 5, 300, 1000})
    for (int64_t k : {int64_t(1), n / 3 + 1, n})
      for (bool int8 : {false, true})
        for (bool nonFinite : {false, true})
          for (int inPlace = 0; inPlace < 3; ++inPlace) { // 0: new, 1: in place, 2: none
            const std::vector<float> grad = tiedGrads(n + k, n, nonFinite),
                                     residual = tiedGrads(n + k + 1, n, false);
            const int64_t bytes = kernels::topkMessageBytes(k, int8);
            std::vector<int8_t> message(bytes, 3), want(bytes, 3);
            std::vector<float> res = residual, wantRes = residual;
            std::vector<float> fresh(n, 9.0f), wantFresh(n, 9.0f);
            float *out = inPlace == 0 ? fresh.data() : inPlace == 1 ? res.data() : nullptr;
            float *wantOut = inPlace == 0   ? wantFresh.data()
                             : inPlace == 1 ? wantRes.data()
                                            : nullptr;
            ASSERT_TRUE(cuda::topkCompress(nullptr, grad.data(), res.data(), n, k, int8,
                                           message.data(), out));
            ASSERT_TRUE(kernels::topkCompress(grad.data(), wantRes.data(), n, k, int8, want.data(),
                                              wantOut));
            const std::string what = "n " + std::to_string(n) + " k " + std::to_string(k) +
                                     " int8 " + std::to_string(int8) + " nonfinite " +
                                     std::to_string(nonFinite) + " mode " + std::to_string(inPlace);
            EXPECT_EQ(message, want) << what;
            EXPECT_TRUE(sameBits(res, wantRes)) << what;
            EXPECT_TRUE(sameBits(fresh, wantFresh)) << what;
          }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  std::string error, wantError;
  std::vector<float> g(4);
  std::vector<int8_t> m(64);
  EXPECT_FALSE(
      cuda::topkCompress(nullptr, g.data(), g.data(), 4, 5, false, m.data(), nullptr, &error));
  EXPECT_FALSE(
      kernels::topkCompress(g.data(), g.data(), 4, 5, false, m.data(), nullptr, &wantError));
  EXPECT_EQ(error, wantError);
}

/// Three ranks' messages back to back (int8 messages are 4 + 5k bytes, so
/// ranks 1 and 2 start unaligned), overlapping indices.
TEST(CudaShimGradCompress, DecompressMatchesTheHost) {
  const int64_t n = 700, k = 77, ranks = 3;
  for (bool int8 : {false, true}) {
    const int64_t bytes = kernels::topkMessageBytes(k, int8);
    std::vector<int8_t> messages(ranks * bytes);
    for (int64_t r = 0; r < ranks; ++r) {
      const std::vector<float> grad = tiedGrads(40 + r, n, false), residual(n, 0.0f);
      ASSERT_TRUE(kernels::topkCompress(grad.data(), residual.data(), n, k, int8,
                                        messages.data() + r * bytes, nullptr));
    }
    std::vector<float> out(n, 5.0f), want(n, 5.0f);
    ASSERT_TRUE(cuda::topkDecompress(nullptr, messages.data(), ranks, n, k, int8, out.data()));
    ASSERT_TRUE(kernels::topkDecompress(messages.data(), ranks, n, k, int8, want.data()));
    EXPECT_TRUE(sameBits(out, want)) << "int8 " << int8;
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  std::string error, wantError;
  std::vector<int8_t> m(64);
  std::vector<float> out(8);
  EXPECT_FALSE(cuda::topkDecompress(nullptr, m.data(), 0, 8, 2, false, out.data(), &error));
  EXPECT_FALSE(kernels::topkDecompress(m.data(), 0, 8, 2, false, out.data(), &wantError));
  EXPECT_EQ(error, wantError);
}

TEST(CudaShimGradCompress, BadMessageIndicesAreDeviceErrors) {
  const int64_t n = 10, k = 3, ranks = 2;
  std::vector<int8_t> messages(ranks * 8 * k, 0);
  auto setIndex = [&](int64_t r, int64_t j, int32_t index) {
    std::memcpy(messages.data() + r * 8 * k + 4 * j, &index, 4);
  };
  setIndex(0, 0, 1), setIndex(0, 1, 4), setIndex(0, 2, 9);
  setIndex(1, 0, 2), setIndex(1, 1, 10), setIndex(1, 2, 3); // rank 1: 10 is out of range
  std::vector<float> out(n, 5.0f);
  EXPECT_TRUE(cuda::topkDecompress(nullptr, messages.data(), ranks, n, k, false, out.data()));
  cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadTopkIndex);
  EXPECT_EQ(e.index, 1);
  setIndex(1, 1, 2); // in range, but not increasing
  EXPECT_TRUE(cuda::topkDecompress(nullptr, messages.data(), ranks, n, k, false, out.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kTopkIndicesNotIncreasing);
  EXPECT_EQ(e.index, 1);
}

} // namespace
