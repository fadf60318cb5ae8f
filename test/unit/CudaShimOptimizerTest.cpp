//===- CudaShimOptimizerTest.cpp - cuda/Optimizer.cuh on the CPU shim -----===//
//
// runtime/kernels/cuda/Optimizer.cuh's launchers run through Device.cuh's
// grid loop and match runtime/kernels/Optimizer.h's host kernels bit for
// bit: the scalars the launchers read and write through device pointers
// are plain host variables here. Also the device-data checks (a step below
// 1, a bad loss-scale state) as device error records that write nothing,
// the skip flag, and the argument checks that fail as the host's do. The
// GPU's two-pass global norm is bounded where a GPU is lent
// (scripts/gpu-check.sh).
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/Optimizer.h"
#include "runtime/kernels/PrecisionMath.h"

#include "runtime/kernels/cuda/Optimizer.cuh"

using namespace kiln;
using namespace kiln::test;

namespace {

// A partial block and more than one block of kBlock threads.
constexpr int64_t kSize = 1000;

std::vector<float> widened(const std::vector<kernels::Bf16> &v) {
  std::vector<float> out;
  for (kernels::Bf16 b : v)
    out.push_back(kernels::widen(b));
  return out;
}

std::vector<kernels::Bf16> bf16s(const std::vector<float> &v) {
  std::vector<kernels::Bf16> out;
  for (float x : v)
    out.push_back(kernels::narrowTo<kernels::Bf16>(x));
  return out;
}

/// No device error left over from an earlier test.
void clearDeviceError() { (void)cuda::takeDeviceError(); }

TEST(CudaShimOptimizer, LrScheduleMatchesTheHost) {
  clearDeviceError();
  for (int64_t step : {1, 5, 10, 11, 60, 99, 100, 150}) {
    float got = -1, want = -2;
    ASSERT_TRUE(cuda::lrSchedule(nullptr, &step, 3e-4f, 3e-5f, 10, 100, &got));
    ASSERT_TRUE(kernels::lrSchedule(step, 3e-4f, 3e-5f, 10, 100, &want));
    EXPECT_TRUE(sameBits({got}, {want})) << "step " << step;
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimOptimizer, LrScheduleRecordsABadStep) {
  clearDeviceError();
  const int64_t step = 0;
  float result = 7.0f;
  ASSERT_TRUE(cuda::lrSchedule(nullptr, &step, 3e-4f, 3e-5f, 10, 100, &result));
  EXPECT_EQ(result, 7.0f);
  const cuda::DeviceErrorRecord record = cuda::takeDeviceError();
  EXPECT_EQ(record.code, cuda::kBadOptimizerStep);
  EXPECT_EQ(record.index, 0);
  // Bad attributes fail the launcher with the host's message.
  std::string got, want;
  EXPECT_FALSE(cuda::lrSchedule(nullptr, &step, 3e-4f, 3e-5f, -1, 100, &result, &got));
  EXPECT_FALSE(kernels::lrSchedule(1, 3e-4f, 3e-5f, -1, 100, &result, &want));
  EXPECT_EQ(got, want);
}

TEST(CudaShimOptimizer, GlobalNormMatchesTheHost) {
  clearDeviceError();
  // More tensors than one launch takes (kNormBatch), sizes of several
  // 4096-element chunks, an empty one without data.
  std::vector<std::vector<float>> data;
  std::vector<const float *> ptrs;
  std::vector<int64_t> sizes;
  for (int i = 0; i < cuda::kNormBatch + 7; ++i) {
    const int64_t n = i == 3 ? 0 : i == 5 ? 3 * cuda::kNormChunk + 17 : 1 + 37 * i;
    data.push_back(randomFloats(100 + i, n, 1.0 + i));
    ptrs.push_back(n == 0 ? nullptr : data.back().data());
    sizes.push_back(n);
  }
  for (int64_t count : {int64_t(0), int64_t(1), int64_t(cuda::kNormBatch), int64_t(ptrs.size())}) {
    float got = -1, want = -2;
    ASSERT_TRUE(cuda::globalNorm(nullptr, ptrs.data(), sizes.data(), count, &got));
    ASSERT_TRUE(kernels::globalNorm(ptrs.data(), sizes.data(), count, &want));
    EXPECT_TRUE(sameBits({got}, {want})) << count << " tensors";
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  // A negative size or a non-empty tensor without data: the host's error.
  sizes[2] = -1;
  float norm = 0;
  std::string got, want;
  EXPECT_FALSE(cuda::globalNorm(nullptr, ptrs.data(), sizes.data(), 4, &norm, &got));
  EXPECT_FALSE(kernels::globalNorm(ptrs.data(), sizes.data(), 4, &norm, &want));
  EXPECT_EQ(got, want);
}

TEST(CudaShimOptimizer, ClipScaleMatchesTheHost) {
  for (float norm : {0.0f, 0.5f, 1.0f, 3.7f, 1e30f, INFINITY, NAN})
    for (float maxNorm : {0.0f, 1.0f, 2.5f}) {
      float got = -1;
      cuda::clipScale(nullptr, &got, &norm, maxNorm);
      EXPECT_TRUE(sameBits({got}, {kernels::clipScale(norm, maxNorm)})) << norm << ", " << maxNorm;
    }
}

/// One AdamW configuration on f32 or bf16 moments, masked or not, against
/// the host's overload of the same kind.
template <typename Moment> void expectAdamwMatches(bool masked) {
  clearDeviceError();
  const std::vector<float> param0 = randomFloats(11, kSize), grad = randomFloats(12, kSize, 1e-2);
  std::vector<float> m0 = randomFloats(13, kSize, 1e-3), v0 = randomFloats(14, kSize, 1e-4);
  for (float &x : v0)
    x = x * x;
  std::vector<float> mask(kSize);
  for (int64_t i = 0; i < kSize; ++i)
    mask[i] = (i % 4) < 2 ? 1.0f : 0.0f;
  std::vector<Moment> m(kSize), v(kSize);
  for (int64_t i = 0; i < kSize; ++i) {
    m[i] = kernels::narrowTo<Moment>(m0[i]);
    v[i] = kernels::narrowTo<Moment>(v0[i]);
  }
  std::vector<float> param = param0, wantParam = param0;
  std::vector<Moment> wantM = m, wantV = v;
  const float lr = 1e-3f, gradScale = 0.5f;
  const int64_t step = 7;
  if (masked) {
    ASSERT_TRUE(cuda::maskedAdamw(nullptr, param.data(), grad.data(), m.data(), v.data(),
                                  mask.data(), kSize, &lr, &step, &gradScale, 0.9f, 0.95f, 1e-8f,
                                  0.1f));
    ASSERT_TRUE(kernels::maskedAdamw(wantParam.data(), grad.data(), wantM.data(), wantV.data(),
                                     mask.data(), kSize, lr, step, gradScale, 0.9f, 0.95f, 1e-8f,
                                     0.1f));
  } else {
    ASSERT_TRUE(cuda::adamw(nullptr, param.data(), grad.data(), m.data(), v.data(), kSize, &lr,
                            &step, &gradScale, 0.9f, 0.95f, 1e-8f, 0.1f));
    ASSERT_TRUE(kernels::adamw(wantParam.data(), grad.data(), wantM.data(), wantV.data(), kSize, lr,
                               step, gradScale, 0.9f, 0.95f, 1e-8f, 0.1f));
  }
  EXPECT_TRUE(sameBits(param, wantParam));
  if constexpr (std::is_same_v<Moment, float>) {
    EXPECT_TRUE(sameBits(m, wantM));
    EXPECT_TRUE(sameBits(v, wantV));
  } else {
    EXPECT_TRUE(sameBits(widened(m), widened(wantM)));
    EXPECT_TRUE(sameBits(widened(v), widened(wantV)));
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimOptimizer, AdamwMatchesTheHost) {
  expectAdamwMatches<float>(false);
  expectAdamwMatches<kernels::Bf16>(false);
}

TEST(CudaShimOptimizer, MaskedAdamwMatchesTheHost) {
  expectAdamwMatches<float>(true);
  expectAdamwMatches<kernels::Bf16>(true);
}

TEST(CudaShimOptimizer, AdamwSkipsAndRecordsABadStep) {
  clearDeviceError();
  const std::vector<float> grad = randomFloats(21, kSize);
  std::vector<float> param = randomFloats(22, kSize), m(kSize, 0.0f), v(kSize, 0.0f);
  std::vector<kernels::Bf16> mb = bf16s(m), vb = bf16s(v);
  const std::vector<float> before = param;
  const float lr = 1e-3f, gradScale = 1.0f;
  // A set skip flag (kiln.grad_scaler found an overflow): nothing moves.
  const bool skip = true, noSkip = false;
  int64_t step = 3;
  ASSERT_TRUE(cuda::adamw(nullptr, param.data(), grad.data(), m.data(), v.data(), kSize, &lr, &step,
                          &gradScale, 0.9f, 0.95f, 1e-8f, 0.1f, nullptr, &skip));
  EXPECT_TRUE(sameBits(param, before));
  EXPECT_TRUE(sameBits(m, std::vector<float>(kSize, 0.0f)));
  // A step below 1: recorded, nothing written.
  step = -2;
  ASSERT_TRUE(cuda::adamw(nullptr, param.data(), grad.data(), mb.data(), vb.data(), kSize, &lr,
                          &step, &gradScale, 0.9f, 0.95f, 1e-8f, 0.1f, nullptr, &noSkip));
  EXPECT_TRUE(sameBits(param, before));
  cuda::DeviceErrorRecord record = cuda::takeDeviceError();
  EXPECT_EQ(record.code, cuda::kBadOptimizerStep);
  EXPECT_EQ(record.index, -2);
  ASSERT_TRUE(cuda::maskedAdamw(nullptr, param.data(), grad.data(), m.data(), v.data(), grad.data(),
                                kSize, &lr, &step, &gradScale, 0.9f, 0.95f, 1e-8f, 0.1f));
  EXPECT_TRUE(sameBits(param, before));
  record = cuda::takeDeviceError();
  EXPECT_EQ(record.code, cuda::kBadOptimizerStep);
  // A negative size fails the launcher with the host's message.
  std::string got, want;
  step = 1;
  EXPECT_FALSE(cuda::adamw(nullptr, param.data(), grad.data(), m.data(), v.data(), -3, &lr, &step,
                           &gradScale, 0.9f, 0.95f, 1e-8f, 0.1f, &got));
  EXPECT_FALSE(kernels::adamw(param.data(), grad.data(), m.data(), v.data(), -3, lr, step,
                              gradScale, 0.9f, 0.95f, 1e-8f, 0.1f, &want));
  EXPECT_EQ(got, want);
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimOptimizer, GradScalerMatchesTheHost) {
  clearDeviceError();
  struct Case {
    float norm, scale;
    int64_t tracker, updates;
  };
  for (Case c : {Case{1.5f, 65536.0f, 0, 0}, Case{1.5f, 65536.0f, 1999, 4},
                 Case{INFINITY, 65536.0f, 7, 9}, Case{NAN, 3.0f, 0, 2}, Case{2.0f, 1e-3f, 5, 5}}) {
    bool skip = false, wantSkip = true;
    float inv = 0, wantInv = 0, newScale = 0, wantScale = 0;
    int64_t tracker = 0, wantTracker = 0, updates = 0, wantUpdates = 0;
    ASSERT_TRUE(cuda::gradScaler(nullptr, &c.norm, &c.scale, &c.tracker, &c.updates, 2.0f, 0.5f,
                                 2000, &skip, &inv, &newScale, &tracker, &updates));
    ASSERT_TRUE(kernels::gradScaler(c.norm, c.scale, c.tracker, c.updates, 2.0f, 0.5f, 2000,
                                    &wantSkip, &wantInv, &wantScale, &wantTracker, &wantUpdates));
    EXPECT_EQ(skip, wantSkip);
    EXPECT_TRUE(sameBits({inv, newScale}, {wantInv, wantScale}));
    EXPECT_EQ(tracker, wantTracker);
    EXPECT_EQ(updates, wantUpdates);
    // The state updated in place (outputs aliasing the inputs).
    float scale = c.scale;
    int64_t inPlaceTracker = c.tracker, inPlaceUpdates = c.updates;
    ASSERT_TRUE(cuda::gradScaler(nullptr, &c.norm, &scale, &inPlaceTracker, &inPlaceUpdates, 2.0f,
                                 0.5f, 2000, &skip, &inv, &scale, &inPlaceTracker,
                                 &inPlaceUpdates));
    EXPECT_TRUE(sameBits({scale}, {wantScale}));
    EXPECT_EQ(inPlaceTracker, wantTracker);
    EXPECT_EQ(inPlaceUpdates, wantUpdates);
  }
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
}

TEST(CudaShimOptimizer, GradScalerRecordsABadState) {
  struct Case {
    float scale;
    int64_t tracker, updates, index;
  };
  for (Case c : {Case{0.0f, 0, 0, 1}, Case{INFINITY, 0, 0, 1}, Case{NAN, 0, 0, 1},
                 Case{2.0f, -1, 0, 2}, Case{2.0f, 0, -5, 3}}) {
    clearDeviceError();
    const float norm = 1.0f;
    bool skip = false;
    float inv = -1, newScale = -1;
    int64_t tracker = -7, updates = -7;
    ASSERT_TRUE(cuda::gradScaler(nullptr, &norm, &c.scale, &c.tracker, &c.updates, 2.0f, 0.5f, 10,
                                 &skip, &inv, &newScale, &tracker, &updates));
    const cuda::DeviceErrorRecord record = cuda::takeDeviceError();
    EXPECT_EQ(record.code, cuda::kBadScalerState);
    EXPECT_EQ(record.index, c.index);
    EXPECT_EQ(newScale, -1.0f); // nothing written
    EXPECT_EQ(tracker, -7);
  }
  // A growth interval below 1 is an attribute: the launcher fails.
  const float norm = 1.0f, scale = 2.0f;
  const int64_t zero = 0;
  bool skip;
  float inv, newScale;
  int64_t tracker, updates;
  std::string error;
  EXPECT_FALSE(cuda::gradScaler(nullptr, &norm, &scale, &zero, &zero, 2.0f, 0.5f, 0, &skip, &inv,
                                &newScale, &tracker, &updates, &error));
  EXPECT_NE(error.find("growth_interval >= 1"), std::string::npos) << error;
}

TEST(CudaShimOptimizer, BiasUpdateMatchesTheHost) {
  clearDeviceError();
  // More experts than one block of threads.
  constexpr int64_t kExperts = 300;
  const std::vector<float> bias = randomFloats(31, kExperts), load = randomFloats(32, kExperts);
  std::vector<float> got(kExperts), want(kExperts);
  ASSERT_TRUE(cuda::biasUpdate(nullptr, bias.data(), load.data(), kExperts, 1e-3f, got.data()));
  ASSERT_TRUE(kernels::biasUpdate(bias.data(), load.data(), kExperts, 1e-3f, want.data()));
  EXPECT_TRUE(sameBits(got, want));
  // In place, and skipped.
  std::vector<float> inPlace = bias;
  ASSERT_TRUE(
      cuda::biasUpdate(nullptr, inPlace.data(), load.data(), kExperts, 1e-3f, inPlace.data()));
  EXPECT_TRUE(sameBits(inPlace, want));
  const bool skip = true;
  ASSERT_TRUE(cuda::biasUpdate(nullptr, bias.data(), load.data(), kExperts, 1e-3f, inPlace.data(),
                               nullptr, &skip));
  EXPECT_TRUE(sameBits(inPlace, want));
  EXPECT_EQ(cuda::takeDeviceError().code, 0);
  std::string gotError, wantError;
  EXPECT_FALSE(
      cuda::biasUpdate(nullptr, bias.data(), load.data(), 0, 1e-3f, got.data(), &gotError));
  EXPECT_FALSE(kernels::biasUpdate(bias.data(), load.data(), 0, 1e-3f, want.data(), &wantError));
  EXPECT_EQ(gotError, wantError);
}

} // namespace
