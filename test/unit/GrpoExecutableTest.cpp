//===- GrpoExecutableTest.cpp - GRPO executables: rollouts, updates, metrics
//
// Builds r1-tiny and dense-tiny with train.stage "grpo" (test/Reference/
// specs/grpo-*-exe.json: 2 prompts x 4 samples, beta 0.04, clip-higher, two
// updates per batch) and runs them:
//   - at the first update the policy is the sampler and the reference, so
//     with all rewards tied (a fresh model answers nothing right) the loss
//     and every gradient are exactly 0: the step's forward reproduces the
//     score program's log-probs bit for bit (ratio exactly 1, KL exactly 0);
//   - the metrics log carries GRPO's fields, and the same command writes the
//     same losses, rewards and metrics;
//   - resuming from a checkpoint continues bit-exactly (the reference model
//     is checkpointed; problems and sampling are seeded by step);
//   - --init-from starts GRPO from another stage's checkpoint of the model
//     (its MTP tensors left out), which also becomes the reference model;
//   - --data is refused, saying so;
//   - on dp 2 (mpirun) the rollouts are the one-rank run's, and the step on
//     fixed rollouts matches the PyTorch goldens.
//
//===----------------------------------------------------------------------===//

#include "test/unit/GradientStats.h"
#include "test/unit/TrainExecutableFixture.h"

using namespace kiln::test;

namespace {

class GrpoExecutable : public ::testing::TestWithParam<std::string> {
protected:
  inline static std::string root, binDir, tmp;
  inline static Sandbox sandbox;

