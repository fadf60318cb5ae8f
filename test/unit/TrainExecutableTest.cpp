//===- TrainExecutableTest.cpp - the generated `train` executable, end to end
//
// Drives real executables built by `kilnc SPEC -o DIR` (r1-tiny, dense-tiny;
// the fixture is TrainExecutableFixture.h):
//  1. 20 steps against the float32 PyTorch trajectory goldens
//     (test/Reference/goldens/*.trajectory.json): per-step loss, main_loss,
//     lr, grad_norm, and the step-1 gradients (--save-grads) through the
//     per-tensor statistics of models/reference/training.py stats();
//  2. resuming from a checkpoint is bit-exact (jsonl and checkpoint bytes);
//  3. two runs with the same seed and thread count are identical.
// The mixed-precision runs are in TrainExecutablePrecisionTest.cpp, bad
// inputs and SIGKILL during checkpoints in TrainExecutableBadInputTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "test/unit/TrainExecutableFixture.h"

// In the fixture's namespace: its checks are defined here.
namespace kiln::test {

//===----------------------------------------------------------------------===//
// 1. Trajectory and step-1 gradients vs PyTorch
//===----------------------------------------------------------------------===//

void TrainExecutable::checkTrajectory(const std::string &model) {
  std::ifstream in(root + "/test/Reference/goldens/" + model + ".trajectory.json");
  ASSERT_TRUE(in) << "missing trajectory golden for " << model;
  const json golden = json::parse(in);
  const std::string dir = freshDir("trajectory-" + model);
  const std::string log = dir + "/log.jsonl", grads = dir + "/g.safetensors";
  std::string what;
  RunResult r = train(model,
                      {"--data", corpus, "--steps", "20", "--log", log, "--save-grads", grads,
                       "--threads", kThreads},
                      &what);
  ASSERT_EQ(r.exitCode, 0) << what;

  // Per-step metrics.
  const std::vector<LogLine> lines = readLog(log);
  const json &steps = golden["steps"];
  ASSERT_EQ(lines.size(), steps.size()) << log;
  struct Field {
    const char *key;
    double worst = 0;
    uint64_t at = 0;
  } fields[] = {{"loss"}, {"main_loss"}, {"lr"}, {"grad_norm"}};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(number(lines[i], "step"), double(i + 1)) << log << " line " << i + 1;
    for (Field &f : fields) {
      const double got = number(lines[i], f.key), want = steps[i][f.key].get<double>();
      double e = std::fabs(got - want) / std::fabs(want);
      if (std::isnan(e))
        e = INFINITY;
      if (i == 0)
        std::printf("[%s] step 1 %s: kiln %.10g  pytorch %.10g\n", model.c_str(), f.key, got, want);
      EXPECT_LE(e, kTolerance) << model << " step " << i + 1 << " " << f.key << ": kiln " << got
                               << ", pytorch " << want;
      if (e > f.worst)
        f.worst = e, f.at = i + 1;
    }
  }
  for (const Field &f : fields)
    std::printf("[%s] max relative error over %zu steps: %-9s %.3g (step %llu)\n", model.c_str(),
                lines.size(), f.key, f.worst, (unsigned long long)f.at);

  // Step-1 gradients.
  std::string error;
  auto reader = kiln::safetensors::Reader::open(grads, error);
  ASSERT_TRUE(reader) << error;
  const json &want = golden["grads_step1"];
  Worst sums, squares, firsts;
  size_t compared = 0;
  for (const auto &[name, stats] : want.items()) {
    if (!reader->find(name)) {
      // Not trainable (the DeepSeek e_score_correction_bias): the golden
      // lists it with an all-zero gradient.
      EXPECT_EQ(stats["abs_sum"].get<double>(), 0.0)
          << grads << ": no gradient for '" << name << "', which the golden has as nonzero";
      continue;
    }
    const std::vector<int64_t> shape = stats["shape"].get<std::vector<int64_t>>();
    std::vector<double> values;
    ASSERT_TRUE(reader->readAsDouble(name, values, error, &shape)) << error;
    const Stats got = statsOf(name, values.data(), int64_t(values.size()));
    if (compared == 0)
      std::printf("[%s] d %s first values: kiln %.10g %.10g  pytorch %.10g %.10g\n", model.c_str(),
                  name.c_str(), got.first[0], got.first[1], stats["first"][0].get<double>(),
                  stats["first"][1].get<double>());
    compareStats(name, got, stats, sums, squares, firsts);
    ++compared;
  }
  EXPECT_EQ(reader->tensors().size(), compared) << grads << " has tensors the golden lacks";
  std::printf("[%s] step-1 gradients of %zu tensors, max relative error: sum/abs_sum/proj %.3g "
              "(%s), sq_sum %.3g (%s), first values %.3g (%s)\n",
              model.c_str(), compared, sums.error, sums.where.c_str(), squares.error,
              squares.where.c_str(), firsts.error, firsts.where.c_str());
  EXPECT_LE(sums.error, kTolerance) << sums.where;
  EXPECT_LE(squares.error, kTolerance) << squares.where;
  EXPECT_LE(firsts.error, kTolerance) << firsts.where;
}

TEST_F(TrainExecutable, TrajectoryMatchesPyTorchR1Tiny) { checkTrajectory("r1-tiny"); }
TEST_F(TrainExecutable, TrajectoryMatchesPyTorchDenseTiny) { checkTrajectory("dense-tiny"); }

