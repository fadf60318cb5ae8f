//===- MultiRankExecutableTest.cpp - data-parallel executables under mpirun --===//
//
// Real processes: `kilnc -o` builds dense-tiny and r1-tiny for one global
// batch of 8 rows in four layouts (dp 1 x 8 rows; dp 2 x 4; dp 2 x 4 with
// ZeRO-1; dp 1 x 2 micro-batches x 4) and the multi-rank ones run under
// `mpirun --oversubscribe -np 2` on the built-in synthetic corpus:
//  1. 20 steps give dp 1's losses and gradient norms (<= 1e-5 relative);
//  2. the step-1 gradients agree (<= 1e-5 relative to each tensor's largest
//     value), read from a step-1 checkpoint: from zero moments, exp_avg is
//     (1 - beta1) x the clipped gradient; each rank wrote its own files and
//     the runtime's loader reassembles whole tensors whatever the layout;
//  3. checkpoints resume bit-exactly on their own layout (ZeRO-1 dp 2) and
//     continue dp 1's trajectory on every other: ZeRO-1 dp 2 -> dp 1, dp 2
//     (zero 0) and micro-batches 2; micro-batches 2 -> dp 2;
//  4. SIGKILL of either rank while every step checkpoints leaves `latest`
//     naming a complete checkpoint that the dp 1 build resumes;
//  5. a rank killed mid-run ends the job (non-zero, within 60 s); a rank that
//     hangs is found by its peer's --collective-timeout, whose error names the
//     collective, the step and the rank; a dp 2 program run without mpirun
//     says how to launch it;
//  6. fp16's dynamic loss scaling skips the same steps with the same scales
//     on dp 2 ZeRO-1 as in one process over the same micro-batches.
// Every mpirun is wrapped in `timeout` so that a hang fails the test.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/safetensors/Safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kTolerance = 1e-5;

/// mpirun of `ranks` processes, ended by `timeout` if it hangs.
std::string mpirun(int64_t ranks) {
  return "timeout 120 mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) +
         " ";
}

bool haveMpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

