//===- CudaShimMoETest.cpp - cuda/MoE.cuh on the CPU shim -----------------===//
//
// runtime/kernels/cuda/MoE.cuh's launchers run through Device.cuh's grid
// loop and match runtime/kernels/MoE.h's host kernels bit for bit: routing
// (DeepSeek-V3's grouped sigmoid top-k with ties), dispatch's positions and
// offsets (computed on the device), combine / dispatch_grad (slot path and
// scan fallback), combine_grad, expert load and capacity, the balance loss
// and its gradient. Bad indices and sources are device errors, not crashes.
// The GPU-only variants (expert_load's block kernel, combine_grad's warp
// dot, balance_loss's block kernel) are left to scripts/gpu-check.sh.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/kernels/MoE.h"

#include "runtime/kernels/cuda/MoE.cuh"

#include <algorithm>

using namespace kiln;
using namespace kiln::test;

namespace {

bool sameInts(const std::vector<int32_t> &a, const std::vector<int32_t> &b) { return a == b; }

/// Logits of `tokens` x `experts` with ties (values on a coarse grid) so
/// that the tie rules matter.
std::vector<float> tiedLogits(uint64_t seed, int64_t tokens, int64_t experts) {
  std::vector<float> v = randomFloats(seed, tokens * experts, 2.0);
  for (float &x : v)
    x = std::round(x * 2.0f) / 2.0f;
  return v;
}

/// Routing of `tokens` tokens by the host router (valid top-k indices).
std::vector<int32_t> routed(int64_t tokens, int64_t experts, int64_t topK, uint64_t seed) {
  const std::vector<float> logits = randomFloats(seed, tokens * experts), bias(experts, 0.0f);
  kernels::RouterConfig c;
  c.topK = topK;
  std::vector<int32_t> idx(tokens * topK);
  std::vector<float> w(tokens * topK);
  EXPECT_TRUE(
      kernels::router(logits.data(), bias.data(), tokens, experts, c, idx.data(), w.data()));
  return idx;
}

void expectNoDeviceError() {
  const cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, 0) << "index " << e.index;
}

struct RouterCase {
  int64_t tokens, experts;
  kernels::RouterConfig config;
};

TEST(CudaShimMoE, RouterMatchesTheHost) {
  std::vector<RouterCase> cases;
  kernels::RouterConfig v3; // DeepSeek-V3: sigmoid, top2_sum groups, norm, scaling
  v3.nGroup = 4, v3.topkGroup = 2, v3.topK = 4, v3.routedScalingFactor = 2.5f;
  cases.push_back({300, 32, v3});
  kernels::RouterConfig full = v3; // DeepSeek-V3's sizes
  full.nGroup = 8, full.topkGroup = 4, full.topK = 8;
  cases.push_back({40, 256, full});
  kernels::RouterConfig maxGroups = v3;
  maxGroups.top2Sum = false, maxGroups.normTopkProb = false;
  cases.push_back({37, 24, maxGroups});
  kernels::RouterConfig soft;
  soft.softmax = true, soft.topK = 3;
  cases.push_back({260, 10, soft});
  kernels::RouterConfig oneEach = v3;
  oneEach.nGroup = 8, oneEach.topkGroup = 3, oneEach.topK = 3; // one expert per group
  cases.push_back({50, 8, oneEach});
  for (const RouterCase &rc : cases) {
    std::vector<float> logits = tiedLogits(10 + rc.tokens, rc.tokens, rc.experts);
    logits[3] = NAN; // a NaN score stays where argmax's rule puts it
    std::vector<float> bias = randomFloats(11, rc.experts, 0.1);
    bias[1] = bias[2]; // tied biases too
    const int64_t n = rc.tokens * rc.config.topK;
    std::vector<int32_t> idx(n), wantIdx(n);
    std::vector<float> w(n), wantW(n);
    ASSERT_TRUE(cuda::router(nullptr, logits.data(), bias.data(), rc.tokens, rc.experts, rc.config,
                             idx.data(), w.data()));
    ASSERT_TRUE(kernels::router(logits.data(), bias.data(), rc.tokens, rc.experts, rc.config,
                                wantIdx.data(), wantW.data()));
    EXPECT_TRUE(sameInts(idx, wantIdx)) << rc.tokens << " tokens";
    EXPECT_TRUE(sameBits(w, wantW)) << rc.tokens << " tokens";
  }
  expectNoDeviceError();
}

