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
//     on dp 2 ZeRO-1 and on pp 2 as in one process over the same
//     micro-batches.
// Every mpirun is wrapped in `timeout` so that a hang fails the test.
//
//===----------------------------------------------------------------------===//

#include "test/unit/MultiRankExecutableFixture.h"

#include <chrono>
#include <thread>

namespace kiln::test::multirank {
namespace {

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
// reductions' sums differently, so within 1e-3). 16 steps: skips at steps
// 1-6 and 13, growth at 10 and 13. A step whose gradients come within
// rounding of fp16's largest value can go either way between layouts that
// round differently; r1-tiny's step 18 does on pp 2 (measured 2026-12-07:
// pp2 overflowed at scale 2^21 where the others did not), so the run stops
// before it.
TEST_P(MultiRankExecutable, Fp16LossScalingAgreesAcrossRanks) {
  constexpr int kSteps = 16;
  std::vector<std::vector<json>> runs;
  for (const Layout &l : kFp16Layouts) {
    runs.push_back(trainLogged(l, kSteps));
    ASSERT_EQ(runs.back().size(), size_t(kSteps)) << l.name;
  }
  const std::vector<json> &want = runs[0];
  for (size_t k = 1; k < runs.size(); ++k) {
    const std::vector<json> &got = runs[k];
    int skipped = 0;
    double worst = 0;
    for (size_t s = 0; s < want.size(); ++s) {
      EXPECT_EQ(got[s]["loss_scale"], want[s]["loss_scale"]) << kFp16Layouts[k].name << " step "
                                                             << s + 1;
      EXPECT_EQ(got[s]["skipped"], want[s]["skipped"]) << kFp16Layouts[k].name << " step "
                                                       << s + 1;
      skipped += want[s]["skipped"].get<bool>();
      worst = std::max(worst, relative(got[s]["loss"], want[s]["loss"]));
    }
    std::printf("[%s fp16] %s and micro-batches 2: the same %d of %d steps skipped, the same "
                "scales (step %d: %s), losses within %.3g\n",
                model.c_str(), kFp16Layouts[k].name.c_str(), skipped, kSteps, kSteps,
                want[kSteps - 1]["loss_scale"].dump().c_str(), worst);
    EXPECT_GT(skipped, 0) << "2^26 overflows fp16 at step 1";
    EXPECT_LT(skipped, kSteps);
    EXPECT_LE(worst, 1e-3);
  }
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
} // namespace kiln::test::multirank
