//===- Sparsity24PassTest.cpp - kiln-sparsity-2-4 on the evaluator --------===//
//
// dense-tiny's training step with and without kiln-sparsity-2-4 (magnitude,
// from step 3, mask frozen), 6 steps on the reference evaluator with the
// state fed back: the steps before start_step are bit-identical to the
// dense run; from start_step on every targeted weight has exactly two
// nonzeros allowed per group of 4 along its input dimension, its pruned
// entries and their AdamW moments are exactly zero after every step, the
// frozen mask does not move, and training does not stall (the loss keeps
// falling). And the same recipe against the independent float64 PyTorch
// implementation in models/reference/training.py (Apex ASP's masking, and
// SR-STE's straight-through gradient with its decay): 20 steps of two
// specs, every loss, gradient norm and learning rate, and the final weights
// and moments, to 1e-9.
//
//===----------------------------------------------------------------------===//

#include "test/unit/GoldenHparams.h"
#include "test/unit/GradientStats.h"
#include "test/unit/PartitionHarness.h"

#include <fstream>

namespace kiln::test {
namespace {

using Results = std::map<std::string, RefTensor>;

/// Runs `steps` steps of `module`'s train_step from the seeded parameters
/// and `batch` (default: the seeded one), feeding parameters and state back;
/// the results of each step.
std::vector<Results> train(mlir::ModuleOp module, const frontend::Spec &spec, int steps,
                           std::optional<reference::TokenBatch> given = std::nullopt) {
  std::vector<Results> history;
  auto forward = module.lookupSymbol<mlir::func::FuncOp>("forward");
  mlir::FailureOr<reference::Signature> sig = reference::readSignature(forward);
  EXPECT_TRUE(mlir::succeeded(sig));
  if (mlir::failed(sig))
    return history;
  llvm::SmallVector<RefTensor> forwardArgs(sig->numArgs);
  std::map<std::string, RefTensor> initial;
  for (const reference::ParamSlot &p : sig->params)
    initial["param:" + p.name] = reference::initParameter(p, spec.train.seed);
  reference::TokenBatch batch =
      given ? *given
            : reference::seededBatch(spec.train.microBatch, spec.train.seqLen,
                                     spec.model.vocabSize, spec.train.seed);
  std::string error;
  EXPECT_TRUE(reference::bindNextTokenInputs(batch, *sig, forwardArgs, error)) << error;
  for (const reference::InputSlot &in : sig->inputs)
    initial["input:" + in.role] = forwardArgs[in.argIndex];

  StepIO io{module.lookupSymbol<mlir::func::FuncOp>("train_step")};
  llvm::SmallVector<RefTensor> args(io.step.getNumArguments());
  std::map<std::string, unsigned> argOf;
  for (unsigned i = 0; i < args.size(); ++i) {
    const std::string key = io.argKey(i);
    auto type = mlir::cast<mlir::RankedTensorType>(io.step.getArgumentTypes()[i]);
    args[i] = initial.count(key) ? initial[key] : RefTensor(type.getElementType(), type.getShape());
    args[i].elementType = type.getElementType();
    argOf[key] = i;
  }
  const std::vector<std::string> keys = io.resultKeys();
  reference::Evaluator evaluator(module);
  for (int t = 1; t <= steps; ++t) {
    args[argOf.at("input:step")].data[0] = t;
    mlir::FailureOr<llvm::SmallVector<RefTensor>> got = evaluator.call("train_step", args);
    EXPECT_TRUE(mlir::succeeded(got)) << "step " << t;
    if (mlir::failed(got))
      return history;
    Results results;
    for (size_t r = 0; r < keys.size(); ++r) {
      results[keys[r]] = (*got)[r];
      auto arg = argOf.find(keys[r]); // param:, exp_avg:, exp_avg_sq:, sparsity_mask:
      if (arg != argOf.end())
        args[arg->second].data = (*got)[r].data;
    }
    history.push_back(std::move(results));
  }
  return history;
}

TEST(Sparsity24Pass, MagnitudePruningKeepsTheTargetsTwoOfFour) {
  std::optional<frontend::Spec> spec = repoSpec("models/dense-tiny.json");
  ASSERT_TRUE(spec);
  const int steps = 6, start = 3;
  mlir::MLIRContext context;
  auto build = [&](bool sparse) {
    mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *spec);
    mlir::PassManager pm(&context);
    pm.addPass(createKilnAutodiff(harnessAutodiff(*spec)));
    if (sparse) {
      KilnSparsity24Options options;
      options.startStep = start;
      pm.addPass(createKilnSparsity24(options));
    }
    EXPECT_TRUE(mlir::succeeded(pm.run(*module)));
    return module;
  };
  mlir::OwningOpRef<mlir::ModuleOp> dense = build(false), sparse = build(true);
  std::vector<Results> want = train(*dense, *spec, steps), got = train(*sparse, *spec, steps);
  ASSERT_EQ(got.size(), size_t(steps));
  ASSERT_EQ(want.size(), size_t(steps));

