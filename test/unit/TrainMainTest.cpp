//===- TrainMainTest.cpp - trainMain: state, data, resume, errors ---------===//
//
// Drives trainMain in-process with argv vectors around a toy model written
// here: an embedding row times a norm, dotted with one of two "experts"
// (stacked, so checkpointed per expert), regressed onto target / 256, with a
// non-trainable expert bias, gradients in the arena and an AdamW update. It
// is small enough to run hundreds of steps in milliseconds and exercises
// every buffer of the StepBuffers contract.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/TrainMain.h"
#include "runtime/data/LlmcShard.h"
#include "runtime/data/SyntheticCorpus.h"
#include "runtime/init/SeededRng.h"
#include "runtime/safetensors/Safetensors.h"

#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

using namespace kiln::driver;
namespace fs = std::filesystem;

namespace {

//===----------------------------------------------------------------------===//
// The toy model
//===----------------------------------------------------------------------===//

constexpr int64_t kVocab = 256, kDim = 4, kExperts = 2, kBatch = 2, kSeq = 8;
constexpr int64_t kNumGrads = kVocab * kDim + kExperts * kDim + kDim;

const char *const kEmbed = "model.embed_tokens.weight";
const char *const kExpertsStacked = "model.layers.0.mlp.experts.*.down_proj.weight";
const char *const kNorm = "model.norm.weight";
const char *const kBias = "model.layers.0.mlp.gate.e_score_correction_bias";

const ParamDesc kParams[] = {
    {kEmbed, 2, {kVocab, kDim}, InitKind::Normal, 0.5, true},
    {kExpertsStacked, 2, {kExperts, kDim}, InitKind::Normal, 0.5, true},
    {kNorm, 1, {kDim}, InitKind::Ones, 0, true},
    {kBias, 1, {kExperts}, InitKind::Zeros, 0, false},
};

ModelDesc toyModel(const char *fingerprint = "toy:1", const ParamDesc *params = kParams) {
  ModelDesc m{};
  m.specName = "toy";
  m.specFingerprint = fingerprint;
  m.params = params;
  m.numParams = 4;
  m.batch = kBatch;
  m.seqLen = kSeq;
  m.vocabSize = kVocab;
  m.sft = false;
  m.numExpertLoads = 1;
  m.numExperts = kExperts;
  m.arenaBytes = kNumGrads * sizeof(float);
  m.defaultSteps = 5;
  m.defaultSeed = 1234;
  return m;
}

/// What the step saw, and knobs to make it misbehave.
struct Hooks {
  int64_t nanAtStep = -1;
  int64_t failAtStep = -1;
  int64_t signalAtStep = -1; ///< raise `signal` inside this step
  int signal = SIGTERM;
  int calls = 0;
  std::vector<std::vector<float>> firstParams;
  std::vector<std::vector<float>> firstGrads;
  std::vector<int32_t> firstTokens, firstTargets;
  std::vector<float> firstMask;
};
Hooks gHooks;

bool toyStep(const StepBuffers &buf, std::string &error) {
  const int64_t step = *buf.step;
  if (step == gHooks.failAtStep) {
    error = "toy failure";
    return false;
  }
  if (step == gHooks.signalAtStep)
    std::raise(gHooks.signal); // As a scheduler's SIGTERM would arrive mid-step.
  const int64_t n = kBatch * kSeq;
  const int64_t sizes[] = {kVocab * kDim, kExperts * kDim, kDim, kExperts};
  if (gHooks.calls++ == 0) {
    for (int p = 0; p < 4; ++p)
      gHooks.firstParams.emplace_back(buf.params[p], buf.params[p] + sizes[p]);
    gHooks.firstTokens.assign(buf.tokens, buf.tokens + n);
    gHooks.firstTargets.assign(buf.targets, buf.targets + n);
    gHooks.firstMask.assign(buf.lossMask, buf.lossMask + n);
  }
  float *embed = buf.params[0], *experts = buf.params[1], *norm = buf.params[2];
  float *bias = buf.params[3];
  float *gEmbed = reinterpret_cast<float *>(buf.arena);
  float *gExperts = gEmbed + kVocab * kDim, *gNorm = gExperts + kExperts * kDim;
  std::fill(gEmbed, gEmbed + kNumGrads, 0.0f);
  float *loads = buf.expertLoads[0];
  std::fill(loads, loads + kExperts, 0.0f);

  float count = 0;
  for (int64_t i = 0; i < n; ++i)
    count += buf.lossMask[i];
  const float denom = std::max(count, 1.0f);
  float total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t x = buf.tokens[i];
    const int64_t e = x % kExperts;
    loads[e] += 1;
    float pred = 0;
    for (int64_t d = 0; d < kDim; ++d)
      pred += embed[x * kDim + d] * norm[d] * experts[e * kDim + d];
    const float diff = pred - float(buf.targets[i]) / 256.0f;
    total += buf.lossMask[i] * diff * diff;
    const float dp = 2 * diff * buf.lossMask[i] / denom;
    for (int64_t d = 0; d < kDim; ++d) {
      gEmbed[x * kDim + d] += dp * norm[d] * experts[e * kDim + d];
      gExperts[e * kDim + d] += dp * embed[x * kDim + d] * norm[d];
      gNorm[d] += dp * embed[x * kDim + d] * experts[e * kDim + d];
    }
  }
  float *grads[] = {gEmbed, gExperts, gNorm};
  if (gHooks.calls == 1)
    for (int p = 0; p < 3; ++p)
      gHooks.firstGrads.emplace_back(grads[p], grads[p] + sizes[p]);
  if (buf.gradSink)
    buf.gradSink(buf.gradSinkContext, grads);

