//===- GenerateTest.cpp - runtime/driver: sampling, the decode loop, --generate ===//
//
// The sampler against exact softmax probabilities; the generation loop
// against a fake decode program written here, whose "model" keeps the
// tokens in its KV cache by position and puts a peak on (sum of the row's
// cached tokens up to the position) % vocab, so greedy completions can be
// recomputed by hand and any cache or position mistake changes them; the
// prompts file; and `train --generate` end to end through trainMain with a
// toy training program (seeded init and a checkpoint it wrote).
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/Generate.h"
#include "runtime/driver/Sampling.h"
#include "runtime/driver/TrainMain.h"
#include "runtime/init/SeededRng.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace kiln::driver;
using kiln::data::SplitMix64;
namespace fs = std::filesystem;

namespace {

/// log softmax(logits / T)[token], in long double (another way than the
/// sampler's log1p, exact enough for a float near 0).
double logSoftmax(const std::vector<float> &logits, double temperature, int64_t token) {
  long double top = -INFINITY;
  for (float l : logits)
    top = std::max(top, (long double)l);
  long double sum = 0;
  for (float l : logits)
    sum += std::exp(((long double)l - top) / temperature);
  return double(((long double)logits[size_t(token)] - top) / temperature - std::log(sum));
}

std::vector<double> softmax(const std::vector<float> &logits, double temperature) {
  std::vector<double> p;
  for (size_t i = 0; i < logits.size(); ++i)
    p.push_back(std::exp(logSoftmax(logits, temperature, int64_t(i))));
  return p;
}

/// Frequencies of `draws` tokens drawn with `options`.
std::vector<double> frequencies(const std::vector<float> &logits, const SamplingOptions &options,
                                int draws, uint64_t seed = 1) {
  SplitMix64 rng(seed);
  TokenSampler sampler(options);
  std::vector<double> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i)
    counts[size_t(sampler.sample(logits.data(), int64_t(logits.size()), rng).token)] += 1;
  for (double &c : counts)
    c /= draws;
  return counts;
}

} // namespace

//===----------------------------------------------------------------------===//
// Sampling
//===----------------------------------------------------------------------===//

TEST(Sampling, GreedyIsArgmaxWithLowestIdOnTies) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, -INFINITY};
  SamplingOptions greedy;
  greedy.temperature = 0;
  SplitMix64 rng(5);
  for (int i = 0; i < 10; ++i) {
    SampledToken t = sampleToken(logits.data(), 5, greedy, rng);
    EXPECT_EQ(t.token, 1);
    EXPECT_FLOAT_EQ(t.logprob, float(logSoftmax(logits, 1.0, 1)));
  }
}

TEST(Sampling, TopKOneIsGreedy) {
  const std::vector<float> logits = {0.5f, -1.0f, 2.0f, 2.0f, 1.9f};
  SamplingOptions topOne;
  topOne.topK = 1;
  topOne.temperature = 1.5;
  SplitMix64 rng(11);
  for (int i = 0; i < 1000; ++i) {
    SampledToken t = sampleToken(logits.data(), 5, topOne, rng);
    ASSERT_EQ(t.token, 2);
    // The full distribution's logprob, not the truncated one's (0).
    ASSERT_FLOAT_EQ(t.logprob, float(logSoftmax(logits, 1.5, 2)));
  }
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.4, 0.3, 0.2, 0.1 (in a shuffled id order).
  const std::vector<float> logits = {std::log(0.2f), std::log(0.4f), std::log(0.1f),
                                     std::log(0.3f)};
  struct Case {
    double topP;
    int64_t topK;
    std::set<int> kept;
  } cases[] = {
      {0.35, 0, {1}},          // 0.4 >= 0.35
      {0.65, 0, {1, 3}},       // 0.4 < 0.65 <= 0.7
      {0.75, 0, {1, 3, 0}},    // 0.7 < 0.75 <= 0.9
      {0.95, 0, {1, 3, 0, 2}}, // all
      {0.5, 2, {1}},           // top-k renormalises: 0.4 / 0.7 = 0.57 >= 0.5
      {0.6, 2, {1, 3}},        // 0.57 < 0.6
      {1.0, 3, {1, 3, 0}},
  };
  for (const Case &c : cases) {
    SamplingOptions options;
    options.topP = c.topP;
    options.topK = c.topK;
    std::vector<double> f = frequencies(logits, options, 5000);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(f[size_t(i)] > 0, c.kept.count(i) == 1)
          << "top_p " << c.topP << " top_k " << c.topK << " token " << i << " freq " << f[size_t(i)];
  }
  // Equal probabilities: the lower ids are kept first.
  const std::vector<float> flat = {1.0f, 1.0f, 1.0f, 1.0f};
  SamplingOptions half;
  half.topP = 0.5;
  std::vector<double> f = frequencies(flat, half, 4000);
  EXPECT_GT(f[0], 0.4);
  EXPECT_GT(f[1], 0.4);
  EXPECT_EQ(f[2] + f[3], 0.0);
}

