//===- TrainExecutableSparsityTest.cpp - `train` with 2:4 sparsity --------===//
//
// r1-tiny built with train.sparsity 2:4 (magnitude pruning from step 3, the
// mask recomputed every 4 steps; kiln-sparsity-2-4): its checkpoints stay
// plain HF safetensors in which every targeted weight has at most 2
// nonzeros in each group of 4 along its input dimension, zero wherever its
// mask (saved with the optimizer state) is, with zero moments there; the
// steps before start_step train bit for bit as r1-tiny; a run resumed
// from a checkpoint (masks included) is bit-exact; and 20 steps follow the
// independent PyTorch implementation of the same masking (training.py's
// Sparsity24: test/Reference/goldens/r1-tiny-sparse.trajectory.json) within
// 1e-4, as the dense r1-tiny follows its own.
//
//===----------------------------------------------------------------------===//

#include "test/unit/TrainExecutableFixture.h"

#include "runtime/kernels/Sparsity24.h"

#include <cstring>

namespace kiln::test {
namespace {

class TrainExecutableSparsity : public TrainExecutable {
protected:
  static void SetUpTestSuite() {
    buildModels(/*precisions=*/false, /*checkpointing=*/false, /*sparsity=*/true);
  }
};

/// Every tensor of a checkpoint's safetensors files, by name.
std::map<std::string, std::vector<double>> readCheckpoint(const std::string &dir) {
  std::map<std::string, std::vector<double>> tensors;
  std::string error;
  for (const auto &entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors")
      continue;
    auto reader = kiln::safetensors::Reader::open(entry.path().string(), error);
    EXPECT_TRUE(reader) << error;
    if (!reader)
      continue;
    for (const auto &tensor : reader->tensors())
      EXPECT_TRUE(reader->readAsDouble(tensor.name, tensors[tensor.name], error)) << error;
  }
  return tensors;
}

TEST_F(TrainExecutableSparsity, TrajectoryMatchesPyTorch) { checkTrajectory("r1-tiny-sparse"); }

TEST_F(TrainExecutableSparsity, CheckpointsStayTwoOfFour) {
  const std::string dir = freshDir("sparse"), dense = freshDir("dense");
  trainOk("r1-tiny-sparse", {"--data", corpus, "--steps", "12", "--checkpoint-dir", dir,
                             "--checkpoint-every", "3", "--log", dir + "/log.jsonl", "--threads",
                             kThreads});
  trainOk("r1-tiny", {"--data", corpus, "--steps", "3", "--log", dense + "/log.jsonl",
                      "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> sparse = readLog(dir + "/log.jsonl"),
                             plain = readLog(dense + "/log.jsonl");
  ASSERT_EQ(sparse.size(), 12u);
  for (size_t s = 0; s < 2; ++s)
    EXPECT_EQ(compareLines(sparse[s], plain[s]), "") << "step " << s + 1 << " is before start";
  EXPECT_NE(sparse[2].at("loss"), plain[2].at("loss")) << "step 3 trains 2:4 sparse";

  const std::string maskPrefix = "optimizer.sparsity_mask.";
  for (const char *step : {"/step-00000003", "/step-00000006", "/step-00000009", "/step-00000012"}) {
    SCOPED_TRACE(step);
    std::map<std::string, std::vector<double>> t = readCheckpoint(dir + step);
    int masks = 0;
    for (const auto &[name, mask] : t) {
      if (name.rfind(maskPrefix, 0) != 0)
        continue;
      ++masks;
      const std::string weight = name.substr(maskPrefix.size());
      ASSERT_TRUE(t.count(weight) && t.count("optimizer.exp_avg." + weight) &&
                  t.count("optimizer.exp_avg_sq." + weight))
          << weight;
      const std::vector<double> &w = t[weight], &m = t["optimizer.exp_avg." + weight],
                                &v = t["optimizer.exp_avg_sq." + weight];
      ASSERT_EQ(w.size(), mask.size());
      for (size_t g = 0; g < mask.size() / 4; ++g) {
        int kept = 0, nonzero = 0;
        for (size_t j = 4 * g; j < 4 * g + 4; ++j) {
          kept += mask[j] == 1.0;
          nonzero += w[j] != 0.0;
          if (mask[j] == 0.0) {
            ASSERT_EQ(w[j], 0.0) << weight << "[" << j << "]";
            ASSERT_EQ(m[j], 0.0) << weight << "[" << j << "] exp_avg";
            ASSERT_EQ(v[j], 0.0) << weight << "[" << j << "] exp_avg_sq";
          }
        }
        ASSERT_EQ(kept, 2) << weight << " group " << g;
        ASSERT_LE(nonzero, 2) << weight << " group " << g;
      }
    }
    // Every matrix but the embedding and lm_head, experts one by one.
    EXPECT_EQ(masks, 108);
    EXPECT_FALSE(t.count(maskPrefix + "model.embed_tokens.weight"));
  }
  std::printf("r1-tiny loss at step 12: 2:4 from step 3 %s\n", sparse[11].at("loss").c_str());

  // kilnc --compress-2-4: every 2:4 weight as values + mma.sp metadata, which
  // decompress to the checkpoint's dense tensor.
  const std::string last = dir + "/step-00000012";
  std::string what;
  RunResult r = waitFor(spawn({binDir + "/kilnc", root + "/models/r1-tiny.json",
                               "--compress-2-4", last},
                              tmp + "/compress.out", tmp + "/compress.err"),
                        tmp + "/compress.out", tmp + "/compress.err");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::string error;
  auto packed = kiln::safetensors::Reader::open(last + "/sparse-2of4.safetensors", error);
  ASSERT_TRUE(packed) << error;
  std::map<std::string, std::vector<double>> t = readCheckpoint(last);
  int weights = 0;
  for (const auto &[name, dense] : t) {
    if (name.rfind(maskPrefix, 0) != 0)
      continue;
    const std::string weight = name.substr(maskPrefix.size());
    const kiln::safetensors::TensorInfo *values = packed->find(weight + ".values"),
                                        *metadata = packed->find(weight + ".metadata");
    ASSERT_TRUE(values && metadata) << weight;
    const int64_t rows = values->shape[0], cols = 2 * values->shape[1];
    std::vector<double> v;
    ASSERT_TRUE(packed->readAsDouble(weight + ".values", v, error)) << error;
    std::vector<float> vf(v.begin(), v.end()), back(size_t(rows * cols));
    std::vector<uint32_t> words(size_t(metadata->shape[0] * metadata->shape[1]));
    std::memcpy(words.data(), packed->data(*metadata), words.size() * sizeof(uint32_t));
    ASSERT_TRUE(kernels::decompress24(vf.data(), words.data(), rows, cols, back.data(), error))
        << weight << ": " << error;
    ASSERT_EQ(std::vector<double>(back.begin(), back.end()), t[weight]) << weight;
    ++weights;
  }
  EXPECT_EQ(weights, 108);
}

TEST_F(TrainExecutableSparsity, ResumeIsBitExactWithMasks) {
  checkResumeIsBitExact("r1-tiny-sparse");
}

} // namespace
} // namespace kiln::test
