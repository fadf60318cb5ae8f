//===- CheckpointTest.cpp - checkpoints are atomic, strict and exact ------===//

#include "runtime/checkpoint/Checkpoint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
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

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
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
  Checkpoint got;
  for (const char *name :
       {"model-00001-of-00001.safetensors", "optimizer-00001-of-00001.safetensors"}) {
    std::string file = dir + "/step-00000003/" + name;
    const std::string bytes = readFile(file);
    ASSERT_EQ(::truncate(file.c_str(), 40), 0);
    EXPECT_FALSE(loadLatest(dir, layoutOf(sample(3)), "r1-tiny:abc", got, error));
    EXPECT_NE(error.find(file), std::string::npos) << error;
    writeFile(file, bytes);
  }
  ASSERT_TRUE(loadLatest(dir, layoutOf(sample(3)), "r1-tiny:abc", got, error)) << error;
  std::ofstream(dir + "/latest") << "../../etc/passwd\n";
  EXPECT_FALSE(loadLatest(dir, layoutOf(sample(3)), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("expected the name of a step-NNNNNNNN checkpoint directory"),
            std::string::npos)
      << error;
  // Found by fuzz_checkpoint: a second line in `latest` split the message.
  std::ofstream(dir + "/latest", std::ios::trunc) << "step-00000003\nstep-00000004\n";
  EXPECT_FALSE(loadLatest(dir, layoutOf(sample(3)), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("got 'step-00000003\\x0astep-00000004'"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_FALSE(loadLatest(freshDir("empty"), layoutOf(sample(3)), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("latest"), std::string::npos) << error;
}

TEST(Checkpoint, UnwritableDirectoryLeavesNothingBehind) {
  std::string base = freshDir("unwritable"), error;
  ASSERT_TRUE(save(base, sample(1), error)) << error;
  // A directory "inside" a regular file cannot be created, even as root.
  std::string bad = base + "/step-00000001/model-00001-of-00001.safetensors/sub";
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

//===----------------------------------------------------------------------===//
// Sharded checkpoints: ranks write in parallel, one commits, any layout loads
//===----------------------------------------------------------------------===//

/// A model of three parameters and the moments of two of them, as ranks of
/// a data-parallel run hold them.
struct ShardedSample {
  std::vector<Tensor> model = {{"model.embed_tokens.weight", {4, 3}, {}},
                               {"model.norm.weight", {5}, {}},
                               {"lm_head.weight", {2, 2}, {}}};
  std::vector<Tensor> moments = {{"optimizer.exp_avg.model.embed_tokens.weight", {4, 3}, {}},
                                 {"optimizer.exp_avg.model.norm.weight", {5}, {}}};
  ShardedSample() {
    float v = 0.5f;
    for (Tensor *t : {&model[0], &model[1], &model[2], &moments[0], &moments[1]}) {
      uint64_t n = 1;
      for (int64_t d : t->shape)
        n *= uint64_t(d);
      for (uint64_t i = 0; i < n; ++i)
        t->values.push_back(v += 0.25f);
    }
  }
  std::vector<Tensor> layout() const {
    std::vector<Tensor> out;
    for (const std::vector<Tensor> *part : {&model, &moments})
      for (const Tensor &t : *part)
        out.push_back({t.name, t.shape, {}});
    return out;
  }
};

/// Rank `rank` of `ranks`: its model file's tensors and elements
/// [rank * c, (rank + 1) * c) of each moment, as the driver cuts them.
RankShard shardOf(const ShardedSample &sample, int rank, int ranks, Manifest &manifest) {
  RankShard shard;
  shard.rank = rank;
  shard.ranks = ranks;
  std::vector<uint64_t> bytes;
  for (const Tensor &t : sample.model)
    bytes.push_back(t.values.size() * 4);
  std::vector<int> file = assignModelFiles(bytes, ranks);
  shard.modelFiles = file.back() + 1;
  manifest = Manifest{};
  manifest.ranks = ranks;
  manifest.modelFiles = shard.modelFiles;
  for (size_t i = 0; i < sample.model.size(); ++i) {
    const Tensor &t = sample.model[i];
    manifest.weightMap.push_back({t.name, file[i], bytes[i]});
    if (file[i] == rank)
      shard.model.push_back({t.name, &t.shape, 0, t.values.size(), t.values.data()});
  }
  for (const Tensor &t : sample.moments) {
    const uint64_t n = t.values.size(), chunk = (n + ranks - 1) / ranks;
    const uint64_t begin = std::min(n, rank * chunk), end = std::min(n, begin + chunk);
    if (begin < end)
      shard.optimizer.push_back({t.name, &t.shape, begin, end - begin, t.values.data() + begin});
  }
  return shard;
}

/// Phase one on every rank, then the commit.
bool saveSharded(const std::string &dir, const ShardedSample &sample, uint64_t step, int ranks,
                 std::string &error) {
  const StepInfo info{step, 42, 7 * step, "r1-tiny:abc"};
  Manifest manifest;
  std::vector<ShardBytes> written(ranks);
  for (int r = 0; r < ranks; ++r)
    if (!writeShard(dir, info, shardOf(sample, r, ranks, manifest), written[r], error))
      return false;
  manifest.written = written;
  return commit(dir, info, manifest, error);
}

TEST(ShardedCheckpoint, AnyNumberOfRanksLoadsTheSameTensors) {
  const ShardedSample sample;
  for (int ranks : {1, 2, 3, 5}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    std::string dir = freshDir("sharded-" + std::to_string(ranks)), error;
    ASSERT_TRUE(saveSharded(dir, sample, 4, ranks, error)) << error;
    EXPECT_EQ(readFile(dir + "/latest"), "step-00000004\n");
    Checkpoint got;
    ASSERT_TRUE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error)) << error;
    EXPECT_EQ(got.step, 4u);
    EXPECT_EQ(got.rngState, 42u);
    EXPECT_EQ(got.dataPosition, 28u);
    ASSERT_EQ(got.tensors.size(), 5u);
    for (size_t i = 0; i < 5; ++i)
      EXPECT_EQ(got.tensors[i].values, (i < 3 ? sample.model[i] : sample.moments[i - 3]).values)
          << got.tensors[i].name;
    // Hugging Face's index: every parameter mapped, total_size its bytes.
    const std::string index = readFile(dir + "/step-00000004/model.safetensors.index.json");
    EXPECT_NE(index.find("\"total_size\": 84"), std::string::npos) << index;
    EXPECT_NE(index.find("\"lm_head.weight\": \"model-0000" + std::to_string(std::min(ranks, 3)) +
                         "-of-0000" + std::to_string(std::min(ranks, 3)) + ".safetensors\""),
              std::string::npos)
        << index;
    EXPECT_EQ(index.find("optimizer.exp_avg\""), std::string::npos) << index;
  }
}

// Dynamic loss scaling's state (fp16) rides in every optimizer file: it
// comes back exactly, is absent for programs without it, and ranks that
// disagree on it (files of two runs) are refused.
TEST(ShardedCheckpoint, LossScalerStateRoundTripsAndRanksMustAgree) {
  const ShardedSample sample;
  const StepInfo plain{4, 42, 28, "r1-tiny:abc"};
  StepInfo scaled = plain;
  scaled.scaler = {true, 0x1p-3f * 3, 17, 1234}; // 0.375: not a power of two, still exact
  for (const StepInfo *info : {&plain, static_cast<const StepInfo *>(&scaled)}) {
    std::string dir = freshDir(info->scaler.present ? "scaler" : "no-scaler"), error;
    Manifest manifest;
    std::vector<ShardBytes> written(2);
    for (int r = 0; r < 2; ++r)
      ASSERT_TRUE(writeShard(dir, *info, shardOf(sample, r, 2, manifest), written[r], error))
          << error;
    manifest.written = written;
    ASSERT_TRUE(commit(dir, *info, manifest, error)) << error;
    Checkpoint got;
    ASSERT_TRUE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error)) << error;
    EXPECT_EQ(got.scaler.present, info->scaler.present);
    EXPECT_EQ(got.scaler.scale, info->scaler.scale);
    EXPECT_EQ(got.scaler.growthTracker, info->scaler.growthTracker);
    EXPECT_EQ(got.scaler.optimizerUpdates, info->scaler.optimizerUpdates);
  }
  // Rank 1's file from a run whose scale had moved on.
  std::string dir = freshDir("scaler-disagree"), error;
  StepInfo other = scaled;
  other.scaler.scale = 0.75f;
  Manifest manifest;
  std::vector<ShardBytes> written(2);
  ASSERT_TRUE(writeShard(dir, scaled, shardOf(sample, 0, 2, manifest), written[0], error));
  ASSERT_TRUE(writeShard(dir, other, shardOf(sample, 1, 2, manifest), written[1], error));
  manifest.written = written;
  ASSERT_TRUE(commit(dir, scaled, manifest, error)) << error;
  Checkpoint got;
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("optimizer-00002-of-00002.safetensors: its loss scaler state differs from "
                       "rank 0's"),
            std::string::npos)
      << error;
}

