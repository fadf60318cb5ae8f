//===- HostKernelsMoETest.cpp - MoE and optimizer host kernels vs reference ===//
//
// Every kernel of runtime/kernels/MoE.h and Optimizer.h runs on seeded random
// f32 inputs and is compared with the f64 reference evaluator running the
// matching kiln op (a small module per op, fed the same f32-rounded inputs):
// indices, offsets and source must match exactly, floats within kTolerance
// relative error, measured as |got - ref| / max(|ref|, 5e-2 max|ref|) so that
// values near zero from cancellation are judged against the tensor's scale
// (the floor allows ~8 f32 ulps of the largest value: gradients such as
// balance_loss_grad's f - sum(f s)/Z cancel, and 1e-2 max|ref| measured
// ~1.1e-5 there from f32 rounding alone).
// Each case prints its largest error and the first values compared, and runs
// every kernel twice to check that the results are bit-identical. Router
// logits are spaced 0.5 apart per token so that f32 rounding cannot change
// the top-k selection. A last case checks that bad indices, offsets and
// steps are reported as errors, not crashes.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/ExpertParallel.h"
#include "runtime/kernels/MoE.h"
#include "runtime/kernels/Optimizer.h"

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "test/unit/EvaluateSource.h"
#include "dialects/kiln/reference/Parameters.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>

using namespace kiln::reference;
namespace kk = kiln::kernels;
using llvm::SmallVector;

namespace {

constexpr double kTolerance = 1e-5;

using kiln::test::evaluateSource;

/// "tensor<4x8xf32>" for shape {4, 8}; "tensor<f32>" for {}.
std::string ty(llvm::ArrayRef<int64_t> shape, const char *element = "f32") {
  std::string s = "tensor<";
  for (int64_t d : shape)
    s += std::to_string(d) + "x";
  return s + element + ">";
}

template <typename T> RefTensor ref(const std::vector<T> &values, llvm::ArrayRef<int64_t> shape) {
  RefTensor t(mlir::Type(), shape);
  for (size_t i = 0; i < values.size(); ++i)
    t.data[i] = double(values[i]);
  return t;
}

std::vector<float> normal(SeededRng &rng, int64_t n, double scale = 1.0) {
  std::vector<float> v(n);
  for (float &x : v)
    x = float(scale * rng.normal());
  return v;
}

/// Router logits [tokens, experts]: a random permutation of values 0.5 apart
/// per token, plus small noise, so the top-k margin is large.
std::vector<float> routerLogits(SeededRng &rng, int64_t tokens, int64_t experts) {
  std::vector<float> t(tokens * experts);
  std::vector<int64_t> order(experts);
  for (int64_t tok = 0; tok < tokens; ++tok) {
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = experts - 1; i > 0; --i)
      std::swap(order[i], order[rng.next() % (i + 1)]);
    for (int64_t e = 0; e < experts; ++e)
      t[tok * experts + e] = float(0.5 * (double(order[e]) - (experts - 1) / 2.0) +
                                   0.05 * (rng.uniform() - 0.5));
  }
  return t;
}

/// Largest relative error of `got` against `want`; prints it with the first values.
double compareFloats(const std::string &name, const std::vector<float> &got,
                     const RefTensor &want) {
  EXPECT_EQ(int64_t(got.size()), want.numElements()) << name;
  if (int64_t(got.size()) != want.numElements())
    return INFINITY;
  double scale = 0;
  for (double v : want.data)
    scale = std::max(scale, std::fabs(v));
  double floor = std::max(5e-2 * scale, 1e-30), err = 0;
  for (size_t i = 0; i < got.size(); ++i)
    err = std::max(err, std::fabs(got[i] - want.data[i]) / std::max(std::fabs(want.data[i]), floor));
  std::printf("[%-28s] max rel err %.3e; first values", name.c_str(), err);
  for (size_t i = 0; i < std::min<size_t>(3, got.size()); ++i)
    std::printf(" %.8g (ref %.10g)", got[i], want.data[i]);
  std::printf("\n");
  EXPECT_LT(err, kTolerance) << name;
  return err;
}

void compareInts(const std::string &name, const std::vector<int32_t> &got,
                 const RefTensor &want) {
  ASSERT_EQ(int64_t(got.size()), want.numElements()) << name;
  int64_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i)
    mismatches += double(got[i]) != want.data[i];
  std::printf("[%-28s] %lld of %zu integers differ; first values", name.c_str(),
              (long long)mismatches, got.size());
  for (size_t i = 0; i < std::min<size_t>(6, got.size()); ++i)
    std::printf(" %d", got[i]);
  std::printf("\n");
  EXPECT_EQ(mismatches, 0) << name;
}

template <typename T>
void expectBitIdentical(const std::string &name, const std::vector<T> &a,
                        const std::vector<T> &b) {
  ASSERT_EQ(a.size(), b.size()) << name;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(T)), 0)
      << name << ": two runs differ";
}

