//===- CheckpointTest.cpp - checkpoints are atomic, strict and exact ------===//

#include "runtime/checkpoint/Checkpoint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace kiln::checkpoint;

namespace {

std::string freshDir(const std::string &name) {
  std::string dir = ::testing::TempDir() + "kiln-ckpt-" + name + "-" + std::to_string(getpid());
  std::system(("rm -rf '" + dir + "'").c_str());
  return dir;
}

Checkpoint sample(uint64_t step, int64_t rows = 3) {
  Checkpoint c;
  c.step = step;
  c.rngState = 0x9E3779B97F4A7C15ull + step;
  c.dataPosition = 1000 * step;
  c.specFingerprint = "r1-tiny:abc";
  Tensor w{"model.layers.0.mlp.experts.3.up_proj.weight", {rows, 2}, {}};
  for (int64_t i = 0; i < rows * 2; ++i)
    w.values.push_back(float(step) + 0.1f * float(i));
  c.tensors = {w, {"optimizer.exp_avg.model.norm.weight", {2}, {0.5f, -0.25f}}};
  return c;
}

std::vector<Tensor> layoutOf(const Checkpoint &c) {
  std::vector<Tensor> layout;
  for (const Tensor &t : c.tensors)
    layout.push_back({t.name, t.shape, {}});
  return layout;
}

TEST(Checkpoint, RoundTripIsExact) {
  std::string dir = freshDir("roundtrip"), error;
  ASSERT_TRUE(save(dir, sample(7), error)) << error;
  ASSERT_TRUE(save(dir, sample(8), error)) << error;
  Checkpoint got;
  ASSERT_TRUE(loadLatest(dir, layoutOf(sample(8)), "r1-tiny:abc", got, error)) << error;
  Checkpoint want = sample(8);
  EXPECT_EQ(got.step, 8u);
  EXPECT_EQ(got.rngState, want.rngState);
  EXPECT_EQ(got.dataPosition, want.dataPosition);
  ASSERT_EQ(got.tensors.size(), 2u);
  EXPECT_EQ(got.tensors[0].values, want.tensors[0].values); // bit-exact f32
  EXPECT_EQ(got.tensors[1].values, want.tensors[1].values);
}

TEST(Checkpoint, RejectsAnotherSpec) {
  std::string dir = freshDir("spec"), error;
  ASSERT_TRUE(save(dir, sample(1), error)) << error;
  Checkpoint got;
  EXPECT_FALSE(loadLatest(dir, layoutOf(sample(1)), "dense-tiny:def", got, error));
  EXPECT_NE(error.find("another spec"), std::string::npos) << error;
}

TEST(Checkpoint, RejectsWrongShapeMissingAndExtraTensors) {
  std::string dir = freshDir("layout"), error;
  ASSERT_TRUE(save(dir, sample(1), error)) << error;
  Checkpoint got;
  std::vector<Tensor> wrongShape = layoutOf(sample(1, 4));
  EXPECT_FALSE(loadLatest(dir, wrongShape, "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("model.layers.0.mlp.experts.3.up_proj.weight"), std::string::npos) << error;
  std::vector<Tensor> missing = layoutOf(sample(1));
  missing.push_back({"lm_head.weight", {2, 2}, {}});
  EXPECT_FALSE(loadLatest(dir, missing, "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("lm_head.weight"), std::string::npos) << error;
  std::vector<Tensor> fewer = layoutOf(sample(1));
  fewer.pop_back();
  EXPECT_FALSE(loadLatest(dir, fewer, "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("not part of this model"), std::string::npos) << error;
}

TEST(Checkpoint, RejectsTruncatedFileAndBadLatest) {
  std::string dir = freshDir("truncated"), error;
  ASSERT_TRUE(save(dir, sample(3), error)) << error;
  std::string file = dir + "/step-00000003.safetensors";
  ASSERT_EQ(::truncate(file.c_str(), 40), 0);
  Checkpoint got;
  EXPECT_FALSE(loadLatest(dir, layoutOf(sample(3)), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("step-00000003.safetensors"), std::string::npos) << error;
  std::ofstream(dir + "/latest") << "../../etc/passwd\n";
  EXPECT_FALSE(loadLatest(dir, layoutOf(sample(3)), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("expected the name of a step-NNNNNNNN.safetensors file"),
            std::string::npos) << error;
  EXPECT_FALSE(loadLatest(freshDir("empty"), layoutOf(sample(3)), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("latest"), std::string::npos) << error;
}

TEST(Checkpoint, UnwritableDirectoryLeavesNothingBehind) {
  std::string base = freshDir("unwritable"), error;
  ASSERT_TRUE(save(base, sample(1), error)) << error;
  // A directory "inside" a regular file cannot be created, even as root.
  std::string bad = base + "/step-00000001.safetensors/sub";
  EXPECT_FALSE(save(bad, sample(2), error));
  EXPECT_NE(error.find("cannot create the checkpoint directory"), std::string::npos) << error;
  Checkpoint got;
  ASSERT_TRUE(loadLatest(base, layoutOf(sample(1)), "r1-tiny:abc", got, error)) << error;
  EXPECT_EQ(got.step, 1u);
}

TEST(Checkpoint, SigkillDuringWriteKeepsTheLastGoodOne) {
  std::string dir = freshDir("sigkill"), error;
  ASSERT_TRUE(save(dir, sample(1), error)) << error;
  // The child writes large checkpoints in a loop; it is killed mid-write.
  const int64_t rows = 2'000'000; // 16 MB of f32 per checkpoint
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string e;
    for (uint64_t step = 2;; ++step)
      save(dir, sample(step, rows), e);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  // `latest` names a complete checkpoint: step 1, or one the child finished.
  std::ifstream latest(dir + "/latest");
  std::string name;
  latest >> name;
  uint64_t step = std::stoull(name.substr(5, 8));
  Checkpoint got;
  std::vector<Tensor> layout = layoutOf(step == 1 ? sample(1) : sample(step, rows));
  ASSERT_TRUE(loadLatest(dir, layout, "r1-tiny:abc", got, error)) << error;
  EXPECT_EQ(got.step, step);
  EXPECT_EQ(got.tensors[0].values, (step == 1 ? sample(1) : sample(step, rows)).tensors[0].values);
}

} // namespace