  // Steps before start_step: every result of the dense run, bit for bit.
  for (int t = 1; t < start; ++t)
    for (const auto &[key, tensor] : want[t - 1])
      EXPECT_EQ(got[t - 1].at(key).data, tensor.data) << key << " at step " << t;

  int targets = 0;
  for (const auto &[key, mask] : got.back()) {
    if (key.rfind("sparsity_mask:", 0) != 0)
      continue;
    ++targets;
    const std::string name = key.substr(std::string("sparsity_mask:").size());
    EXPECT_NE(name, "model.embed_tokens.weight");
    EXPECT_NE(name, "lm_head.weight");
    for (int t = start; t <= steps; ++t) {
      const Results &r = got[t - 1];
      const RefTensor &m = r.at(key), &p = r.at("param:" + name), &m1 = r.at("exp_avg:" + name),
                      &m2 = r.at("exp_avg_sq:" + name);
      EXPECT_EQ(m.data, got[start - 1].at(key).data) << name << ": the frozen mask moved";
      for (size_t g = 0; g < m.data.size() / 4; ++g) {
        int kept = 0, nonzero = 0;
        for (size_t j = 4 * g; j < 4 * g + 4; ++j) {
          kept += m.data[j] == 1.0;
          nonzero += p.data[j] != 0.0;
          if (m.data[j] == 0.0) {
            EXPECT_EQ(p.data[j], 0.0) << name << "[" << j << "] at step " << t;
            EXPECT_EQ(m1.data[j], 0.0) << name << "[" << j << "] exp_avg at step " << t;
            EXPECT_EQ(m2.data[j], 0.0) << name << "[" << j << "] exp_avg_sq at step " << t;
          }
        }
        ASSERT_EQ(kept, 2) << name << " group " << g << " at step " << t;
        ASSERT_LE(nonzero, 2) << name << " group " << g << " at step " << t;
      }
    }
  }
  // Every matrix of dense-tiny's two layers: q, k, v, o, gate, up, down.
  EXPECT_EQ(targets, 14);
  std::printf("dense-tiny loss, dense vs 2:4 from step %d:", start);
  for (int t = 1; t <= steps; ++t)
    std::printf(" %.6f/%.6f", want[t - 1].at("loss").data[0], got[t - 1].at("loss").data[0]);
  std::printf("\n");
  EXPECT_NE(got[start - 1].at("loss").data[0], want[start - 1].at("loss").data[0]);
  EXPECT_LT(got.back().at("loss").data[0], got[start - 1].at("loss").data[0])
      << "training stalled after pruning";
}

class Sparsity24Golden : public ::testing::TestWithParam<const char *> {};

TEST_P(Sparsity24Golden, TrainingMatchesPyTorch) {
  const std::string name = GetParam();
  std::optional<frontend::Spec> spec = repoSpec("test/Reference/specs/" + name + ".json");
  ASSERT_TRUE(spec);
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/test/Reference/goldens/" + name +
                   ".train.json");
  ASSERT_TRUE(in) << "missing the golden of " << name;
  const nlohmann::json golden = nlohmann::json::parse(in);
  const KilnAutodiffOptions o = autodiffOptionsOf(golden["hparams"]);
  const frontend::SparsityConfig &sp = spec->train.sparsity;
  KilnSparsity24Options sparse;
  sparse.startStep = sp.startStep;
  sparse.maskEvery = sp.maskEvery;
  sparse.method = sp.method;
  sparse.decay = sp.decay;

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *spec);
  mlir::PassManager pm(&context);
  pm.addPass(createKilnAutodiff(o));
  pm.addPass(createKilnSparsity24(sparse));
  ASSERT_TRUE(mlir::succeeded(pm.run(*module)));
  reference::TokenBatch batch{spec->train.microBatch, spec->train.seqLen, {}};
  for (const nlohmann::json &row : golden["tokens"])
    for (const nlohmann::json &id : row)
      batch.ids.push_back(id.get<int64_t>());
  const int steps = int(golden["steps"].size());
  std::vector<Results> got = train(*module, *spec, steps, batch);
  ASSERT_EQ(got.size(), size_t(steps));
  double worstStep = 0;
  for (int t = 1; t <= steps; ++t)
    for (const char *key : {"loss", "main_loss", "grad_norm", "lr"}) {
      const double want = golden["steps"][t - 1][key], value = got[t - 1].at(key).data[0];
      const double error = std::fabs(value - want) / std::max(std::fabs(want), 1e-300);
      worstStep = std::max(worstStep, error);
      EXPECT_LE(error, 1e-9) << key << " at step " << t << ": kiln " << value << ", pytorch "
                             << want;
    }
  Worst params, moments;
  int tensors = 0;
  for (const auto &[key, tensor] : got.back()) {
    const size_t colon = key.find(':');
    if (colon == std::string::npos)
      continue;
    const std::string role = key.substr(0, colon), hf = key.substr(colon + 1);
    const char *field = role == "param" ? "params" : role == "exp_avg" ? "adam_m"
                        : role == "exp_avg_sq"                      ? "adam_v"
                                                                    : nullptr;
    if (!field)
      continue;
    ASSERT_TRUE(golden[field].contains(hf)) << field << " " << hf;
    Worst &worst = role == "param" ? params : moments;
    compareStats(hf, statsOf(hf, tensor.data.data(), tensor.numElements()), golden[field][hf],
                 worst, worst, worst);
    ++tensors;
  }
  std::printf("[%s] %d steps: worst relative error per step %.3g; after them params %.3g (%s), "
              "adam %.3g (%s), %d tensors\n",
              name.c_str(), steps, worstStep, params.error, params.where.c_str(), moments.error,
              moments.where.c_str(), tensors);
  EXPECT_LE(params.error, 1e-9) << params.where;
  EXPECT_LE(moments.error, 1e-9) << moments.where;
}