TEST(Sampling, FrequenciesMatchProbabilities) {
  const std::vector<float> logits = {0.5f, -1.0f, 2.0f, 0.0f};
  const int draws = 20000;
  for (double temperature : {1.0, 0.7, 2.5}) {
    SamplingOptions options;
    options.temperature = temperature;
    std::vector<double> p = softmax(logits, temperature);
    std::vector<double> f = frequencies(logits, options, draws, 1234);
    for (size_t i = 0; i < 4; ++i) {
      // 5 standard deviations of a binomial frequency.
      const double tolerance = 5 * std::sqrt(p[i] * (1 - p[i]) / draws);
      EXPECT_NEAR(f[i], p[i], tolerance) << "T " << temperature << " token " << i;
    }
    std::printf("T %.1f: p = %.4f %.4f %.4f %.4f, measured %.4f %.4f %.4f %.4f\n", temperature,
                p[0], p[1], p[2], p[3], f[0], f[1], f[2], f[3]);
  }
  // Top-k 3 renormalises over tokens 2, 0, 3.
  SamplingOptions topThree;
  topThree.topK = 3;
  std::vector<double> p = softmax(logits, 1.0);
  const double kept = p[0] + p[2] + p[3];
  std::vector<double> f = frequencies(logits, topThree, draws, 99);
  EXPECT_EQ(f[1], 0.0);
  for (size_t i : {0, 2, 3})
    EXPECT_NEAR(f[i], p[i] / kept, 5 * std::sqrt(p[i] / kept * (1 - p[i] / kept) / draws));
}

TEST(Sampling, LogprobIsLogSoftmaxOverTheFullVocabulary) {
  std::vector<float> logits(50);
  SplitMix64 values(3);
  for (float &l : logits)
    l = float(uniformDouble(values) * 8 - 4);
  for (double temperature : {0.0, 0.5, 1.0, 3.0})
    for (double topP : {1.0, 0.3})
      for (int64_t topK : {0, 1, 5}) {
        SamplingOptions options{temperature, topP, topK};
        SplitMix64 rng(17);
        for (int i = 0; i < 50; ++i) {
          SampledToken t = sampleToken(logits.data(), 50, options, rng);
          ASSERT_FLOAT_EQ(t.logprob,
                          float(logSoftmax(logits, temperature == 0 ? 1.0 : temperature, t.token)))
              << "T " << temperature << " top_p " << topP << " top_k " << topK;
        }
      }
}

TEST(Sampling, MaskedLogitsAreNeverDrawn) {
  const std::vector<float> logits = {-INFINITY, 0.0f, -INFINITY, 0.0f};
  std::vector<double> f = frequencies(logits, SamplingOptions{}, 2000);
  EXPECT_EQ(f[0] + f[2], 0.0);
  EXPECT_NEAR(f[1], 0.5, 0.06);
}

TEST(Sampling, StreamsAreReproducibleAndIndependent) {
  const std::vector<float> logits(64, 0.0f); // uniform over 64 tokens
  auto draw = [&](uint64_t seed) {
    SplitMix64 rng(seed);
    TokenSampler sampler(SamplingOptions{});
    std::vector<int32_t> tokens;
    for (int i = 0; i < 32; ++i)
      tokens.push_back(sampler.sample(logits.data(), 64, rng).token);
    return tokens;
  };
  EXPECT_EQ(draw(sampleSeed(7, 0, 3, 1)), draw(sampleSeed(7, 0, 3, 1)));
  std::set<std::vector<int32_t>> streams;
  std::set<uint64_t> seeds;
  for (uint64_t seed : {7u, 8u})
    for (uint64_t step = 0; step < 3; ++step)
      for (uint64_t prompt = 0; prompt < 4; ++prompt)
        for (uint64_t sample = 0; sample < 4; ++sample) {
          seeds.insert(sampleSeed(seed, step, prompt, sample));
          streams.insert(draw(sampleSeed(seed, step, prompt, sample)));
        }
  EXPECT_EQ(seeds.size(), 2u * 3 * 4 * 4);
  EXPECT_EQ(streams.size(), 2u * 3 * 4 * 4);
  // Swapping lanes gives another stream.
  EXPECT_NE(sampleSeed(1, 0, 2, 3), sampleSeed(1, 0, 3, 2));
  EXPECT_NE(sampleSeed(0, 0, 0, 0), 0u);
}

TEST(Sampling, OptionsAreValidated) {
  std::string error;
  EXPECT_TRUE(validateSampling(SamplingOptions{}, error));
  EXPECT_TRUE(validateSampling(SamplingOptions{0.0, 1.0, 0}, error));
  EXPECT_FALSE(validateSampling(SamplingOptions{-0.5, 1.0, 0}, error));
  EXPECT_EQ(error, "temperature -0.5: expected a finite number >= 0 (0: greedy decoding)");
  EXPECT_FALSE(validateSampling(SamplingOptions{NAN, 1.0, 0}, error));
  EXPECT_FALSE(validateSampling(SamplingOptions{INFINITY, 1.0, 0}, error));
  EXPECT_FALSE(validateSampling(SamplingOptions{1.0, 0.0, 0}, error));
  EXPECT_EQ(error, "top_p 0: expected a number in (0, 1] (1: no nucleus truncation)");
  EXPECT_FALSE(validateSampling(SamplingOptions{1.0, 1.5, 0}, error));
  EXPECT_FALSE(validateSampling(SamplingOptions{1.0, NAN, 0}, error));
  EXPECT_FALSE(validateSampling(SamplingOptions{1.0, 1.0, -1}, error));
  EXPECT_EQ(error, "top_k -1: expected an integer >= 0 (0: no limit)");
}

//===----------------------------------------------------------------------===//
// The fake decode program
//===----------------------------------------------------------------------===//