constexpr int64_t kTokens = 64, kExperts = 8, kTopK = 2, kHidden = 32, kN = 24;
constexpr int64_t kPairs = kTokens * kTopK, kSequences = 4;

//===----------------------------------------------------------------------===//
// router, router_grad
//===----------------------------------------------------------------------===//

void checkRouter(const std::string &name, const kk::RouterConfig &c, uint64_t seed) {
  SeededRng rng(seed, "router");
  std::vector<float> logits = routerLogits(rng, kTokens, kExperts);
  std::vector<float> bias = normal(rng, kExperts, 0.05);
  std::vector<float> dw = normal(rng, kTokens * c.topK);
  int64_t k = c.topK;

  std::vector<int32_t> idx[2];
  std::vector<float> w[2], dl[2];
  for (int run = 0; run < 2; ++run) {
    idx[run].resize(kTokens * k);
    w[run].resize(kTokens * k);
    dl[run].resize(kTokens * kExperts);
    std::string error;
    ASSERT_TRUE(kk::router(logits.data(), bias.data(), kTokens, kExperts, c, idx[run].data(),
                           w[run].data(), &error))
        << error;
    ASSERT_TRUE(kk::routerGrad(logits.data(), idx[run].data(), dw.data(), kTokens, kExperts,
                               k, c.softmax, c.normTopkProb, c.routedScalingFactor,
                               dl[run].data(), &error))
        << error;
  }
  char attrs[512], gradAttrs[256];
  std::snprintf(attrs, sizeof(attrs),
                "scoring = \"%s\", group_score = \"%s\", n_group = %lld : i64, "
                "topk_group = %lld : i64, top_k = %lld : i64, norm_topk_prob = %s, "
                "routed_scaling_factor = %.9e : f64",
                c.softmax ? "softmax" : "sigmoid", c.top2Sum ? "top2_sum" : "max",
                (long long)c.nGroup, (long long)c.topkGroup, (long long)k,
                c.normTopkProb ? "true" : "false", double(c.routedScalingFactor));
  std::snprintf(gradAttrs, sizeof(gradAttrs),
                "scoring = \"%s\", norm_topk_prob = %s, routed_scaling_factor = %.9e : f64",
                c.softmax ? "softmax" : "sigmoid", c.normTopkProb ? "true" : "false",
                double(c.routedScalingFactor));
  std::string L = ty({kTokens, kExperts}), B = ty({kExperts}), I = ty({kTokens, k}, "i32"),
              W = ty({kTokens, k});
  SmallVector<RefTensor> r = evaluateSource(
      "func.func @f(%l: " + L + ", %b: " + B + ", %dw: " + W + ") -> (" + I + ", " + W +
          ", " + L + ") {\n  %i, %w = kiln.router %l, %b {" + attrs + "} : (" + L + ", " + B +
          ") -> (" + I + ", " + W + ")\n  %dl = kiln.router_grad %l, %i, %dw {" + gradAttrs +
          "} : (" + L + ", " + I + ", " + W + ") -> " + L + "\n  return %i, %w, %dl : " + I +
          ", " + W + ", " + L + "\n}\n",
      {ref(logits, {kTokens, kExperts}), ref(bias, {kExperts}), ref(dw, {kTokens, k})});
  ASSERT_EQ(r.size(), 3u);
  compareInts(name + " indices", idx[0], r[0]);
  compareFloats(name + " weights", w[0], r[1]);
  compareFloats(name + " grad", dl[0], r[2]);
  expectBitIdentical(name + " indices", idx[0], idx[1]);
  expectBitIdentical(name + " weights", w[0], w[1]);
  expectBitIdentical(name + " grad", dl[0], dl[1]);
}

TEST(HostKernelsMoE, RouterSigmoidTop2SumGroups) {
  checkRouter("router sig top2 g4/2", {false, true, 4, 2, 2, true, 2.5f}, 1);
}
TEST(HostKernelsMoE, RouterSigmoidNoNorm) {
  checkRouter("router sig nonorm", {false, true, 1, 1, 3, false, 1.5f}, 2);
}
TEST(HostKernelsMoE, RouterSoftmaxMaxGroups) {
  checkRouter("router soft max g2/1", {true, false, 2, 1, 2, true, 1.0f}, 3);
}
TEST(HostKernelsMoE, RouterSoftmaxNoNorm) {
  checkRouter("router soft nonorm", {true, true, 1, 1, 2, false, 2.0f}, 4);
}

//===----------------------------------------------------------------------===//
// expert_load, dispatch, dispatch_grad, combine, combine_grad
//===----------------------------------------------------------------------===//

