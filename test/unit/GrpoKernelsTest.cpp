//===- GrpoKernelsTest.cpp - GRPO host kernels vs the reference evaluator -===//
//
// runtime/kernels/Grpo.h's token_logprobs, grpo_loss and grpo_loss_grad run
// on seeded f32 inputs and are compared with the f64 reference evaluator
// running the op (a one-op module per case, fed the same f32-rounded
// inputs), for every aggregation, with and without `count`, at temperatures
// other than 1. The old log-probabilities are set from the reference's
// log-probabilities so that the policy ratios fall on both sides of both
// clip bounds (none within 2% of a bound, where f32 rounding could choose the
// other branch of the min), under advantages of both signs; completions have
// different lengths, one row is fully masked, and masked positions carry
// target 0. The error of a value a against the reference r is
//   |a - r| / max(|r|, 1e-2 max|r|)
// (as HostKernelsTest measures it) and must stay below 1e-5; each case prints
// its largest error and the first values compared. Every kernel also gives the
// same bits on a second run and on 1 and 3 OpenMP threads, and stops with a
// message on a target outside [0, vocab).
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Grpo.h"

#include "dialects/kiln/reference/Parameters.h"
#include "test/unit/EvaluateSource.h"

#include "test/unit/KernelTestInputs.h"

#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace kiln::reference;
namespace kk = kiln::kernels;
using kiln::test::evaluateSource;

