//===- TrainExecutableRampupTest.cpp - `train` with train.batch_rampup ----===//
//
// dense-tiny with 2 micro-batches of 4 rows and train.batch_rampup
// {start 4, increment 4, samples 8}: Megatron's schedule gives global
// batches 4, 4, 8, 8, ... (the size grows once 8 samples are consumed). The
// executable must train each step exactly as the program of that size
// does: its steps 1-2 bit for bit as plain dense-tiny (one micro-batch of
// 4 rows), and its steps 3-6 bit for bit as dense-tiny with 2 micro-batches
// resumed from its step-2 checkpoint (the data position included); a run
// resumed in the middle of the rampup is bit-exact, and the log says each
// step's global batch and the samples consumed before it.
//
//===----------------------------------------------------------------------===//

#include "test/unit/TrainExecutableFixture.h"

namespace kiln::test {
namespace {

class TrainExecutableRampup : public TrainExecutable {
protected:
  static void SetUpTestSuite() {
    buildModels(/*precisions=*/false, /*checkpointing=*/false);
    for (const bool ramp : {true, false}) {
      std::ifstream in(root + "/models/dense-tiny.json");
      json spec = json::parse(in);
      spec["parallel"] = {{"microbatches", 2}};
      if (ramp)
        spec["train"]["batch_rampup"] = {{"start", 4}, {"increment", 4}, {"samples", 8}};
      addProgram(ramp ? "dense-tiny-rampup" : "dense-tiny-mb2", spec.dump(2));
    }
  }
};

TEST_F(TrainExecutableRampup, EachStepTrainsAsTheProgramOfItsSize) {
  const std::string ramp = freshDir("ramp"), plain = freshDir("plain"),
                    mb2 = freshDir("mb2");
  trainOk("dense-tiny-rampup", {"--data", corpus, "--steps", "6", "--checkpoint-dir", ramp,
                                "--checkpoint-every", "2", "--log", ramp + "/log.jsonl",
                                "--threads", kThreads});
  trainOk("dense-tiny", {"--data", corpus, "--steps", "2", "--log", plain + "/log.jsonl",
                         "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> log = readLog(ramp + "/log.jsonl"),
                             one = readLog(plain + "/log.jsonl");
  ASSERT_EQ(log.size(), 6u);
  ASSERT_EQ(one.size(), 2u);
  // Megatron: 4 + int(consumed / 8) * 4 rows while consumed <= 8.
  const double globalBatch[] = {4, 4, 8, 8, 8, 8}, consumed[] = {0, 4, 8, 16, 24, 32};
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(number(log[i], "global_batch"), globalBatch[i]) << "step " << i + 1;
    EXPECT_EQ(number(log[i], "consumed_samples"), consumed[i]) << "step " << i + 1;
  }
  for (size_t i = 0; i < one.size(); ++i)
    EXPECT_EQ(compareLines(log[i], one[i]), "") << "step " << i + 1 << " vs plain dense-tiny";
  EXPECT_TRUE(one[0].find("global_batch") == one[0].end()) << "a run without a rampup";

  // Steps 3-6 from the rampup's step-2 checkpoint, by the 2-micro-batch
  // program: the same data position, the same updates.
  fs::copy(ramp + "/step-00000002", mb2 + "/step-00000002", fs::copy_options::recursive);
  writeFile(mb2 + "/latest", "step-00000002\n");
  trainOk("dense-tiny-mb2", {"--data", corpus, "--steps", "6", "--resume", "--checkpoint-dir",
                             mb2, "--log", mb2 + "/log.jsonl", "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> two = readLog(mb2 + "/log.jsonl");
  ASSERT_EQ(two.size(), 4u);
  for (size_t i = 0; i < two.size(); ++i)
    EXPECT_EQ(compareLines(log[i + 2], two[i]), "") << "step " << i + 3 << " vs 2 micro-batches";
  EXPECT_EQ(diffSnapshots(snapshot(ramp + "/step-00000006"), snapshot(mb2 + "/step-00000006")),
            "");
}

TEST_F(TrainExecutableRampup, ResumeInTheRampIsBitExact) {
  const std::string straight = freshDir("straight"), resumed = freshDir("resumed");
  trainOk("dense-tiny-rampup", {"--data", corpus, "--steps", "5", "--checkpoint-dir", straight,
                                "--log", straight + "/log.jsonl", "--threads", kThreads});
  // Stopped after step 1 (4 of the 8 ramp samples consumed), resumed to 5.
  trainOk("dense-tiny-rampup", {"--data", corpus, "--steps", "1", "--checkpoint-dir", resumed,
                                "--log", resumed + "/log.jsonl", "--threads", kThreads});
  trainOk("dense-tiny-rampup", {"--data", corpus, "--steps", "5", "--resume", "--checkpoint-dir",
                                resumed, "--log", resumed + "/log.jsonl", "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> a = readLog(straight + "/log.jsonl"),
                             b = readLog(resumed + "/log.jsonl");
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(compareLines(b[i], a[i]), "") << "step " << i + 1;
    EXPECT_EQ(b[i].at("global_batch"), a[i].at("global_batch")) << "step " << i + 1;
    EXPECT_EQ(b[i].at("consumed_samples"), a[i].at("consumed_samples")) << "step " << i + 1;
  }
  EXPECT_EQ(diffSnapshots(snapshot(straight + "/step-00000005"),
                          snapshot(resumed + "/step-00000005")),
            "");
}

} // namespace
} // namespace kiln::test
