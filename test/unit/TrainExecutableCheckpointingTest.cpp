//===- TrainExecutableCheckpointingTest.cpp - `train` with recomputation ---===//
//
// r1-tiny and dense-tiny built with train.checkpointing "full"
// (kiln-activation-checkpointing) against the same specs without: the
// planned arena must shrink (the saved activations no longer live from the
// forward to the backward), and training must give the same bits, step for
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

  static void checkFullIsBitIdentical(const std::string &model) {
    const int64_t none = arenaBytesOf(root + "/models/" + model + ".json"),
                  full = arenaBytesOf(tmp + "/" + model + "-full.json");
    std::printf("[%s] arena: %lld bytes without checkpointing, %lld with full (%.1f%%)\n",
                model.c_str(), (long long)none, (long long)full, 100.0 * full / none);
    EXPECT_LT(full, none) << "full checkpointing must keep fewer activations";

    std::vector<std::vector<LogLine>> logs;
    std::vector<std::string> checkpoints;
    for (const std::string &name : {model, model + "-full"}) {
      const std::string dir = freshDir("ckpt-" + name);
      trainOk(name, {"--data", corpus, "--steps", "10", "--log", dir + "/log.jsonl",
                     "--checkpoint-dir", dir + "/ckpt", "--checkpoint-every", "10", "--threads",
                     kThreads});
      logs.push_back(readLog(dir + "/log.jsonl"));
      checkpoints.push_back(readFile(dir + "/ckpt/step-00000010/model-00001-of-00001.safetensors") +
                            readFile(dir + "/ckpt/step-00000010/optimizer-00001-of-00001.safetensors"));
    }
    ASSERT_EQ(logs[0].size(), 10u);
    ASSERT_EQ(logs[1].size(), 10u);
    for (size_t s = 0; s < 10; ++s)
      for (const char *field : {"loss", "grad_norm"})
        EXPECT_EQ(logs[1][s].at(field), logs[0][s].at(field))
            << model << " step " << s + 1 << " " << field;
    EXPECT_FALSE(checkpoints[0].empty());
    EXPECT_TRUE(checkpoints[0] == checkpoints[1])
        << model << ": the step-10 checkpoints (weights and moments) differ";
  }
};

TEST_F(TrainExecutableCheckpointing, FullIsBitIdenticalR1Tiny) { checkFullIsBitIdentical("r1-tiny"); }
TEST_F(TrainExecutableCheckpointing, FullIsBitIdenticalDenseTiny) {
  checkFullIsBitIdentical("dense-tiny");
}

} // namespace
} // namespace kiln::test
