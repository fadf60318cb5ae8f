//===- TrainExecutablePrecisionTest.cpp - `train` in bf16, fp16 and fp8 ---===//
//
// r1-tiny built with train.precision bf16, fp8 and fp16 and with bf16 AdamW
// moments (TrainExecutableFixture.h): resuming is bit-exact in each, the
// 20-step loss trajectories stay close to the f32 one, fp16's dynamic loss
// scaling follows GradScaler's rules and its skipped steps change no
// parameter or moment, and checkpoints do not depend on the moments'
// storage.
//
//===----------------------------------------------------------------------===//

#include "test/unit/TrainExecutableFixture.h"

// In the fixture's namespace: its checks are defined here.
namespace kiln::test {

TEST_F(TrainExecutable, ResumeIsBitExactInBf16) { checkResumeIsBitExact("r1-tiny-bf16"); }
TEST_F(TrainExecutable, ResumeIsBitExactInFp8) { checkResumeIsBitExact("r1-tiny-fp8"); }
// bf16 moments are checkpointed widened to f32 and narrowed back exactly.
TEST_F(TrainExecutable, ResumeIsBitExactWithBf16Moments) {
  checkResumeIsBitExact("r1-tiny-bf16-moments");
}
// The loss scaler's scale, growth tracker and update count are checkpoint
// state: resumed at step 10 (after skips, updates and a scale change) the
// run continues through the same skips and scale changes.
TEST_F(TrainExecutable, ResumeIsBitExactInFp16WithSkippedSteps) {
  checkResumeIsBitExact("r1-tiny-fp16-overflow");
}

// Mixed precision keeps f32 master weights, gradients and moments: the
// trajectory follows the f32 one closely without being it. The step-1
// losses differ only by the rounding of the GEMMs, and over 20 steps the gap
// stays within `bound` (measured, 2 threads: bf16 8.5e-4 at step 18; fp8
// 8.2e-4 with its experts in bf16, 1.6e-3 at step 18 since they are FP8 too).
void TrainExecutable::checkTracksFp32(const std::string &model, double bound,
                                      const std::string &reference) {
  const std::string dir = freshDir(model + "-vs-" + reference);
  trainOk(reference, {"--data", corpus, "--steps", "20", "--log", dir + "/f32.jsonl",
                      "--threads", kThreads});
  trainOk(model, {"--data", corpus, "--steps", "20", "--log", dir + "/low.jsonl", "--threads",
                  kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> f32 = readLog(dir + "/f32.jsonl"), low = readLog(dir + "/low.jsonl");
  ASSERT_EQ(f32.size(), 20u);
  ASSERT_EQ(low.size(), 20u);
  // Not the reference's numbers (moment storage shows from step 3 on: the
  // step-1 update uses the unrounded moments).
  EXPECT_NE(f32[19].at("loss"), low[19].at("loss"))
      << model << " computes " << reference << "'s numbers";
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < 20; ++i) {
    const double a = number(f32[i], "loss"), b = number(low[i], "loss");
    const double gap = std::fabs(b - a) / std::fabs(a);
    EXPECT_LE(gap, bound) << model << " step " << i + 1 << ": f32 " << a << ", " << b;
    if (!(gap <= worst))
      worst = gap, at = i + 1;
  }
  std::printf("[%s] vs f32 loss over 20 steps: step 1 %s vs %s, max relative gap %.3g "
              "(step %zu)\n",
              model.c_str(), low[0].at("loss").c_str(), f32[0].at("loss").c_str(), worst, at);
}

TEST_F(TrainExecutable, Bf16TracksFp32R1Tiny) { checkTracksFp32("r1-tiny-bf16", 5e-3); }
TEST_F(TrainExecutable, Fp8TracksFp32R1Tiny) { checkTracksFp32("r1-tiny-fp8", 5e-3); }
TEST_F(TrainExecutable, Fp16TracksFp32R1Tiny) { checkTracksFp32("r1-tiny-fp16", 5e-3); }
// bf16 moments against f32 moments, both with bf16 GEMMs (measured, 2
// threads: 2.8e-4 over 20 steps).
TEST_F(TrainExecutable, Bf16MomentsTrackF32Moments) {
  checkTracksFp32("r1-tiny-bf16-moments", 2e-3, "r1-tiny-bf16");
}

// Checkpoints hold f32 moments whatever the program keeps, so a run with
// bf16 moments resumes one written with f32 moments (rounding them) and the
// other way round (exactly), and both continue close to the uninterrupted
// run.
TEST_F(TrainExecutable, MomentStorageDoesNotTieCheckpoints) {
  const std::string dir = freshDir("moment-storage");
  trainOk("r1-tiny-bf16", {"--data", corpus, "--steps", "20", "--log", dir + "/whole.jsonl",
                           "--threads", kThreads});
  for (const auto &[first, second] :
       {std::pair<std::string, std::string>{"r1-tiny-bf16", "r1-tiny-bf16-moments"},
        {"r1-tiny-bf16-moments", "r1-tiny-bf16"}}) {
    const std::string ckpt = freshDir("moment-storage-" + first);
    trainOk(first, {"--data", corpus, "--steps", "10", "--checkpoint-dir", ckpt, "--threads",
                    kThreads});
    trainOk(second, {"--data", corpus, "--steps", "20", "--resume", "--checkpoint-dir", ckpt,
                     "--log", ckpt + "/resumed.jsonl", "--threads", kThreads});
    ASSERT_FALSE(HasFailure());
    const std::vector<LogLine> whole = readLog(dir + "/whole.jsonl"),
                               resumed = readLog(ckpt + "/resumed.jsonl");
    ASSERT_EQ(resumed.size(), 10u) << first << " -> " << second;
    double worst = 0;
    for (size_t i = 0; i < 10; ++i) {
      EXPECT_EQ(resumed[i].at("step"), whole[i + 10].at("step"));
      const double a = number(whole[i + 10], "loss"), b = number(resumed[i], "loss");
      worst = std::max(worst, std::fabs(b - a) / std::fabs(a));
    }
    std::printf("[%s -> %s] steps 11-20 within %.3g of the uninterrupted f32-moment run\n",
                first.c_str(), second.c_str(), worst);
    EXPECT_LE(worst, 2e-3) << first << " -> " << second;
  }
}

// Dynamic loss scaling follows torch GradScaler's rules step by step: from
// 2^26 the steps overflow (skipped, grad_norm not finite, the scale halved)
// until the scale fits; then each 3rd finite step in a row doubles
// the scale and each overflow halves it and restarts the count. The model
// still trains, and the default fp16 run (2^16) skips nothing.
TEST_F(TrainExecutable, Fp16LossScalingFollowsGradScaler) {
  const std::string dir = freshDir("fp16-scaler");
  trainOk("r1-tiny-fp16-overflow", {"--data", corpus, "--steps", "40", "--log",
                                    dir + "/over.jsonl", "--threads", kThreads});
  trainOk("r1-tiny-fp16", {"--data", corpus, "--steps", "20", "--log", dir + "/plain.jsonl",
                           "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> over = readLog(dir + "/over.jsonl"),
                             plain = readLog(dir + "/plain.jsonl");
  ASSERT_EQ(over.size(), 40u);
  ASSERT_EQ(plain.size(), 20u);
  double scale = std::ldexp(1.0, 26);
  int tracker = 0, skipped = 0, grown = 0;
  for (size_t i = 0; i < over.size(); ++i) {
    const LogLine &line = over[i];
    ASSERT_TRUE(line.count("loss_scale") && line.count("skipped")) << "step " << i + 1;
    EXPECT_EQ(number(line, "loss_scale"), scale) << "step " << i + 1;
    const bool skip = line.at("skipped") == "true";
    EXPECT_EQ(skip, !std::isfinite(number(line, "grad_norm"))) << "step " << i + 1;
    if (skip) {
      scale *= 0.5, tracker = 0, ++skipped;
    } else if (++tracker == 3) {
      scale *= 2, tracker = 0, ++grown;
    }
  }
  EXPECT_EQ(over[0].at("skipped"), "true") << "2^26 overflows fp16";
  EXPECT_GT(grown, 0) << "no scale growth in 40 steps";
  EXPECT_LT(number(over[39], "main_loss"), number(over[0], "main_loss") - 0.5);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i].at("skipped"), "false") << "step " << i + 1;
    EXPECT_EQ(number(plain[i], "loss_scale"), 65536.0) << "step " << i + 1;
  }
  std::printf("[r1-tiny fp16] from 2^26: %d of 40 steps skipped, the scale grew %d times, ends "
              "at %g; main loss %s -> %s\n",
              skipped, grown, scale, over[0].at("main_loss").c_str(),
              over[39].at("main_loss").c_str());
}

// A skipped step changes no parameter and no moment: the checkpoints after
// steps 1 and 2 (both overflowing) hold the initial parameters and zero
// moments, and only the scaler's state moved.
TEST_F(TrainExecutable, Fp16SkippedStepsLeaveTheStateUntouched) {
  const std::string dir = freshDir("fp16-skipped");
  trainOk("r1-tiny-fp16-overflow", {"--data", corpus, "--steps", "2", "--checkpoint-dir", dir,
                                    "--checkpoint-every", "1", "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  std::string error;
  std::map<std::string, std::vector<double>> first;
  for (const char *step : {"/step-00000001", "/step-00000002"}) {
    int moments = 0, params = 0;
    for (const auto &entry : fs::directory_iterator(dir + step)) {
      if (entry.path().extension() != ".safetensors")
        continue;
      auto reader = kiln::safetensors::Reader::open(entry.path().string(), error);
      ASSERT_TRUE(reader) << error;
      for (const auto &tensor : reader->tensors()) {
        std::vector<double> values;
        ASSERT_TRUE(reader->readAsDouble(tensor.name, values, error)) << error;
        if (tensor.name.rfind("optimizer.", 0) == 0) {
          ++moments;
          EXPECT_TRUE(std::all_of(values.begin(), values.end(), [](double v) { return v == 0; }))
              << step << ": " << tensor.name << " is not zero after skipped steps";
        } else {
          ++params;
          if (!first.count(tensor.name))
            first[tensor.name] = values;
          else
            EXPECT_TRUE(values == first[tensor.name]) << tensor.name << " changed in step 2";
        }
      }
      if (entry.path().filename().string().rfind("optimizer", 0) == 0) {
        const auto &meta = reader->metadata();
        EXPECT_EQ(meta.at("optimizer_updates"), "0") << step;
        EXPECT_EQ(meta.at("growth_tracker"), "0") << step;
        // 2^25 after one skip, 2^24 after two, as %.9g (which round-trips f32).
        EXPECT_EQ(meta.at("loss_scale"), std::string(step).back() == '1' ? "33554432" : "16777216")
            << step;
      }
    }
    EXPECT_GT(params, 10) << step;
    EXPECT_GT(moments, 10) << step;
  }
}

} // namespace kiln::test