  float sumSq = 0;
  for (int64_t i = 0; i < kNumGrads; ++i)
    sumSq += gEmbed[i] * gEmbed[i];
  *buf.gradNorm = std::sqrt(sumSq);
  const float lr = 0.05f / std::sqrt(float(step));
  *buf.lr = lr;
  const float c1 = 1 - std::pow(0.9f, float(step)), c2 = 1 - std::pow(0.999f, float(step));
  for (int p = 0; p < 3; ++p)
    for (int64_t i = 0; i < sizes[p]; ++i) {
      float &m = buf.expAvg[p][i], &v = buf.expAvgSq[p][i], &w = buf.params[p][i];
      const float g = grads[p][i];
      m = 0.9f * m + 0.1f * g;
      v = 0.999f * v + 0.001f * g * g;
      w -= lr * ((m / c1) / (std::sqrt(v / c2) + 1e-8f) + 0.01f * w);
    }
  for (int64_t e = 0; e < kExperts; ++e) // Aux-loss-free balancing, roughly.
    bias[e] += 0.001f * (float(n) / kExperts - loads[e]);

  *buf.loss = step == gHooks.nanAtStep ? std::nanf("") : total / denom;
  *buf.mainLoss = 0.75f * *buf.loss;
  return true;
}

//===----------------------------------------------------------------------===//
// Harness
//===----------------------------------------------------------------------===//

class TrainMainTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern = "/tmp/kiln-trainmain-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    gHooks = Hooks();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string &name) const { return dir_ + "/" + name; }

  /// Runs trainMain on `args` (program name added), capturing stderr.
  int train(const std::vector<std::string> &args, const ModelDesc &model = toyModel()) {
    gHooks.calls = 0;
    gHooks.firstParams.clear();
    gHooks.firstGrads.clear();
    std::vector<std::string> all = {"train", "--threads", "1"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (std::string &a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::testing::internal::CaptureStderr();
    int rc = trainMain(int(all.size()), argv.data(), model, toyStep);
    stderr_ = ::testing::internal::GetCapturedStderr();
    return rc;
  }

  /// The losses of a jsonl log, by step.
  std::map<uint64_t, double> losses(const std::string &log) {
    std::map<uint64_t, double> out;
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line);
      out[j.at("step").get<uint64_t>()] = j.at("loss").get<double>();
      EXPECT_EQ(j.at("main_loss").get<double>(), double(0.75f * float(j.at("loss").get<double>())));
    }
    return out;
  }

  static std::string readFile(const std::string &file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  /// Every file of `d` and its bytes.
  static std::map<std::string, std::string> snapshot(const std::string &d) {
    std::map<std::string, std::string> out;
    for (const auto &entry : fs::recursive_directory_iterator(d))
      if (entry.is_regular_file())
        out[fs::relative(entry.path(), d).string()] = readFile(entry.path().string());
    return out;
  }

  bool stderrHas(const std::string &needle) const {
    return stderr_.find(needle) != std::string::npos;
  }

  std::string dir_, stderr_;
};