/// 2:4 under data parallelism and gradient accumulation: the masks (and
/// SR-STE's decay term) read no batch input, so kiln-data-parallel computes
/// them once per step before the micro-batches and adds the decay once to
/// the gradient summed over micro-batches and ranks. Every rank's outputs
/// (masks included) match the single-device step over 4 steps across
/// start_step, to f64 rounding (PartitionHarness.h).
struct SparseLayout {
  const char *method;
  int64_t dp, zero, microbatches;
};

class Sparsity24DataParallel : public ::testing::TestWithParam<SparseLayout> {};

TEST_P(Sparsity24DataParallel, MatchesSingleDeviceStep) {
  const SparseLayout layout = GetParam();
  std::optional<frontend::Spec> spec = repoSpec("models/dense-tiny.json");
  ASSERT_TRUE(spec);
  frontend::Spec perRank = *spec;
  perRank.train.microBatch = 1;
  const KilnAutodiffOptions autodiff = harnessAutodiff(*spec);
  KilnSparsity24Options sparse;
  sparse.startStep = 2;
  sparse.maskEvery = 2;
  sparse.method = layout.method;
  sparse.decay = std::string(layout.method) == "sr-ste" ? 0.01 : 0.0;
  Lowering single = lowering([&](mlir::PassManager &pm) {
    pm.addPass(createKilnAutodiff(autodiff));
    pm.addPass(createKilnSparsity24(sparse));
  });
  Lowering partitioned = lowering([&](mlir::PassManager &pm) {
    pm.addPass(createKilnAutodiff(autodiff));
    pm.addPass(createKilnSparsity24(sparse));
    KilnDataParallelOptions dp;
    dp.dp = layout.dp;
    dp.zero = layout.zero;
    dp.microbatches = layout.microbatches;
    pm.addPass(createKilnDataParallel(dp));
  });
  const ShardOf shardOf = dataParallelShards([](int64_t rank) { return rank; });
  const std::string label = std::string("dense-tiny 2:4 ") + layout.method + " dp " +
                            std::to_string(layout.dp) + " zero " + std::to_string(layout.zero) +
                            " mb " + std::to_string(layout.microbatches);
  Comparison cmp = comparePartitioned(*spec, layout.dp * layout.microbatches, single, partitioned,
                                      perRank, shardOf, 4, label);
  EXPECT_GT(cmp.tensors, 0);
  EXPECT_LE(cmp.worst, 1e-12) << cmp.where;
}

INSTANTIATE_TEST_SUITE_P(Layouts, Sparsity24DataParallel,
                         ::testing::Values(SparseLayout{"magnitude", 2, 0, 1},
                                           SparseLayout{"magnitude", 1, 0, 3},
                                           SparseLayout{"magnitude", 2, 1, 2},
                                           SparseLayout{"sr-ste", 2, 0, 2}),
                         [](const auto &info) {
                           std::string method = info.param.method;
                           std::replace(method.begin(), method.end(), '-', '_');
                           return method + "_dp" + std::to_string(info.param.dp) + "_zero" +
                                  std::to_string(info.param.zero) + "_mb" +
                                  std::to_string(info.param.microbatches);
                         });

INSTANTIATE_TEST_SUITE_P(Specs, Sparsity24Golden, ::testing::Values("dense-sparse", "dense-srste"),
                         [](const auto &info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

} // namespace
} // namespace kiln::test