// Rank state (gradient compression's residuals) belongs to one rank: each
// rank gets its own back, from the layout that wrote it; a rank_state
// tensor the file does not list is refused.
TEST(ShardedCheckpoint, RankStateComesBackToItsRank) {
  const ShardedSample sample;
  const std::vector<int64_t> shape = {2, 2};
  std::vector<std::vector<float>> residuals = {{1, 2, 3, 4}, {-1, -2, -3, -4}};
  std::string dir = freshDir("rank-state"), error;
  const StepInfo info{3, 42, 21, "r1-tiny:abc"};
  Manifest manifest;
  std::vector<ShardBytes> written(2);
  for (int r = 0; r < 2; ++r) {
    RankShard shard = shardOf(sample, r, 2, manifest);
    shard.rankState.push_back(
        {"rank_state.grad_residual.lm_head.weight", &shape, 0, 4, residuals[r].data()});
    ASSERT_TRUE(writeShard(dir, info, shard, written[r], error)) << error;
  }
  manifest.written = written;
  ASSERT_TRUE(commit(dir, info, manifest, error)) << error;
  for (int r = 0; r < 2; ++r) {
    Checkpoint got;
    ASSERT_TRUE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error, r)) << error;
    EXPECT_EQ(got.rankStateRanks, 2);
    ASSERT_EQ(got.rankState.size(), 1u);
    EXPECT_EQ(got.rankState[0].name, "rank_state.grad_residual.lm_head.weight");
    EXPECT_EQ(got.rankState[0].shape, shape);
    EXPECT_EQ(got.rankState[0].values, residuals[r]);
  }
  Checkpoint none;
  ASSERT_TRUE(loadLatest(dir, sample.layout(), "r1-tiny:abc", none, error)) << error;
  EXPECT_TRUE(none.rankState.empty());

  // A rank_state tensor missing from the file's list.
  RankShard shard = shardOf(sample, 0, 1, manifest);
  shard.rankState.push_back(
      {"optimizer.grad_residual.lm_head.weight", &shape, 0, 4, residuals[0].data()});
  ShardBytes bytes;
  EXPECT_FALSE(writeShard(freshDir("rank-state-bad"), info, shard, bytes, error));
  EXPECT_NE(error.find("must be a whole tensor named rank_state.*"), std::string::npos) << error;
}