std::vector<float> seededValues(uint64_t seed, const std::string &name, int64_t count, double std) {
  kiln::init::SeededRng rng(seed, name);
  std::vector<float> out;
  for (int64_t i = 0; i < count; ++i)
    out.push_back(float(rng.normal() * std));
  return out;
}

//===----------------------------------------------------------------------===//
// Tests
//===----------------------------------------------------------------------===//

TEST_F(TrainMainTest, InitIsSeededRngPerHfName) {
  ASSERT_EQ(train({"--steps", "1", "--seed", "42"}), 0) << stderr_;
  ASSERT_EQ(gHooks.firstParams.size(), 4u);
  EXPECT_EQ(gHooks.firstParams[0], seededValues(42, kEmbed, kVocab * kDim, 0.5));
  // The stacked tensor is initialised per expert, under the expert's HF name.
  std::vector<float> experts =
      seededValues(42, "model.layers.0.mlp.experts.0.down_proj.weight", kDim, 0.5);
  std::vector<float> second =
      seededValues(42, "model.layers.0.mlp.experts.1.down_proj.weight", kDim, 0.5);
  experts.insert(experts.end(), second.begin(), second.end());
  EXPECT_EQ(gHooks.firstParams[1], experts);
  EXPECT_EQ(gHooks.firstParams[2], std::vector<float>(kDim, 1.0f));
  EXPECT_EQ(gHooks.firstParams[3], std::vector<float>(kExperts, 0.0f));
  std::printf("embed[0..3] = %.9g %.9g %.9g %.9g\n", gHooks.firstParams[0][0],
              gHooks.firstParams[0][1], gHooks.firstParams[0][2], gHooks.firstParams[0][3]);
  // Without --seed the spec's default seed is used.
  ASSERT_EQ(train({"--steps", "1"}), 0) << stderr_;
  EXPECT_EQ(gHooks.firstParams[0], seededValues(1234, kEmbed, kVocab * kDim, 0.5));
}

