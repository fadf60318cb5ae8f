//===- TrainExecutableCheckpointingTest.cpp - `train` with recomputation ---===//
//
// r1-tiny and dense-tiny built with train.checkpointing "full", "selective"
// and a budget (kiln-activation-checkpointing) against the same specs
// without: the planned arena must shrink (the saved activations no longer
// live from the forward to the backward), full more than selective, the
// budget's fit its budget, and training must give the same bits, step for
// step and in the checkpoint, since recomputation runs the same kernels on
// the same values.
//
//===----------------------------------------------------------------------===//

#include "test/unit/TrainExecutableFixture.h"

#include <regex>

namespace kiln::test {
namespace {

class TrainExecutableCheckpointing : public TrainExecutable {
protected:
  static void SetUpTestSuite() { buildModels(/*precisions=*/false, /*checkpointing=*/true); }

  /// The planned arena bytes of `spec`'s training step (kilnc --emit=kernels).
  static int64_t arenaBytesOf(const std::string &spec) {
    const std::string out = tmp + "/kernels.mlir", err = tmp + "/kernels.err";
    RunResult r = waitFor(spawn({binDir + "/kilnc", spec, "--emit=kernels"}, out, err), out, err);
    EXPECT_EQ(r.exitCode, 0) << r.err;
    std::smatch m;
    static const std::regex arena("kiln_kernel\\.arena_bytes = ([0-9]+)");
    if (!std::regex_search(r.out, m, arena)) {
      ADD_FAILURE() << "no arena size in kilnc --emit=kernels of " << spec;
      return -1;
    }
    return std::stoll(m[1]);
  }

  static void checkRecomputationIsBitIdentical(const std::string &model) {
    const int64_t none = arenaBytesOf(root + "/models/" + model + ".json"),
                  selective = arenaBytesOf(specOf(model + "-selective")),
                  full = arenaBytesOf(specOf(model + "-full")),
                  budget = arenaBytesOf(specOf(model + "-budget"));
    std::printf("[%s] arena: %lld bytes without checkpointing, %lld with selective (%.1f%%), "
                "%lld with full (%.1f%%), %lld with the budget (%.1f%%)\n",
                model.c_str(), (long long)none, (long long)selective, 100.0 * selective / none,
                (long long)full, 100.0 * full / none, (long long)budget, 100.0 * budget / none);
    EXPECT_LT(selective, none) << "selective checkpointing must keep fewer activations";
    EXPECT_LT(full, selective) << "full checkpointing must keep fewer activations than selective";
    EXPECT_LE(budget, model == "r1-tiny" ? 2'000'000 : 1'100'000) << "the budget's arena";

    std::vector<std::vector<LogLine>> logs;
    std::vector<std::string> checkpoints;
    const std::vector<std::string> names = {model, model + "-selective", model + "-full",
                                            model + "-budget"};
    for (const std::string &name : names) {
      const std::string dir = freshDir("ckpt-" + name);
      trainOk(name, {"--data", corpus, "--steps", "10", "--log", dir + "/log.jsonl",
                     "--checkpoint-dir", dir + "/ckpt", "--checkpoint-every", "10", "--threads",
                     kThreads});
      logs.push_back(readLog(dir + "/log.jsonl"));
      checkpoints.push_back(readFile(dir + "/ckpt/step-00000010/model-00001-of-00001.safetensors") +
                            readFile(dir + "/ckpt/step-00000010/optimizer-00001-of-00001.safetensors"));
    }
    ASSERT_EQ(logs[0].size(), 10u);
    EXPECT_FALSE(checkpoints[0].empty());
    for (size_t run = 1; run < names.size(); ++run) {
      ASSERT_EQ(logs[run].size(), 10u) << names[run];
      for (size_t s = 0; s < 10; ++s)
        for (const char *field : {"loss", "grad_norm"})
          EXPECT_EQ(logs[run][s].at(field), logs[0][s].at(field))
              << names[run] << " step " << s + 1 << " " << field;
      EXPECT_TRUE(checkpoints[run] == checkpoints[0])
          << names[run] << ": the step-10 checkpoint (weights and moments) differs from "
          << model << "'s";
    }
  }
};

TEST_F(TrainExecutableCheckpointing, RecomputationIsBitIdenticalR1Tiny) {
  checkRecomputationIsBitIdentical("r1-tiny");
}
TEST_F(TrainExecutableCheckpointing, RecomputationIsBitIdenticalDenseTiny) {
  checkRecomputationIsBitIdentical("dense-tiny");
}

} // namespace
} // namespace kiln::test