TEST(ShardedCheckpoint, ModelFilesAreContiguousNonEmptyAndBalanced) {
  EXPECT_EQ(assignModelFiles({4, 4, 4, 4}, 2), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(assignModelFiles({100, 1, 1, 1}, 4), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(assignModelFiles({1, 1, 1, 100}, 2), (std::vector<int>{0, 0, 0, 1}));
  EXPECT_EQ(assignModelFiles({8, 8}, 5), (std::vector<int>{0, 1}));
  EXPECT_EQ(assignModelFiles({0, 0, 0}, 2), (std::vector<int>{0, 0, 1}));
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<uint64_t> bytes(1 + rng() % 40);
    for (uint64_t &b : bytes)
      b = rng() % 1000;
    const int ranks = 1 + int(rng() % 12);
    std::vector<int> file = assignModelFiles(bytes, ranks);
    const int files = std::min<int>(ranks, int(bytes.size()));
    ASSERT_EQ(file.front(), 0);
    ASSERT_EQ(file.back(), files - 1);
    for (size_t i = 1; i < file.size(); ++i)
      ASSERT_TRUE(file[i] == file[i - 1] || file[i] == file[i - 1] + 1) << "contiguous, none empty";
  }
}

TEST(ShardedCheckpoint, ARankThatDidNotFinishIsNeverCommitted) {
  const ShardedSample sample;
  std::string dir = freshDir("uncommitted"), error;
  ASSERT_TRUE(saveSharded(dir, sample, 1, 2, error)) << error;
  // Step 2: rank 1 never wrote (killed before its files were complete).
  const StepInfo info{2, 42, 14, "r1-tiny:abc"};
  Manifest manifest;
  std::vector<ShardBytes> written(2);
  ASSERT_TRUE(writeShard(dir, info, shardOf(sample, 0, 2, manifest), written[0], error)) << error;
  written[1] = {100, 100};
  manifest.written = written;
  EXPECT_FALSE(commit(dir, info, manifest, error));
  EXPECT_NE(error.find("step-00000002/model-00002-of-00002.safetensors: missing at commit"),
            std::string::npos)
      << error;
  EXPECT_EQ(readFile(dir + "/latest"), "step-00000001\n");
  // A file whose size is not what its writer reported is not committed either.
  ASSERT_TRUE(writeShard(dir, info, shardOf(sample, 1, 2, manifest), written[1], error)) << error;
  written[1].optimizer += 1;
  manifest.written = written;
  EXPECT_FALSE(commit(dir, info, manifest, error));
  EXPECT_NE(error.find("optimizer-00002-of-00002.safetensors"), std::string::npos) << error;
  EXPECT_EQ(readFile(dir + "/latest"), "step-00000001\n");
  Checkpoint got;
  ASSERT_TRUE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error)) << error;
  EXPECT_EQ(got.step, 1u);
}