namespace {

/// What the fake program is and what it saw.
struct Fake {
  int64_t rows = 3, promptLen = 4, maxLen = 12, vocab = 16;
  float peak = 30.0f; ///< the logit of the "right" token; the others are 0
  int64_t failPrefillCall = -1;
  int64_t nanAtStepCall = -1;
  int64_t prefillCalls = 0, stepCalls = 0;
  std::vector<std::vector<int32_t>> prefillTokens, stepTokens, stepPositions;
  std::vector<std::string> violations;
  float firstParam = NAN;
};
Fake gFake;

/// Cache 0: the token at each position [rows, maxLen, 1]; cache 1: 1 where
/// a position was written [rows, maxLen].
bool fakeCall(const DecodeBuffers &buf, int64_t chunk, std::string &error) {
  Fake &f = gFake;
  f.firstParam = buf.params[0][0];
  float *cached = buf.caches[0], *written = buf.caches[1];
  for (int64_t b = 0; b < f.rows; ++b) {
    const int64_t pos = buf.positions[b];
    if (pos < 0 || pos + chunk > f.maxLen) {
      f.violations.push_back("row " + std::to_string(b) + " at position " + std::to_string(pos));
      error = "position out of range";
      return false;
    }
    for (int64_t t = 0; t < chunk; ++t) {
      const int64_t q = pos + t;
      const int32_t token = buf.tokens[b * chunk + t];
      if (token < 0 || token >= f.vocab)
        f.violations.push_back("token " + std::to_string(token));
      cached[b * f.maxLen + q] = float(token);
      written[b * f.maxLen + q] = 1;
      double sum = 0;
      for (int64_t p = 0; p <= q; ++p) {
        if (written[b * f.maxLen + p] != 1)
          f.violations.push_back("row " + std::to_string(b) + " reads unwritten position " +
                                 std::to_string(p));
        sum += cached[b * f.maxLen + p];
      }
      float *logits = buf.logits + (b * chunk + t) * f.vocab;
      std::fill(logits, logits + f.vocab, 0.0f);
      logits[int64_t(sum) % f.vocab] = f.peak;
    }
  }
  return true;
}

bool fakePrefill(const DecodeBuffers &buf, std::string &error) {
  gFake.prefillTokens.emplace_back(buf.tokens, buf.tokens + gFake.rows * gFake.promptLen);
  if (gFake.prefillCalls++ == gFake.failPrefillCall) {
    error = "boom";
    return false;
  }
  return fakeCall(buf, gFake.promptLen, error);
}

bool fakeStep(const DecodeBuffers &buf, std::string &error) {
  gFake.stepTokens.emplace_back(buf.tokens, buf.tokens + gFake.rows);
  gFake.stepPositions.emplace_back(buf.positions, buf.positions + gFake.rows);
  if (!fakeCall(buf, 1, error))
    return false;
  if (gFake.stepCalls++ == gFake.nanAtStepCall)
    buf.logits[0] = NAN;
  return true;
}

const char *const kEmbedName = "model.embed_tokens.weight";
const char *const kFakeParamNames[] = {kEmbedName};

/// A DecodeDesc of the fake (not copyable: desc points into caches).
struct FakeProgram {
  CacheDesc caches[2];
  DecodeDesc desc{};
  FakeProgram(int64_t rows, int64_t promptLen = 4, int64_t maxLen = 12, int64_t vocab = 16) {
    gFake = Fake{};
    gFake.rows = rows;
    gFake.promptLen = promptLen;
    gFake.maxLen = maxLen;
    gFake.vocab = vocab;
    caches[0] = {"model.layers.0.self_attn.k_cache", 3, {rows, maxLen, 1, 0}};
    caches[1] = {"model.layers.0.self_attn.v_cache", 2, {rows, maxLen, 0, 0}};
    desc.paramNames = kFakeParamNames;
    desc.numParams = 1;
    desc.caches = caches;
    desc.numCaches = 2;
    desc.rows = rows;
    desc.promptLen = promptLen;
    desc.maxLen = maxLen;
    desc.vocabSize = vocab;
    desc.prefillArenaBytes = 256;
    desc.stepArenaBytes = 64;
    desc.prefill = fakePrefill;
    desc.step = fakeStep;
  }
  FakeProgram(const FakeProgram &) = delete;
  FakeProgram &operator=(const FakeProgram &) = delete;
};

const float kParam[] = {0.25f};
const float *const kParams[] = {kParam};

/// The fake model's greedy completion, by hand.
std::vector<int32_t> greedyByHand(std::vector<int32_t> sequence, int64_t maxNew, int32_t stop,
                                  int64_t maxLen, int64_t vocab) {
  std::vector<int32_t> out;
  for (;;) {
    int64_t sum = 0;
    for (int32_t t : sequence)
      sum += t;
    const int32_t next = int32_t(sum % vocab);
    out.push_back(next);
    sequence.push_back(next);
    if (next == stop || int64_t(out.size()) == maxNew || int64_t(sequence.size()) >= maxLen)
      return out;
  }
}

GenerateOptions greedyOptions(int64_t maxNew = 100) {
  GenerateOptions o;
  o.sampling.temperature = 0;
  o.maxNewTokens = maxNew;
  o.seed = 1;
  return o;
}

std::vector<Completion> generateOk(const FakeProgram &program,
                                   const std::vector<std::vector<int32_t>> &prompts,
                                   const GenerateOptions &options) {
  // What the fake saw is this call's alone.
  gFake.prefillTokens.clear();
  gFake.stepTokens.clear();
  gFake.stepPositions.clear();
  gFake.violations.clear();
  std::vector<Completion> out;
  std::string error;
  EXPECT_TRUE(generate(program.desc, kParams, prompts, options, out, error)) << error;
  EXPECT_TRUE(gFake.violations.empty()) << gFake.violations.front();
  return out;
}

} // namespace

