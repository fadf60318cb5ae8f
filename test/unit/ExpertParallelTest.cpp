//===- ExpertParallelTest.cpp - kiln-expert-parallel vs the single-device step ===//
//
// r1-tiny and r1-balance (aux balance loss on) with their routed experts
// sharded by kiln-expert-parallel, then differentiated (kiln-autodiff: the
// backward of each all_to_all is the reverse exchange, of each reorder its
// inverse) and split over the batch (kiln-data-parallel: dense gradients
// summed over every rank, expert gradients over the ranks that hold the same
// experts, the global norm from both). Every rank runs at once on the
// multi-rank reference evaluator and must give the single-device step's
// numbers on the same global batch to f64 rounding (<= 1e-12 relative, per
// tensor) over two steps: losses, gradient norm, expert loads, every
// parameter and every Adam moment, each rank's experts against the single
// device's same experts (PartitionHarness.h). Layouts: dp 2 x ep 2; dp 4 x
// ep 4 (2 experts per rank); dp 4 x ep 2 with ZeRO-1 (expert moments sharded
// over the 2 ranks holding the same experts); dp 2 x ep 2 with 2
// micro-batches; and under parallel.expert_capacity (rows dropped per
// sequence, the same on every layout) dp 2 x ep 2 at 1.0 and dp 4 x ep 2
// with ZeRO-1 and 2 micro-batches at 1.25; and dp 2 x ep 2 with 2
// micro-batches under full and under selective activation checkpointing
// (the single device keeps its activations).
//
//===----------------------------------------------------------------------===//

#include "test/unit/PartitionHarness.h"

#include "mlir/Parser/Parser.h"

#include "llvm/Support/FormatVariadic.h"

#include <numeric>

using namespace kiln;
using namespace kiln::test;

