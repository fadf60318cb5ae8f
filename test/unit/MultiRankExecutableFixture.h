//===- MultiRankExecutableFixture.h - multi-rank executables under mpirun -*- C++ -*-===//
//
// Shared by the MultiRankExecutable test files (one test binary): the
// layouts (dp, ZeRO-1, micro-batches, ep, pp, and precision and sparsity
// variants) that the fixture builds with `kilnc -o` for dense-tiny and
// r1-tiny, one global batch of 8 rows each; running them (under `mpirun
// --oversubscribe`, wrapped in `timeout` so that a hang fails the test); and
// reading their metrics logs and checkpoints.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_MULTIRANKEXECUTABLEFIXTURE_H
#define KILN_TEST_UNIT_MULTIRANKEXECUTABLEFIXTURE_H

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/safetensors/Safetensors.h"

#include "test/unit/ProgramCache.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace kiln::test::multirank {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kTolerance = 1e-5;

/// mpirun of `ranks` processes, ended by `timeout` if it hangs.
inline std::string mpirun(int64_t ranks) {
  return "timeout 120 mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) +
         " ";
}

inline bool haveMpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

inline std::string readFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs a shell command with its output in `logPath`; returns the exit code.
inline int run(const std::string &command, const std::string &logPath) {
  int status = std::system((command + " > " + logPath + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Layout {
  std::string name;
  int64_t microBatch;
  json parallel; // null: none
  bool multiRank;
  json train = nullptr; // keys set in the spec's train section; null: none
  json model = nullptr; // keys set in the spec's model section; null: none
  /// The processes it runs on: pp x dp.
  int64_t ranks() const {
    return parallel.is_null() ? 1 : parallel.value("dp", int64_t(1)) * parallel.value("pp", int64_t(1));
  }
};

inline const std::vector<Layout> kLayouts = {
    {"dp1", 8, nullptr, false},
    {"dp2", 4, json{{"dp", 2}}, true},
    {"dp2zero1", 4, json{{"dp", 2}, {"zero", 1}}, true},
    {"mb2", 4, json{{"microbatches", 2}}, false},
};

/// Expert parallelism (models with routed experts): dp 2 x ep 2, each rank
/// holding half the experts, with and without ZeRO-1; dp 4 x ep 4 (4
/// processes on the 2 cores), a quarter of the experts per rank.
inline const std::vector<Layout> kExpertLayouts = {
    {"ep2", 4, json{{"dp", 2}, {"ep", 2}}, true},
    {"ep2zero1", 4, json{{"dp", 2}, {"ep", 2}, {"zero", 1}}, true},
    {"ep4", 2, json{{"dp", 4}, {"ep", 4}}, true},
};

/// parallel.expert_capacity 1.0 (rows over capacity dropped per sequence):
/// one rank, and dp 2 x ep 2.
inline const std::vector<Layout> kCapacityLayouts = {
    {"dp1capacity", 8, json{{"expert_capacity", 1.0}}, false},
    {"ep2capacity", 4, json{{"dp", 2}, {"ep", 2}, {"expert_capacity", 1.0}}, true},
};

/// parallel.grad_compression: dp 2, top-k 5% with int8 values and error
/// feedback (every model).
inline const Layout kCompressionLayout = {
    "dp2topk", 4,
    json{{"dp", 2},
         {"grad_compression",
          {{"method", "topk"}, {"ratio", 0.05}, {"quantize", "int8"}, {"error_feedback", true}}}},
    true};

/// fp16 with loss scaling from 2^26, which overflows for the first steps,
/// growing after 3 finite steps: micro-batches of 4 rows in one process, dp
/// 2 ZeRO-1 (4 rows per rank), and pp 2 (the same micro-batches through two
/// stages, the overflow seen in the norm the stages all-reduce). The same
/// micro-batch rows overflow alike; a rank must never skip a step its peer
/// applies.
inline const json kFp16Overflow = {{"precision", "fp16"},
                            {"loss_scale", {{"init", 67108864.0}, {"growth_interval", 3}}}};
/// 2:4 magnitude sparsity from step 3, the masks recomputed every 4 steps
/// (kiln-sparsity-2-4): one process with 2 micro-batches, dp 2 (and with
/// ZeRO-1), and pp 2.
inline const json kSparse = {{"sparsity", {{"pattern", "2:4"}, {"start_step", 3}, {"mask_every", 4}}}};
inline const std::vector<Layout> kSparseLayouts = {
    {"mb2sparse", 4, json{{"microbatches", 2}}, false, kSparse},
    {"dp2sparse", 4, json{{"dp", 2}}, true, kSparse},
    {"dp2zero1sparse", 4, json{{"dp", 2}, {"zero", 1}}, true, kSparse},
    {"pp2sparse", 4, json{{"pp", 2}, {"microbatches", 2}, {"schedule", "zb-h1"}}, true, kSparse},
};

inline const std::vector<Layout> kFp16Layouts = {
    {"mb2fp16", 4, json{{"microbatches", 2}}, false, kFp16Overflow},
    {"dp2zero1fp16", 4, json{{"dp", 2}, {"zero", 1}}, true, kFp16Overflow},
    {"pp2fp16", 4, json{{"pp", 2}, {"microbatches", 2}, {"schedule", "1f1b"}}, true,
     kFp16Overflow},
};

/// fp8 (DeepSeek-V3's recipe, the experts' grouped GEMMs included): one
/// process, and dp 2 x ep 2 with the experts' rows exchanged before their
/// FP8 GEMMs.
inline const json kFp8 = {{"precision", "fp8"}};
inline const std::vector<Layout> kFp8ExpertLayouts = {
    {"dp1fp8", 8, nullptr, false, kFp8},
    {"ep2fp8", 4, json{{"dp", 2}, {"ep", 2}}, true, kFp8},
};

/// Pipeline parallelism (kiln-pipeline), every layout a global batch of 8
/// rows in micro-batches of 2: pp 2 under 1F1B and ZB-H1, pp 2 x dp 2 under
/// GPipe, and with ZeRO-1 under ZB-H1; and with 4 layers (so that each rank holds 2 chunks), DualPipeV,
/// ZB-V and interleaved 1F1B, against one process with the same 4 layers.
inline const json kFourLayers = {{"num_hidden_layers", 4}};
inline const std::vector<Layout> kPipelineLayouts = {
    {"pp2", 2, json{{"pp", 2}, {"microbatches", 4}, {"schedule", "1f1b"}}, true},
    {"pp2zbh1", 2, json{{"pp", 2}, {"microbatches", 4}, {"schedule", "zb-h1"}}, true},
    {"pp2dp2", 2, json{{"pp", 2}, {"dp", 2}, {"microbatches", 2}, {"schedule", "gpipe"}}, true},
    {"pp2dp2zero1", 2,
     json{{"pp", 2}, {"dp", 2}, {"zero", 1}, {"microbatches", 2}, {"schedule", "zb-h1"}}, true},
    {"dp1layers4", 8, nullptr, false, nullptr, kFourLayers},
    {"pp2dualpipev", 2, json{{"pp", 2}, {"microbatches", 4}, {"schedule", "dualpipev"}}, true,
     nullptr, kFourLayers},
    {"pp2zbv", 2, json{{"pp", 2}, {"microbatches", 4}, {"schedule", "zb-v"}}, true, nullptr,
     kFourLayers},
    {"pp2interleaved", 2,
     json{{"pp", 2}, {"microbatches", 4}, {"schedule", "interleaved-1f1b"}, {"virtual_stages", 2}},
     true, nullptr, kFourLayers},
};

inline bool hasRoutedExperts(const std::string &model) { return model == "r1-tiny"; }

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
    // between them (ProgramCache.h).
    const std::string kilnc = std::string(KILN_BINARY_DIR) + "/bin/kilnc";
    json spec = json::parse(readFile(std::string(KILN_SOURCE_DIR) + "/models/" + model + ".json"));
    std::vector<Layout> layouts = kLayouts;
    layouts.push_back(kCompressionLayout);
    layouts.insert(layouts.end(), kFp16Layouts.begin(), kFp16Layouts.end());
    layouts.insert(layouts.end(), kSparseLayouts.begin(), kSparseLayouts.end());
    layouts.insert(layouts.end(), kPipelineLayouts.begin(), kPipelineLayouts.end());
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
      if (!l.model.is_null())
        s["model"].update(l.model);
      const std::string error = buildOnce(kilnc, s.dump(2), dir + "/" + l.name);
      ASSERT_TRUE(error.empty()) << error;
    }
  }

  /// `train` of a layout with `flags`, under mpirun when it is multi-rank.
  int train(const Layout &l, const std::string &flags, const std::string &tag) {
    std::string exe = dir + "/" + l.name + "/train --threads 1 " + flags;
    std::string log = runDir + "/" + l.name + "." + tag + ".out";
    int code = run((l.multiRank ? mpirun(l.ranks()) : std::string("timeout 120 ")) + exe, log);
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
inline std::optional<kiln::checkpoint::Checkpoint> loadCheckpoint(const std::string &ckptDir) {
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
inline double worstExpAvgDifference(const kiln::checkpoint::Checkpoint &got,
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
inline std::map<std::string, std::string> snapshot(const std::string &dir) {
  std::map<std::string, std::string> out;
  for (const auto &entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file())
      out[fs::relative(entry.path(), dir).string()] = readFile(entry.path().string());
  return out;
}

inline double relative(double got, double want) {
  return std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
}

/// The largest relative difference of the losses of `got` from the steps
/// of `want` with the same numbers.
inline double worstLossDifference(const std::vector<json> &got, const std::vector<json> &want) {
  double worst = 0;
  for (const json &g : got) {
    const json &w = want.at(g["step"].get<size_t>() - 1);
    worst = std::max({worst, relative(g["loss"], w["loss"]),
                      relative(g["grad_norm"], w["grad_norm"])});
  }
  return worst;
}

} // namespace kiln::test::multirank

#endif // KILN_TEST_UNIT_MULTIRANKEXECUTABLEFIXTURE_H