TEST(CudaShimMoE, RouterRejectsWhatTheHostRejects) {
  kernels::RouterConfig c;
  c.nGroup = 3, c.topK = 2;
  std::vector<float> logits(8), bias(8);
  std::vector<int32_t> idx(2);
  std::vector<float> w(2);
  std::string error, wantError;
  EXPECT_FALSE(
      cuda::router(nullptr, logits.data(), bias.data(), 1, 8, c, idx.data(), w.data(), &error));
  EXPECT_FALSE(
      kernels::router(logits.data(), bias.data(), 1, 8, c, idx.data(), w.data(), &wantError));
  EXPECT_EQ(error, wantError);
}

TEST(CudaShimMoE, RouterGradMatchesTheHost) {
  for (bool softmax : {false, true})
    for (bool norm : {false, true}) {
      const int64_t tokens = 270, experts = 12, topK = 3;
      const std::vector<float> logits = randomFloats(20, tokens * experts),
                               dw = randomFloats(21, tokens * topK);
      const std::vector<int32_t> idx = routed(tokens, experts, topK, 22);
      std::vector<float> got(tokens * experts), want(tokens * experts);
      ASSERT_TRUE(cuda::routerGrad(nullptr, logits.data(), idx.data(), dw.data(), tokens, experts,
                                   topK, softmax, norm, 2.5f, got.data()));
      ASSERT_TRUE(kernels::routerGrad(logits.data(), idx.data(), dw.data(), tokens, experts, topK,
                                      softmax, norm, 2.5f, want.data()));
      EXPECT_TRUE(sameBits(got, want)) << "softmax " << softmax << " norm " << norm;
    }
  expectNoDeviceError();
}

TEST(CudaShimMoE, ExpertCapacityAndLoadMatchTheHost) {
  const int64_t tokens = 120, topK = 2, experts = 6;
  const std::vector<int32_t> idx = routed(tokens, experts, topK, 30);
  std::vector<int32_t> kept(tokens * topK), want(tokens * topK);
  ASSERT_TRUE(cuda::expertCapacity(nullptr, idx.data(), tokens, topK, experts, 40, 9, kept.data()));
  ASSERT_TRUE(kernels::expertCapacity(idx.data(), tokens, topK, experts, 40, 9, want.data()));
  EXPECT_TRUE(sameInts(kept, want));
  EXPECT_NE(std::count(want.begin(), want.end(), -1), 0); // some pairs dropped
  std::vector<float> load(experts), wantLoad(experts);
  ASSERT_TRUE(cuda::expertLoad(nullptr, kept.data(), tokens * topK, experts, load.data()));
  ASSERT_TRUE(kernels::expertLoad(kept.data(), tokens * topK, experts, wantLoad.data()));
  EXPECT_TRUE(sameBits(load, wantLoad));
  ASSERT_TRUE(cuda::expertLoad(nullptr, kept.data(), 0, experts, load.data()));
  EXPECT_TRUE(sameBits(load, std::vector<float>(experts, 0.0f)));
  expectNoDeviceError();
}