namespace {

constexpr double kTolerance = 1e-12;

struct Layout {
  int64_t dp, ep, zero, microbatches;
  /// parallel.expert_capacity (0: dropless).
  double capacity = 0;
  /// kiln-activation-checkpointing's policy on the partitioned step (full:
  /// the backward recomputes each layer's forward, its all_to_all included).
  const char *checkpointing = "none";
};

/// Rank `rank`'s part of a single-device tensor. Parameters split over ep
/// (and their moments): the experts of the rank's ep coordinate, then, with
/// ZeRO-1, its slice of them over the ranks holding the same experts. Other
/// tensors: as data parallelism has them (rows of batch inputs, ZeRO-1
/// slices over every rank, else the whole tensor).
RefTensor expertParallelPart(const std::string &key, const RefTensor &full, int64_t rank,
                             const Layout &layout, bool split, mlir::Type perRankType) {
  auto type = mlir::cast<mlir::RankedTensorType>(perRankType);
  if (llvm::ArrayRef<int64_t>(full.shape) == type.getShape())
    return full;
  RefTensor whole = full;
  int64_t group = rank; // the rank's index in the group its slice is cut over
  if (split) {
    const int64_t experts = full.shape[0], local = experts / layout.ep;
    const int64_t perExpert = full.numElements() / experts;
    llvm::SmallVector<int64_t> shape(full.shape.begin(), full.shape.end());
    shape[0] = local;
    RefTensor mine(full.elementType, shape);
    std::copy_n(full.data.begin() + (rank % layout.ep) * local * perExpert, local * perExpert,
                mine.data.begin());
    if (llvm::ArrayRef<int64_t>(mine.shape) == type.getShape())
      return mine;
    whole = std::move(mine);
    group = rank / layout.ep;
  }
  return flatShard(whole, group, type.getShape());
}

class ExpertParallel : public ::testing::TestWithParam<std::tuple<std::string, Layout>> {};

TEST_P(ExpertParallel, MatchesSingleDeviceStep) {
  auto [specPath, layout] = GetParam();
  std::optional<frontend::Spec> spec = repoSpec(specPath);
  ASSERT_TRUE(spec);
  spec->parallel.expertCapacity = layout.capacity;
  frontend::Spec perRank = *spec;
  perRank.train.microBatch = 1;
  const int64_t globalRows = layout.dp * layout.microbatches * perRank.train.microBatch;

  const KilnAutodiffOptions autodiff = harnessAutodiff(*spec);
  Lowering single = lowering([&](mlir::PassManager &pm) { pm.addPass(createKilnAutodiff(autodiff)); });
  Lowering partitioned = lowering([&](mlir::PassManager &pm) {
    KilnExpertParallelOptions ep;
    ep.ep = layout.ep;
    ep.dp = layout.dp;
    pm.addPass(createKilnExpertParallel(ep));
    pm.addPass(createKilnAutodiff(autodiff));
    if (std::string(layout.checkpointing) != "none") {
      KilnActivationCheckpointingOptions checkpointing;
      checkpointing.policy = layout.checkpointing;
      pm.addPass(createKilnActivationCheckpointing(checkpointing));
    }
    KilnDataParallelOptions dp;
    dp.dp = layout.dp;
    dp.zero = layout.zero;
    dp.microbatches = layout.microbatches;
    pm.addPass(createKilnDataParallel(dp));
    pm.addPass(createKilnVerifyCollectives());
  });
  auto shardOf = [&](const std::string &key, const RefTensor &full, int64_t rank,
                     mlir::func::FuncOp step, unsigned index, bool isResult) {
    mlir::Type type = isResult ? step.getResultTypes()[index] : step.getArgumentTypes()[index];
    // Parameters, moments and updated values of a split parameter share its name.
    bool split = false;
    const std::string name = key.substr(key.find(':') + 1);
    for (unsigned i = 0; i < step.getNumArguments(); ++i)
      if (auto param = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.param");
          param && param.getValue() == name && step.getArgAttr(i, "kiln.split"))
        split = key.rfind("input:", 0) != 0;
    return expertParallelPart(key, full, rank, layout, split, type);
  };
  const std::string label = specPath.substr(specPath.rfind('/') + 1) + " dp " +
                            std::to_string(layout.dp) + " ep " + std::to_string(layout.ep) +
                            " zero " + std::to_string(layout.zero) + " mb " +
                            std::to_string(layout.microbatches) + " capacity " +
                            llvm::formatv("{0}", layout.capacity).str() +
                            " checkpointing " + layout.checkpointing;
  Comparison cmp =
      comparePartitioned(*spec, globalRows, single, partitioned, perRank, shardOf, 2, label);
  EXPECT_GT(cmp.tensors, 0);
  EXPECT_LE(cmp.worst, kTolerance) << cmp.where;
  // Under capacity some rows must actually drop, or the case proves nothing.
  std::printf("[%s] %g of %g routed rows dropped\n", label.c_str(), cmp.droppedRows(),
              cmp.routedRows);
  EXPECT_EQ(cmp.capacity, layout.capacity > 0);
  if (layout.capacity > 0) {
    EXPECT_GT(cmp.droppedRows(), 0);
  }
}

/// DeepEP's dispatch test, on the exchange kiln-expert-parallel builds: 4
/// ranks of one ep group, 8 experts (2 per rank), 6 tokens x top-3 per rank,
/// each token's row tagged (source rank, token), routed among the first
/// `routable` experts. Every rank's received rows, in expert-major order,
/// must be exactly the rows every source routed to that expert, in the
/// source's dispatch order; and combine(dispatch(x)) with unit weights,
/// divided by top_k, must give x back.
void checkExchange(int64_t routable) {
  constexpr int64_t kRanks = 4, kLocal = 2, kTokens = 6, kTopK = 3; // 8 experts
  constexpr int64_t kPairs = kTokens * kTopK, kCapacity = kRanks * kTokens * kTopK;
  const std::string source = R"mlir(
module attributes {kiln.grid = #kiln.grid<axes = ["edp", "ep"], shape = [1, 4]>} {
  func.func @exchange(%x: tensor<6x2xf32>, %idx: tensor<6x3xi32>, %w: tensor<6x3xf32>)
      -> (tensor<72x2xf32>, tensor<3xi32>, tensor<6x2xf32>) {
    %rows, %offsets, %source = kiln.dispatch %x, %idx {num_experts = 8 : i64}
        : (tensor<6x2xf32>, tensor<6x3xi32>) -> (tensor<18x2xf32>, tensor<9xi32>, tensor<18xi32>)
    %pe, %pr = kiln.expert_counts %offsets {groups = 4 : i64} : (tensor<9xi32>) -> (tensor<4x2xi64>, tensor<4xi64>)
    %ones = arith.constant dense<1> : tensor<4xi64>
    %pein, %c0 = kiln.all_to_all %pe, %ones {axes = ["ep"]} : (tensor<4x2xi64>, tensor<4xi64>) -> (tensor<4x2xi64>, tensor<4xi64>)
    %in, %incounts = kiln.all_to_all %rows, %pr {axes = ["ep"]} : (tensor<18x2xf32>, tensor<4xi64>) -> (tensor<72x2xf32>, tensor<4xi64>)
    %sorted, %loff = kiln.segment_transpose %in, %pein : (tensor<72x2xf32>, tensor<4x2xi64>) -> (tensor<72x2xf32>, tensor<3xi32>)
    %back, %boff = kiln.segment_transpose %sorted, %pein {inverse = true} : (tensor<72x2xf32>, tensor<4x2xi64>) -> (tensor<72x2xf32>, tensor<5xi32>)
    %ret, %c1 = kiln.all_to_all %back, %incounts {axes = ["ep"]} : (tensor<72x2xf32>, tensor<4xi64>) -> (tensor<18x2xf32>, tensor<4xi64>)
    %y = kiln.combine %ret, %w, %source : (tensor<18x2xf32>, tensor<6x3xf32>, tensor<18xi32>) -> tensor<6x2xf32>
    return %sorted, %loff, %y : tensor<72x2xf32>, tensor<3xi32>, tensor<6x2xf32>
  }
})mlir";
  mlir::MLIRContext context;
  context.loadDialect<KilnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                      mlir::tensor::TensorDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  ASSERT_TRUE(module);
  // Seeded distinct experts per token.
  reference::SeededRng rng(7, "deepep-dispatch");
  std::vector<std::vector<int64_t>> indices(kRanks);
  std::vector<llvm::SmallVector<RefTensor>> args(kRanks);
  for (int64_t r = 0; r < kRanks; ++r) {
    RefTensor x(mlir::Type(), {kTokens, 2}), idx(mlir::Type(), {kTokens, kTopK}),
        w(mlir::Type(), {kTokens, kTopK});
    for (int64_t t = 0; t < kTokens; ++t) {
      x.data[t * 2] = double(r);
      x.data[t * 2 + 1] = double(t);
      std::vector<int64_t> experts(routable);
      std::iota(experts.begin(), experts.end(), 0);
      for (int64_t j = 0; j < kTopK; ++j) {
        std::swap(experts[j], experts[j + rng.next() % (routable - j)]);
        idx.data[t * kTopK + j] = double(experts[j]);
        indices[r].push_back(experts[j]);
        w.data[t * kTopK + j] = 1.0;
      }
    }
    args[r] = {x, idx, w};
  }
  auto results = reference::evaluateAllRanks(
      *module, [](int64_t) { return std::string("exchange"); }, args);
  ASSERT_TRUE(mlir::succeeded(results));
  for (int64_t r = 0; r < kRanks; ++r) {
    const RefTensor &sorted = (*results)[r][0], &offsets = (*results)[r][1], &y = (*results)[r][2];
    // What rank r must hold: for each local expert, every source's rows
    // routed to it, sources in rank order, each in dispatch order (token-major).
    std::vector<std::pair<double, double>> expected;
    std::vector<int64_t> starts = {0};
    for (int64_t l = 0; l < kLocal; ++l) {
      for (int64_t g = 0; g < kRanks; ++g)
        for (int64_t p = 0; p < kPairs; ++p)
          if (indices[g][p] == r * kLocal + l)
            expected.push_back({double(g), double(p / kTopK)});
      starts.push_back(int64_t(expected.size()));
    }
    for (int64_t l = 0; l <= kLocal; ++l)
      EXPECT_EQ(offsets.data[l], double(starts[l])) << "rank " << r << " offset " << l;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(sorted.data[i * 2], expected[i].first) << "rank " << r << " row " << i;
      EXPECT_EQ(sorted.data[i * 2 + 1], expected[i].second) << "rank " << r << " row " << i;
    }
    for (size_t i = expected.size() * 2; i < size_t(kCapacity * 2); ++i)
      EXPECT_EQ(sorted.data[i], 0.0) << "rank " << r << ": spare capacity is zero";
    for (int64_t t = 0; t < kTokens; ++t) {
      EXPECT_EQ(y.data[t * 2] / kTopK, double(r)) << "rank " << r << " token " << t;
      EXPECT_EQ(y.data[t * 2 + 1] / kTopK, double(t)) << "rank " << r << " token " << t;
    }
  }
}