  static void SetUpTestSuite() {
    root = KILN_SOURCE_DIR;
    binDir = std::string(KILN_BINARY_DIR) + "/bin";
    ::setenv("OMP_WAIT_POLICY", "passive", 0);
    sandbox = Sandbox::make("kiln-grpo");
    tmp = sandbox.dir;
  }
  static void TearDownTestSuite() { sandbox.remove(); }
  static RunResult run(const std::vector<std::string> &args) { return sandbox.run(args); }
  static std::string built(const std::string &model) {
    const std::string dir = tmp + "/" + model;
    if (fs::exists(dir + "/train"))
      return dir;
    std::vector<std::string> build = {
        binDir + "/kilnc", root + "/test/Reference/specs/grpo-" + model + "-exe.json", "-o", dir};
    RunResult b = run(build);
    EXPECT_EQ(b.exitCode, 0) << describe(build, b);
    return dir;
  }
};

TEST_P(GrpoExecutable, FirstUpdateIsExactlyOnPolicy) {
  ASSERT_FALSE(tmp.empty());
  const std::string dir = built(GetParam());
  std::vector<std::string> args = {dir + "/train", "--steps", "1", "--threads", kThreads,
                                   "--log", tmp + "/one.jsonl", "--save-grads",
                                   tmp + "/grads.safetensors"};
  RunResult r = run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  std::vector<LogLine> log = readLog(tmp + "/one.jsonl");
  ASSERT_EQ(log.size(), 1u);
  // A fresh model answers nothing right: every group ties, no advantage.
  ASSERT_EQ(number(log[0], "tied_groups"), 1.0);
  EXPECT_EQ(number(log[0], "loss"), 0.0);
  EXPECT_EQ(number(log[0], "kl"), 0.0);
  EXPECT_EQ(number(log[0], "grad_norm"), 0.0);
  std::string error;
  auto grads = kiln::safetensors::Reader::open(tmp + "/grads.safetensors", error);
  ASSERT_TRUE(grads) << error;
  size_t tensors = 0, nonzero = 0;
  for (const auto &t : grads->tensors()) {
    std::vector<double> values;
    ASSERT_TRUE(grads->readAsDouble(t.name, values, error)) << error;
    ++tensors;
    nonzero += std::any_of(values.begin(), values.end(), [](double v) { return v != 0.0; });
  }
  std::printf("[%s] step 1: loss %g, kl %g, grad_norm %g; %zu gradient tensors, %zu not all "
              "zero\n",
              GetParam().c_str(), number(log[0], "loss"), number(log[0], "kl"),
              number(log[0], "grad_norm"), tensors, nonzero);
  EXPECT_GT(tensors, 0u);
  EXPECT_EQ(nonzero, 0u);
}

TEST_P(GrpoExecutable, MetricsAreLoggedAndReproducible) {
  ASSERT_FALSE(tmp.empty());
  const std::string dir = built(GetParam());
  std::vector<std::vector<LogLine>> logs;
  for (int runIndex = 0; runIndex < 2; ++runIndex) {
    const std::string path = tmp + "/run" + std::to_string(runIndex) + ".jsonl";
    std::vector<std::string> args = {dir + "/train", "--steps", "3", "--threads", kThreads,
                                     "--log", path};
    RunResult r = run(args);
    ASSERT_EQ(r.exitCode, 0) << describe(args, r);
    logs.push_back(readLog(path));
  }
  ASSERT_EQ(logs[0].size(), 3u);
  for (const char *key : {"reward_mean", "reward_std", "accuracy", "format_rate",
                          "response_length", "kl", "clip_fraction", "tied_groups",
                          "generation_tokens_per_s"})
    EXPECT_TRUE(logs[0][0].count(key)) << key << " missing from the metrics log";
  for (size_t s = 0; s < logs[0].size(); ++s)
    for (const char *key : {"loss", "grad_norm", "reward_mean", "accuracy", "response_length",
                            "kl", "clip_fraction"})
      EXPECT_EQ(number(logs[0][s], key), number(logs[1][s], key))
          << key << " of step " << s + 1 << " differs between two runs";
  std::printf("[%s] step 3: loss %g, response length %g, kl %g, clip fraction %g\n",
              GetParam().c_str(), number(logs[0][2], "loss"),
              number(logs[0][2], "response_length"), number(logs[0][2], "kl"),
              number(logs[0][2], "clip_fraction"));
  // After the first update the policy has moved: the second update of
  // a batch sees ratios away from 1, and the KL to the reference grows.
  EXPECT_GT(number(logs[0][2], "kl"), 0.0);
}

TEST_P(GrpoExecutable, ResumeIsBitExact) {
  ASSERT_FALSE(tmp.empty());
  const std::string dir = built(GetParam());
  // 4 steps at once, and 2 + 2 through a checkpoint: the rollouts of steps
  // 3 and 4 depend on the parameters, the reference model (checkpointed),
  // and the seed and step (problems and sampling streams).
  auto train = [&](const std::string &ck, const std::string &logPath, const char *steps,
                   bool resume) {
    std::vector<std::string> args = {dir + "/train", "--steps", steps, "--threads", kThreads,
                                     "--checkpoint-dir", ck, "--log", logPath};
    if (resume)
      args.push_back("--resume");
    RunResult r = run(args);
    EXPECT_EQ(r.exitCode, 0) << describe(args, r);
  };
  train(tmp + "/ck-whole", tmp + "/whole.jsonl", "4", false);
  train(tmp + "/ck-split", tmp + "/split.jsonl", "2", false);
  train(tmp + "/ck-split", tmp + "/split.jsonl", "4", true);
  std::vector<LogLine> whole = readLog(tmp + "/whole.jsonl"), split = readLog(tmp + "/split.jsonl");
  ASSERT_EQ(whole.size(), 4u);
  ASSERT_EQ(split.size(), 4u);
  for (size_t s = 2; s < 4; ++s)
    for (const char *key : {"loss", "grad_norm", "reward_mean", "response_length", "kl",
                            "clip_fraction"})
      EXPECT_EQ(number(whole[s], key), number(split[s], key))
          << key << " of step " << s + 1 << " differs after resuming";
  auto a = snapshot(tmp + "/ck-whole/step-00000004"), b = snapshot(tmp + "/ck-split/step-00000004");
  EXPECT_EQ(a, b) << diffSnapshots(a, b);
  std::printf("[%s] steps 3-4 resumed: kl %g %g, loss %g %g; %zu checkpoint files equal\n",
              GetParam().c_str(), number(split[2], "kl"), number(split[3], "kl"),
              number(split[2], "loss"), number(split[3], "loss"), a.size());

}

/// Whether mpirun is installed (the data-parallel tests skip, saying so,
/// where it is not).
bool haveMpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

/// `spec` on dp 2 with the same global batch (micro_batch halved).
json specOnTwoRanks(json spec) {
  spec["parallel"] = {{"dp", 2}};
  spec["train"]["micro_batch"] = spec["train"]["micro_batch"].get<int64_t>() / 2;
  return spec;
}

/// `args` (a program and its arguments) on 2 ranks under mpirun, ended by
/// `timeout` if it hangs.
std::vector<std::string> onTwoRanks(const std::vector<std::string> &args) {
  std::vector<std::string> all = {"/usr/bin/timeout", "120",  "/usr/bin/mpirun",
                                  "--allow-run-as-root", "--oversubscribe", "-np", "2"};
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

// dp 2 (mpirun): each rank samples half the prompts, whole groups, with the
// streams one rank sampling all of them uses (seeded by the global prompt
// index), so the rollouts and their metrics are the one-rank run's; the
// updates match to float rounding (the gradient sums over ranks).
TEST(GrpoExecutableDataParallel, RolloutsAreTheOneRankRuns) {
  if (!haveMpirun())
    GTEST_SKIP() << "mpirun is not installed; the data-parallel GRPO run is not run";
  const std::string root = KILN_SOURCE_DIR, binDir = std::string(KILN_BINARY_DIR) + "/bin";
  Sandbox sandbox = Sandbox::make("kiln-grpo-dp-run");
  ASSERT_FALSE(sandbox.dir.empty());
  const std::string tmp = sandbox.dir;
  std::ifstream in(root + "/test/Reference/specs/grpo-dense-exe.json");
  writeFile(tmp + "/dp.json", specOnTwoRanks(json::parse(in)).dump());
  for (const auto &[source, dir] : {std::pair{root + "/test/Reference/specs/grpo-dense-exe.json",
                                              tmp + "/one"},
                                    std::pair{tmp + "/dp.json", tmp + "/two"}}) {
    std::vector<std::string> args = {binDir + "/kilnc", source, "-o", dir};
    RunResult r = sandbox.run(args);
    ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  }
  std::vector<std::string> one = {tmp + "/one/train", "--steps", "3", "--threads", "1",
                                  "--log", tmp + "/one.jsonl"};
  std::vector<std::string> two = onTwoRanks({tmp + "/two/train", "--steps", "3", "--threads",
                                            "1", "--log", tmp + "/two.jsonl"});
  for (const auto &args : {one, two}) {
    RunResult r = sandbox.run(args);
    ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  }
  const std::vector<LogLine> a = readLog(tmp + "/one.jsonl"), b = readLog(tmp + "/two.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    for (const char *key : {"reward_mean", "reward_std", "accuracy", "format_rate",
                            "response_length", "tied_groups"})
      EXPECT_EQ(number(a[s], key), number(b[s], key)) << key << " of step " << s + 1;
    const double norm = number(a[s], "grad_norm");
    EXPECT_LE(std::fabs(number(b[s], "grad_norm") - norm), 1e-3 * norm + 1e-12)
        << "grad_norm of step " << s + 1;
  }
  // Resumed after step 2 on both ranks (each rank's reference model is in
  // the checkpoint): step 3 as the straight run's, bit for bit.
  std::vector<std::string> split = two;
  split[split.size() - 1] = tmp + "/split.jsonl";
  split[9] = "2";
  split.insert(split.end(), {"--checkpoint-dir", tmp + "/ck"});
  std::vector<std::string> resumed = split;
  resumed[9] = "3";
  resumed.push_back("--resume");
  for (const auto &args : {split, resumed}) {
    RunResult r = sandbox.run(args);
    ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  }
  const std::vector<LogLine> c = readLog(tmp + "/split.jsonl");
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(compareLines(c[2], b[2]), "") << "step 3 after resuming on dp 2";
  EXPECT_EQ(number(b[0], "loss"), 0.0) << "the first update is on-policy on every rank";
  EXPECT_EQ(number(b[0], "kl"), 0.0);
  std::printf("dp 2 vs 1: step 3 grad norm %.9g vs %.9g, kl %.6g vs %.6g\n",
              number(b[2], "grad_norm"), number(a[2], "grad_norm"), number(b[2], "kl"),
              number(a[2], "kl"));
  sandbox.remove();
}