/// dispatch with dropped pairs, one chunk and several chunks.
TEST(CudaShimMoE, DispatchPositionsMatchTheHost) {
  for (int64_t tokens : {5, 37, 1500})
    for (int64_t experts : {1, 7, 600}) {
      const int64_t hidden = 3, topK = 2, pairs = tokens * topK;
      std::vector<int32_t> idx = randomIds(40 + tokens, pairs, experts);
      for (int64_t p = 0; p < pairs; p += 7)
        idx[p] = -1; // dropped
      const std::vector<float> x = randomFloats(41, tokens * hidden);
      std::vector<float> rows(pairs * hidden), wantRows(pairs * hidden);
      std::vector<int32_t> off(experts + 1), wantOff(experts + 1), src(pairs), wantSrc(pairs);
      ASSERT_TRUE(cuda::dispatch(nullptr, x.data(), idx.data(), tokens, hidden, topK, experts,
                                 rows.data(), off.data(), src.data()));
      ASSERT_TRUE(kernels::dispatch(x.data(), idx.data(), tokens, hidden, topK, experts,
                                    wantRows.data(), wantOff.data(), wantSrc.data()));
      EXPECT_TRUE(sameInts(off, wantOff)) << tokens << " tokens, " << experts << " experts";
      EXPECT_TRUE(sameInts(src, wantSrc)) << tokens << " tokens, " << experts << " experts";
      EXPECT_TRUE(sameBits(rows, wantRows)) << tokens << " tokens, " << experts << " experts";
    }
  expectNoDeviceError();
}

/// combine and dispatch_grad on dispatch's source: the slot path (top_k <=
/// hidden), and the scan fallback (hidden < top_k).
TEST(CudaShimMoE, CombineAndDispatchGradMatchTheHost) {
  struct Shape {
    int64_t tokens, topK, hidden;
  };
  for (Shape s : {Shape{300, 4, 70}, Shape{37, 3, 3}, Shape{9, 5, 2}, Shape{1, 1, 1}}) {
    const int64_t experts = 5, pairs = s.tokens * s.topK;
    const std::vector<int32_t> idx = randomIds(50 + s.tokens, pairs, experts);
    const std::vector<float> x(s.tokens * s.hidden, 1.0f);
    std::vector<float> rows(pairs * s.hidden);
    std::vector<int32_t> off(experts + 1), src(pairs);
    ASSERT_TRUE(kernels::dispatch(x.data(), idx.data(), s.tokens, s.hidden, s.topK, experts,
                                  rows.data(), off.data(), src.data()));
    rows = randomFloats(51, pairs * s.hidden);
    const std::vector<float> weights = randomFloats(52, pairs);
    std::vector<float> out(s.tokens * s.hidden), want(s.tokens * s.hidden);
    ASSERT_TRUE(cuda::combine(nullptr, rows.data(), weights.data(), src.data(), s.tokens, s.topK,
                              s.hidden, out.data()));
    ASSERT_TRUE(kernels::combine(rows.data(), weights.data(), src.data(), s.tokens, s.topK,
                                 s.hidden, want.data()));
    EXPECT_TRUE(sameBits(out, want)) << "combine, " << s.tokens << " tokens";
    ASSERT_TRUE(cuda::dispatchGrad(nullptr, rows.data(), src.data(), s.tokens, s.topK, s.hidden,
                                   out.data()));
    ASSERT_TRUE(
        kernels::dispatchGrad(rows.data(), src.data(), s.tokens, s.topK, s.hidden, want.data()));
    EXPECT_TRUE(sameBits(out, want)) << "dispatch_grad, " << s.tokens << " tokens";
  }
  expectNoDeviceError();
}