TEST(ExpertParallelExchange, EverySegmentArrivesAndComesBack) { checkExchange(8); }

// Experts 6 and 7 are never chosen: rank 3 receives no rows at all, and
// runs its (empty) GEMMs and returns nothing (Megatron #1877 crashed here).
TEST(ExpertParallelExchange, ARankThatReceivesNothing) { checkExchange(6); }

std::string name(const ::testing::TestParamInfo<std::tuple<std::string, Layout>> &info) {
  std::string spec = specTestName(std::get<0>(info.param));
  const Layout &l = std::get<1>(info.param);
  return spec + "_dp" + std::to_string(l.dp) + "_ep" + std::to_string(l.ep) + "_zero" +
         std::to_string(l.zero) + "_mb" + std::to_string(l.microbatches) +
         (l.capacity > 0 ? "_capacity" + std::to_string(int(l.capacity * 100)) : "") +
         (std::string(l.checkpointing) != "none" ? "_" + std::string(l.checkpointing) : "");
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ExpertParallel,
    ::testing::Combine(::testing::Values("models/r1-tiny.json",
                                         "test/Reference/specs/r1-balance.json"),
                       ::testing::Values(Layout{2, 2, 0, 1}, Layout{4, 4, 0, 1},
                                         Layout{4, 2, 1, 1}, Layout{2, 2, 0, 2},
                                         Layout{2, 2, 0, 1, 1.0}, Layout{4, 2, 1, 2, 1.25},
                                         Layout{2, 2, 0, 2, 0, "full"},
                                         Layout{2, 2, 0, 2, 0, "selective"})),
    name);

} // namespace