TEST_P(GrpoExecutable, InitFromAnotherStage) {
  ASSERT_FALSE(tmp.empty());
  const std::string dir = built(GetParam());
  // A pretraining run of the same model (with MTP for r1-tiny, which GRPO
  // does not build), 3 steps, then GRPO warm-started from it.
  const std::string model = GetParam() == "r1" ? "r1-tiny" : "dense-tiny";
  const std::string pre = tmp + "/pre-" + GetParam();
  std::vector<std::string> args = {binDir + "/kilnc", root + "/models/" + model + ".json", "-o",
                                   pre};
  RunResult r = run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  args = {pre + "/train", "--steps", "3", "--threads", kThreads, "--checkpoint-dir", pre + "/ck"};
  r = run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  args = {dir + "/train", "--steps", "1", "--threads", kThreads, "--init-from", pre + "/ck",
          "--log", tmp + "/warm.jsonl", "--checkpoint-dir", tmp + "/warm-ck"};
  r = run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  EXPECT_NE(r.err.find("initialised"), std::string::npos) << r.err;
  if (GetParam() == "r1") {
    EXPECT_NE(r.err.find("this model does not have were left out"), std::string::npos) << r.err;
  }
  // The reference is the warm-started model: no KL at the first update.
  std::vector<LogLine> log = readLog(tmp + "/warm.jsonl");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(number(log[0], "kl"), 0.0);
  // The GRPO run's parameters started from the pretrained ones: one AdamW
  // step (warmup lr 1.5e-4) from them, where the pretrained ones are three
  // (1.5e-4 + 3e-4 + 4.5e-4) from the seeded initial model (kilnc
  // --save-params); a run that ignored --init-from would be ~1e-3 away.
  args = {binDir + "/kilnc", root + "/models/" + model + ".json", "--save-params",
          pre + "/init.safetensors"};
  ASSERT_EQ(run(args).exitCode, 0);
  std::string error;
  auto read = [&](const std::string &path, std::vector<double> &out) {
    auto reader = kiln::safetensors::Reader::open(path, error);
    return reader && reader->readAsDouble("model.embed_tokens.weight", out, error);
  };
  std::vector<double> warm, pretrained, initial;
  ASSERT_TRUE(read(tmp + "/warm-ck/step-00000001/model-00001-of-00001.safetensors", warm) &&
              read(pre + "/ck/step-00000003/model-00001-of-00001.safetensors", pretrained) &&
              read(pre + "/init.safetensors", initial))
      << error;
  double fromPretrained = 0, pretrainedFromInitial = 0;
  for (size_t i = 0; i < warm.size(); ++i) {
    fromPretrained = std::max(fromPretrained, std::fabs(warm[i] - pretrained[i]));
    pretrainedFromInitial = std::max(pretrainedFromInitial, std::fabs(pretrained[i] - initial[i]));
  }
  std::printf("[%s] warm start: embed_tokens after one GRPO step within %g of the pretrained "
              "model, which is %g from the initial one\n",
              GetParam().c_str(), fromPretrained, pretrainedFromInitial);
  EXPECT_LT(fromPretrained, 0.25 * pretrainedFromInitial);

  // Another model's checkpoint is refused, naming a missing tensor.
  const std::string other = GetParam() == "r1" ? "dense-tiny" : "r1-tiny";
  args = {binDir + "/kilnc", root + "/models/" + other + ".json", "-o", tmp + "/other"};
  ASSERT_EQ(run(args).exitCode, 0);
  args = {tmp + "/other/train", "--steps", "1", "--threads", kThreads, "--checkpoint-dir",
          tmp + "/other/ck"};
  ASSERT_EQ(run(args).exitCode, 0);
  args = {dir + "/train", "--steps", "1", "--init-from", tmp + "/other/ck"};
  r = run(args);
  EXPECT_EQ(r.exitCode, 1) << describe(args, r);
  EXPECT_NE(r.err.find("expected a checkpoint of this model"), std::string::npos) << r.err;
  fs::remove_all(tmp + "/other");
}

