//===- PipelineParallelTest.cpp - kiln-pipeline vs the single-device step --===//
//
// Every schedule (gpipe, 1f1b, interleaved-1f1b with 2 chunks per rank,
// zb-h1 with deferred weight gradients, zb-v's and dualpipev's V, the
// latter with overlapped pairs) on pp 2 and pp 4, and pp 2 x dp 2: the per-rank programs, run on
// every rank at once by the multi-rank reference evaluator, must give the
// single-device step's numbers on the same global batch to f64 rounding
// (<= 1e-12 relative, per tensor) over two steps: losses, gradient norm,
// learning rate, expert loads, every parameter and Adam moment a rank holds
// (PartitionHarness.h). The models get 4 layers (8 for the V on pp 4)
// so that every chunk holds at least one; r1-tiny's untied embedding is shared by
// the first stage (embedding) and the last (MTP), whose gradient pieces
// the two ranks exchange.
//
//===----------------------------------------------------------------------===//

#include "test/unit/PartitionHarness.h"

using namespace kiln;
using namespace kiln::test;

namespace {

constexpr double kTolerance = 1e-12;

struct Layout {
  const char *schedule;
  int64_t pp, chunks, microbatches, dp;
  int64_t zero = 0; ///< ZeRO-1 over dp
};

class PipelineParallel : public ::testing::TestWithParam<std::tuple<std::string, Layout>> {};

TEST_P(PipelineParallel, MatchesSingleDeviceStep) {
  auto [specPath, layout] = GetParam();
  std::optional<frontend::Spec> spec = repoSpec(specPath);
  ASSERT_TRUE(spec);
  const int64_t layers = std::max<int64_t>(4, layout.pp * layout.chunks);
  spec->model.numHiddenLayers = layers;
  frontend::Spec perRank = *spec;
  perRank.train.microBatch = 1;
  const int64_t globalRows = layout.dp * layout.microbatches;

  const KilnAutodiffOptions autodiff = harnessAutodiff(*spec);
  Lowering single =
      lowering([&](mlir::PassManager &pm) { pm.addPass(createKilnAutodiff(autodiff)); });
  Lowering partitioned = lowering([&](mlir::PassManager &pm) {
    pm.addPass(createKilnAutodiff(autodiff));
    KilnDataParallelOptions dp;
    dp.dp = layout.dp;
    dp.microbatches = layout.microbatches;
    dp.zero = layout.zero;
    pm.addPass(createKilnDataParallel(dp));
    KilnPipelineOptions pipeline;
    pipeline.pp = layout.pp;
    pipeline.schedule = layout.schedule;
    pipeline.virtualStages = layout.chunks;
    pipeline.layers = layers;
    pm.addPass(createKilnPipeline(pipeline));
    pm.addPass(createKilnVerifyCollectives());
  });
  // Ranks hold whole tensors (parameters, moments) or, over dp, their rows.
  const ShardOf shardOf =
      dataParallelShards([dp = layout.dp](int64_t rank) { return rank % dp; });
  std::string label = specPath.substr(specPath.rfind('/') + 1) + " " + layout.schedule + " pp " +
                      std::to_string(layout.pp) + " chunks " + std::to_string(layout.chunks) +
                      " mb " + std::to_string(layout.microbatches) + " dp " +
                      std::to_string(layout.dp);
  Comparison cmp =
      comparePartitioned(*spec, globalRows, single, partitioned, perRank, shardOf, 2, label);
  EXPECT_GT(cmp.tensors, 0);
  EXPECT_LE(cmp.worst, kTolerance) << cmp.where;
}

std::string name(const ::testing::TestParamInfo<std::tuple<std::string, Layout>> &info) {
  std::string spec = specTestName(std::get<0>(info.param));
  const Layout &l = std::get<1>(info.param);
  std::string schedule = l.schedule;
  std::replace(schedule.begin(), schedule.end(), '-', '_');
  return spec + "_" + schedule + "_pp" + std::to_string(l.pp) + "_mb" +
         std::to_string(l.microbatches) + "_dp" + std::to_string(l.dp) +
         (l.zero ? "_zero" + std::to_string(l.zero) : "");
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, PipelineParallel,
    ::testing::Combine(::testing::Values("models/dense-tiny.json", "models/r1-tiny.json"),
                       ::testing::Values(Layout{"gpipe", 2, 1, 2, 1}, Layout{"1f1b", 2, 1, 4, 1},
                                         Layout{"1f1b", 4, 1, 4, 1},
                                         Layout{"interleaved-1f1b", 2, 2, 4, 1},
                                         Layout{"zb-h1", 2, 1, 4, 1}, Layout{"zb-h1", 4, 1, 4, 1},
                                         Layout{"dualpipev", 2, 2, 4, 1},
                                         Layout{"dualpipev", 4, 2, 8, 1},
                                         Layout{"zb-v", 2, 2, 4, 1}, Layout{"zb-v", 4, 2, 8, 1},
                                         Layout{"1f1b", 2, 1, 2, 2},
                                         Layout{"zb-h1", 2, 1, 2, 2, /*zero=*/1})),
    name);

} // namespace