//===----------------------------------------------------------------------===//
// 2. Resume is bit-exact
//===----------------------------------------------------------------------===//

void TrainExecutable::checkResumeIsBitExact(const std::string &model) {
  const std::string a = freshDir("resume-a-" + model), b = freshDir("resume-b-" + model);
  trainOk(model, {"--data", corpus, "--steps", "20", "--checkpoint-dir", a,
                      "--checkpoint-every", "10", "--log", a + "/log.jsonl", "--threads",
                      kThreads});
  trainOk(model, {"--data", corpus, "--steps", "10", "--checkpoint-dir", b, "--log",
                      b + "/log.jsonl", "--threads", kThreads});
  trainOk(model, {"--data", corpus, "--steps", "20", "--resume", "--checkpoint-dir", b,
                      "--checkpoint-every", "10", "--log", b + "/log.jsonl", "--threads",
                      kThreads});
  ASSERT_FALSE(HasFailure());

  const std::vector<LogLine> la = readLog(a + "/log.jsonl"), lb = readLog(b + "/log.jsonl");
  ASSERT_EQ(la.size(), 20u);
  ASSERT_EQ(lb.size(), 20u) << "the resumed run appends steps 11-20 to the log";
  for (size_t i = 0; i < 20; ++i)
    EXPECT_EQ(compareLines(lb[i], la[i]), "") << "step " << i + 1;
  std::printf("step 20 loss: uninterrupted %s, resumed at 10 %s\n", la[19].at("loss").c_str(),
              lb[19].at("loss").c_str());

  for (const char *step : {"/step-00000010", "/step-00000020"}) {
    const auto fa = snapshot(a + step), fb = snapshot(b + step);
    ASSERT_EQ(fa.size(), 3u) << a + step << ": model, optimizer and index files";
    EXPECT_EQ(diffSnapshots(fa, fb), "") << a + step << " and " << b + step << " differ";
  }
  EXPECT_EQ(readFile(a + "/latest"), readFile(b + "/latest"));
}

TEST_F(TrainExecutable, ResumeIsBitExact) { checkResumeIsBitExact("r1-tiny"); }
//===----------------------------------------------------------------------===//
// 3. Determinism
//===----------------------------------------------------------------------===//

// --profile times every kernel without changing a bit of the training, and
// prints one row per kernel (calls per step, ms per step, share of the step).
TEST_F(TrainExecutable, ProfileTimesKernelsWithoutChangingNumbers) {
  const std::string dir = freshDir("profile");
  trainOk("r1-tiny", {"--steps", "5", "--threads", kThreads, "--log", dir + "/plain.jsonl"});
  std::string what;
  RunResult r = train("r1-tiny", {"--steps", "5", "--threads", kThreads, "--log",
                                  dir + "/profiled.jsonl", "--profile"},
                      &what);
  ASSERT_EQ(r.exitCode, 0) << what;
  const std::vector<LogLine> plain = readLog(dir + "/plain.jsonl"),
                             profiled = readLog(dir + "/profiled.jsonl");
  ASSERT_EQ(plain.size(), 5u);
  ASSERT_EQ(profiled.size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    for (const char *key : {"loss", "main_loss", "grad_norm"})
      EXPECT_EQ(profiled[i].at(key), plain[i].at(key)) << key << " at step " << i + 1;
  EXPECT_NE(r.err.find("kernel profile (rank 0, 5 steps, "), std::string::npos) << r.err;
  // r1-tiny: 3 MoE layer calls (2 decoder layers, MTP) x 3 grouped GEMMs.
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\\n  grouped_matmul +9\\.0 +[0-9.]+ +[0-9.]+%")))
      << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\\n  adamw +[0-9]+\\.0 "))) << r.err;
  EXPECT_NE(r.err.find("(outside kernels)"), std::string::npos) << r.err;
}

TEST_F(TrainExecutable, SameSeedAndThreadsIsDeterministic) {
  const std::string dir = freshDir("determinism");
  // The built-in synthetic corpus (from --seed) and a token file.
  for (bool synthetic : {true, false}) {
    std::vector<std::string> logs;
    for (int run = 0; run < 2; ++run) {
      logs.push_back(dir + "/" + (synthetic ? "synthetic" : "file") + std::to_string(run) +
                     ".jsonl");
      std::vector<std::string> args{"--steps", "20", "--seed", "7", "--threads", kThreads,
                                    "--log", logs.back()};
      if (!synthetic)
        args.insert(args.end(), {"--data", corpus});
      trainOk("r1-tiny", args);
    }
    const std::vector<LogLine> l0 = readLog(logs[0]), l1 = readLog(logs[1]);
    ASSERT_EQ(l0.size(), 20u) << logs[0];
    ASSERT_EQ(l1.size(), 20u) << logs[1];
    for (size_t i = 0; i < l0.size(); ++i)
      EXPECT_EQ(compareLines(l1[i], l0[i]), "")
          << logs[1] << " vs " << logs[0] << " step " << i + 1;
    std::printf("%s corpus: step 20 loss %s / %s, grad_norm %s / %s\n",
                synthetic ? "synthetic" : "token-file", l0[19].at("loss").c_str(),
                l1[19].at("loss").c_str(), l0[19].at("grad_norm").c_str(),
                l1[19].at("grad_norm").c_str());
  }
}

} // namespace kiln::test