/// Routed indices [tokens, topK] from a real router (distinct per token).
std::vector<int32_t> routedIndices(SeededRng &rng) {
  std::vector<float> logits = routerLogits(rng, kTokens, kExperts), bias(kExperts, 0.0f),
                     w(kPairs);
  std::vector<int32_t> idx(kPairs);
  kk::router(logits.data(), bias.data(), kTokens, kExperts,
             {false, true, 1, 1, kTopK, true, 1.0f}, idx.data(), w.data());
  return idx;
}

/// Routed indices past expert_capacity: 4 groups of 16 tokens, at most 3
/// pairs per expert and group (the balanced load is 4), checked against the
/// evaluator; some pairs must drop.
std::vector<int32_t> cappedIndices(const std::vector<int32_t> &idx) {
  constexpr int64_t kGroup = kTokens / kSequences, kCapacity = 3;
  std::vector<int32_t> kept[2];
  for (int run = 0; run < 2; ++run) {
    std::string e;
    kept[run].assign(kPairs, 99);
    EXPECT_TRUE(kk::expertCapacity(idx.data(), kTokens, kTopK, kExperts, kGroup, kCapacity,
                                   kept[run].data(), &e))
        << e;
  }
  std::string I = ty({kTokens, kTopK}, "i32");
  SmallVector<RefTensor> r = evaluateSource(
      "func.func @f(%i: " + I + ") -> " + I + " {\n  %k = kiln.expert_capacity %i {num_experts = " +
          std::to_string(kExperts) + " : i64, group_tokens = " + std::to_string(kGroup) +
          " : i64, capacity = " + std::to_string(kCapacity) + " : i64} : (" + I + ") -> " + I +
          "\n  return %k : " + I + "\n}\n",
      {ref(idx, {kTokens, kTopK})});
  compareInts("expert_capacity", kept[0], r[0]);
  expectBitIdentical("expert_capacity", kept[0], kept[1]);
  const auto dropped = std::count(kept[0].begin(), kept[0].end(), -1);
  std::printf("[expert_capacity] %lld of %lld pairs dropped\n", (long long)dropped,
              (long long)kPairs);
  EXPECT_GT(dropped, 0);
  return kept[0];
}