// R1's cold start: SFT on answers written <think>steps</think><answer>n</answer>
// (--corpus-format reasoning), the loss on the answers alone.
TEST_P(GrpoExecutable, SftColdStartOnReasoningAnswers) {
  ASSERT_FALSE(tmp.empty());
  const std::string model = GetParam() == "r1" ? "r1-tiny" : "dense-tiny";
  const std::string spec = tmp + "/sft-" + GetParam() + ".json";
  std::string text = readFile(root + "/models/" + model + ".json");
  const std::string from = "\"stage\": \"pretrain\"";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "\"stage\": \"sft\"");
  writeFile(spec, text);
  const std::string dir = tmp + "/sft-" + GetParam() + "-exe";
  std::vector<std::string> args = {binDir + "/kilnc", spec, "-o", dir};
  ASSERT_EQ(run(args).exitCode, 0);
  std::vector<double> losses;
  for (const char *format : {"plain", "reasoning"}) {
    const std::string log = tmp + "/sft-" + format + ".jsonl";
    args = {dir + "/train", "--steps", "2", "--threads", kThreads, "--corpus-format", format,
            "--log", log};
    RunResult r = run(args);
    ASSERT_EQ(r.exitCode, 0) << describe(args, r);
    EXPECT_EQ(r.err.find("reasoning answers") != std::string::npos,
              std::string(format) == "reasoning")
        << r.err;
    losses.push_back(number(readLog(log)[0], "loss"));
  }
  std::printf("[%s] SFT step-1 loss on plain answers %g, on reasoning answers %g\n",
              GetParam().c_str(), losses[0], losses[1]);
  EXPECT_NE(losses[0], losses[1]);
}