std::string readFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs a shell command with its output in `logPath`; returns the exit code.
int run(const std::string &command, const std::string &logPath) {
  int status = std::system((command + " > " + logPath + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Layout {
  std::string name;
  int64_t microBatch;
  json parallel; // null: none
  bool multiRank;
  json train = nullptr; // keys set in the spec's train section; null: none
};

const std::vector<Layout> kLayouts = {
    {"dp1", 8, nullptr, false},
    {"dp2", 4, json{{"dp", 2}}, true},
    {"dp2zero1", 4, json{{"dp", 2}, {"zero", 1}}, true},
    {"mb2", 4, json{{"microbatches", 2}}, false},
};

/// Expert parallelism (models with routed experts): dp 2 x ep 2, each rank
/// holding half the experts, with and without ZeRO-1; dp 4 x ep 4 (4
/// processes on the 2 cores), a quarter of the experts per rank.
const std::vector<Layout> kExpertLayouts = {
    {"ep2", 4, json{{"dp", 2}, {"ep", 2}}, true},
    {"ep2zero1", 4, json{{"dp", 2}, {"ep", 2}, {"zero", 1}}, true},
    {"ep4", 2, json{{"dp", 4}, {"ep", 4}}, true},
};

/// parallel.expert_capacity 1.0 (rows over capacity dropped per sequence):
/// one rank, and dp 2 x ep 2.
const std::vector<Layout> kCapacityLayouts = {
    {"dp1capacity", 8, json{{"expert_capacity", 1.0}}, false},
    {"ep2capacity", 4, json{{"dp", 2}, {"ep", 2}, {"expert_capacity", 1.0}}, true},
};

/// parallel.grad_compression: dp 2, top-k 5% with int8 values and error
/// feedback (every model).
const Layout kCompressionLayout = {
    "dp2topk", 4,
    json{{"dp", 2},
         {"grad_compression",
          {{"method", "topk"}, {"ratio", 0.05}, {"quantize", "int8"}, {"error_feedback", true}}}},
    true};

/// fp16 with loss scaling from 2^26, which overflows for the first steps,
/// growing after 3 finite steps: micro-batches of 4 rows in one process, and
/// dp 2 ZeRO-1 (4 rows per rank). The same micro-batch rows overflow alike;
/// a rank must never skip a step its peer applies.
const json kFp16Overflow = {{"precision", "fp16"},
                            {"loss_scale", {{"init", 67108864.0}, {"growth_interval", 3}}}};
/// 2:4 magnitude sparsity from step 3, the masks recomputed every 4 steps
/// (kiln-sparsity-2-4): one process with 2 micro-batches, and dp 2.
const json kSparse = {{"sparsity", {{"pattern", "2:4"}, {"start_step", 3}, {"mask_every", 4}}}};
const std::vector<Layout> kSparseLayouts = {
    {"mb2sparse", 4, json{{"microbatches", 2}}, false, kSparse},
    {"dp2sparse", 4, json{{"dp", 2}}, true, kSparse},
    {"dp2zero1sparse", 4, json{{"dp", 2}, {"zero", 1}}, true, kSparse},
};

const std::vector<Layout> kFp16Layouts = {
    {"mb2fp16", 4, json{{"microbatches", 2}}, false, kFp16Overflow},
    {"dp2zero1fp16", 4, json{{"dp", 2}, {"zero", 1}}, true, kFp16Overflow},
};

/// fp8 (DeepSeek-V3's recipe, the experts' grouped GEMMs included): one
/// process, and dp 2 x ep 2 with the experts' rows exchanged before their
/// FP8 GEMMs.
const json kFp8 = {{"precision", "fp8"}};
const std::vector<Layout> kFp8ExpertLayouts = {
    {"dp1fp8", 8, nullptr, false, kFp8},
    {"ep2fp8", 4, json{{"dp", 2}, {"ep", 2}}, true, kFp8},
};

bool hasRoutedExperts(const std::string &model) { return model == "r1-tiny"; }

class MultiRankExecutable : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    if (!haveMpirun())
      GTEST_SKIP() << "mpirun not found: the multi-rank executables cannot run here";
    model = GetParam();
    dir = std::string(KILN_BINARY_DIR) + "/test/multirank/" + model;
    // The test's name without its "/model" suffix (dir names the model).
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    runDir = dir + "/run-" + test.substr(0, test.find('/'));
    fs::create_directories(runDir);
    // ctest runs each case in its own process: the builds are shared
    // between them, and redone when kilnc or a runtime library it links
    // into them is newer than a build.
    const std::string kilnc = std::string(KILN_BINARY_DIR) + "/bin/kilnc";
    std::error_code ec;
    fs::file_time_type newestInput = fs::last_write_time(kilnc, ec);
    for (const auto &entry :
         fs::recursive_directory_iterator(std::string(KILN_BINARY_DIR) + "/runtime", ec))
      if (entry.path().extension() == ".a")
        newestInput = std::max(newestInput, fs::last_write_time(entry.path(), ec));
    json spec = json::parse(readFile(std::string(KILN_SOURCE_DIR) + "/models/" + model + ".json"));
    std::vector<Layout> layouts = kLayouts;
    layouts.push_back(kCompressionLayout);
    layouts.insert(layouts.end(), kFp16Layouts.begin(), kFp16Layouts.end());
    layouts.insert(layouts.end(), kSparseLayouts.begin(), kSparseLayouts.end());
    if (hasRoutedExperts(model)) {
      layouts.insert(layouts.end(), kExpertLayouts.begin(), kExpertLayouts.end());
      layouts.insert(layouts.end(), kCapacityLayouts.begin(), kCapacityLayouts.end());
      layouts.insert(layouts.end(), kFp8ExpertLayouts.begin(), kFp8ExpertLayouts.end());
    }
    for (const Layout &l : layouts) {
      json s = spec;
      s["train"]["micro_batch"] = l.microBatch;
      if (!l.parallel.is_null())
        s["parallel"] = l.parallel;
      if (!l.train.is_null())
        s["train"].update(l.train);
      std::string path = dir + "/" + l.name + ".json", exe = dir + "/" + l.name + "/train";
      std::string text = s.dump(2);
      if (readFile(path) == text && fs::exists(exe) &&
          fs::last_write_time(exe, ec) > newestInput)
        continue;
      // ctest may build the same layout from two processes at once: the
      // spec appears whole (rename), and kilnc -o replaces `train` atomically.
      std::string tmp = path + ".tmp." + std::to_string(::getpid());
      std::ofstream(tmp) << text;
      fs::rename(tmp, path);
      ASSERT_EQ(run(kilnc + " " + path + " -o " + dir + "/" + l.name, dir + "/" + l.name + ".kilnc"),
                0)
          << readFile(dir + "/" + l.name + ".kilnc");
    }
  }

  /// `train` of a layout with `flags`, under mpirun when it is multi-rank.
  int train(const Layout &l, const std::string &flags, const std::string &tag) {
    std::string exe = dir + "/" + l.name + "/train --threads 1 " + flags;
    std::string log = runDir + "/" + l.name + "." + tag + ".out";
    const int64_t ranks = l.parallel.is_null() ? 1 : l.parallel.value("dp", int64_t(1));
    int code = run((l.multiRank ? mpirun(ranks) : std::string("timeout 120 ")) + exe, log);
    EXPECT_EQ(code, 0) << l.name << " " << flags << ":\n" << readFile(log);
    return code;
  }

  /// `steps` steps of `l` logging to runDir/<name>.jsonl (output in
  /// <name>.run.out): the log's records, none when the run failed (train()
  /// has reported it).
  std::vector<json> trainLogged(const Layout &l, int steps) {
    const std::string log = runDir + "/" + l.name + ".jsonl";
    fs::remove(log);
    if (train(l, "--steps " + std::to_string(steps) + " --log " + log, "run") != 0)
      return {};
    return metrics(log);
  }

  std::vector<json> metrics(const std::string &path) {
    std::vector<json> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
      out.push_back(json::parse(line));
    return out;
  }

  /// `dir` holds the model's builds, shared by every test process; `runDir`
  /// holds this test's logs and checkpoints: ctest -j runs several cases of
  /// one model at once, and two of them writing `ref.jsonl` in one place
  /// read each other's half-written logs.
  std::string model, dir, runDir;
};

/// The checkpoint `latest` names in `ckptDir`, reassembled by the runtime's
/// loader; the layout it expects (names, whole shapes) and the fingerprint
/// are read from the checkpoint's own index and files.
std::optional<kiln::checkpoint::Checkpoint> loadCheckpoint(const std::string &ckptDir) {
  std::string latest = readFile(ckptDir + "/latest"), error;
  latest.erase(latest.find_last_not_of("\n") + 1);
  const std::string stepDir = ckptDir + "/" + latest;
  json index = json::parse(readFile(stepDir + "/model.safetensors.index.json"));
  std::vector<kiln::checkpoint::Tensor> layout;
  for (const auto &[name, file] : index["weight_map"].items()) {
    auto reader = kiln::safetensors::Reader::open(stepDir + "/" + file.get<std::string>(), error);
    EXPECT_TRUE(reader) << error;
    if (!reader)
      return std::nullopt;
    layout.push_back({name, reader->find(name)->shape, {}});
  }
  std::map<std::string, std::vector<int64_t>> moments;
  for (const json &file : index["kiln"]["optimizer_files"]) {
    auto reader = kiln::safetensors::Reader::open(stepDir + "/" + file.get<std::string>(), error);
    EXPECT_TRUE(reader) << error;
    if (!reader)
      return std::nullopt;
    const json slices = json::parse(reader->metadata().at("slices"));
    for (const auto &[name, slice] : slices.items())
      moments[name] = slice["shape"].get<std::vector<int64_t>>();
  }
  for (const auto &[name, shape] : moments)
    layout.push_back({name, shape, {}});
  kiln::checkpoint::Checkpoint ckpt;
  EXPECT_TRUE(kiln::checkpoint::loadLatest(
      ckptDir, layout, index["kiln"]["spec_fingerprint"].get<std::string>(), ckpt, error))
      << error;
  return ckpt;
}

/// The largest difference between the exp_avg moments of two checkpoints of
/// one model (the step-1 gradients, scaled), relative to each tensor's
/// largest value; `where` names that tensor, `moments` counts the tensors.
double worstExpAvgDifference(const kiln::checkpoint::Checkpoint &got,
                             const kiln::checkpoint::Checkpoint &want, std::string &where,
                             int &moments) {
  double worst = 0;
  moments = 0;
  for (size_t t = 0; t < want.tensors.size(); ++t) {
    const kiln::checkpoint::Tensor &b = want.tensors[t], &a = got.tensors[t];
    EXPECT_EQ(a.name, b.name);
    if (b.name.rfind("optimizer.exp_avg.", 0) != 0 || a.name != b.name)
      continue;
    double diff = 0, scale = 0;
    for (size_t i = 0; i < b.values.size(); ++i) {
      diff = std::max(diff, std::fabs(double(a.values[i]) - double(b.values[i])));
      scale = std::max(scale, std::fabs(double(b.values[i])));
    }
    const double e = scale > 0 ? diff / scale : diff;
    if (e >= worst) {
      worst = e;
      where = b.name;
    }
    ++moments;
  }
  return worst;
}

/// Every regular file under `dir` (relative path -> bytes).
std::map<std::string, std::string> snapshot(const std::string &dir) {
  std::map<std::string, std::string> out;
  for (const auto &entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file())
      out[fs::relative(entry.path(), dir).string()] = readFile(entry.path().string());
  return out;
}

double relative(double got, double want) {
  return std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
}

TEST_P(MultiRankExecutable, LayoutsTrainTheSameModel) {
  for (const Layout &l : kLayouts) {
    fs::remove(runDir + "/" + l.name + ".jsonl");
    train(l, "--steps 20 --log " + runDir + "/" + l.name + ".jsonl", "train");
  }
  std::vector<json> want = metrics(runDir + "/dp1.jsonl");
  ASSERT_EQ(want.size(), 20u);
  for (const Layout &l : kLayouts) {
    std::vector<json> got = metrics(runDir + "/" + l.name + ".jsonl");
    ASSERT_EQ(got.size(), 20u) << l.name;
    double worst = 0;
    for (size_t s = 0; s < 20; ++s)
      for (const char *key : {"loss", "main_loss", "grad_norm", "lr"})
        worst = std::max(worst, relative(got[s][key], want[s][key]));
    std::printf("[%s %s] 20 steps: loss %.7f -> %.7f (dp1 %.7f -> %.7f), max relative "
                "difference %.3g\n",
                model.c_str(), l.name.c_str(), got[0]["loss"].get<double>(),
                got[19]["loss"].get<double>(), want[0]["loss"].get<double>(),
                want[19]["loss"].get<double>(), worst);
    EXPECT_LE(worst, kTolerance) << l.name;
    if (l.multiRank) {
      EXPECT_TRUE(got[0].contains("comm_s") && got[0].contains("comm_bytes")) << got[0].dump();
      EXPECT_GT(got[0]["comm_bytes"].get<double>(), 0.0);
    }
  }
}

TEST_P(MultiRankExecutable, StepOneGradientsAgree) {
  for (const Layout &l : kLayouts) {
    fs::remove_all(runDir + "/ckpt1-" + l.name);
    train(l, "--steps 1 --checkpoint-dir " + runDir + "/ckpt1-" + l.name, "step1");
  }
  std::optional<kiln::checkpoint::Checkpoint> want = loadCheckpoint(runDir + "/ckpt1-dp1");
  ASSERT_TRUE(want);
  // Each rank of a multi-rank layout wrote its own files.
  EXPECT_TRUE(fs::exists(runDir + "/ckpt1-dp2zero1/step-00000001/model-00002-of-00002.safetensors"));
  EXPECT_TRUE(
      fs::exists(runDir + "/ckpt1-dp2zero1/step-00000001/optimizer-00002-of-00002.safetensors"));
  int moments = 0;
  for (const Layout &l : kLayouts) {
    std::optional<kiln::checkpoint::Checkpoint> got = loadCheckpoint(runDir + "/ckpt1-" + l.name);
    ASSERT_TRUE(got);
    ASSERT_EQ(got->tensors.size(), want->tensors.size()) << l.name;
    std::string where;
    int compared = 0;
    const double worst = worstExpAvgDifference(*got, *want, where, compared);
    if (l.name == "dp1")
      moments = compared;
    std::printf("[%s %s] step-1 gradients (exp_avg): max relative difference %.3g (%s)\n",
                model.c_str(), l.name.c_str(), worst, where.c_str());
    EXPECT_LE(worst, kTolerance) << l.name << " " << where;
  }
  EXPECT_GT(moments, 10);
}

TEST_P(MultiRankExecutable, CheckpointsResumeOnAnyLayout) {
  const Layout &dp1 = kLayouts[0], &dp2 = kLayouts[1], &zero = kLayouts[2], &mb2 = kLayouts[3];
  fs::remove(runDir + "/ref.jsonl");
  train(dp1, "--steps 20 --log " + runDir + "/ref.jsonl", "ref");
  const std::vector<json> want = metrics(runDir + "/ref.jsonl");
  ASSERT_EQ(want.size(), 20u);
  // The uninterrupted ZeRO-1 run, for the same-layout resume.
  fs::remove_all(runDir + "/ckpt-zero-20");
  train(zero, "--steps 20 --checkpoint-every 10 --checkpoint-dir " + runDir + "/ckpt-zero-20",
        "zero20");
  for (const Layout *from : {&zero, &mb2}) {
    const std::string first = runDir + "/ckpt-" + from->name + "-10";
    fs::remove_all(first);
    train(*from, "--steps 10 --checkpoint-dir " + first, "first10");
    std::vector<const Layout *> to = {&dp2};
    if (from == &zero)
      to = {&zero, &dp1, &dp2, &mb2};
    for (const Layout *l : to) {
      const std::string ckpt = runDir + "/ckpt-" + l->name + "-from-" + from->name;
      const std::string log = runDir + "/resumed-" + l->name + "-from-" + from->name + ".jsonl";
      fs::remove_all(ckpt);
      fs::remove(log);
      fs::copy(first, ckpt, fs::copy_options::recursive);
      train(*l, "--steps 20 --resume --checkpoint-dir " + ckpt + " --log " + log, "resume");
      const std::vector<json> got = metrics(log);
      ASSERT_EQ(got.size(), 10u) << l->name;
      double worst = 0;
      for (size_t s = 0; s < 10; ++s) {
        EXPECT_EQ(got[s]["step"], want[s + 10]["step"]);
        worst = std::max(worst, relative(got[s]["loss"], want[s + 10]["loss"]));
      }
      std::printf("[%s] %s checkpoint at step 10 resumed by %s: steps 11-20 within %.3g of "
                  "dp 1\n",
                  model.c_str(), from->name.c_str(), l->name.c_str(), worst);
      EXPECT_LE(worst, kTolerance) << from->name << " -> " << l->name;
      if (l == from) {
        // The same layout resumes bit-exactly: every rank's files of step 20
        // equal those of the uninterrupted run.
        const auto a = snapshot(runDir + "/ckpt-zero-20/step-00000020"),
                   b = snapshot(ckpt + "/step-00000020");
        EXPECT_EQ(a.size(), 5u) << "2 model files, 2 optimizer files, the index";
        EXPECT_TRUE(a == b) << "a resumed ZeRO-1 run's step-20 checkpoint differs";
      }
    }
  }
}

/// The largest relative difference of the losses of `got` from the steps
/// of `want` with the same numbers.
double worstLossDifference(const std::vector<json> &got, const std::vector<json> &want) {
  double worst = 0;
  for (const json &g : got) {
    const json &w = want.at(g["step"].get<size_t>() - 1);
    worst = std::max({worst, relative(g["loss"], w["loss"]),
                      relative(g["grad_norm"], w["grad_norm"])});
  }
  return worst;
}

TEST_P(MultiRankExecutable, ExpertParallelFollowsDp1) {
  if (!hasRoutedExperts(model))
    GTEST_SKIP() << model << " has no routed experts to shard";
  const Layout &dp1 = kLayouts[0];
  fs::remove(runDir + "/ref.jsonl");
  train(dp1, "--steps 20 --log " + runDir + "/ref.jsonl", "ref");
  const std::vector<json> want = metrics(runDir + "/ref.jsonl");
  ASSERT_EQ(want.size(), 20u);
  const std::string ref1 = runDir + "/ckpt1-ref";
  fs::remove_all(ref1);
  train(dp1, "--steps 1 --checkpoint-dir " + ref1, "step1");
  std::optional<kiln::checkpoint::Checkpoint> b = loadCheckpoint(ref1);
  ASSERT_TRUE(b);
  for (const Layout &l : kExpertLayouts) {
    // 20 steps: losses and gradient norms.
    const std::string log = runDir + "/" + l.name + ".jsonl";
    fs::remove(log);
    train(l, "--steps 20 --log " + log, "run");
    const std::vector<json> got = metrics(log);
    ASSERT_EQ(got.size(), 20u) << l.name;
    const double worst = worstLossDifference(got, want);
    std::printf("[%s %s] 20 steps: losses and gradient norms within %.3g of dp 1; %s comm "
                "bytes per step; all_to_all bytes of all ranks %s, predicted %s\n",
                model.c_str(), l.name.c_str(), worst, got[0]["comm_bytes"].dump().c_str(),
                got[0]["all_to_all_bytes"].dump().c_str(),
                got[0]["all_to_all_bytes_dropless"].dump().c_str());
    // Dropless, the ranks together move exactly what the compiler predicted,
    // whatever the routing.
    for (size_t s = 0; s < got.size(); ++s) {
      ASSERT_TRUE(got[s].contains("all_to_all_bytes")) << got[s].dump();
      EXPECT_EQ(got[s]["all_to_all_bytes"], got[s]["all_to_all_bytes_dropless"])
          << l.name << " step " << s + 1;
    }
    EXPECT_LE(worst, kTolerance) << l.name;
    // Step-1 gradients, through exp_avg, each expert from the rank that holds it.
    const std::string ckpt1 = runDir + "/ckpt1-" + l.name;
    fs::remove_all(ckpt1);
    train(l, "--steps 1 --checkpoint-dir " + ckpt1, "step1");
    std::optional<kiln::checkpoint::Checkpoint> a = loadCheckpoint(ckpt1);
    ASSERT_TRUE(a);
    ASSERT_EQ(a->tensors.size(), b->tensors.size());
    std::string where;
    int compared = 0;
    const double worstGrad = worstExpAvgDifference(*a, *b, where, compared);
    std::printf("[%s %s] step-1 gradients (exp_avg) within %.3g of dp 1\n", model.c_str(),
                l.name.c_str(), worstGrad);
    EXPECT_LE(worstGrad, kTolerance) << l.name;
  }
}

// Under expert capacity the same rows drop on every layout (capacity is per
// sequence), so dp 2 x ep 2 follows one rank, and both report the drops:
// routed_rows and dropped_rows in the metrics log, equal on both, and a
// warning at the first step that drops.
TEST_P(MultiRankExecutable, ExpertCapacityDropsTheSameRowsOnEveryLayout) {
  if (!hasRoutedExperts(model))
    GTEST_SKIP() << model << " has no routed experts";
  std::vector<std::vector<json>> runs;
  for (const Layout &l : kCapacityLayouts) {
    runs.push_back(trainLogged(l, 10));
    ASSERT_EQ(runs.back().size(), 10u) << l.name;
    const std::string out = readFile(runDir + "/" + l.name + ".run.out");
    EXPECT_NE(out.find("warning: step 1: "), std::string::npos) << out;
    EXPECT_NE(out.find("over parallel.expert_capacity and dropped"), std::string::npos) << out;
    EXPECT_NE(out.find("% of routed rows"), std::string::npos) << out;
  }
  const std::vector<json> &want = runs[0], &got = runs[1];
  for (size_t s = 0; s < want.size(); ++s) {
    // 8 sequences of 32 tokens, top 2, 3 MoE layers (2 decoder + MTP).
    EXPECT_EQ(want[s]["routed_rows"], 8 * 32 * 2 * 3) << "step " << s + 1;
    EXPECT_GT(want[s]["dropped_rows"].get<int64_t>(), 0) << "step " << s + 1;
    EXPECT_EQ(got[s]["routed_rows"], want[s]["routed_rows"]) << "step " << s + 1;
    EXPECT_EQ(got[s]["dropped_rows"], want[s]["dropped_rows"]) << "step " << s + 1;
  }
  // Each dropped row is not sent out, back, and the same in backward: 4 rows
  // of hidden_size 64 f32 fewer than the dropless prediction.
  for (size_t s = 0; s < got.size(); ++s)
    EXPECT_EQ(got[s]["all_to_all_bytes_dropless"].get<int64_t>() -
                  got[s]["all_to_all_bytes"].get<int64_t>(),
              4 * 64 * 4 * got[s]["dropped_rows"].get<int64_t>())
        << "step " << s + 1;
  const double worst = worstLossDifference(got, want);
  std::printf("[%s ep2capacity] 10 steps within %.3g of dp 1; step 1 dropped %s of %s routed "
              "rows, step 10 %s\n",
              model.c_str(), worst, want[0]["dropped_rows"].dump().c_str(),
              want[0]["routed_rows"].dump().c_str(), want[9]["dropped_rows"].dump().c_str());
  EXPECT_LE(worst, kTolerance);
}

// Gradient compression trains (the loss falls), moves the bytes the compiler
// put in the step (grad_bytes_sent in the log, inside comm_bytes), and a run
// resumed from a checkpoint continues bit-exactly: the error-feedback
// residuals are each rank's own checkpoint state.
TEST_P(MultiRankExecutable, GradCompressionTrainsAndResumesBitExactly) {
  const Layout &l = kCompressionLayout;
  const std::string full = runDir + "/topk-full.jsonl", part = runDir + "/topk-part.jsonl",
                    ckpt = runDir + "/ckpt-topk";
  fs::remove(full);
  fs::remove(part);
  fs::remove_all(ckpt);
  ASSERT_EQ(train(l, "--steps 12 --log " + full, "full"), 0);
  ASSERT_EQ(train(l, "--steps 6 --checkpoint-dir " + ckpt + " --log " + part, "first"), 0);
  ASSERT_EQ(train(l, "--steps 12 --resume --checkpoint-dir " + ckpt + " --log " + part, "resumed"),
            0);
  const std::vector<json> want = metrics(full), got = metrics(part);
  ASSERT_EQ(want.size(), 12u);
  ASSERT_EQ(got.size(), 12u);
  for (size_t s = 0; s < want.size(); ++s)
    for (const char *key : {"loss", "main_loss", "grad_norm"})
      EXPECT_EQ(got[s][key], want[s][key]) << key << " at step " << s + 1;
  const uint64_t sent = want[0]["grad_bytes_sent"].get<uint64_t>(),
                 whole = want[0]["grad_bytes_uncompressed"].get<uint64_t>();
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, whole / 10) << "top-k 5% with int8 values sends about 6% of the bytes";
  EXPECT_GE(want[0]["comm_bytes"].get<uint64_t>(), sent);
  EXPECT_LT(want[11]["main_loss"].get<double>(), want[0]["main_loss"].get<double>());
  std::printf("[%s dp2topk] %llu of %llu gradient bytes sent per rank per step; main loss %.4f -> "
              "%.4f over 12 steps; resumed at 6 bit-exactly\n",
              model.c_str(), (unsigned long long)sent, (unsigned long long)whole,
              want[0]["main_loss"].get<double>(), want[11]["main_loss"].get<double>());
}