/// expert_load, dispatch and combine with their gradients against the
/// evaluator; `capped`: on indices with dropped (-1) pairs.
void checkDispatchCombine(bool capped) {
  SeededRng rng(10, "dispatch");
  std::vector<int32_t> idx = routedIndices(rng);
  if (capped)
    idx = cappedIndices(idx);
  std::vector<float> x = normal(rng, kTokens * kHidden), w = normal(rng, kPairs),
                     drows = normal(rng, kPairs * kHidden),
                     expertOut = normal(rng, kPairs * kHidden),
                     dy = normal(rng, kTokens * kHidden);

  std::vector<float> load[2], rows[2], dx[2], y[2], dr[2], dw[2];
  std::vector<int32_t> offsets[2], source[2];
  for (int run = 0; run < 2; ++run) {
    std::string e;
    load[run].resize(kExperts);
    rows[run].resize(kPairs * kHidden);
    offsets[run].resize(kExperts + 1);
    source[run].resize(kPairs);
    dx[run].resize(kTokens * kHidden);
    y[run].resize(kTokens * kHidden);
    dr[run].resize(kPairs * kHidden);
    dw[run].resize(kPairs);
    ASSERT_TRUE(kk::expertLoad(idx.data(), kPairs, kExperts, load[run].data(), &e)) << e;
    ASSERT_TRUE(kk::dispatch(x.data(), idx.data(), kTokens, kHidden, kTopK, kExperts,
                             rows[run].data(), offsets[run].data(), source[run].data(), &e))
        << e;
    ASSERT_TRUE(kk::dispatchGrad(drows.data(), source[run].data(), kTokens, kTopK, kHidden,
                                 dx[run].data(), &e))
        << e;
    ASSERT_TRUE(kk::combine(expertOut.data(), w.data(), source[run].data(), kTokens, kTopK,
                            kHidden, y[run].data(), &e))
        << e;
    ASSERT_TRUE(kk::combineGrad(expertOut.data(), w.data(), source[run].data(), dy.data(),
                                kTokens, kTopK, kHidden, dr[run].data(), dw[run].data(), &e))
        << e;
  }
  std::string X = ty({kTokens, kHidden}), I = ty({kTokens, kTopK}, "i32"),
              R = ty({kPairs, kHidden}), O = ty({kExperts + 1}, "i32"),
              S = ty({kPairs}, "i32"), W = ty({kTokens, kTopK}), Ld = ty({kExperts});
  std::string ne = std::to_string(kExperts), tk = std::to_string(kTopK);
  SmallVector<RefTensor> r = evaluateSource(
      "func.func @f(%x: " + X + ", %i: " + I + ", %dr: " + R + ", %eo: " + R + ", %w: " + W +
          ", %dy: " + X + ") -> (" + Ld + ", " + R + ", " + O + ", " + S + ", " + X + ", " +
          X + ", " + R + ", " + W + ") {\n"
          "  %load = kiln.expert_load %i {num_experts = " + ne + " : i64} : (" + I + ") -> " +
          Ld + "\n"
          "  %rows, %off, %src = kiln.dispatch %x, %i {num_experts = " + ne + " : i64} : (" +
          X + ", " + I + ") -> (" + R + ", " + O + ", " + S + ")\n"
          "  %dx = kiln.dispatch_grad %dr, %src {top_k = " + tk + " : i64} : (" + R + ", " +
          S + ") -> " + X + "\n"
          "  %y = kiln.combine %eo, %w, %src : (" + R + ", " + W + ", " + S + ") -> " + X +
          "\n"
          "  %drows, %dw = kiln.combine_grad %eo, %w, %src, %dy : (" + R + ", " + W + ", " +
          S + ", " + X + ") -> (" + R + ", " + W + ")\n"
          "  return %load, %rows, %off, %src, %dx, %y, %drows, %dw : " + Ld + ", " + R +
          ", " + O + ", " + S + ", " + X + ", " + X + ", " + R + ", " + W + "\n}\n",
      {ref(x, {kTokens, kHidden}), ref(idx, {kTokens, kTopK}), ref(drows, {kPairs, kHidden}),
       ref(expertOut, {kPairs, kHidden}), ref(w, {kTokens, kTopK}), ref(dy, {kTokens, kHidden})});
  ASSERT_EQ(r.size(), 8u);
  compareFloats("expert_load", load[0], r[0]);
  compareFloats("dispatch rows", rows[0], r[1]);
  compareInts("dispatch offsets", offsets[0], r[2]);
  compareInts("dispatch source", source[0], r[3]);
  compareFloats("dispatch_grad", dx[0], r[4]);
  compareFloats("combine", y[0], r[5]);
  compareFloats("combine_grad drows", dr[0], r[6]);
  compareFloats("combine_grad dweights", dw[0], r[7]);
  expectBitIdentical("expert_load", load[0], load[1]);
  expectBitIdentical("dispatch rows", rows[0], rows[1]);
  expectBitIdentical("dispatch offsets", offsets[0], offsets[1]);
  expectBitIdentical("dispatch source", source[0], source[1]);
  expectBitIdentical("dispatch_grad", dx[0], dx[1]);
  expectBitIdentical("combine", y[0], y[1]);
  expectBitIdentical("combine_grad drows", dr[0], dr[1]);
  expectBitIdentical("combine_grad dweights", dw[0], dw[1]);
  if (capped) {
    const auto kept = std::count_if(idx.begin(), idx.end(), [](int32_t e) { return e >= 0; });
    EXPECT_EQ(offsets[0][kExperts], kept) << "dropped pairs sort after every expert";
  }
}

TEST(HostKernelsMoE, ExpertLoadDispatchCombine) { checkDispatchCombine(false); }
TEST(HostKernelsMoE, ExpertCapacityDispatchCombine) { checkDispatchCombine(true); }

//===----------------------------------------------------------------------===//
// grouped_matmul, _dgrad, _wgrad (experts 2 and 5 empty; then with the last
// 9 rows spare receive capacity, whose outputs must be zeroed, not left)
//===----------------------------------------------------------------------===//