namespace {

using namespace kiln::test;

/// "%.17e" of v: an f64 attribute that reads back as v.
std::string f64Attr(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17e : f64", v);
  return buf;
}

//===----------------------------------------------------------------------===//
// token_logprobs
//===----------------------------------------------------------------------===//

void checkTokenLogprobs(const std::string &name, std::vector<int64_t> positions, int64_t vocab,
                        double temperature, uint64_t seed) {
  SeededRng rng(seed, "token_logprobs");
  std::vector<int64_t> logitsShape = positions;
  logitsShape.push_back(vocab);
  int64_t n = 1;
  for (int64_t d : positions)
    n *= d;
  std::string l = ty(logitsShape), t = ty(positions, "i32"), r = ty(positions);
  checkKernel(name,
        "func.func @f(%l: " + l + ", %t: " + t + ") -> " + r +
            " {\n  %r = kiln.token_logprobs %l, %t {temperature = " + f64Attr(temperature) +
            "} : (" + l + ", " + t + ") -> " + r + "\n  return %r : " + r + "\n}\n",
        {normal(rng, logitsShape, 3.0), ids(rng, positions, vocab)},
        [&](const std::vector<RefTensor> &a) {
          Floats out(n, 9.0f); // overwritten
          kk::tokenLogprobs(out.data(), f32(a[0]).data(), i32(a[1]).data(), n, vocab,
                            float(temperature));
          return std::vector<Floats>{out};
        });
}

TEST(GrpoKernels, TokenLogprobs) {
  checkTokenLogprobs("token_logprobs [3, 7] x 50, T = 0.7", {3, 7}, 50, 0.7, 1);
  checkTokenLogprobs("token_logprobs [2, 3, 5] x 33, T = 1", {2, 3, 5}, 33, 1.0, 2);
  checkTokenLogprobs("token_logprobs [11] x 64, T = 1.6", {11}, 64, 1.6, 3);
}

//===----------------------------------------------------------------------===//
// grpo_loss, grpo_loss_grad
//===----------------------------------------------------------------------===//

struct GrpoCase {
  std::string aggregation;
  bool hasCount;
  double temperature, clipLow, clipHigh, beta;
};

constexpr int64_t kRows = 5, kSeq = 9, kVocab = 37, kMaxTokens = 12;
/// Completion lengths (row 3 is fully masked); position (0, 2) is masked too.
constexpr int64_t kLengths[kRows] = {9, 6, 4, 0, 7};
/// Advantages of both signs.
constexpr double kAdvantages[kRows] = {1.1, -0.7, 0.45, 0.3, -1.25};
/// The policy ratios the old log-probabilities give, cycled through the
/// positions: below 1 - clip_low, inside, above 1 + clip_high (for the
/// clip_high of every case, 0.2 or 0.28).
constexpr double kRatios[] = {0.55, 0.7, 0.9, 1.0, 1.1, 1.35, 1.6};

/// logits, targets, mask, advantages, old_logprobs, ref_logprobs; count when
/// the case has one.
std::vector<RefTensor> grpoInputs(const GrpoCase &c, uint64_t seed) {
  SeededRng rng(seed, "grpo_loss");
  RefTensor logits = normal(rng, {kRows, kSeq, kVocab}, 2.0),
            targets = ids(rng, {kRows, kSeq}, kVocab), mask = tensor({kRows, kSeq}),
            advantages = tensor({kRows}, {kAdvantages, kAdvantages + kRows});
  for (double &a : advantages.data)
    a = double(float(a));
  for (int64_t b = 0; b < kRows; ++b)
    for (int64_t s = 0; s < kSeq; ++s) {
      int64_t i = b * kSeq + s;
      mask.data[i] = s < kLengths[b] && i != 2 ? 1.0 : 0.0;
      if (mask.data[i] == 0)
        targets.data[i] = 0;
    }
  // lp under the policy, in f64, to place the ratios.
  std::string l = ty({kRows, kSeq, kVocab}), t = ty({kRows, kSeq}, "i32"), r = ty({kRows, kSeq});
  llvm::SmallVector<RefTensor> lp = evaluateSource(
      "func.func @f(%l: " + l + ", %t: " + t + ") -> " + r +
          " {\n  %r = kiln.token_logprobs %l, %t {temperature = " + f64Attr(c.temperature) +
          "} : (" + l + ", " + t + ") -> " + r + "\n  return %r : " + r + "\n}\n",
      {logits, targets});
  RefTensor old = tensor({kRows, kSeq}), ref = normal(rng, {kRows, kSeq}, 0.3);
  if (lp.size() == 1)
    for (int64_t i = 0; i < kRows * kSeq; ++i) {
      old.data[i] = double(float(lp[0].data[i] - std::log(kRatios[i % std::size(kRatios)])));
      ref.data[i] = double(float(lp[0].data[i] + ref.data[i]));
    }
  std::vector<RefTensor> in = {logits, targets, mask, advantages, old, ref};
  if (c.hasCount) // the global batch's tokens, or rows
    in.push_back(tensor({}, {c.aggregation == "token-mean" ? 61.0 : 13.0}));
  return in;
}

/// The case's attributes; temperature and beta are left out at their
/// defaults (1 and 0) so that the evaluator's defaults are the kernels'.
std::string grpoAttrs(const GrpoCase &c) {
  std::string attrs = "clip_low = " + f64Attr(c.clipLow) +
                      ", clip_high = " + f64Attr(c.clipHigh) + ", aggregation = \"" +
                      c.aggregation + "\", max_tokens = " + std::to_string(kMaxTokens) + " : i64";
  if (c.temperature != 1.0)
    attrs += ", temperature = " + f64Attr(c.temperature);
  if (c.beta != 0.0)
    attrs += ", beta = " + f64Attr(c.beta);
  return "{" + attrs + "}";
}

kk::GrpoAggregation aggregationOf(const GrpoCase &c) {
  kk::GrpoAggregation a = kk::GrpoAggregation::TokenMean;
  EXPECT_TRUE(kk::parseGrpoAggregation(c.aggregation.c_str(), a)) << c.aggregation;
  return a;
}

void checkGrpo(const GrpoCase &c, uint64_t seed) {
  std::vector<RefTensor> in = grpoInputs(c, seed);
  ASSERT_EQ(in[4].data.size(), size_t(kRows * kSeq)) << "no reference log-probabilities";
  std::string name = "grpo_loss " + c.aggregation + (c.hasCount ? " count" : "") +
                     " T=" + std::to_string(c.temperature).substr(0, 3);
  std::string l = ty({kRows, kSeq, kVocab}), t = ty({kRows, kSeq}, "i32"),
              p = ty({kRows, kSeq}), a = ty({kRows}), z = ty({});
  std::string types = l + ", " + t + ", " + p + ", " + a + ", " + p + ", " + p;
  std::string countArg = c.hasCount ? ", %n: " + z : "", countUse = c.hasCount ? " count %n" : "",
              countType = c.hasCount ? ", " + z : "";
  std::string args = "%l: " + l + ", %t: " + t + ", %m: " + p + ", %a: " + a + ", %o: " + p +
                     ", %r: " + p;
  std::string attrs = grpoAttrs(c);
  kk::GrpoAggregation aggregation = aggregationOf(c);
  auto count = [&](const std::vector<RefTensor> &x, size_t i) {
    return c.hasCount ? std::vector<float>{float(x[i].data[0])} : std::vector<float>{};
  };

  checkKernel(name,
        "func.func @f(" + args + countArg + ") -> " + z +
            " {\n  %loss = kiln.grpo_loss %l, %t, %m, %a, %o, %r" + countUse + " " + attrs +
            " : (" + types + countType + ") -> " + z + "\n  return %loss : " + z + "\n}\n",
        in, [&](const std::vector<RefTensor> &x) {
          Floats n = count(x, 6);
          float loss = kk::grpoLossForward(
              f32(x[0]).data(), i32(x[1]).data(), f32(x[2]).data(), f32(x[3]).data(),
              f32(x[4]).data(), f32(x[5]).data(), kRows, kSeq, kVocab, float(c.temperature),
              float(c.clipLow), float(c.clipHigh), float(c.beta), aggregation, kMaxTokens,
              c.hasCount ? n.data() : nullptr);
          return std::vector<Floats>{{loss}};
        });

  // dloss before count, as the op's operands are ordered.
  std::vector<RefTensor> gin(in.begin(), in.begin() + 6);
  gin.push_back(tensor({}, {-1.75}));
  if (c.hasCount)
    gin.push_back(in[6]);
  checkKernel(name + " grad",
        "func.func @f(" + args + ", %d: " + z + countArg + ") -> " + l +
            " {\n  %g = kiln.grpo_loss_grad %l, %t, %m, %a, %o, %r, %d" + countUse + " " +
            attrs + " : (" + types + ", " + z + countType + ") -> " + l +
            "\n  return %g : " + l + "\n}\n",
        gin, [&](const std::vector<RefTensor> &x) {
          Floats n = count(x, 7), d(kRows * kSeq * kVocab, 9.0f); // overwritten
          kk::grpoLossBackward(d.data(), f32(x[0]).data(), i32(x[1]).data(), f32(x[2]).data(),
                               f32(x[3]).data(), f32(x[4]).data(), f32(x[5]).data(), -1.75f,
                               kRows, kSeq, kVocab, float(c.temperature), float(c.clipLow),
                               float(c.clipHigh), float(c.beta), aggregation, kMaxTokens,
                               c.hasCount ? n.data() : nullptr);
          return std::vector<Floats>{d};
        });
}

TEST(GrpoKernels, InputsCoverEveryBranch) {
  // Each combination of the advantage's sign and clipped / not clipped
  // occurs among the masked-in positions, and no ratio lies within 2% of a
  // clip bound.
  for (double clipHigh : {0.2, 0.28}) {
    GrpoCase c{"token-mean", false, 0.7, 0.2, clipHigh, 0.04};
    std::vector<RefTensor> in = grpoInputs(c, 10);
    ASSERT_EQ(in[4].data.size(), size_t(kRows * kSeq));
    llvm::SmallVector<RefTensor> lp = evaluateSource(
        "func.func @f(%l: " + ty({kRows, kSeq, kVocab}) + ", %t: " + ty({kRows, kSeq}, "i32") +
            ") -> " + ty({kRows, kSeq}) + " {\n  %r = kiln.token_logprobs %l, %t {temperature = " +
            f64Attr(c.temperature) + "} : (" + ty({kRows, kSeq, kVocab}) + ", " +
            ty({kRows, kSeq}, "i32") + ") -> " + ty({kRows, kSeq}) + "\n  return %r : " +
            ty({kRows, kSeq}) + "\n}\n",
        {in[0], in[1]});
    ASSERT_EQ(lp.size(), 1u);
    int seen[2][2] = {};
    for (int64_t i = 0; i < kRows * kSeq; ++i) {
      if (in[2].data[i] == 0)
        continue;
      double adv = in[3].data[i / kSeq], ratio = std::exp(lp[0].data[i] - in[4].data[i]);
      for (double bound : {1 - c.clipLow, 1 + c.clipHigh})
        EXPECT_GT(std::fabs(ratio / bound - 1), 0.02) << "ratio " << ratio << " at " << i;
      kk::GrpoTerm<double> term = kk::grpoToken(lp[0].data[i], in[4].data[i], in[5].data[i],
                                                adv, c.clipLow, c.clipHigh, c.beta);
      ++seen[adv > 0][term.clipped];
    }
    std::printf("clip_high %.2f: A<0 unclipped %d clipped %d, A>0 unclipped %d clipped %d\n",
                clipHigh, seen[0][0], seen[0][1], seen[1][0], seen[1][1]);
    for (auto &bySign : seen)
      for (int n : bySign)
        EXPECT_GT(n, 0);
  }
}

TEST(GrpoKernels, TokenMean) {
  checkGrpo({"token-mean", false, 0.7, 0.2, 0.28, 0.04}, 10);
  checkGrpo({"token-mean", true, 1.6, 0.2, 0.2, 0.0}, 11);
}
TEST(GrpoKernels, SeqMeanTokenMean) {
  checkGrpo({"seq-mean-token-mean", false, 0.7, 0.2, 0.28, 0.04}, 12);
  checkGrpo({"seq-mean-token-mean", true, 1.6, 0.2, 0.2, 0.1}, 13);
}
TEST(GrpoKernels, SeqMeanTokenSumNorm) {
  checkGrpo({"seq-mean-token-sum-norm", false, 0.7, 0.2, 0.28, 0.04}, 14);
  checkGrpo({"seq-mean-token-sum-norm", true, 1.6, 0.2, 0.2, 0.0}, 15);
}
TEST(GrpoKernels, DefaultTemperatureAndBeta) {
  checkGrpo({"token-mean", false, 1.0, 0.2, 0.2, 0.0}, 16);
  checkGrpo({"seq-mean-token-mean", true, 1.0, 0.15, 0.3, 0.0}, 17);
}

TEST(GrpoKernels, AllMaskedIsZero) {
  Floats logits(2 * 3 * 4, 1.0f), mask(6, 0.0f), adv = {1.0f, -1.0f}, lp(6, -1.0f),
      d(24, 5.0f);
  std::vector<int32_t> targets(6, 0);
  for (auto aggregation : {kk::GrpoAggregation::TokenMean, kk::GrpoAggregation::SeqMeanTokenMean,
                           kk::GrpoAggregation::SeqMeanTokenSumNorm}) {
    EXPECT_EQ(kk::grpoLossForward(logits.data(), targets.data(), mask.data(), adv.data(),
                                  lp.data(), lp.data(), 2, 3, 4, 1.0f, 0.2f, 0.2f, 0.04f,
                                  aggregation, 3),
              0.0f);
    kk::grpoLossBackward(d.data(), logits.data(), targets.data(), mask.data(), adv.data(),
                         lp.data(), lp.data(), 1.0f, 2, 3, 4, 1.0f, 0.2f, 0.2f, 0.04f,
                         aggregation, 3);
    for (float v : d)
      EXPECT_EQ(v, 0.0f);
  }
}

//===----------------------------------------------------------------------===//
// Determinism and argument checks
//===----------------------------------------------------------------------===//

TEST(GrpoKernels, SameBitsOnAnyThreadCount) {
  const int64_t rows = 6, seq = 23, vocab = 301, n = rows * seq;
  SeededRng rng(20, "grpo threads");
  Floats logits = f32(normal(rng, {rows, seq, vocab}, 2.0)), mask(n),
         adv = f32(normal(rng, {rows})), old = f32(normal(rng, {rows, seq}, 0.5)),
         ref = f32(normal(rng, {rows, seq}, 0.5));
  std::vector<int32_t> targets = i32(ids(rng, {rows, seq}, vocab));
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = i % seq < 3 + 3 * (i / seq) ? 1.0f : 0.0f;
    old[i] -= 6.0f; // ratios spread around 1
    ref[i] -= 6.0f;
  }
  float count = 70.0f;
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Floats lp(n), d(n * vocab), loss;
    kk::tokenLogprobs(lp.data(), logits.data(), targets.data(), n, vocab, 0.9f);
    for (auto aggregation :
         {kk::GrpoAggregation::TokenMean, kk::GrpoAggregation::SeqMeanTokenMean,
          kk::GrpoAggregation::SeqMeanTokenSumNorm})
      loss.push_back(kk::grpoLossForward(logits.data(), targets.data(), mask.data(),
                                         adv.data(), old.data(), ref.data(), rows, seq, vocab,
                                         0.9f, 0.2f, 0.28f, 0.04f, aggregation, seq));
    loss.push_back(kk::grpoLossForward(logits.data(), targets.data(), mask.data(), adv.data(),
                                       old.data(), ref.data(), rows, seq, vocab, 0.9f, 0.2f,
                                       0.28f, 0.04f, kk::GrpoAggregation::TokenMean, 0,
                                       &count));
    kk::grpoLossBackward(d.data(), logits.data(), targets.data(), mask.data(), adv.data(),
                         old.data(), ref.data(), 0.5f, rows, seq, vocab, 0.9f, 0.2f, 0.28f,
                         0.04f, kk::GrpoAggregation::SeqMeanTokenMean, 0, &count);
    return std::vector<Floats>{lp, loss, d};
  };
  int saved = omp_get_max_threads();
  std::vector<Floats> one = run(1), three = run(3);
  omp_set_num_threads(saved);
  const char *names[] = {"token_logprobs", "grpo_loss (4 variants)", "grpo_loss_grad"};
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].size(), three[i].size()) << names[i];
    EXPECT_EQ(0, std::memcmp(one[i].data(), three[i].data(), one[i].size() * sizeof(float)))
        << names[i] << ": 1 and 3 threads differ";
    std::printf("[%-24s] 1 vs 3 threads: same bits over %zu values; first %.9g\n", names[i],
                one[i].size(), one[i][0]);
  }
}