// 2:4 under dp 2: the masks are computed once per step on every rank from
// the replicated weights, so dp 2 trains as the one-process run over the
// same micro-batches does (the same sums in the same order: equal), across
// start_step and a mask update; a run resumed at step 4 (masks restored
// from the optimizer state) continues bit-exactly; and a ZeRO-1 run's
// checkpoint (masks written whole, in chunks) resumes on dp 2.
TEST_P(MultiRankExecutable, SparsityFollowsOneProcessAndResumes) {
  const Layout &one = kSparseLayouts[0], &dp2 = kSparseLayouts[1];
  const std::string ckpt = runDir + "/ckpt-sparse", part = runDir + "/sparse-part.jsonl";
  fs::remove_all(ckpt);
  fs::remove(part);
  const std::vector<json> want = trainLogged(one, 8), got = trainLogged(dp2, 8);
  ASSERT_EQ(want.size(), 8u);
  ASSERT_EQ(got.size(), 8u);
  for (size_t s = 0; s < want.size(); ++s)
    for (const char *key : {"loss", "main_loss", "grad_norm"})
      EXPECT_EQ(got[s][key], want[s][key]) << key << " at step " << s + 1;
  ASSERT_EQ(train(dp2, "--steps 4 --checkpoint-dir " + ckpt + " --log " + part, "first"), 0);
  ASSERT_EQ(train(dp2, "--steps 8 --resume --checkpoint-dir " + ckpt + " --log " + part, "resumed"),
            0);
  const std::vector<json> resumed = metrics(part);
  ASSERT_EQ(resumed.size(), 8u);
  for (size_t s = 0; s < resumed.size(); ++s)
    for (const char *key : {"loss", "main_loss", "grad_norm"})
      EXPECT_EQ(resumed[s][key], got[s][key]) << key << " at step " << s + 1 << " (resumed)";
  // ZeRO-1 (moments sharded, masks whole): its checkpoint at step 4 resumes
  // on dp 2 without ZeRO, which then continues as the uninterrupted run
  // (the global norm sums the shards' squares: within 1e-6).
  const Layout &zero1 = kSparseLayouts[2];
  const std::string ckptZero = runDir + "/ckpt-sparse-zero1", zeroLog = runDir + "/sparse-z.jsonl";
  fs::remove_all(ckptZero);
  fs::remove(zeroLog);
  ASSERT_EQ(train(zero1, "--steps 4 --checkpoint-dir " + ckptZero + " --log " + zeroLog, "zero1"),
            0);
  ASSERT_EQ(train(dp2, "--steps 8 --resume --checkpoint-dir " + ckptZero + " --log " + zeroLog,
                  "zero1-resumed"),
            0);
  const std::vector<json> across = metrics(zeroLog);
  ASSERT_EQ(across.size(), 8u);
  for (size_t s = 0; s < across.size(); ++s)
    EXPECT_NEAR(across[s]["loss"].get<double>(), got[s]["loss"].get<double>(),
                1e-6 * got[s]["loss"].get<double>())
        << "step " << s + 1 << " (ZeRO-1 checkpoint resumed on dp 2)";
  std::printf("[%s dp2sparse] 8 steps equal to one process; resumed at 4 bit-exactly; main loss "
              "%.4f -> %.4f\n",
              model.c_str(), got[0]["main_loss"].get<double>(), got[7]["main_loss"].get<double>());
}