TEST(CudaShimMoE, CombineGradMatchesTheHost) {
  const int64_t tokens = 130, topK = 2, hidden = 33, experts = 4, pairs = tokens * topK;
  const std::vector<int32_t> idx = randomIds(60, pairs, experts);
  const std::vector<float> x = randomFloats(61, tokens * hidden);
  std::vector<float> rows(pairs * hidden);
  std::vector<int32_t> off(experts + 1), src(pairs);
  ASSERT_TRUE(kernels::dispatch(x.data(), idx.data(), tokens, hidden, topK, experts, rows.data(),
                                off.data(), src.data()));
  const std::vector<float> weights = randomFloats(62, pairs),
                           dy = randomFloats(63, tokens * hidden);
  std::vector<float> drows(pairs * hidden), wantDrows(pairs * hidden), dw(pairs), wantDw(pairs);
  ASSERT_TRUE(cuda::combineGrad(nullptr, rows.data(), weights.data(), src.data(), dy.data(), tokens,
                                topK, hidden, drows.data(), dw.data()));
  ASSERT_TRUE(kernels::combineGrad(rows.data(), weights.data(), src.data(), dy.data(), tokens, topK,
                                   hidden, wantDrows.data(), wantDw.data()));
  EXPECT_TRUE(sameBits(drows, wantDrows));
  EXPECT_TRUE(sameBits(dw, wantDw));
  expectNoDeviceError();
}

TEST(CudaShimMoE, BalanceLossAndGradMatchTheHost) {
  for (bool softmax : {false, true})
    for (int64_t sequences : {1, 3, 30}) {
      const int64_t tokens = 30, experts = 7, topK = 2;
      const std::vector<float> logits = randomFloats(70, tokens * experts);
      const std::vector<int32_t> idx = routed(tokens, experts, topK, 71);
      for (int64_t total : {0, 8}) {
        float loss = 0, want = 0;
        ASSERT_TRUE(cuda::balanceLoss(nullptr, logits.data(), idx.data(), tokens, experts, topK,
                                      sequences, softmax, &loss, nullptr, total));
        ASSERT_TRUE(kernels::balanceLoss(logits.data(), idx.data(), tokens, experts, topK,
                                         sequences, softmax, &want, nullptr, total));
        EXPECT_TRUE(sameBits({loss}, {want})) << sequences << " sequences";
        std::vector<float> d(tokens * experts), wantD(tokens * experts);
        ASSERT_TRUE(cuda::balanceLossGrad(nullptr, logits.data(), idx.data(), 0.75f, tokens,
                                          experts, topK, sequences, softmax, d.data(), nullptr,
                                          total));
        ASSERT_TRUE(kernels::balanceLossGrad(logits.data(), idx.data(), 0.75f, tokens, experts,
                                             topK, sequences, softmax, wantD.data(), nullptr,
                                             total));
        EXPECT_TRUE(sameBits(d, wantD)) << sequences << " sequences";
        const float dloss = 0.75f; // the device-scalar overload
        ASSERT_TRUE(cuda::balanceLossGrad(nullptr, logits.data(), idx.data(), &dloss, tokens,
                                          experts, topK, sequences, softmax, d.data(), nullptr,
                                          total));
        EXPECT_TRUE(sameBits(d, wantD)) << sequences << " sequences (device dloss)";
      }
    }
  std::string error, wantError;
  float loss;
  std::vector<float> logits(10);
  std::vector<int32_t> idx(10);
  EXPECT_FALSE(
      cuda::balanceLoss(nullptr, logits.data(), idx.data(), 5, 2, 2, 2, false, &loss, &error));
  EXPECT_FALSE(
      kernels::balanceLoss(logits.data(), idx.data(), 5, 2, 2, 2, false, &loss, &wantError));
  EXPECT_EQ(error, wantError);
  expectNoDeviceError();
}

//===----------------------------------------------------------------------===//
// Device errors: bad data is recorded and skipped, never read out of bounds
//===----------------------------------------------------------------------===//