TEST_F(TrainMainTest, SameSeedSameLosses) {
  ASSERT_EQ(train({"--steps", "12", "--seed", "3", "--log", path("a.jsonl")}), 0) << stderr_;
  ASSERT_EQ(train({"--steps", "12", "--seed", "3", "--log", path("b.jsonl")}), 0) << stderr_;
  ASSERT_EQ(train({"--steps", "12", "--seed", "4", "--log", path("c.jsonl")}), 0) << stderr_;
  auto a = losses(path("a.jsonl")), b = losses(path("b.jsonl")), c = losses(path("c.jsonl"));
  ASSERT_EQ(a.size(), 12u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_LT(a[12], a[1]) << "the toy model should learn something";
  std::printf("loss step 1 %.6f, step 12 %.6f\n", a[1], a[12]);
}

TEST_F(TrainMainTest, ResumeIsBitExact) {
  const std::string full = path("full"), split = path("split");
  ASSERT_EQ(train({"--steps", "20", "--checkpoint-dir", full, "--checkpoint-every", "5", "--log",
                   path("full.jsonl")}),
            0)
      << stderr_;
  EXPECT_TRUE(stderrHas("checkpoint " + full + "/step-00000020")) << stderr_;
  ASSERT_EQ(train({"--steps", "10", "--checkpoint-dir", split, "--checkpoint-every", "5", "--log",
                   path("split.jsonl")}),
            0)
      << stderr_;
  ASSERT_EQ(train({"--steps", "20", "--checkpoint-dir", split, "--checkpoint-every", "5",
                   "--resume", "--log", path("split.jsonl")}),
            0)
      << stderr_;
  EXPECT_TRUE(stderrHas("trained steps 11-20")) << stderr_;
  // Every checkpoint, the final one included, is byte-identical.
  auto want = snapshot(full), got = snapshot(split);
  EXPECT_EQ(want.size(), 13u); // 4 checkpoints of 3 files (model, optimizer, index) + latest
  for (const auto &[name, bytes] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got[name] == bytes) << name << " differs";
  }
  EXPECT_EQ(got.size(), want.size());
  // The log, appended by the resumed run, has the same losses for all steps.
  EXPECT_EQ(losses(path("split.jsonl")), losses(path("full.jsonl")));
  // The checkpoint stores experts per HF name and the Adam state.
  std::string error;
  auto model = kiln::safetensors::Reader::open(
      full + "/step-00000020/model-00001-of-00001.safetensors", error);
  ASSERT_TRUE(model) << error;
  auto optimizer = kiln::safetensors::Reader::open(
      full + "/step-00000020/optimizer-00001-of-00001.safetensors", error);
  ASSERT_TRUE(optimizer) << error;
  for (const char *name : {"model.layers.0.mlp.experts.1.down_proj.weight", kBias})
    EXPECT_NE(model->find(name), nullptr) << name;
  for (const char *name : {"optimizer.exp_avg.model.norm.weight",
                           "optimizer.exp_avg_sq.model.layers.0.mlp.experts.0.down_proj.weight"})
    EXPECT_NE(optimizer->find(name), nullptr) << name;
  EXPECT_EQ(optimizer->find(std::string("optimizer.exp_avg.") + kBias), nullptr);
  EXPECT_EQ(model->tensors().size(), 5u);
  EXPECT_EQ(optimizer->tensors().size(), 2 * 4u);
  // Resuming a finished run does nothing.
  ASSERT_EQ(train({"--steps", "20", "--checkpoint-dir", full, "--resume"}), 0) << stderr_;
  EXPECT_TRUE(stderrHas("nothing to do")) << stderr_;
  EXPECT_EQ(gHooks.calls, 0);
}

TEST_F(TrainMainTest, DataFileFeedsShiftedTargets) {
  std::vector<uint16_t> ramp;
  for (uint16_t i = 0; i < 200; ++i)
    ramp.push_back(i);
  std::string error;
  ASSERT_TRUE(kiln::data::writeLlmcShard(path("ramp.bin"), ramp, error)) << error;
  ASSERT_EQ(train({"--steps", "2", "--data", path("ramp.bin")}), 0) << stderr_;
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t t = 0; t < kSeq; ++t) {
      EXPECT_EQ(gHooks.firstTokens[b * kSeq + t], b * kSeq + t);
      EXPECT_EQ(gHooks.firstTargets[b * kSeq + t], b * kSeq + t + 1);
      EXPECT_EQ(gHooks.firstMask[b * kSeq + t], 1.0f);
    }
}

TEST_F(TrainMainTest, BadDataFilesAreErrorsNamingTheFile) {
  std::vector<uint16_t> tokens(100, 7);
  std::string error;
  ASSERT_TRUE(kiln::data::writeLlmcShard(path("good.bin"), tokens, error)) << error;
  std::string bytes = readFile(path("good.bin"));
  std::ofstream(path("truncated.bin"), std::ios::binary) << bytes.substr(0, bytes.size() - 10);
  std::string corrupt = bytes;
  corrupt[0] ^= 0x55; // the magic
  std::ofstream(path("corrupt.bin"), std::ios::binary) << corrupt;
  for (const char *name : {"missing.bin", "truncated.bin", "corrupt.bin"}) {
    EXPECT_EQ(train({"--steps", "2", "--data", path(name)}), 1) << name;
    EXPECT_EQ(stderr_.rfind("error: " + path(name), 0), 0u) << stderr_;
    EXPECT_EQ(gHooks.calls, 0) << name;
  }
  // Token ids must fit the model's vocabulary.
  ModelDesc small = toyModel();
  small.vocabSize = 5;
  EXPECT_EQ(train({"--steps", "2", "--data", path("good.bin")}, small), 1);
  EXPECT_TRUE(stderrHas("outside the vocabulary of 5")) << stderr_;
}

