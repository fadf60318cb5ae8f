//===- DataParallelTest.cpp - kiln-data-parallel vs the single-device step --===//
//
// For r1-tiny, dense-tiny and r1-balance (aux balance loss on), the
// per-rank programs of several layouts, run on every rank at once by the
// multi-rank reference evaluator, must give the single-device step's
// numbers on the same global batch to f64 rounding (<= 1e-12 relative, per
// tensor) over two steps: losses, gradient norm, learning rate, expert
// loads, every parameter and every Adam moment (PartitionHarness.h).
// Layouts: dp 2; dp 2 + ZeRO-1; dp 4 with 2 micro-batches; dp 3 + ZeRO-1
// (shards padded: sizes not divisible by 3); dp 1 with 3 micro-batches
// (plain gradient accumulation). Measured worst errors are printed per case
// (1e-15 to 1e-13 relative).
//
//===----------------------------------------------------------------------===//

#include "test/unit/PartitionHarness.h"

using namespace kiln;
using namespace kiln::test;

namespace {

constexpr double kTolerance = 1e-12;

struct Layout {
  int64_t dp, zero, microbatches;
};

class DataParallel : public ::testing::TestWithParam<std::tuple<std::string, Layout>> {};

TEST_P(DataParallel, MatchesSingleDeviceStep) {
  auto [specPath, layout] = GetParam();
  std::optional<frontend::Spec> spec = repoSpec(specPath);
  ASSERT_TRUE(spec);
  // Small per-rank micro-batches keep the f64 evaluator fast.
  frontend::Spec perRank = *spec;
  perRank.train.microBatch = 1;
  int64_t globalRows = layout.dp * layout.microbatches * perRank.train.microBatch;

  const KilnAutodiffOptions autodiff = harnessAutodiff(*spec);
  Lowering single = lowering([&](mlir::PassManager &pm) { pm.addPass(createKilnAutodiff(autodiff)); });
  Lowering partitioned = lowering([&](mlir::PassManager &pm) {
    pm.addPass(createKilnAutodiff(autodiff));
    KilnDataParallelOptions dp;
    dp.dp = layout.dp;
    dp.zero = layout.zero;
    dp.microbatches = layout.microbatches;
    pm.addPass(createKilnDataParallel(dp));
  });
  const ShardOf shardOf = dataParallelShards([](int64_t rank) { return rank; });
  std::string label = specPath.substr(specPath.rfind('/') + 1) + " dp " +
                      std::to_string(layout.dp) + " zero " + std::to_string(layout.zero) +
                      " mb " + std::to_string(layout.microbatches);
  Comparison cmp =
      comparePartitioned(*spec, globalRows, single, partitioned, perRank, shardOf, 2, label);
  EXPECT_GT(cmp.tensors, 0);
  EXPECT_LE(cmp.worst, kTolerance) << cmp.where;
}

std::string name(const ::testing::TestParamInfo<std::tuple<std::string, Layout>> &info) {
  std::string spec = specTestName(std::get<0>(info.param));
  const Layout &l = std::get<1>(info.param);
  return spec + "_dp" + std::to_string(l.dp) + "_zero" + std::to_string(l.zero) + "_mb" +
         std::to_string(l.microbatches);
}

// GRPO's loss (train.stage "grpo") over the global batch: a token mean
// (the global token count) and a per-sequence mean (the global rows).
INSTANTIATE_TEST_SUITE_P(
    Grpo, DataParallel,
    ::testing::Combine(::testing::Values("test/Reference/specs/grpo-dense-tokenmean.json",
                                         "test/Reference/specs/grpo-r1-seqmean.json"),
                       ::testing::Values(Layout{2, 1, 1}, Layout{4, 0, 2})),
    name);

INSTANTIATE_TEST_SUITE_P(
    Layouts, DataParallel,
    ::testing::Combine(::testing::Values("models/r1-tiny.json", "models/dense-tiny.json",
                                         "test/Reference/specs/r1-balance.json"),
                       ::testing::Values(Layout{2, 0, 1}, Layout{2, 1, 1}, Layout{4, 0, 2},
                                         Layout{3, 1, 1}, Layout{1, 0, 3})),
    name);

} // namespace