// fp16's loss scaler decides from the global gradient norm, which every
// rank computes alike (ZeRO-1 sums the shards' squares over the ranks): dp 2
// skips exactly the steps the one-process run over the same micro-batches
// skips, with the same scales, and its losses follow (fp16 rounds the two
// reductions' sums differently, so within 1e-3).
TEST_P(MultiRankExecutable, Fp16LossScalingAgreesAcrossRanks) {
  std::vector<std::vector<json>> runs;
  for (const Layout &l : kFp16Layouts) {
    runs.push_back(trainLogged(l, 20));
    ASSERT_EQ(runs.back().size(), 20u) << l.name;
  }
  const std::vector<json> &want = runs[0], &got = runs[1];
  int skipped = 0;
  double worst = 0;
  for (size_t s = 0; s < want.size(); ++s) {
    EXPECT_EQ(got[s]["loss_scale"], want[s]["loss_scale"]) << "step " << s + 1;
    EXPECT_EQ(got[s]["skipped"], want[s]["skipped"]) << "step " << s + 1;
    skipped += want[s]["skipped"].get<bool>();
    worst = std::max(worst, relative(got[s]["loss"], want[s]["loss"]));
  }
  std::printf("[%s fp16] dp 2 ZeRO-1 and micro-batches 2: the same %d of 20 steps skipped, the "
              "same scales (step 20: %s), losses within %.3g\n",
              model.c_str(), skipped, want[19]["loss_scale"].dump().c_str(), worst);
  EXPECT_GT(skipped, 0) << "2^26 overflows fp16 at step 1";
  EXPECT_LT(skipped, 20);
  EXPECT_LE(worst, 1e-3);
}