TEST_P(GrpoExecutable, RefusesWhatIsNotBuiltYet) {
  ASSERT_FALSE(tmp.empty());
  const std::string dir = built(GetParam());
  std::vector<std::string> args = {dir + "/train", "--steps", "1", "--data", tmp + "/none.bin"};
  RunResult r = run(args);
  EXPECT_EQ(r.exitCode, 1) << describe(args, r);
  EXPECT_NE(r.err.find("GRPO run samples its rollouts"), std::string::npos) << r.err;
}

// The executable's GRPO step (f32 kernels) on the fixed rollouts of the
// PyTorch goldens (test/Reference/goldens/*.grpo-*.json, written from
// DeepSeekMath eq. 3 by models/reference/grpo.py): the loss and every
// parameter's gradient statistics within 1e-4, for every aggregation and
// both advantage options (GrpoGoldenTest checks the same goldens on the f64
// evaluator at 1e-9).
class GrpoGoldenExecutable : public ::testing::TestWithParam<std::string> {};

TEST_P(GrpoGoldenExecutable, StepMatchesPyTorch) {
  const std::string root = KILN_SOURCE_DIR, binDir = std::string(KILN_BINARY_DIR) + "/bin";
  Sandbox sandbox = Sandbox::make("kiln-grpo-golden");
  ASSERT_FALSE(sandbox.dir.empty());
  const std::string tmp = sandbox.dir;
  std::ifstream in(root + "/test/Reference/goldens/" + GetParam() + ".json");
  ASSERT_TRUE(in) << GetParam();
  const json golden = json::parse(in);
  writeFile(tmp + "/spec.json", golden["spec"].dump());
  writeFile(tmp + "/rollouts.json", golden["inputs"].dump());
  std::vector<std::string> args = {binDir + "/kilnc", tmp + "/spec.json", "-o", tmp + "/exe"};
  RunResult r = sandbox.run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  args = {tmp + "/exe/train", "--steps", "1", "--threads", kThreads, "--rollouts",
          tmp + "/rollouts.json", "--log", tmp + "/log.jsonl", "--save-grads",
          tmp + "/grads.safetensors"};
  r = sandbox.run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  const double loss = number(readLog(tmp + "/log.jsonl").at(0), "loss");
  const double want = golden["loss"].get<double>();
  const double lossError = std::fabs(loss - want) / std::fabs(want);
  EXPECT_LE(lossError, kTolerance) << "loss: kiln " << loss << ", pytorch " << want;

  std::string error;
  auto reader = kiln::safetensors::Reader::open(tmp + "/grads.safetensors", error);
  ASSERT_TRUE(reader) << error;
  Worst sums, squares, firsts;
  size_t compared = 0;
  for (const auto &[name, stats] : golden["grads"].items()) {
    if (!reader->find(name)) {
      EXPECT_EQ(stats["abs_sum"].get<double>(), 0.0) << name << " has no gradient in Kiln";
      continue;
    }
    const std::vector<int64_t> shape = stats["shape"].get<std::vector<int64_t>>();
    std::vector<double> values;
    ASSERT_TRUE(reader->readAsDouble(name, values, error, &shape)) << error;
    compareStats(name, statsOf(name, values.data(), int64_t(values.size())), stats, sums, squares,
                 firsts);
    ++compared;
  }
  std::printf("[%s] loss kiln %.9g pytorch %.9g (%.2g); %zu gradients, worst sum %.2g (%s), "
              "sq_sum %.2g, first %.2g\n",
              GetParam().c_str(), loss, want, lossError, compared, sums.error,
              sums.where.c_str(), squares.error, firsts.error);
  EXPECT_GT(compared, 0u);
  EXPECT_LE(sums.error, kTolerance) << sums.where;
  EXPECT_LE(squares.error, kTolerance) << squares.where;
  EXPECT_LE(firsts.error, kTolerance) << firsts.where;
  sandbox.remove();
}