void checkGroupedMatmul(const std::vector<int32_t> &offsets) {
  SeededRng rng(20, "grouped_matmul");
  std::vector<float> x = normal(rng, kPairs * kHidden), wt = normal(rng, kExperts * kN * kHidden),
                     dy = normal(rng, kPairs * kN);
  std::vector<float> out[2], dx[2], dw[2];
  for (int run = 0; run < 2; ++run) {
    std::string e;
    out[run].assign(kPairs * kN, NAN);
    dx[run].assign(kPairs * kHidden, NAN);
    dw[run].assign(kExperts * kN * kHidden, NAN);
    ASSERT_TRUE(kk::groupedMatmul(x.data(), wt.data(), offsets.data(), kPairs, kHidden,
                                  kExperts, kN, out[run].data(), &e))
        << e;
    ASSERT_TRUE(kk::groupedMatmulDgrad(dy.data(), wt.data(), offsets.data(), kPairs, kN,
                                       kExperts, kHidden, dx[run].data(), &e))
        << e;
    ASSERT_TRUE(kk::groupedMatmulWgrad(dy.data(), x.data(), offsets.data(), kPairs, kN,
                                       kHidden, kExperts, dw[run].data(), &e))
        << e;
  }
  std::string X = ty({kPairs, kHidden}), Wt = ty({kExperts, kN, kHidden}),
              O = ty({kExperts + 1}, "i32"), Y = ty({kPairs, kN});
  SmallVector<RefTensor> r = evaluateSource(
      "func.func @f(%x: " + X + ", %w: " + Wt + ", %o: " + O + ", %dy: " + Y + ") -> (" + Y +
          ", " + X + ", " + Wt + ") {\n"
          "  %y = kiln.grouped_matmul %x, %w, %o : (" + X + ", " + Wt + ", " + O + ") -> " + Y +
          "\n  %dx = kiln.grouped_matmul_dgrad %dy, %w, %o : (" + Y + ", " + Wt + ", " + O +
          ") -> " + X + "\n  %dw = kiln.grouped_matmul_wgrad %dy, %x, %o : (" + Y + ", " + X +
          ", " + O + ") -> " + Wt + "\n  return %y, %dx, %dw : " + Y + ", " + X + ", " + Wt +
          "\n}\n",
      {ref(x, {kPairs, kHidden}), ref(wt, {kExperts, kN, kHidden}), ref(offsets, {kExperts + 1}),
       ref(dy, {kPairs, kN})});
  ASSERT_EQ(r.size(), 3u);
  compareFloats("grouped_matmul", out[0], r[0]);
  compareFloats("grouped_matmul_dgrad", dx[0], r[1]);
  compareFloats("grouped_matmul_wgrad", dw[0], r[2]);
  for (int64_t i = 0; i < kN * kHidden; ++i)
    ASSERT_EQ(dw[0][2 * kN * kHidden + i], 0.0f) << "empty expert 2 gets a zero gradient";
  expectBitIdentical("grouped_matmul", out[0], out[1]);
  expectBitIdentical("grouped_matmul_dgrad", dx[0], dx[1]);
  expectBitIdentical("grouped_matmul_wgrad", dw[0], dw[1]);
}

TEST(HostKernelsMoE, GroupedMatmul) {
  checkGroupedMatmul({0, 20, 37, 37, 70, 90, 90, 111, kPairs});
}

TEST(HostKernelsMoE, GroupedMatmulSpareRows) {
  checkGroupedMatmul({0, 20, 37, 37, 70, 90, 90, 111, kPairs - 9});
}

//===----------------------------------------------------------------------===//
// expert_counts, segment_transpose (expert parallelism): against the
// evaluator, with an empty segment and spare rows in the buffer
//===----------------------------------------------------------------------===//

TEST(HostKernelsMoE, ExpertParallelReorder) {
  // 8 experts over 2 ranks from dispatch offsets; 3 sources x 4 local experts
  // received into a buffer of 40 rows of 5.
  std::vector<int32_t> offsets = {0, 3, 3, 7, 12, 13, 20, 20, 26};
  std::vector<int64_t> perExpert(8, -1), perRank(2, -1);
  std::string e;
  ASSERT_TRUE(kk::expertCounts(offsets.data(), 8, 2, perExpert.data(), perRank.data(), &e)) << e;
  std::vector<int64_t> counts = {2, 0, 5, 1, 3, 3, 0, 4, 1, 6, 2, 2};
  const int64_t capacity = 40, rowSize = 5;
  SeededRng rng(21, "segment_transpose");
  std::vector<float> x = normal(rng, capacity * rowSize);
  std::vector<float> sorted(capacity * rowSize, NAN), back(capacity * rowSize, NAN);
  std::vector<int32_t> byExpert(5, -1), bySource(4, -1);
  ASSERT_TRUE(kk::segmentTranspose(x.data(), counts.data(), 3, 4, capacity, rowSize, false,
                                   sorted.data(), byExpert.data(), &e))
      << e;
  ASSERT_TRUE(kk::segmentTranspose(sorted.data(), counts.data(), 3, 4, capacity, rowSize, true,
                                   back.data(), bySource.data(), &e))
      << e;
  const std::string O = ty({9}, "i32"), PE = ty({2, 4}, "i64"), PR = ty({2}, "i64"),
                    X = ty({capacity, rowSize}), C = ty({3, 4}, "i64");
  SmallVector<RefTensor> r = evaluateSource(
      "func.func @f(%o: " + O + ", %x: " + X + ", %c: " + C + ") -> (" + PE + ", " + PR + ", " +
          X + ", " + ty({5}, "i32") + ", " + X + ", " + ty({4}, "i32") + ") {\n"
          "  %pe, %pr = kiln.expert_counts %o {groups = 2 : i64} : (" + O + ") -> (" + PE + ", " +
          PR + ")\n  %s, %so = kiln.segment_transpose %x, %c : (" + X + ", " + C + ") -> (" + X +
          ", " + ty({5}, "i32") + ")\n  %b, %bo = kiln.segment_transpose %s, %c {inverse = true} : (" +
          X + ", " + C + ") -> (" + X + ", " + ty({4}, "i32") + ")\n  return %pe, %pr, %s, %so, %b, %bo : " +
          PE + ", " + PR + ", " + X + ", " + ty({5}, "i32") + ", " + X + ", " + ty({4}, "i32") + "\n}\n",
      {ref(offsets, {9}), ref(x, {capacity, rowSize}), ref(counts, {3, 4})});
  ASSERT_EQ(r.size(), 6u);
  for (int64_t i = 0; i < 8; ++i)
    EXPECT_EQ(double(perExpert[i]), r[0].data[i]) << "per_expert " << i;
  EXPECT_EQ(perRank, (std::vector<int64_t>{12, 14}));
  compareFloats("segment_transpose", sorted, r[2]);
  compareInts("segment_transpose offsets", byExpert, r[3]);
  compareFloats("segment_transpose inverse", back, r[4]);
  compareInts("segment_transpose inverse offsets", bySource, r[5]);
  // The round trip restores the counted rows; spare rows come back zero.
  for (int64_t i = 0; i < 29 * rowSize; ++i)
    ASSERT_EQ(back[i], x[i]) << i;
  for (int64_t i = 29 * rowSize; i < capacity * rowSize; ++i)
    ASSERT_EQ(back[i], 0.0f) << i;
  // Counts past the buffer are an error, not an overrun.
  counts[0] = 20;
  EXPECT_FALSE(kk::segmentTranspose(x.data(), counts.data(), 3, 4, capacity, rowSize, false,
                                    sorted.data(), byExpert.data(), &e));
  EXPECT_NE(e.find("more than the buffer's 40"), std::string::npos) << e;
}

