//===- PipelineExecutableTest.cpp - pipeline stages' executables under mpirun --===//
//
// `kilnc -o` builds a pp > 1 spec into one `train` holding every stage's
// program; under `mpirun --oversubscribe` rank r runs stage r / dp's, meeting
// its neighbours in the step's sends and receives. The layouts are
// MultiRankExecutableFixture.h's kPipelineLayouts, each one global batch of 8
// rows, against one process over the same rows:
//  1. 20 steps of every schedule (1F1B, ZB-H1, GPipe on pp 2 x dp 2, ZB-H1
//     on pp 2 x dp 2 with ZeRO-1, DualPipeV, ZB-V, interleaved 1F1B) give one
//     process's losses, gradient norms
//     and learning rates (<= 1e-5 relative);
//  2. the step-1 gradients agree, read from a step-1 checkpoint (exp_avg is
//     (1 - beta1) x the clipped gradient): every stage's, and the shared
//     embedding's, which two stages hold and sum between them (or, with the
//     V shape, one rank holds both of its uses);
//  3. checkpoints hold the whole model by name, so they resume on any
//     layout: pp 2 -> pp 2 bit-exactly (every file of step 20 equal to an
//     uninterrupted run's), pp 2 -> one process, pp 2 x dp 2 and its ZeRO-1,
//     that ZeRO-1 -> one process, one process -> pp 2, DualPipeV -> one
//     process, all continuing one process's trajectory;
//  4. 2:4 sparsity trains through the stages as in one process;
//  5. `train --trace` writes one Chrome trace holding every rank's actions.
//
//===----------------------------------------------------------------------===//

#include "test/unit/MultiRankExecutableFixture.h"

#include <set>
#include <tuple>