// The grouped FP8 GEMMs see on each ep rank exactly the rows one process
// gives the same expert, in the same order (sources in rank order, each in
// token order), so their 128-row Wgrad tiles and every scale are the same;
// the dense Wgrad tiles too (128 tokens per rank, tile edge 128). Step 1's
// loss and gradient norm therefore agree to f32 summation order. From then
// on a last-bit difference of an update can move a value across an e4m3
// rounding boundary (a 2^-4 step), so the runs part as two seeds of the same
// training would (measured: 4e-7 at step 2, 1.8e-3 by step 10): they must
// still track each other.
TEST_P(MultiRankExecutable, Fp8ExpertParallelFollowsOneProcess) {
  if (!hasRoutedExperts(model))
    GTEST_SKIP() << model << " has no routed experts to shard";
  const std::vector<json> want = trainLogged(kFp8ExpertLayouts[0], 10),
                          got = trainLogged(kFp8ExpertLayouts[1], 10);
  ASSERT_EQ(want.size(), 10u);
  ASSERT_EQ(got.size(), 10u);
  const double first = worstLossDifference({got[0]}, want), worst = worstLossDifference(got, want);
  std::printf("[%s fp8] dp 2 x ep 2 vs one process: step 1 loss and gradient norm within %.3g, "
              "10 steps within %.3g\n",
              model.c_str(), first, worst);
  EXPECT_LE(first, 1e-6);
  EXPECT_LE(worst, 1e-2);
}