//===----------------------------------------------------------------------===//
// balance_loss, balance_loss_grad
//===----------------------------------------------------------------------===//

void checkBalance(const std::string &name, bool softmax, uint64_t seed) {
  SeededRng rng(seed, "balance");
  std::vector<int32_t> idx = routedIndices(rng);
  std::vector<float> logits = normal(rng, kTokens * kExperts);
  float dloss = 0.75f;
  std::vector<float> loss[2], dl[2];
  for (int run = 0; run < 2; ++run) {
    std::string e;
    loss[run].resize(1);
    dl[run].resize(kTokens * kExperts);
    ASSERT_TRUE(kk::balanceLoss(logits.data(), idx.data(), kTokens, kExperts, kTopK,
                                kSequences, softmax, loss[run].data(), &e))
        << e;
    ASSERT_TRUE(kk::balanceLossGrad(logits.data(), idx.data(), dloss, kTokens, kExperts,
                                    kTopK, kSequences, softmax, dl[run].data(), &e))
        << e;
  }
  std::string attrs = std::string("{scoring = \"") + (softmax ? "softmax" : "sigmoid") +
                      "\", num_sequences = " + std::to_string(kSequences) + " : i64}";
  std::string L = ty({kTokens, kExperts}), I = ty({kTokens, kTopK}, "i32"), S = ty({});
  SmallVector<RefTensor> r = evaluateSource(
      "func.func @f(%l: " + L + ", %i: " + I + ", %d: " + S + ") -> (" + S + ", " + L +
          ") {\n  %loss = kiln.balance_loss %l, %i " + attrs + " : (" + L + ", " + I +
          ") -> " + S + "\n  %dl = kiln.balance_loss_grad %l, %i, %d " + attrs + " : (" + L +
          ", " + I + ", " + S + ") -> " + L + "\n  return %loss, %dl : " + S + ", " + L +
          "\n}\n",
      {ref(logits, {kTokens, kExperts}), ref(idx, {kTokens, kTopK}),
       ref(std::vector<float>{dloss}, {})});
  ASSERT_EQ(r.size(), 2u);
  compareFloats(name, loss[0], r[0]);
  compareFloats(name + "_grad", dl[0], r[1]);
  expectBitIdentical(name, loss[0], loss[1]);
  expectBitIdentical(name + "_grad", dl[0], dl[1]);
}

TEST(HostKernelsMoE, BalanceLossSigmoid) { checkBalance("balance_loss sigmoid", false, 30); }
TEST(HostKernelsMoE, BalanceLossSoftmax) { checkBalance("balance_loss softmax", true, 31); }

//===----------------------------------------------------------------------===//
// lr_schedule, global_norm, clip_scale, adamw, bias_update
//===----------------------------------------------------------------------===//