namespace kiln::test::multirank {
namespace {

const Layout &layoutNamed(const std::string &name) {
  for (const Layout &l : kPipelineLayouts)
    if (l.name == name)
      return l;
  std::abort(); // a typo in this file
}

/// The one-process layout a pipeline layout is compared with: the same
/// model (layer count), all 8 rows in one micro-batch.
const Layout &referenceOf(const Layout &l) {
  return l.model.is_null() ? kLayouts[0] : layoutNamed("dp1layers4");
}

TEST_P(MultiRankExecutable, PipelineSchedulesFollowOneProcess) {
  std::map<std::string, std::vector<json>> references;
  for (const Layout &l : kPipelineLayouts) {
    if (l.parallel.is_null())
      continue;
    const Layout &ref = referenceOf(l);
    if (!references.count(ref.name)) {
      references[ref.name] = trainLogged(ref, 20);
      ASSERT_EQ(references[ref.name].size(), 20u) << ref.name;
    }
    const std::vector<json> &want = references[ref.name];
    const std::vector<json> got = trainLogged(l, 20);
    ASSERT_EQ(got.size(), 20u) << l.name;
    double worst = 0;
    for (size_t s = 0; s < 20; ++s)
      for (const char *key : {"loss", "main_loss", "grad_norm", "lr"})
        worst = std::max(worst, relative(got[s][key], want[s][key]));
    std::printf("[%s %s] 20 steps: loss %.7f -> %.7f (%s %.7f -> %.7f), max relative "
                "difference %.3g; %s comm bytes per step on rank 0\n",
                model.c_str(), l.name.c_str(), got[0]["loss"].get<double>(),
                got[19]["loss"].get<double>(), ref.name.c_str(), want[0]["loss"].get<double>(),
                want[19]["loss"].get<double>(), worst, got[0]["comm_bytes"].dump().c_str());
    EXPECT_LE(worst, kTolerance) << l.name;
    EXPECT_GT(got[0]["comm_bytes"].get<double>(), 0.0) << l.name;
    // The progress line names the layout.
    const std::string out = readFile(runDir + "/" + l.name + ".run.out");
    EXPECT_NE(out.find("in pp 2 stages"), std::string::npos) << out;
  }
}

TEST_P(MultiRankExecutable, PipelineStepOneGradientsAgree) {
  for (const char *name : {"pp2", "pp2dualpipev"}) {
    const Layout &l = layoutNamed(name), &ref = referenceOf(l);
    for (const Layout *run : {&ref, &l}) {
      fs::remove_all(runDir + "/ckpt1-" + run->name);
      train(*run, "--steps 1 --checkpoint-dir " + runDir + "/ckpt1-" + run->name, "step1");
    }
    // Each rank wrote a model file and an optimizer file.
    EXPECT_TRUE(fs::exists(runDir + "/ckpt1-" + l.name +
                           "/step-00000001/model-00002-of-00002.safetensors"));
    EXPECT_TRUE(fs::exists(runDir + "/ckpt1-" + l.name +
                           "/step-00000001/optimizer-00002-of-00002.safetensors"));
    std::optional<kiln::checkpoint::Checkpoint> want = loadCheckpoint(runDir + "/ckpt1-" + ref.name),
                                                got = loadCheckpoint(runDir + "/ckpt1-" + l.name);
    ASSERT_TRUE(want && got);
    ASSERT_EQ(got->tensors.size(), want->tensors.size()) << l.name;
    std::string where;
    int compared = 0;
    const double worst = worstExpAvgDifference(*got, *want, where, compared);
    std::printf("[%s %s] step-1 gradients (exp_avg) of %d tensors: max relative difference "
                "%.3g (%s)\n",
                model.c_str(), l.name.c_str(), compared, worst, where.c_str());
    EXPECT_LE(worst, kTolerance) << l.name << " " << where;
    EXPECT_GT(compared, 10);
  }
}

TEST_P(MultiRankExecutable, PipelineCheckpointsResumeOnAnyLayout) {
  const Layout &dp1 = kLayouts[0], &pp2 = layoutNamed("pp2"), &pp2dp2 = layoutNamed("pp2dp2"),
               &zbh1 = layoutNamed("pp2zbh1"), &dualpipev = layoutNamed("pp2dualpipev"),
               &dp1layers4 = layoutNamed("dp1layers4"), &zero = layoutNamed("pp2dp2zero1");
  std::map<std::string, std::vector<json>> want;
  for (const Layout *ref : {&dp1, &dp1layers4}) {
    want[ref->name] = trainLogged(*ref, 20);
    ASSERT_EQ(want[ref->name].size(), 20u) << ref->name;
  }
  // The uninterrupted pp 2 run, for the same-layout resume.
  const std::string uninterrupted = runDir + "/ckpt-pp2-20";
  fs::remove_all(uninterrupted);
  train(pp2, "--steps 20 --checkpoint-every 10 --checkpoint-dir " + uninterrupted, "pp2-20");
  const std::vector<std::pair<const Layout *, std::vector<const Layout *>>> resumes = {
      {&pp2, {&pp2, &dp1, &pp2dp2, &zero}},
      {&zero, {&dp1}},
      {&dp1, {&zbh1}},
      {&dualpipev, {&dp1layers4}},
  };
  for (const auto &[from, targets] : resumes) {
    const std::string first = runDir + "/ckpt-" + from->name + "-10";
    fs::remove_all(first);
    train(*from, "--steps 10 --checkpoint-dir " + first, "first10");
    for (const Layout *to : targets) {
      const std::string ckpt = runDir + "/ckpt-" + to->name + "-from-" + from->name;
      const std::string log = runDir + "/resumed-" + to->name + "-from-" + from->name + ".jsonl";
      fs::remove_all(ckpt);
      fs::remove(log);
      fs::copy(first, ckpt, fs::copy_options::recursive);
      train(*to, "--steps 20 --resume --checkpoint-dir " + ckpt + " --log " + log, "resume");
      const std::vector<json> got = metrics(log);
      const std::vector<json> &reference = want[referenceOf(*to).name];
      ASSERT_EQ(got.size(), 10u) << from->name << " -> " << to->name;
      double worst = 0;
      for (size_t s = 0; s < 10; ++s) {
        EXPECT_EQ(got[s]["step"], reference[s + 10]["step"]);
        for (const char *key : {"loss", "grad_norm"})
          worst = std::max(worst, relative(got[s][key], reference[s + 10][key]));
      }
      std::printf("[%s] %s checkpoint at step 10 resumed by %s: steps 11-20 within %.3g of one "
                  "process\n",
                  model.c_str(), from->name.c_str(), to->name.c_str(), worst);
      EXPECT_LE(worst, kTolerance) << from->name << " -> " << to->name;
      if (to == from) {
        const auto a = snapshot(uninterrupted + "/step-00000020"),
                   b = snapshot(ckpt + "/step-00000020");
        EXPECT_EQ(a.size(), 5u) << "2 model files, 2 optimizer files, the index";
        EXPECT_TRUE(a == b) << "a resumed pp 2 run's step-20 checkpoint differs";
      }
    }
  }
}

// 2:4 sparsity through pipeline stages: each stage computes the masks of
// the weights it trains, so pp 2 trains as one process over the same
// micro-batches, across start_step and a mask update, and its step-8
// checkpoint holds the same masks and weights.
TEST_P(MultiRankExecutable, PipelineSparsityFollowsOneProcess) {
  const Layout &one = kSparseLayouts[0], &pp2 = kSparseLayouts.back();
  ASSERT_EQ(pp2.name, "pp2sparse");
  std::map<std::string, kiln::checkpoint::Checkpoint> checkpoints;
  std::map<std::string, std::vector<json>> logs;
  for (const Layout *l : {&one, &pp2}) {
    const std::string ckpt = runDir + "/ckpt-" + l->name, log = runDir + "/" + l->name + ".jsonl";
    fs::remove_all(ckpt);
    fs::remove(log);
    ASSERT_EQ(train(*l, "--steps 8 --checkpoint-dir " + ckpt + " --log " + log, "run"), 0);
    logs[l->name] = metrics(log);
    std::optional<kiln::checkpoint::Checkpoint> c = loadCheckpoint(ckpt);
    ASSERT_TRUE(c);
    checkpoints[l->name] = std::move(*c);
  }
  const std::vector<json> &want = logs[one.name], &got = logs[pp2.name];
  ASSERT_EQ(got.size(), 8u);
  double worst = 0;
  for (size_t s = 0; s < 8; ++s)
    for (const char *key : {"loss", "grad_norm"})
      worst = std::max(worst, relative(got[s][key], want[s][key]));
  EXPECT_LE(worst, kTolerance);
  const kiln::checkpoint::Checkpoint &a = checkpoints[pp2.name], &b = checkpoints[one.name];
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  int masks = 0;
  double worstWeight = 0;
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    ASSERT_EQ(a.tensors[t].name, b.tensors[t].name);
    if (a.tensors[t].name.rfind("optimizer.sparsity_mask.", 0) == 0) {
      EXPECT_EQ(a.tensors[t].values, b.tensors[t].values) << a.tensors[t].name;
      ++masks;
    } else if (a.tensors[t].name.rfind("optimizer.", 0) != 0) {
      for (size_t i = 0; i < a.tensors[t].values.size(); ++i)
        worstWeight = std::max(worstWeight, std::fabs(double(a.tensors[t].values[i]) -
                                                      double(b.tensors[t].values[i])));
    }
  }
  std::printf("[%s pp2sparse] 8 steps within %.3g of one process; %d masks equal, weights within "
              "%.3g\n",
              model.c_str(), worst, masks, worstWeight);
  EXPECT_GT(masks, 5);
  EXPECT_LE(worstWeight, 1e-5);
}

// train --trace: one Chrome trace for the job, written by rank 0: a named
// process per rank, its events the actions of its row of the schedule
// (`kilnc --emit=schedule`) plus the prologue and epilogue, every F of the
// row in every step, one after another inside the step's own event.
TEST_P(MultiRankExecutable, PipelineTraceHoldsEveryRanksActions) {
  const Layout &l = layoutNamed("pp2zbh1");
  const std::string trace = runDir + "/trace.json", rows = runDir + "/schedule.csv";
  fs::remove(trace);
  ASSERT_EQ(run(std::string(KILN_BINARY_DIR) + "/bin/kilnc " + dir + "/" + l.name + "/" +
                    l.name + ".json --emit=schedule",
                rows),
            0)
      << readFile(rows);
  ASSERT_EQ(train(l, "--steps 3 --trace " + trace, "trace"), 0);
  // The schedule's row of each rank.
  std::vector<std::set<std::string>> actions;
  std::istringstream csv(readFile(rows));
  for (std::string line; std::getline(csv, line) && line.rfind("#", 0) != 0;) {
    actions.emplace_back();
    std::istringstream row(line);
    for (std::string action; std::getline(row, action, ',');)
      actions.back().insert(action);
  }
  ASSERT_EQ(actions.size(), 2u);
  const json events = json::parse(readFile(trace))["traceEvents"];
  std::map<int, std::string> processes;
  // (rank, step) -> the step's span, and its actions' spans in order.
  std::map<std::pair<int, uint64_t>, std::pair<double, double>> stepSpan;
  std::map<std::pair<int, uint64_t>, std::vector<std::tuple<double, double, std::string>>> ran;
  for (const json &e : events) {
    const int rank = e["pid"].get<int>();
    if (e["ph"] == "M") {
      if (e["name"] == "process_name")
        processes[rank] = e["args"]["name"].get<std::string>();
      continue;
    }
    ASSERT_EQ(e["ph"], "X") << e.dump();
    const uint64_t step = e["args"]["step"].get<uint64_t>();
    const double start = e["ts"].get<double>(), end = start + e["dur"].get<double>();
    if (e["tid"] == 1)
      stepSpan[{rank, step}] = {start, end};
    else
      ran[{rank, step}].emplace_back(start, end, e["name"].get<std::string>());
  }
  EXPECT_EQ(processes[0], "rank 0 (pp stage 0, dp 0)");
  EXPECT_EQ(processes[1], "rank 1 (pp stage 1, dp 0)");
  for (int rank = 0; rank < 2; ++rank)
    for (uint64_t step = 1; step <= 3; ++step) {
      ASSERT_TRUE(stepSpan.count({rank, step})) << "rank " << rank << " step " << step;
      const auto [stepStart, stepEnd] = stepSpan[{rank, step}];
      std::set<std::string> seen;
      double previousEnd = stepStart;
      for (const auto &[start, end, name] : ran[{rank, step}]) {
        EXPECT_TRUE(actions[rank].count(name) || name == "prologue" || name == "epilogue")
            << "rank " << rank << " ran '" << name << "', not in its schedule row";
        // ts and dur are written to 1 ns each.
        EXPECT_GE(start + 0.002, previousEnd) << name;
        EXPECT_LE(end, stepEnd + 0.002) << name;
        previousEnd = end;
        seen.insert(name);
      }
      for (const std::string &action : actions[rank]) {
        if (action.find('F') != 1 || action.find("SEND") != std::string::npos ||
            action.find("RECV") != std::string::npos)
          continue;
        EXPECT_TRUE(seen.count(action)) << "rank " << rank << " step " << step << ": no "
                                        << action;
      }
    }
}

} // namespace
} // namespace kiln::test::multirank