// The same goldens' step on dp 2 (mpirun): each rank reads its rows of the
// rollouts, the loss is normalised over the global batch (kiln-data-
// parallel), so the loss and the gradient norm (sqrt of the golden's summed
// squares) are the one-rank step's, within 1e-4 of PyTorch.
class GrpoGoldenDataParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(GrpoGoldenDataParallel, StepMatchesPyTorch) {
  if (!haveMpirun())
    GTEST_SKIP() << "mpirun is not installed; the data-parallel GRPO step is not run";
  const std::string root = KILN_SOURCE_DIR, binDir = std::string(KILN_BINARY_DIR) + "/bin";
  Sandbox sandbox = Sandbox::make("kiln-grpo-dp");
  ASSERT_FALSE(sandbox.dir.empty());
  const std::string tmp = sandbox.dir;
  std::ifstream in(root + "/test/Reference/goldens/" + GetParam() + ".json");
  ASSERT_TRUE(in) << GetParam();
  const json golden = json::parse(in);
  writeFile(tmp + "/spec.json", specOnTwoRanks(golden["spec"]).dump());
  writeFile(tmp + "/rollouts.json", golden["inputs"].dump());
  std::vector<std::string> args = {binDir + "/kilnc", tmp + "/spec.json", "-o", tmp + "/exe"};
  RunResult r = sandbox.run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  args = onTwoRanks({tmp + "/exe/train", "--steps", "1", "--threads", "1", "--rollouts",
                     tmp + "/rollouts.json", "--log", tmp + "/log.jsonl"});
  r = sandbox.run(args);
  ASSERT_EQ(r.exitCode, 0) << describe(args, r);
  const LogLine line = readLog(tmp + "/log.jsonl").at(0);
  double squares = 0;
  for (const auto &[name, stats] : golden["grads"].items())
    squares += stats["sq_sum"].get<double>();
  const double loss = number(line, "loss"), want = golden["loss"].get<double>();
  const double norm = number(line, "grad_norm"), wantNorm = std::sqrt(squares);
  std::printf("[%s, dp 2] loss kiln %.9g pytorch %.9g; grad norm kiln %.9g pytorch %.9g\n",
              GetParam().c_str(), loss, want, norm, wantNorm);
  EXPECT_LE(std::fabs(loss - want) / std::fabs(want), kTolerance);
  EXPECT_LE(std::fabs(norm - wantNorm) / wantNorm, kTolerance);
  sandbox.remove();
}

INSTANTIATE_TEST_SUITE_P(Goldens, GrpoGoldenDataParallel,
                         ::testing::Values("dense-tiny.grpo-token-mean",
                                           "r1-tiny.grpo-seq-mean-token-mean"),
                         [](const auto &info) {
                           std::string name = info.param;
                           for (char &c : name)
                             if (c == '-' || c == '.')
                               c = '_';
                           return name;
                         });

INSTANTIATE_TEST_SUITE_P(
    Goldens, GrpoGoldenExecutable,
    ::testing::Values("r1-tiny.grpo-token-mean", "r1-tiny.grpo-seq-mean-token-mean",
                      "r1-tiny.grpo-seq-mean-token-sum-norm", "r1-tiny.grpo-dr-grpo",
                      "dense-tiny.grpo-token-mean", "dense-tiny.grpo-seq-mean-token-mean",
                      "dense-tiny.grpo-seq-mean-token-sum-norm", "dense-tiny.grpo-dr-grpo"),
    [](const auto &info) {
      std::string name = info.param;
      for (char &c : name)
        if (c == '-' || c == '.')
          c = '_';
      return name;
    });

INSTANTIATE_TEST_SUITE_P(Models, GrpoExecutable, ::testing::Values("r1", "dense"),
                         [](const auto &info) { return info.param; });

} // namespace