TEST_F(TrainMainTest, ResumeOfAnotherSpecLeavesCheckpointUntouched) {
  const std::string ck = path("ck");
  ASSERT_EQ(train({"--steps", "3", "--checkpoint-dir", ck}), 0) << stderr_;
  const auto before = snapshot(ck);

  EXPECT_EQ(train({"--steps", "6", "--checkpoint-dir", ck, "--resume"}, toyModel("other:2")), 1);
  EXPECT_TRUE(stderrHas("another spec")) << stderr_;
  EXPECT_TRUE(stderrHas("other:2")) << stderr_;
  EXPECT_EQ(gHooks.calls, 0);
  EXPECT_TRUE(snapshot(ck) == before);

  ParamDesc wider[4] = {kParams[0], kParams[1], kParams[2], kParams[3]};
  wider[0].shape[1] = kDim + 1;
  EXPECT_EQ(train({"--steps", "6", "--checkpoint-dir", ck, "--resume"}, toyModel("toy:1", wider)),
            1);
  EXPECT_TRUE(stderrHas(kEmbed)) << stderr_;
  EXPECT_TRUE(stderrHas("[256, 5]")) << stderr_;
  EXPECT_EQ(gHooks.calls, 0);
  EXPECT_TRUE(snapshot(ck) == before);
}

TEST_F(TrainMainTest, ResumeWithoutCheckpointIsAnError) {
  EXPECT_EQ(train({"--steps", "3", "--checkpoint-dir", path("empty"), "--resume"}), 1);
  EXPECT_TRUE(stderrHas(path("empty") + "/latest: no checkpoint to resume from")) << stderr_;
  EXPECT_FALSE(fs::exists(path("empty")));
}

TEST_F(TrainMainTest, UnwritableCheckpointDirFailsBeforeTraining) {
  std::ofstream(path("file")) << "x";
  const std::string bad = path("file") + "/ck";
  EXPECT_EQ(train({"--steps", "3", "--checkpoint-dir", bad}), 1);
  EXPECT_TRUE(
      stderrHas("error: " + bad + ": cannot create the checkpoint directory: Not a directory"))
      << stderr_;
  EXPECT_EQ(gHooks.calls, 0);
  // Nested missing directories are created.
  EXPECT_EQ(train({"--steps", "1", "--checkpoint-dir", path("a/b/c")}), 0) << stderr_;
  EXPECT_TRUE(fs::exists(path("a/b/c/step-00000001/model.safetensors.index.json")));
  EXPECT_EQ(snapshot(path("a/b/c")).size(), 4u) << "the write probe was left behind";
}

TEST_F(TrainMainTest, SaveGradsWritesFirstStepGradientsPerHfName) {
  ASSERT_EQ(train({"--steps", "3", "--save-grads", path("g.safetensors")}), 0) << stderr_;
  std::string error;
  auto reader = kiln::safetensors::Reader::open(path("g.safetensors"), error);
  ASSERT_TRUE(reader) << error;
  EXPECT_EQ(reader->tensors().size(), 4u); // no gradient for the bias
  EXPECT_EQ(reader->find(kBias), nullptr);
  auto expect = [&](const std::string &name, const std::vector<int64_t> &shape,
                    const std::vector<float> &values) {
    std::vector<double> got;
    ASSERT_TRUE(reader->readAsDouble(name, got, error, &shape)) << error;
    EXPECT_EQ(std::vector<float>(got.begin(), got.end()), values) << name;
  };
  const auto &g = gHooks.firstGrads;
  ASSERT_EQ(g.size(), 3u);
  expect(kEmbed, {kVocab, kDim}, g[0]);
  expect("model.layers.0.mlp.experts.0.down_proj.weight", {kDim},
         std::vector<float>(g[1].begin(), g[1].begin() + kDim));
  expect("model.layers.0.mlp.experts.1.down_proj.weight", {kDim},
         std::vector<float>(g[1].begin() + kDim, g[1].end()));
  expect(kNorm, {kDim}, g[2]);
  // A path that cannot be written fails before the first step.
  EXPECT_EQ(train({"--steps", "3", "--save-grads", path("missing/g.safetensors")}), 1);
  EXPECT_TRUE(stderrHas("error: --save-grads " + path("missing/g.safetensors") +
                        ": cannot write to the directory '" + path("missing") + "'"))
      << stderr_;
  EXPECT_EQ(gHooks.calls, 0);
}