TEST_P(MultiRankExecutable, ExpertParallelCheckpointsResumeOnAnyLayout) {
  if (!hasRoutedExperts(model))
    GTEST_SKIP() << model << " has no routed experts to shard";
  const Layout &dp1 = kLayouts[0], &ep2 = kExpertLayouts[0], &ep2zero = kExpertLayouts[1],
               &ep4 = kExpertLayouts[2];
  fs::remove(runDir + "/ref.jsonl");
  train(dp1, "--steps 20 --log " + runDir + "/ref.jsonl", "ref");
  const std::vector<json> want = metrics(runDir + "/ref.jsonl");
  // ep 2 + ZeRO-1 -> dp 1 and ep 2 (zero 0); dp 1 -> ep 2 + ZeRO-1; ep 4 ->
  // ep 2 and dp 1.
  const std::vector<std::pair<const Layout *, const Layout *>> moves = {
      {&ep2zero, &dp1}, {&ep2zero, &ep2}, {&dp1, &ep2zero}, {&ep4, &ep2}, {&ep4, &dp1}};
  for (auto [from, to] : moves) {
    const std::string first = runDir + "/ckpt-ep-" + from->name + "-10",
                      ckpt = runDir + "/ckpt-ep-" + from->name + "-to-" + to->name,
                      log = runDir + "/resumed-ep-" + from->name + "-to-" + to->name + ".jsonl";
    fs::remove_all(first);
    fs::remove_all(ckpt);
    fs::remove(log);
    train(*from, "--steps 10 --checkpoint-dir " + first, "first10");
    fs::copy(first, ckpt, fs::copy_options::recursive);
    train(*to, "--steps 20 --resume --checkpoint-dir " + ckpt + " --log " + log, "resume");
    const std::vector<json> got = metrics(log);
    ASSERT_EQ(got.size(), 10u) << from->name << " -> " << to->name;
    const double worst = worstLossDifference(got, want);
    std::printf("[%s] %s checkpoint at step 10 resumed by %s: steps 11-20 within %.3g of dp 1\n",
                model.c_str(), from->name.c_str(), to->name.c_str(), worst);
    EXPECT_LE(worst, kTolerance) << from->name << " -> " << to->name;
  }
}