TEST(HostKernelsMoE, Optimizer) {
  SeededRng rng(40, "optimizer");
  const int64_t size = 3000;
  std::vector<float> p = normal(rng, size), g = normal(rng, size), m = normal(rng, size, 0.1),
                     v(size), a = normal(rng, 5000), b = normal(rng, 7), bias = normal(rng, kExperts, 0.01);
  for (float &x : v)
    x = float(0.01 * rng.uniform());
  std::vector<float> load = {16, 20, 16, 10, 16, 22, 16, 12};
  const int64_t step = 7;
  const float lr = 2e-3f, scale = 0.8f;

  // Kernels, twice.
  std::vector<float> lrs[2], norm[2], clip[2], pNew[2], mNew[2], vNew[2], bNew[2];
  const std::vector<int64_t> steps = {1, 3, 4, 9, 12, 40};
  for (int run = 0; run < 2; ++run) {
    std::string e;
    for (int64_t t : steps) {
      float value;
      ASSERT_TRUE(kk::lrSchedule(t, 1.0f, 0.1f, 4, 20, &value, &e)) << e;
      lrs[run].push_back(value);
    }
    const float *tensors[] = {a.data(), b.data()};
    const int64_t sizes[] = {int64_t(a.size()), int64_t(b.size())};
    norm[run].resize(1);
    ASSERT_TRUE(kk::globalNorm(tensors, sizes, 2, norm[run].data(), &e)) << e;
    clip[run] = {kk::clipScale(norm[run][0], 1.0f), kk::clipScale(norm[run][0], 1000.0f),
                 kk::clipScale(norm[run][0], 0.0f)};
    pNew[run] = p;
    mNew[run] = m;
    vNew[run] = v;
    ASSERT_TRUE(kk::adamw(pNew[run].data(), g.data(), mNew[run].data(), vNew[run].data(), size,
                          lr, step, scale, 0.9f, 0.95f, 1e-8f, 0.1f, &e))
        << e;
    bNew[run].resize(kExperts);
    ASSERT_TRUE(kk::biasUpdate(bias.data(), load.data(), kExperts, 1e-3f, bNew[run].data(), &e))
        << e;
  }

  // Reference: one module with every op.
  std::string lrF = "func.func @lr(%t: tensor<i64>) -> tensor<f32> {\n"
                    "  %r = kiln.lr_schedule %t {lr = 1.0 : f64, min_lr = 0.1 : f64, "
                    "warmup_steps = 4 : i64, total_steps = 20 : i64} : (tensor<i64>) -> "
                    "tensor<f32>\n  return %r : tensor<f32>\n}\n";
  std::string P = ty({size}), A = ty({int64_t(a.size())}), Bt = ty({int64_t(b.size())}),
              E = ty({kExperts}), S = ty({});
  std::string body =
      "func.func @f(%a: " + A + ", %b: " + Bt + ", %p: " + P + ", %g: " + P + ", %m: " + P +
      ", %v: " + P + ", %lr: " + S + ", %t: tensor<i64>, %s: " + S + ", %bias: " + E +
      ", %load: " + E + ") -> (" + S + ", " + S + ", " + S + ", " + S + ", " + P + ", " + P +
      ", " + P + ", " + E + ") {\n"
      "  %n = kiln.global_norm %a, %b : (" + A + ", " + Bt + ") -> " + S + "\n"
      "  %c1 = kiln.clip_scale %n {max_norm = 1.0 : f64} : (" + S + ") -> " + S + "\n"
      "  %c2 = kiln.clip_scale %n {max_norm = 1000.0 : f64} : (" + S + ") -> " + S + "\n"
      "  %c3 = kiln.clip_scale %n {max_norm = 0.0 : f64} : (" + S + ") -> " + S + "\n"
      "  %p2, %m2, %v2 = kiln.adamw %p, %g, %m, %v, %lr, %t, %s {beta1 = 0.9 : f64, "
      "beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64} : (" + P + ", " + P +
      ", " + P + ", " + P + ", " + S + ", tensor<i64>, " + S + ") -> (" + P + ", " + P + ", " +
      P + ")\n"
      "  %b2 = kiln.bias_update %bias, %load {speed = 1.0e-03 : f64} : (" + E + ", " + E +
      ") -> " + E + "\n"
      "  return %n, %c1, %c2, %c3, %p2, %m2, %v2, %b2 : " + S + ", " + S + ", " + S + ", " + S +
      ", " + P + ", " + P + ", " + P + ", " + E + "\n}\n";
  SmallVector<RefTensor> r = evaluateSource(
      body, {ref(a, {int64_t(a.size())}), ref(b, {int64_t(b.size())}), ref(p, {size}),
             ref(g, {size}), ref(m, {size}), ref(v, {size}), ref(std::vector<float>{lr}, {}),
             ref(std::vector<int64_t>{step}, {}), ref(std::vector<float>{scale}, {}),
             ref(bias, {kExperts}), ref(load, {kExperts})});
  ASSERT_EQ(r.size(), 8u);
  RefTensor lrRef = ref(std::vector<double>(steps.size()), {int64_t(steps.size())});
  for (size_t i = 0; i < steps.size(); ++i) {
    mlir::MLIRContext context;
    context.loadDialect<kiln::KilnDialect, mlir::func::FuncDialect>();
    auto module = mlir::parseSourceString<mlir::ModuleOp>(lrF, &context);
    ASSERT_TRUE(module);
    Evaluator evaluator(*module);
    auto out = evaluator.call("lr", {ref(std::vector<int64_t>{steps[i]}, {})});
    ASSERT_TRUE(mlir::succeeded(out));
    lrRef.data[i] = (*out)[0].data[0];
  }
  compareFloats("lr_schedule", lrs[0], lrRef);
  compareFloats("global_norm", norm[0], r[0]);
  RefTensor clipRef = ref(std::vector<double>{r[1].data[0], r[2].data[0], r[3].data[0]}, {3});
  compareFloats("clip_scale", clip[0], clipRef);
  compareFloats("adamw param", pNew[0], r[4]);
  compareFloats("adamw m", mNew[0], r[5]);
  compareFloats("adamw v", vNew[0], r[6]);
  compareFloats("bias_update", bNew[0], r[7]);
  for (int i = 0; i < 3; ++i) {
    const std::vector<float> *pairs[][2] = {{&lrs[0], &lrs[1]}, {&norm[0], &norm[1]},
                                            {&pNew[0], &pNew[1]}};
    expectBitIdentical("optimizer", *pairs[i][0], *pairs[i][1]);
  }
  expectBitIdentical("adamw m", mNew[0], mNew[1]);
  expectBitIdentical("adamw v", vNew[0], vNew[1]);
  expectBitIdentical("bias_update", bNew[0], bNew[1]);
  expectBitIdentical("clip_scale", clip[0], clip[1]);
}