TEST_F(TrainMainTest, SftMasksAllButAnswerTargets) {
  ModelDesc sft = toyModel();
  sft.sft = true;
  ASSERT_EQ(train({"--steps", "2", "--seed", "7"}, sft), 0) << stderr_;
  kiln::data::CorpusTokens corpus;
  std::string error;
  ASSERT_TRUE(kiln::data::generateCorpus(7, {}, kBatch * kSeq + 1, corpus, error)) << error;
  int answers = 0;
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t t = 0; t < kSeq; ++t) {
      const int64_t i = b * kSeq + t;
      EXPECT_EQ(gHooks.firstTokens[i], corpus.tokens[i]);
      EXPECT_EQ(gHooks.firstTargets[i], corpus.tokens[i + 1]);
      EXPECT_EQ(gHooks.firstMask[i], float(corpus.answerMask[i + 1])) << "position " << i;
      answers += int(gHooks.firstMask[i]);
    }
  EXPECT_GT(answers, 0);
  EXPECT_LT(answers, kBatch * kSeq);
  // A token file for SFT needs its answer mask beside it (FILE.mask), of
  // one 0/1 byte per token.
  std::vector<uint16_t> tokens(100, 7);
  ASSERT_TRUE(kiln::data::writeLlmcShard(path("d.bin"), tokens, error)) << error;
  EXPECT_EQ(train({"--steps", "2", "--data", path("d.bin")}, sft), 1);
  EXPECT_TRUE(stderrHas("needs the answer mask in")) << stderr_;
  auto writeBytes = [](const std::string &file, const std::string &bytes) {
    std::ofstream(file, std::ios::binary) << bytes;
  };
  writeBytes(path("d.bin.mask"), std::string(99, '\1'));
  EXPECT_EQ(train({"--steps", "2", "--data", path("d.bin")}, sft), 1);
  EXPECT_TRUE(stderrHas("expected 100 bytes of 0 or 1")) << stderr_;
  std::string mask(100, '\0');
  for (size_t i = 1; i < 100; i += 2)
    mask[i] = 1;
  writeBytes(path("d.bin.mask"), mask);
  EXPECT_EQ(train({"--steps", "2", "--data", path("d.bin")}, sft), 0) << stderr_;
  // The step saw the file's mask: odd targets are masked in.
  for (int64_t i = 0; i < kSeq; ++i)
    EXPECT_EQ(gHooks.firstMask[i], (i + 1) % 2 == 1 ? 1.0f : 0.0f) << "position " << i;
}

TEST_F(TrainMainTest, NonFiniteLossStopsWithoutCheckpoint) {
  const std::string ck = path("ck");
  gHooks.nanAtStep = 4;
  EXPECT_EQ(train({"--steps", "10", "--checkpoint-dir", ck, "--checkpoint-every", "2", "--log",
                   path("m.jsonl")}),
            1);
  EXPECT_TRUE(stderrHas("error: step 4: the loss is nan")) << stderr_;
  EXPECT_TRUE(stderrHas(ck + "/step-00000002")) << stderr_;
  EXPECT_EQ(readFile(ck + "/latest"), "step-00000002\n");
  EXPECT_FALSE(fs::exists(ck + "/step-00000004"));
  EXPECT_EQ(losses(path("m.jsonl")).size(), 3u);
}