TEST_P(MultiRankExecutable, KilledRankEndsTheJob) {
  // Rank 1 kills itself after a few steps; mpirun must end the job.
  std::string exe = dir + "/dp2/train --threads 1 --steps 100000";
  std::string script = runDir + "/kill-rank1.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (sleep 2; kill -9 $$) & fi\n"
                        << "exec " << exe << "\n";
  fs::permissions(script, fs::perms::owner_all);
  auto start = std::chrono::steady_clock::now();
  std::string log = runDir + "/killed.out";
  int code = run("timeout 90 mpirun --allow-run-as-root --oversubscribe -np 2 " + script, log);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[%s] rank 1 killed after 2 s: the job ended with %d after %.1f s\n",
              model.c_str(), code, seconds);
  EXPECT_NE(code, 0) << readFile(log);
  EXPECT_NE(code, 124) << "the job hung until timeout killed it:\n" << readFile(log);
  EXPECT_LT(seconds, 60.0);

  // A rank that hangs (stopped, not dead: mpirun sees nothing) is found by
  // its peer's --collective-timeout, which names the collective, the step
  // and the rank, and ends the job.
  std::string hang = runDir + "/hang-rank1.sh";
  std::ofstream(hang) << "#!/bin/sh\n"
                      << "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (sleep 2; kill -STOP $$) & fi\n"
                      << "exec " << exe << " --collective-timeout 3\n";
  fs::permissions(hang, fs::perms::owner_all);
  start = std::chrono::steady_clock::now();
  std::string hangLog = runDir + "/hung.out";
  code = run("timeout 90 mpirun --allow-run-as-root --oversubscribe -np 2 " + hang, hangLog);
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[%s] rank 1 stopped after 2 s, --collective-timeout 3: the job ended with %d "
              "after %.1f s\n",
              model.c_str(), code, seconds);
  EXPECT_NE(code, 0) << readFile(hangLog);
  EXPECT_NE(code, 124) << "the job hung until timeout killed it:\n" << readFile(hangLog);
  EXPECT_LT(seconds, 60.0);
  std::string hungOutput = readFile(hangLog);
  EXPECT_NE(hungOutput.find("rank 0: all_reduce"), std::string::npos) << hungOutput;
  EXPECT_NE(hungOutput.find("within 3 s"), std::string::npos) << hungOutput;
  EXPECT_NE(hungOutput.find("(step "), std::string::npos) << hungOutput;

  std::string alone = runDir + "/alone.out";
  EXPECT_EQ(run("env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK " + dir + "/dp2/train --steps 1", alone),
            1);
  EXPECT_NE(readFile(alone).find("was built for 2 data-parallel ranks; launch it with mpirun "
                                 "-np 2"),
            std::string::npos)
      << readFile(alone);
}