//===----------------------------------------------------------------------===//
// errors are reported, never crash
//===----------------------------------------------------------------------===//

TEST(HostKernelsMoE, Errors) {
  std::string e;
  std::vector<int32_t> idx = {0, 1, 2, 9}; // 9 is outside [0, 8)
  std::vector<float> x(2 * 4), rows(4 * 4), logits(2 * 8), dw(4), dl(2 * 8), load(8);
  std::vector<int32_t> offsets(9), source(4);
  EXPECT_FALSE(kk::dispatch(x.data(), idx.data(), 2, 4, 2, 8, rows.data(), offsets.data(),
                            source.data(), &e));
  std::printf("dispatch: %s\n", e.c_str());
  EXPECT_NE(e.find("expert index 9 of token 1"), std::string::npos) << e;
  EXPECT_FALSE(kk::routerGrad(logits.data(), idx.data(), dw.data(), 2, 8, 2, false, true,
                              1.0f, dl.data(), &e));
  EXPECT_NE(e.find("outside [0, 8)"), std::string::npos) << e;
  EXPECT_FALSE(kk::expertLoad(idx.data(), 4, 8, load.data(), &e));
  std::vector<int32_t> kept(4);
  EXPECT_FALSE(kk::expertCapacity(idx.data(), 2, 2, 8, 1, 1, kept.data(), &e));
  EXPECT_NE(e.find("expert index 9 of token 1"), std::string::npos) << e;
  std::vector<int32_t> valid = {0, 1, 2, 3};
  EXPECT_FALSE(kk::expertCapacity(valid.data(), 2, 2, 8, 3, 1, kept.data(), &e));
  std::printf("expert_capacity: %s\n", e.c_str());
  EXPECT_NE(e.find("group_tokens 3 does not divide the 2 tokens"), std::string::npos) << e;
  std::vector<int32_t> minusTwo = {0, 1, -2, 3};
  EXPECT_FALSE(kk::dispatch(x.data(), minusTwo.data(), 2, 4, 2, 8, rows.data(),
                            offsets.data(), source.data(), &e));
  EXPECT_NE(e.find("and not -1 (dropped)"), std::string::npos) << e;
  EXPECT_FALSE(kk::balanceLoss(logits.data(), idx.data(), 2, 8, 2, 1, false, dl.data(), &e));
  std::vector<int32_t> badSource = {0, 1, 4, 2};
  EXPECT_FALSE(kk::combine(rows.data(), dw.data(), badSource.data(), 2, 2, 4, x.data(), &e));
  std::printf("combine: %s\n", e.c_str());
  std::vector<int32_t> badOffsets = {0, 3, 2, 4};
  std::vector<float> w(3 * 4 * 4), y(4 * 4);
  EXPECT_FALSE(kk::groupedMatmul(rows.data(), w.data(), badOffsets.data(), 4, 4, 3, 4,
                                 y.data(), &e));
  std::printf("grouped_matmul: %s\n", e.c_str());
  float lr;
  EXPECT_FALSE(kk::lrSchedule(0, 1.0f, 0.1f, 4, 20, &lr, &e));
  std::printf("lr_schedule: %s\n", e.c_str());
  EXPECT_FALSE(kk::adamw(x.data(), x.data(), x.data(), x.data(), 8, 1e-3f, 0, 1.0f, 0.9f,
                         0.95f, 1e-8f, 0.0f, &e));
}

} // namespace