//===----------------------------------------------------------------------===//
// The generation loop
//===----------------------------------------------------------------------===//

TEST(Generate, PositionsAndTokensPassedToStep) {
  FakeProgram program(/*rows=*/1);
  std::vector<Completion> out = generateOk(program, {{1, 2}}, greedyOptions(4));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tokens, greedyByHand({1, 2}, 4, -1, 12, 16));
  EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{3, 6, 12, 8}));
  EXPECT_EQ(out[0].promptTokens, (std::vector<int32_t>{1, 2}));
  EXPECT_FALSE(out[0].stopped);
  // Prefill: the prompt, zero-padded. Then a step per token but the last,
  // each feeding the previous token at its position.
  ASSERT_EQ(gFake.prefillTokens.size(), 1u);
  EXPECT_EQ(gFake.prefillTokens[0], (std::vector<int32_t>{1, 2, 0, 0}));
  ASSERT_EQ(gFake.stepPositions.size(), 3u);
  EXPECT_EQ(gFake.stepPositions, (std::vector<std::vector<int32_t>>{{2}, {3}, {4}}));
  EXPECT_EQ(gFake.stepTokens, (std::vector<std::vector<int32_t>>{{3}, {6}, {12}}));
  EXPECT_EQ(gFake.firstParam, 0.25f);
  // Greedy logprobs: the peak's log softmax.
  const double expected = -std::log1p(15 * std::exp(-30.0));
  for (float l : out[0].logprobs)
    EXPECT_FLOAT_EQ(l, float(expected));
}

TEST(Generate, PromptsOfDifferentLengthsInOneBatch) {
  FakeProgram program(/*rows=*/3);
  const std::vector<std::vector<int32_t>> prompts = {{5}, {1, 2, 3}, {15, 15, 15, 15}};
  std::vector<Completion> out = generateOk(program, prompts, greedyOptions(5));
  ASSERT_EQ(out.size(), 3u);
  for (size_t p = 0; p < 3; ++p) {
    EXPECT_EQ(out[p].prompt, int64_t(p));
    EXPECT_EQ(out[p].tokens, greedyByHand(prompts[p], 5, -1, 12, 16)) << "prompt " << p;
  }
  // Each row steps from its own length.
  ASSERT_FALSE(gFake.stepPositions.empty());
  EXPECT_EQ(gFake.stepPositions[0], (std::vector<int32_t>{1, 3, 4}));
  EXPECT_EQ(gFake.stepPositions[1], (std::vector<int32_t>{2, 4, 5}));
}

TEST(Generate, StopTokenIsKeptAndEndsTheCompletion) {
  FakeProgram program(/*rows=*/2);
  const std::vector<int32_t> prompt = {1, 2};
  ASSERT_EQ(greedyByHand(prompt, 4, -1, 12, 16), (std::vector<int32_t>{3, 6, 12, 8}));
  GenerateOptions options = greedyOptions();
  options.stopToken = 12;
  std::vector<Completion> out = generateOk(program, {prompt, {4}}, options);
  EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{3, 6, 12}));
  EXPECT_TRUE(out[0].stopped);
  EXPECT_EQ(out[0].logprobs.size(), 3u);
  // The other row never meets 12: it runs to the length limit.
  EXPECT_EQ(out[1].tokens, greedyByHand({4}, 100, 12, 12, 16));
  EXPECT_FALSE(out[1].stopped);
  // Once row 0 stopped, it is fed token 0 at position 0.
  ASSERT_GE(gFake.stepTokens.size(), 3u);
  EXPECT_EQ(gFake.stepTokens[2][0], 0);
  EXPECT_EQ(gFake.stepPositions[2][0], 0);
  // A stop token as the first new token.
  options.stopToken = 3;
  out = generateOk(program, {prompt}, options);
  EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{3}));
  EXPECT_TRUE(out[0].stopped);
}

TEST(Generate, MaxNewTokens) {
  FakeProgram program(/*rows=*/2);
  std::vector<Completion> out = generateOk(program, {{1}, {2, 2}}, greedyOptions(3));
  for (const Completion &c : out) {
    EXPECT_EQ(c.tokens.size(), 3u);
    EXPECT_EQ(c.logprobs.size(), 3u);
    EXPECT_FALSE(c.stopped);
  }
  // One token: prefill only, no step.
  out = generateOk(program, {{1}}, greedyOptions(1));
  EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{1}));
  EXPECT_TRUE(gFake.stepTokens.empty());
}

TEST(Generate, MaxLenEndsTheRowWithoutWritingPastIt) {
  FakeProgram program(/*rows=*/2, /*promptLen=*/4, /*maxLen=*/10);
  std::vector<Completion> out = generateOk(program, {{1, 2, 3, 4}, {7}}, greedyOptions(100));
  // Prompt plus completion fill the row's 10 tokens.
  EXPECT_EQ(out[0].tokens.size(), 6u);
  EXPECT_EQ(out[1].tokens.size(), 9u);
  EXPECT_EQ(out[0].tokens, greedyByHand({1, 2, 3, 4}, 100, -1, 10, 16));
  EXPECT_EQ(out[1].tokens, greedyByHand({7}, 100, -1, 10, 16));
  EXPECT_FALSE(out[0].stopped);
  int32_t highest = 0;
  for (const auto &positions : gFake.stepPositions)
    for (int32_t p : positions)
      highest = std::max(highest, p);
  EXPECT_EQ(highest, 8); // the last token (position 9) is never fed
}