TEST(CudaShimMoE, BadExpertIndicesAreDeviceErrors) {
  const int64_t tokens = 4, topK = 2, experts = 3, hidden = 2, pairs = tokens * topK;
  std::vector<int32_t> idx = {0, 1, 2, 0, 1, 2, 0, 1};
  idx[5] = 7;
  const std::vector<float> logits(tokens * experts, 0.5f), x(tokens * hidden, 1.0f),
      dw(pairs, 1.0f);
  std::vector<float> d(tokens * experts), rows(pairs * hidden), load(experts);
  std::vector<int32_t> kept(pairs), off(experts + 1), src(pairs);
  EXPECT_TRUE(cuda::routerGrad(nullptr, logits.data(), idx.data(), dw.data(), tokens, experts, topK,
                               false, true, 1.0f, d.data()));
  cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadRouting);
  EXPECT_EQ(e.index, 5);
  EXPECT_TRUE(cuda::expertCapacity(nullptr, idx.data(), tokens, topK, experts, 2, 1, kept.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadRouting);
  EXPECT_EQ(e.index, 5);
  EXPECT_EQ(kept[5], -1);
  idx[5] = -2; // -1 is a dropped pair; -2 is not
  EXPECT_TRUE(cuda::expertLoad(nullptr, idx.data(), pairs, experts, load.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadRouting);
  EXPECT_EQ(e.index, 5);
  EXPECT_TRUE(cuda::dispatch(nullptr, x.data(), idx.data(), tokens, hidden, topK, experts,
                             rows.data(), off.data(), src.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadRouting);
  EXPECT_EQ(e.index, 5);
  EXPECT_EQ(off[experts], pairs - 1); // the bad pair went with the dropped ones
  EXPECT_EQ(src[pairs - 1], 5);
  float loss;
  EXPECT_TRUE(cuda::balanceLoss(nullptr, logits.data(), idx.data(), tokens, experts, topK, 2, false,
                                &loss));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadRouting);
  EXPECT_EQ(e.index, 5);
  EXPECT_TRUE(cuda::balanceLossGrad(nullptr, logits.data(), idx.data(), 1.0f, tokens, experts, topK,
                                    2, false, d.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadRouting);
  EXPECT_EQ(e.index, 5);
}

TEST(CudaShimMoE, BadSourcesAreDeviceErrors) {
  const int64_t tokens = 3, topK = 2, hidden = 4, pairs = tokens * topK;
  const std::vector<float> rows = randomFloats(80, pairs * hidden), w(pairs, 1.0f),
                           dy = randomFloats(81, tokens * hidden);
  std::vector<float> out(tokens * hidden), drows(pairs * hidden), dw(pairs);
  std::vector<int32_t> src = {0, 1, 2, 3, 4, 5};
  src[2] = 99; // out of range
  EXPECT_TRUE(
      cuda::combine(nullptr, rows.data(), w.data(), src.data(), tokens, topK, hidden, out.data()));
  cuda::DeviceErrorRecord e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadSource);
  EXPECT_EQ(e.index, 2);
  EXPECT_TRUE(cuda::combineGrad(nullptr, rows.data(), w.data(), src.data(), dy.data(), tokens, topK,
                                hidden, drows.data(), dw.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadSource);
  EXPECT_EQ(e.index, 2);
  src[2] = 4; // in range, but pair 2 is nobody's: not a permutation
  EXPECT_TRUE(
      cuda::dispatchGrad(nullptr, rows.data(), src.data(), tokens, topK, hidden, out.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kSourceNotPermutation);
  EXPECT_EQ(e.index, 2);
  EXPECT_TRUE(cuda::combineGrad(nullptr, rows.data(), w.data(), src.data(), dy.data(), tokens, topK,
                                hidden, drows.data(), dw.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kSourceNotPermutation);
  EXPECT_EQ(e.index, 2);
  EXPECT_EQ(dw[2], 0.0f);
  // The scan fallback (hidden < top_k) reports an out-of-range entry too.
  src[2] = -1;
  EXPECT_TRUE(cuda::combine(nullptr, rows.data(), w.data(), src.data(), 2, 3, 2, out.data()));
  e = cuda::takeDeviceError();
  EXPECT_EQ(e.code, cuda::kBadSource);
  EXPECT_EQ(e.index, 2);
}

} // namespace