TEST(GrpoKernelsDeathTest, RejectsOutOfRangeTargets) {
  Floats logits(2 * 2 * 7, 0.5f), out(4), mask = {1.0f, 1.0f, 0.0f, 1.0f}, adv = {1.0f, -1.0f},
                                          lp(4, -2.0f), d(logits.size());
  std::vector<int32_t> pastTheEnd = {1, 7, 0, 2}, negative = {1, 2, 0, -1};
  EXPECT_EXIT(kk::tokenLogprobs(out.data(), logits.data(), pastTheEnd.data(), 4, 7, 1.0f),
              ::testing::ExitedWithCode(1), "target 7 at position 1 is outside \\[0, 7\\)");
  EXPECT_EXIT(kk::grpoLossForward(logits.data(), negative.data(), mask.data(), adv.data(),
                                  lp.data(), lp.data(), 2, 2, 7, 1.0f, 0.2f, 0.2f, 0.0f,
                                  kk::GrpoAggregation::TokenMean, 0),
              ::testing::ExitedWithCode(1), "target -1 at position 3 is outside \\[0, 7\\)");
  EXPECT_EXIT(kk::grpoLossBackward(d.data(), logits.data(), pastTheEnd.data(), mask.data(),
                                   adv.data(), lp.data(), lp.data(), 1.0f, 2, 2, 7, 1.0f, 0.2f,
                                   0.2f, 0.0f, kk::GrpoAggregation::TokenMean, 0),
              ::testing::ExitedWithCode(1), "target 7 at position 1 is outside \\[0, 7\\)");
  // Dr. GRPO's normaliser must be given.
  std::vector<int32_t> good = {1, 2, 0, 3};
  EXPECT_EXIT(kk::grpoLossForward(logits.data(), good.data(), mask.data(), adv.data(),
                                  lp.data(), lp.data(), 2, 2, 7, 1.0f, 0.2f, 0.2f, 0.0f,
                                  kk::GrpoAggregation::SeqMeanTokenSumNorm, 0),
              ::testing::ExitedWithCode(1), "expects max_tokens > 0");
}

} // namespace