TEST(Generate, PartialLastBatchPadsAndDrops) {
  FakeProgram program(/*rows=*/3);
  const std::vector<std::vector<int32_t>> prompts = {{1}, {2}, {3}, {4}, {5}};
  std::vector<Completion> out = generateOk(program, prompts, greedyOptions(2));
  ASSERT_EQ(out.size(), 5u);
  for (size_t p = 0; p < 5; ++p)
    EXPECT_EQ(out[p].tokens, greedyByHand(prompts[p], 2, -1, 12, 16));
  ASSERT_EQ(gFake.prefillTokens.size(), 2u);
  // The second batch: two prompts and a padding row of token 0.
  EXPECT_EQ(gFake.prefillTokens[1],
            (std::vector<int32_t>{4, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(gFake.stepTokens.back()[2], 0);
  EXPECT_EQ(gFake.stepPositions.back()[2], 0);
}

TEST(Generate, CompletionsDoNotDependOnRows) {
  const std::vector<std::vector<int32_t>> prompts = {{1}, {2, 3}, {4, 4, 4}, {9}, {0, 1, 2, 3}};
  GenerateOptions options;
  options.samples = 3;
  options.maxNewTokens = 7;
  options.stopToken = 5;
  options.seed = 42;
  options.step = 2;
  std::vector<std::vector<Completion>> runs;
  for (int64_t rows : {1, 3, 8}) {
    FakeProgram program(rows);
    gFake.peak = 1.0f; // a flat model: the draws decide
    runs.push_back(generateOk(program, prompts, options));
  }
  ASSERT_EQ(runs[0].size(), 15u);
  std::set<std::vector<int32_t>> distinct;
  int stopped = 0;
  for (size_t i = 0; i < 15; ++i) {
    const Completion &c = runs[0][i];
    EXPECT_EQ(c.prompt, int64_t(i / 3));
    EXPECT_EQ(c.sample, int64_t(i % 3));
    distinct.insert(c.tokens);
    stopped += c.stopped;
    for (size_t r = 1; r < runs.size(); ++r) {
      EXPECT_EQ(runs[r][i].tokens, c.tokens) << "completion " << i << ", run " << r;
      EXPECT_EQ(runs[r][i].logprobs, c.logprobs);
      EXPECT_EQ(runs[r][i].stopped, c.stopped);
    }
  }
  EXPECT_GT(distinct.size(), 10u) << "the samples should differ";
  EXPECT_GT(stopped, 0);
  // Another step of the run draws other completions.
  options.step = 3;
  FakeProgram program(3);
  gFake.peak = 1.0f;
  std::vector<Completion> other = generateOk(program, prompts, options);
  int same = 0;
  for (size_t i = 0; i < 15; ++i)
    same += other[i].tokens == runs[0][i].tokens;
  EXPECT_LT(same, 15);
}

TEST(Generate, BadPromptsNameTheirIndex) {
  FakeProgram program(2);
  std::vector<Completion> out;
  std::string error;
  EXPECT_FALSE(generate(program.desc, kParams, {{1}, {}}, greedyOptions(), out, error));
  EXPECT_EQ(error, "prompt 1: 0 tokens; expected 1 to 4 (the decode program's prompt_len)");
  EXPECT_FALSE(generate(program.desc, kParams, {{1, 2, 3, 4, 5}}, greedyOptions(), out, error));
  EXPECT_EQ(error, "prompt 0: 5 tokens; expected 1 to 4 (the decode program's prompt_len)");
  EXPECT_FALSE(generate(program.desc, kParams, {{1}, {1}, {3, 16}}, greedyOptions(), out, error));
  EXPECT_EQ(error, "prompt 2: token 1 is 16; expected an id from 0 to 15");
  EXPECT_FALSE(generate(program.desc, kParams, {{-1}}, greedyOptions(), out, error));
  EXPECT_EQ(error, "prompt 0: token 0 is -1; expected an id from 0 to 15");
  EXPECT_EQ(gFake.prefillCalls, 0);
  GenerateOptions badStop = greedyOptions();
  badStop.stopToken = 16;
  EXPECT_FALSE(generate(program.desc, kParams, {{1}}, badStop, out, error));
  EXPECT_NE(error.find("stop token 16"), std::string::npos) << error;
  GenerateOptions badSampling = greedyOptions();
  badSampling.sampling.topP = 0;
  EXPECT_FALSE(generate(program.desc, kParams, {{1}}, badSampling, out, error));
  EXPECT_NE(error.find("top_p"), std::string::npos) << error;
}

TEST(Generate, ProgramFailuresAreErrors) {
  FakeProgram program(2);
  std::vector<Completion> out;
  std::string error;
  gFake.failPrefillCall = 1;
  EXPECT_FALSE(generate(program.desc, kParams, {{1}, {2}, {3}}, greedyOptions(), out, error));
  EXPECT_EQ(error, "decode prefill of prompt 2 sample 0: boom");
  gFake = Fake{};
  gFake.rows = 2;
  gFake.nanAtStepCall = 2;
  EXPECT_FALSE(generate(program.desc, kParams, {{1}, {2}}, greedyOptions(), out, error));
  EXPECT_EQ(error, "prompt 0 sample 0: the logits at position 3 are not finite (NaN or infinity); "
                   "the parameters have diverged or overflow");
  // A bad description is a clear error, not a crash.
  DecodeDesc broken = program.desc;
  broken.maxLen = broken.promptLen;
  EXPECT_FALSE(generate(broken, kParams, {{1}}, greedyOptions(), out, error));
  EXPECT_NE(error.find("max_len > prompt_len"), std::string::npos) << error;
  CacheDesc badCache[2] = {program.caches[0], program.caches[1]};
  badCache[1].shape[0] = 5;
  broken = program.desc;
  broken.caches = badCache;
  EXPECT_FALSE(generate(broken, kParams, {{1}}, greedyOptions(), out, error));
  EXPECT_NE(error.find("cache 1 'model.layers.0.self_attn.v_cache'"), std::string::npos) << error;
}

//===----------------------------------------------------------------------===//
// The prompts file and the output line
//===----------------------------------------------------------------------===//

namespace {

std::string promptError(const std::string &text, int64_t vocab = 256, int64_t maxTokens = 8) {
  std::vector<std::vector<int32_t>> prompts;
  std::string error;
  EXPECT_FALSE(parsePrompts("p.jsonl", text, vocab, maxTokens, prompts, error)) << "accepted";
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

} // namespace

TEST(PromptsFile, TextAndTokens) {
  std::vector<std::vector<int32_t>> prompts;
  std::string error;
  const std::string text = "{\"prompt\": \"ab\", \"answer\": 3}\r\n"
                           "\n"
                           "   \n"
                           "{\"tokens\": [0, 255, 7]}\n"
                           "{\"prompt\": \"\\u00e9\"}"; // no final newline; é is 2 bytes
  ASSERT_TRUE(parsePrompts("p.jsonl", text, 256, 8, prompts, error)) << error;
  ASSERT_EQ(prompts.size(), 3u);
  EXPECT_EQ(prompts[0], (std::vector<int32_t>{'a', 'b'}));
  EXPECT_EQ(prompts[1], (std::vector<int32_t>{0, 255, 7}));
  EXPECT_EQ(prompts[2], (std::vector<int32_t>{0xc3, 0xa9}));
}

TEST(PromptsFile, ErrorsNameFileAndLine) {
  const std::string expected =
      "expected an object like {\"prompt\": \"text\"} or {\"tokens\": [1, 2, 3]}";
  EXPECT_EQ(promptError("{\"prompt\": \"a\"}\n{\"prompt\": \"a\"\n"),
            "p.jsonl:2: not valid JSON (or not UTF-8); " + expected);
  EXPECT_EQ(promptError("\n[1, 2]\n"), "p.jsonl:2: a JSON array; " + expected);
  EXPECT_EQ(promptError("{\"prompt\": \"a\", \"tokens\": [1]}"),
            "p.jsonl:1: has both \"prompt\" and \"tokens\"; give one of them");
  EXPECT_EQ(promptError("{\"text\": \"a\"}"),
            "p.jsonl:1: has neither \"prompt\" nor \"tokens\"; " + expected);
  EXPECT_EQ(promptError("{\"prompt\": 5}"), "p.jsonl:1: \"prompt\" is a number; expected a string");
  EXPECT_EQ(promptError("{\"tokens\": \"abc\"}"),
            "p.jsonl:1: \"tokens\" is a string; expected an array of ids");
  EXPECT_EQ(promptError("{\"tokens\": [1, 256]}"),
            "p.jsonl:1: \"tokens\"[1] is 256; expected an integer id from 0 to 255");
  EXPECT_EQ(promptError("{\"tokens\": [-3]}"),
            "p.jsonl:1: \"tokens\"[0] is -3; expected an integer id from 0 to 255");
  EXPECT_EQ(promptError("{\"tokens\": [1.5]}"),
            "p.jsonl:1: \"tokens\"[0] is 1.5; expected an integer id from 0 to 255");
  EXPECT_EQ(promptError("{\"tokens\": [18446744073709551615]}"),
            "p.jsonl:1: \"tokens\"[0] is 18446744073709551615; expected an integer id from 0 to 255");
  EXPECT_EQ(promptError("{\"tokens\": [\"1\"]}"),
            "p.jsonl:1: \"tokens\"[0] is \"1\"; expected an integer id from 0 to 255");
  EXPECT_EQ(promptError("{\"tokens\": []}"),
            "p.jsonl:1: the prompt is empty; give at least one token");
  EXPECT_EQ(promptError("{\"prompt\": \"\"}"),
            "p.jsonl:1: the prompt is empty; give at least one token");
  EXPECT_EQ(promptError("{\"prompt\": \"123456789\"}"),
            "p.jsonl:1: the prompt has 9 tokens, but the decode program takes at most 8 (its "
            "prompt_len); shorten it");
  EXPECT_EQ(promptError("{\"prompt\": \"a\"}", /*vocab=*/100),
            "p.jsonl:1: \"prompt\" text is tokenized byte-level (a token per byte), which needs a "
            "vocabulary of at least 256 ids, and this model has 100; give \"tokens\": [ids] "
            "instead");
  EXPECT_EQ(promptError(std::string("{\"prompt\": \"a\"}\0x", 17)),
            "p.jsonl:1: contains a NUL byte; " + expected);
  EXPECT_EQ(promptError("{\"prompt\": \"\xff\"}"),
            "p.jsonl:1: not valid JSON (or not UTF-8); " + expected);
  EXPECT_EQ(promptError("\n \n"),
            "p.jsonl: no prompts (the file is empty or blank); " + expected + " per line");
  EXPECT_EQ(promptError(""),
            "p.jsonl: no prompts (the file is empty or blank); " + expected + " per line");
}

TEST(PromptsFile, UnreadableFiles) {
  std::vector<std::vector<int32_t>> prompts;
  std::string error;
  EXPECT_FALSE(readPrompts("/nonexistent/p.jsonl", 256, 8, prompts, error));
  EXPECT_EQ(error, "--generate /nonexistent/p.jsonl: cannot read the prompts file: No such file "
                   "or directory");
  EXPECT_FALSE(readPrompts(::testing::TempDir(), 256, 8, prompts, error));
  EXPECT_NE(error.find("is a directory"), std::string::npos) << error;
}

TEST(CompletionLine, KeysInOrderAndBytesAsText) {
  Completion c;
  c.prompt = 2;
  c.sample = 1;
  c.promptTokens = {'h', 'i'};
  c.tokens = {'!', 0xff, '\n'};
  c.logprobs = {-0.5f, -1.2345678f, 0.0f};
  c.stopped = true;
  EXPECT_EQ(completionLine(c, 256),
            "{\"prompt_index\":2,\"sample\":1,\"prompt\":\"hi\",\"prompt_tokens\":[104,105],"
            "\"tokens\":[33,255,10],\"text\":\"!\xef\xbf\xbd\\n\",\"logprobs\":[-0.5,-1.2345678,"
            "0.0],\"finish_reason\":\"stop\"}");
  c.stopped = false;
  c.logprobs = {float(std::log(0.3))};
  c.tokens = {5};
  EXPECT_EQ(completionLine(c, 1000),
            "{\"prompt_index\":2,\"sample\":1,\"prompt_tokens\":[104,105],\"tokens\":[5],"
            "\"logprobs\":[-1.2039728],\"finish_reason\":\"length\"}");
  // Every line parses back.
  nlohmann::json j = nlohmann::json::parse(completionLine(c, 256));
  EXPECT_EQ(j.at("logprobs")[0].get<double>(), -1.2039728);
}

//===----------------------------------------------------------------------===//
// train --generate, through trainMain
//===----------------------------------------------------------------------===//

namespace {

constexpr int64_t kVocab = 256, kDim = 2;
const char *const kNormName = "model.norm.weight";
const ParamDesc kToyParams[] = {
    {kNormName, 1, {kDim}, InitKind::Ones, 0, true},
    {kEmbedName, 2, {kVocab, kDim}, InitKind::Normal, 0.5, true},
};

ModelDesc toyModel() {
  ModelDesc m{};
  m.specName = "toy";
  m.specFingerprint = "toy:generate";
  m.params = kToyParams;
  m.numParams = 2;
  m.batch = 1;
  m.seqLen = 4;
  m.vocabSize = kVocab;
  m.arenaBytes = 64;
  m.defaultSteps = 2;
  m.defaultSeed = 1234;
  return m;
}

/// Adds 1 to every parameter, so a checkpoint of step n differs from the
/// initial model by n.
bool toyStep(const StepBuffers &buf, std::string &) {
  for (int64_t i = 0; i < kDim; ++i)
    buf.params[0][i] += 1;
  for (int64_t i = 0; i < kVocab * kDim; ++i)
    buf.params[1][i] += 1;
  *buf.loss = *buf.mainLoss = 1;
  *buf.gradNorm = *buf.lr = 0;
  return true;
}

class GenerateMainTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "kiln-generate-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    prompts_ = path("prompts.jsonl");
    write(prompts_, "{\"prompt\": \"2+2=\"}\n{\"tokens\": [1, 2, 3]}\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string &name) const { return dir_ + "/" + name; }

  static void write(const std::string &file, const std::string &text) {
    std::ofstream(file, std::ios::binary) << text;
  }
  static std::string read(const std::string &file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  /// Runs `train <args>` with the fake decode program (or none), capturing
  /// stdout and stderr.
  int run(std::vector<std::string> args, bool withDecode = true) {
    FakeProgram program(/*rows=*/2, /*promptLen=*/8, /*maxLen=*/16, kVocab);
    const ModelDesc model = toyModel();
    std::vector<std::string> all = {"train", "--threads", "1"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (std::string &a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = withDecode ? trainMain(int(all.size()), argv.data(), model, toyStep, &program.desc)
                              : trainMain(int(all.size()), argv.data(), model, toyStep);
    stderr_ = ::testing::internal::GetCapturedStderr();
    stdout_ = ::testing::internal::GetCapturedStdout();
    return rc;
  }

  std::vector<nlohmann::json> lines(const std::string &text) const {
    std::vector<nlohmann::json> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
      out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::string dir_, prompts_, stdout_, stderr_;
};

float seededFirst(uint64_t seed) {
  kiln::init::SeededRng rng(seed, kEmbedName);
  return float(rng.normal() * 0.5);
}

} // namespace

TEST_F(GenerateMainTest, WritesCompletionsToStdout) {
  ASSERT_EQ(run({"--generate", prompts_, "--temperature", "0", "--max-new-tokens", "3",
                 "--samples", "2"}),
            0)
      << stderr_;
  std::vector<nlohmann::json> out = lines(stdout_);
  ASSERT_EQ(out.size(), 4u);
  const std::vector<int32_t> prompt = {'2', '+', '2', '='};
  EXPECT_EQ(out[0].at("prompt_index"), 0);
  EXPECT_EQ(out[0].at("sample"), 0);
  EXPECT_EQ(out[1].at("sample"), 1);
  EXPECT_EQ(out[2].at("prompt_index"), 1);
  EXPECT_EQ(out[0].at("prompt"), "2+2=");
  EXPECT_EQ(out[0].at("prompt_tokens").get<std::vector<int32_t>>(), prompt);
  const std::vector<int32_t> tokens = greedyByHand(prompt, 3, -1, 16, kVocab);
  EXPECT_EQ(out[0].at("tokens").get<std::vector<int32_t>>(), tokens);
  EXPECT_TRUE(out[0].at("text").is_string()); // bytes >= 0x80 alone become U+FFFD
  EXPECT_EQ(out[0].at("logprobs").size(), 3u);
  EXPECT_EQ(out[0].at("finish_reason"), "length");
  EXPECT_EQ(out[2].at("prompt"), std::string("\x01\x02\x03"));
  // The seeded initial model, as at step 0 of training.
  EXPECT_EQ(gFake.firstParam, seededFirst(1234));
  EXPECT_NE(stderr_.find("generated 4 completions (2 prompts x 2) from the initial model (seed "
                         "1234) | 12 tokens, 0 stopped, 4 at the length limit"),
            std::string::npos)
      << stderr_;
  EXPECT_NE(stderr_.find("tok/s"), std::string::npos);
  std::printf("first line: %ssummary: %s", stdout_.substr(0, stdout_.find('\n') + 1).c_str(),
              stderr_.c_str());
}

TEST_F(GenerateMainTest, LoadsTheLatestCheckpointAndWritesOut) {
  const std::string ckpt = path("ckpt"), out = path("out.jsonl");
  ASSERT_EQ(run({"--steps", "3", "--checkpoint-dir", ckpt, "--seed", "9"}), 0) << stderr_;
  ASSERT_EQ(run({"--generate", prompts_, "--checkpoint", ckpt, "--out", out, "--seed", "5",
                 "--stop-token", "0"}),
            0)
      << stderr_;
  // The checkpoint's parameters (seed 9 plus three steps), not seed 5's.
  EXPECT_EQ(gFake.firstParam, seededFirst(9) + 1 + 1 + 1);
  EXPECT_TRUE(stdout_.empty());
  std::vector<nlohmann::json> completions = lines(read(out));
  ASSERT_EQ(completions.size(), 2u);
  EXPECT_NE(stderr_.find("from " + ckpt + "/step-00000003"), std::string::npos) << stderr_;
  EXPECT_NE(stderr_.find("| " + out), std::string::npos) << stderr_;
  for (const nlohmann::json &c : completions) {
    const auto tokens = c.at("tokens").get<std::vector<int32_t>>();
    EXPECT_EQ(c.at("finish_reason"), tokens.back() == 0 ? "stop" : "length");
    EXPECT_LE(tokens.size() + c.at("prompt_tokens").size(), 16u);
  }
  // The same flags give the same completions.
  const std::string first = read(out);
  ASSERT_EQ(run({"--generate", prompts_, "--checkpoint", ckpt, "--out", out, "--seed", "5",
                 "--stop-token", "0"}),
            0)
      << stderr_;
  EXPECT_EQ(read(out), first);
}

TEST_F(GenerateMainTest, Errors) {
  // No decode program.
  EXPECT_EQ(run({"--generate", prompts_}, /*withDecode=*/false), 2);
  EXPECT_NE(stderr_.find("error: --generate: this executable has no decode program"),
            std::string::npos)
      << stderr_;
  // Flags of the other mode are usage errors.
  EXPECT_EQ(run({"--generate", prompts_, "--steps", "3"}), 2);
  EXPECT_NE(stderr_.find("--steps is a training flag"), std::string::npos) << stderr_;
  EXPECT_EQ(run({"--samples", "3"}), 2);
  // Options the decode program cannot honour.
  EXPECT_EQ(run({"--generate", prompts_, "--max-new-tokens", "16"}), 2);
  EXPECT_NE(stderr_.find("error: --max-new-tokens 16: this program's decode holds 16 tokens per "
                         "row, prompt included, so at most 15 new ones"),
            std::string::npos)
      << stderr_;
  EXPECT_EQ(run({"--generate", prompts_, "--stop-token", "256"}), 2);
  EXPECT_NE(stderr_.find("--stop-token 256: the vocabulary has 256 ids"), std::string::npos);
  // Bad prompts: a runtime error naming the line; nothing written.
  const std::string bad = path("bad.jsonl"), out = path("out.jsonl");
  write(bad, "{\"prompt\": \"ok\"}\n{\"prompt\": \"way too long\"}\n");
  EXPECT_EQ(run({"--generate", bad, "--out", out}), 1);
  EXPECT_NE(stderr_.find("error: " + bad +
                         ":2: the prompt has 12 tokens, but the decode program takes at most 8"),
            std::string::npos)
      << stderr_;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(stdout_.empty());
  EXPECT_EQ(run({"--generate", path("missing.jsonl")}), 1);
  EXPECT_EQ(run({"--generate", prompts_, "--out", path("no/such/dir/out.jsonl")}), 1);
  EXPECT_NE(stderr_.find("cannot write to the directory"), std::string::npos) << stderr_;
  // A checkpoint directory without a checkpoint.
  EXPECT_EQ(run({"--generate", prompts_, "--checkpoint", path("empty")}), 1);
  EXPECT_NE(stderr_.find("/latest to load"), std::string::npos) << stderr_;
  // Launched as several MPI ranks.
  ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  EXPECT_EQ(run({"--generate", prompts_}), 1);
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  EXPECT_NE(stderr_.find("--generate runs in one process"), std::string::npos) << stderr_;
  // --help still works.
  EXPECT_EQ(run({"--generate", prompts_, "--help"}), 0);
  EXPECT_NE(stdout_.find("--generate PROMPTS.jsonl"), std::string::npos);
}