TEST(ShardedCheckpoint, RejectsGapsOverlapsStaleFilesAndDisagreeingRanks) {
  const ShardedSample sample;
  Checkpoint got;
  std::string error;
  auto saved = [&](const std::string &name) {
    std::string dir = freshDir(name);
    EXPECT_TRUE(saveSharded(dir, sample, 3, 2, error)) << error;
    return dir;
  };
  const std::string index = "/step-00000003/model.safetensors.index.json";
  auto rewriteIndex = [&](const std::string &dir, const std::string &from, const std::string &to) {
    std::string text = readFile(dir + index);
    ASSERT_NE(text.find(from), std::string::npos) << text;
    text.replace(text.find(from), from.size(), to);
    writeFile(dir + index, text);
  };

  // Rank 1's optimizer file left out of the index: a gap in every moment.
  std::string dir = saved("gap");
  rewriteIndex(dir, ",\n      \"optimizer-00002-of-00002.safetensors\"", "");
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("holds rank 0 of 2"), std::string::npos) << error;

  // Rank 0's file listed twice: its slices overlap.
  dir = saved("overlap");
  rewriteIndex(dir, "optimizer-00002-of-00002", "optimizer-00001-of-00002");
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("holds rank 0 of 2"), std::string::npos) << error;

  // A model file of another step under the committed step's name.
  dir = saved("stale");
  ASSERT_TRUE(saveSharded(dir + "-other", sample, 9, 2, error)) << error;
  writeFile(dir + "/step-00000003/model-00001-of-00002.safetensors",
            readFile(dir + "-other/step-00000009/model-00001-of-00002.safetensors"));
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("of step 9, but the index is of step 3"), std::string::npos) << error;

  // The index of another spec.
  dir = saved("spec");
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "dense-tiny:def", got, error));
  EXPECT_NE(error.find("another spec"), std::string::npos) << error;
  EXPECT_NE(error.find("model.safetensors.index.json"), std::string::npos) << error;

  // A parameter the model does not have, and one it has but the map lacks.
  dir = saved("names");
  std::vector<Tensor> layout = sample.layout();
  layout.push_back({"model.layers.0.mlp.gate_proj.weight", {2, 2}, {}});
  EXPECT_FALSE(loadLatest(dir, layout, "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("no tensor 'model.layers.0.mlp.gate_proj.weight' in weight_map"),
            std::string::npos)
      << error;
  layout = sample.layout();
  layout.erase(layout.begin() + 1);
  EXPECT_FALSE(loadLatest(dir, layout, "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("'model.norm.weight' is not part of this model"), std::string::npos)
      << error;
  layout = sample.layout();
  layout.pop_back();
  EXPECT_FALSE(loadLatest(dir, layout, "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("'optimizer.exp_avg.model.norm.weight' is not part of this model"),
            std::string::npos)
      << error;

  // Ranks at different data positions.
  dir = freshDir("positions");
  Manifest manifest;
  std::vector<ShardBytes> written(2);
  for (int r = 0; r < 2; ++r)
    ASSERT_TRUE(writeShard(dir, StepInfo{3, 42, 100 + uint64_t(r), "r1-tiny:abc"},
                           shardOf(sample, r, 2, manifest), written[r], error))
        << error;
  manifest.written = written;
  ASSERT_TRUE(commit(dir, StepInfo{3, 42, 100, "r1-tiny:abc"}, manifest, error)) << error;
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("rank 1 was at data position 101 but rank 0 at 100"), std::string::npos)
      << error;

  // An index that is not JSON.
  dir = saved("index");
  writeFile(dir + index, "{\"weight_map\": ");
  EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
  EXPECT_NE(error.find("not a valid checkpoint index"), std::string::npos) << error;
}

TEST(ShardedCheckpoint, SlicesThatLeaveAGapOrOverlapAreRefused) {
  const ShardedSample sample;
  const StepInfo info{5, 42, 35, "r1-tiny:abc"};
  for (bool overlap : {false, true}) {
    std::string dir = freshDir(overlap ? "slice-overlap" : "slice-gap"), error;
    Manifest manifest;
    std::vector<ShardBytes> written(2);
    for (int r = 0; r < 2; ++r) {
      RankShard shard = shardOf(sample, r, 2, manifest);
      if (r == 1) {
        // Rank 1's slice of the first moment starts one element late (a
        // gap) or one early (an overlap).
        SliceRef &s = shard.optimizer[0];
        s.offset += overlap ? -1 : 1;
        s.count -= overlap ? 0 : 1;
        s.values += overlap ? -1 : 1;
      }
      ASSERT_TRUE(writeShard(dir, info, shard, written[r], error)) << error;
    }
    manifest.written = written;
    ASSERT_TRUE(commit(dir, info, manifest, error)) << error;
    Checkpoint got;
    EXPECT_FALSE(loadLatest(dir, sample.layout(), "r1-tiny:abc", got, error));
    EXPECT_NE(error.find(overlap ? "overlaps another rank's (which ends at 6)"
                                 : "is incomplete: elements [6, 7) are in no optimizer file"),
              std::string::npos)
        << error;
  }
}

TEST(ShardedCheckpoint, OlderSingleFileCheckpointsStillLoad) {
  // The format of Kiln's checkpoints before step directories: one file with
  // every tensor and the run state in the metadata.
  std::string dir = freshDir("single-file"), error;
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  const Checkpoint want = sample(12);
  std::string header = "{\"__metadata__\":{\"format\":\"kiln-checkpoint\",\"step\":\"12\","
                       "\"rng_state\":\"" +
                       std::to_string(want.rngState) +
                       "\",\"data_position\":\"12000\",\"spec_fingerprint\":\"r1-tiny:abc\"}";
  std::string data;
  for (const Tensor &t : want.tensors) {
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char *>(t.values.data()), t.values.size() * 4);
    header += ",\"" + t.name + "\":{\"dtype\":\"F32\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(t.shape[i]);
    header +=
        "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
  }
  header += "}";
  while ((8 + header.size()) % 8)
    header += ' ';
  std::string file(8, '\0');
  const uint64_t length = header.size();
  std::memcpy(file.data(), &length, 8);
  writeFile(dir + "/step-00000012.safetensors", file + header + data);
  writeFile(dir + "/latest", "step-00000012.safetensors\n");
  Checkpoint got;
  ASSERT_TRUE(loadLatest(dir, layoutOf(want), "r1-tiny:abc", got, error)) << error;
  EXPECT_EQ(got.step, 12u);
  EXPECT_EQ(got.dataPosition, 12000u);
  EXPECT_EQ(got.tensors[0].values, want.tensors[0].values);
  EXPECT_EQ(got.tensors[1].values, want.tensors[1].values);
  EXPECT_FALSE(loadLatest(dir, layoutOf(want), "dense-tiny:def", got, error));
  EXPECT_NE(error.find("another spec"), std::string::npos) << error;
}

} // namespace