TEST_P(MultiRankExecutable, KilledDuringCheckpointsLeavesLatestLoadable) {
  // ZeRO-1 dp 2 checkpointing every step (each rank writes its files, rank 0
  // commits): rank 0 or rank 1 is SIGKILLed at a different moment each time;
  // `latest` must then name a complete checkpoint that the dp 1 build resumes.
  const Layout &zero = kLayouts[2], &dp1 = kLayouts[0];
  for (int trial = 0; trial < 4; ++trial) {
    std::string ckpt = runDir + "/ckpt-killed-" + std::to_string(trial);
    fs::remove_all(ckpt);
    std::string script = runDir + "/kill-during-checkpoints.sh";
    // The kill is timed from the first committed checkpoint (waiting at
    // most 60 s), not from the start: a sanitized build can take longer
    // than a second to get there.
    std::ofstream(script) << "#!/bin/sh\n"
                          << "if [ \"$OMPI_COMM_WORLD_RANK\" = " << trial % 2
                          << " ]; then (n=0; while [ ! -e " << ckpt
                          << "/latest ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done; sleep "
                          << 0.1 + 0.37 * trial
                          << "; kill -9 $$) & fi\n"
                          << "exec " << dir << "/" << zero.name
                          << "/train --threads 1 --steps 100000 --checkpoint-every 1 "
                             "--checkpoint-dir "
                          << ckpt << "\n";
    fs::permissions(script, fs::perms::owner_all);
    std::string log = runDir + "/killed-checkpoint.out";
    int code = run("timeout 90 mpirun --allow-run-as-root --oversubscribe -np 2 " + script, log);
    ASSERT_NE(code, 0) << readFile(log);
    ASSERT_NE(code, 124) << "hung:\n" << readFile(log);
    std::string latest = readFile(ckpt + "/latest");
    size_t digits = latest.find_first_of("0123456789");
    ASSERT_NE(digits, std::string::npos) << "no checkpoint before the kill: " << latest;
    uint64_t step = std::stoull(latest.substr(digits));
    std::string resumeLog = runDir + "/resumed-after-kill.out";
    EXPECT_EQ(run("timeout 120 " + dir + "/" + dp1.name + "/train --threads 1 --resume --steps " +
                      std::to_string(step + 1) + " --checkpoint-dir " + ckpt,
                  resumeLog),
              0)
        << readFile(resumeLog);
    std::printf("[%s] rank %d killed during per-step checkpoints: latest is step %llu, resumed by "
                "dp 1\n",
                model.c_str(), trial % 2, (unsigned long long)step);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, MultiRankExecutable,
                         ::testing::Values("dense-tiny", "r1-tiny"),
                         [](const auto &info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

} // namespace