TEST_F(TrainMainTest, SigtermCheckpointsTheStepAndResumesExactly) {
  const std::string full = path("full"), cut = path("cut");
  ASSERT_EQ(train({"--steps", "20", "--checkpoint-dir", full, "--checkpoint-every", "100", "--log",
                   path("full.jsonl")}),
            0)
      << stderr_;
  gHooks = Hooks();
  gHooks.signalAtStep = 7;
  EXPECT_EQ(train({"--steps", "20", "--checkpoint-dir", cut, "--checkpoint-every", "100", "--log",
                   path("cut.jsonl")}),
            128 + SIGTERM);
  EXPECT_TRUE(stderrHas("stopped by SIGTERM after step 7; checkpoint " + cut +
                        "/step-00000007, continue with --resume"))
      << stderr_;
  EXPECT_EQ(readFile(cut + "/latest"), "step-00000007\n");
  EXPECT_EQ(losses(path("cut.jsonl")).size(), 7u);
  // The handlers are gone after the run: this process is still alive to resume.
  gHooks = Hooks();
  ASSERT_EQ(train({"--steps", "20", "--checkpoint-dir", cut, "--checkpoint-every", "100",
                   "--resume", "--log", path("cut.jsonl")}),
            0)
      << stderr_;
  auto want = snapshot(full + "/step-00000020"), got = snapshot(cut + "/step-00000020");
  EXPECT_EQ(want.size(), 3u);
  EXPECT_TRUE(got == want) << "the checkpoints of step 20 differ";
  EXPECT_EQ(losses(path("cut.jsonl")), losses(path("full.jsonl")));
}

TEST_F(TrainMainTest, SigintWithoutCheckpointDirSavesNothing) {
  gHooks.signalAtStep = 3;
  gHooks.signal = SIGINT;
  EXPECT_EQ(train({"--steps", "10"}), 128 + SIGINT);
  EXPECT_TRUE(stderrHas("stopped by SIGINT after step 3; no --checkpoint-dir, so nothing was saved"))
      << stderr_;
  EXPECT_EQ(gHooks.calls, 3);
}

TEST_F(TrainMainTest, StepFailureIsAnError) {
  gHooks.failAtStep = 2;
  EXPECT_EQ(train({"--steps", "5"}), 1);
  EXPECT_TRUE(stderrHas("error: step 2: toy failure")) << stderr_;
}

TEST_F(TrainMainTest, UsageErrorsAndHelp) {
  EXPECT_EQ(train({"--step", "3"}), 2);
  EXPECT_TRUE(stderrHas("error: unknown flag '--step'; did you mean '--steps'?")) << stderr_;
  EXPECT_EQ(train({"--resume"}), 2);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(train({"--help"}), 0);
  std::string help = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("--save-grads FILE"), std::string::npos) << help;
  EXPECT_NE(help.find("default 5, from the spec"), std::string::npos) << help;
  EXPECT_EQ(gHooks.calls, 0);
}

TEST_F(TrainMainTest, PlainProgressLinesWhenNotATerminal) {
  ASSERT_EQ(train({"--steps", "40"}), 0) << stderr_;
  int lines = 0;
  for (char c : stderr_)
    lines += c == '\n';
  EXPECT_EQ(lines, 1 + 20 + 1) << stderr_; // what runs, every 2nd step, the summary
  EXPECT_TRUE(stderrHas("toy: 1.0k parameters in 5 tensors, batch 2 x 8 tokens, arena 0.0 MB, "))
      << stderr_;
  EXPECT_TRUE(stderrHas("; data: synthetic arithmetic corpus (seed 1234); starting at step 0\n"))
      << stderr_;
  EXPECT_TRUE(stderrHas("step 40/40 | loss ")) << stderr_;
  EXPECT_TRUE(stderrHas("trained steps 1-40 (40) | final loss ")) << stderr_;
  EXPECT_EQ(stderr_.find('\r'), std::string::npos);
}

} // namespace
