//===- PartitionHarness.h - partitioned steps vs their single-device step --===//
//
// How every partitioning pass is proven (../shared/DESIGN.md, "the evaluator
// runs all ranks"): build the single-device training step for the global
// batch and the per-rank programs for a layout, run both on the reference
// evaluator in f64 (every rank at once, MultiRank.h) from the same seeded
// parameters, Adam state and rows, for a few steps, and compare every
// output: losses, gradient norm, expert loads, every updated parameter and
// every Adam moment. After the first step from zero moments, exp_avg is
// (1 - beta1) x the clipped gradient, so comparing the moments compares
// every gradient.
//
// A layout's per-rank program is described by a function that lowers the
// forward module in place (e.g. kiln-autodiff then kiln-data-parallel) and
// one that says which part of each single-device tensor a rank holds.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_PARTITIONHARNESS_H
#define KILN_TEST_UNIT_PARTITIONHARNESS_H

#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/MultiRank.h"
#include "dialects/kiln/reference/Parameters.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <string>

namespace kiln::test {

using reference::RefTensor;

/// The step's arguments and results by role: parameters and moments by HF
/// name, inputs by kiln.input role, outputs by kiln.result role.
struct StepIO {
  mutable mlir::func::FuncOp step;
  std::string argKey(unsigned i) const {
    if (auto state = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.state"))
      return state.str() + ":" + step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.param").str();
    if (auto param = step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.param"))
      return "param:" + param.str();
    return "input:" + step.getArgAttrOfType<mlir::StringAttr>(i, "kiln.input").str();
  }
  /// Results: "param:<name>", "exp_avg:<name>", "exp_avg_sq:<name>", or the
  /// role (loss, main_loss, grad_norm, lr, expert_load#k, expert_kept#k).
  std::vector<std::string> resultKeys() const {
    std::vector<std::string> keys;
    std::map<std::string, int> counts;
    for (unsigned r = 0; r < step.getNumResults(); ++r) {
      auto role = step.getResultAttrOfType<mlir::StringAttr>(r, "kiln.result").str();
      auto param = step.getResultAttrOfType<mlir::StringAttr>(r, "kiln.param");
      if (param)
        keys.push_back(role + ":" + param.str());
      else if (role == "expert_load" || role == "expert_kept")
        keys.push_back(role + "#" + std::to_string(counts[role]++));
      else
        keys.push_back(role);
    }
    return keys;
  }
};

/// Which part of a single-device tensor rank `rank` holds, for a key.
using ShardOf = std::function<RefTensor(const std::string &key, const RefTensor &full,
                                        int64_t rank, mlir::func::FuncOp step,
                                        unsigned argOrResult, bool isResult)>;

/// The largest |got - want| over the tensor, relative to max |want|
/// (absolute where want is all zeros).
inline double relativeError(const RefTensor &got, const RefTensor &want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    diff = std::max(diff, std::fabs(got.data[i] - want.data[i]));
    scale = std::max(scale, std::fabs(want.data[i]));
  }
  return scale == 0 ? diff : diff / scale;
}

struct Comparison {
  double worst = 0;
  std::string where;
  int tensors = 0;
  /// Of the single-device steps: rows routed to experts (expert_load
  /// outputs) and, under expert capacity, those kept (expert_kept).
  double routedRows = 0, keptRows = 0;
  bool capacity = false;
  double droppedRows() const { return capacity ? routedRows - keptRows : 0; }
  void add(const std::string &what, const RefTensor &got, const RefTensor &want) {
    ++tensors;
    if (got.data.size() != want.data.size()) {
      ADD_FAILURE() << what << ": " << got.data.size() << " elements, expected "
                    << want.data.size();
      return;
    }
    double e = relativeError(got, want);
    if (getenv("KILN_HARNESS_VERBOSE"))
      std::printf("  %-100s %.3g\n", what.c_str(), e);
    if (e > worst || where.empty()) {
      worst = std::max(worst, e);
      where = what;
    }
  }
};

/// Lowers a forward module in place to a (per-rank) training step.
using Lowering = std::function<mlir::LogicalResult(mlir::ModuleOp)>;

/// kiln-autodiff's options for a harness run: the spec's, one warmup step,
/// and AdamW eps 1e-6. AdamW's first update is lr * g / (|g| + eps): for |g|
/// near eps it multiplies a gradient's rounding by lr / (4 eps), so with eps
/// 1e-8 two equally exact gradients (here 1e-15 apart) move a parameter up
/// to ~1e-11 apart. eps 1e-6 keeps that below 1e-13; the gradients
/// themselves are compared exactly through exp_avg either way.
inline KilnAutodiffOptions harnessAutodiff(const frontend::Spec &spec) {
  KilnAutodiffOptions autodiff;
  autodiff.lr = spec.train.lr;
  autodiff.totalSteps = spec.train.steps;
  autodiff.warmupSteps = 1;
  autodiff.auxLossAlpha = spec.train.auxLossAlpha;
  autodiff.biasUpdateSpeed = spec.train.biasUpdateSpeed;
  autodiff.mtpLossWeight = spec.train.mtpLossWeight;
  autodiff.eps = 1e-6;
  return autodiff;
}

/// Runs `passes` (added to a fresh pass manager) on the module.
inline Lowering lowering(std::function<void(mlir::PassManager &)> passes) {
  return [passes](mlir::ModuleOp m) {
    mlir::PassManager pm(m.getContext());
    passes(pm);
    return pm.run(m);
  };
}

/// Elements [group * n, (group + 1) * n) of `whole` flattened (zero past
/// its end), shaped `shape` of n elements: a rank's ZeRO-1 slice.
inline RefTensor flatShard(const RefTensor &whole, int64_t group, llvm::ArrayRef<int64_t> shape) {
  RefTensor part(whole.elementType, shape);
  const int64_t n = part.numElements();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t flat = group * n + i;
    part.data[i] = flat < whole.numElements() ? whole.data[flat] : 0.0;
  }
  return part;
}

/// A rank's part of a single-device tensor, read off its per-rank type: the
/// whole tensor when the shapes agree (replicated), otherwise slice `group`
/// of it flattened (a data-parallel rank's rows of a batch input, its ZeRO-1
/// shard of a moment).
inline RefTensor replicatedOrFlatShard(const RefTensor &full, int64_t group,
                                       mlir::Type perRankType) {
  auto type = mlir::cast<mlir::RankedTensorType>(perRankType);
  if (llvm::ArrayRef<int64_t>(full.shape) == type.getShape())
    return full;
  return flatShard(full, group, type.getShape());
}

/// A ShardOf for data-parallel layouts whose group index over the batch is
/// `groupOf(rank)`.
inline ShardOf dataParallelShards(std::function<int64_t(int64_t)> groupOf) {
  return [groupOf](const std::string &, const RefTensor &full, int64_t rank,
                   mlir::func::FuncOp step, unsigned index, bool isResult) {
    return replicatedOrFlatShard(full, groupOf(rank),
                                 isResult ? step.getResultTypes()[index]
                                          : step.getArgumentTypes()[index]);
  };
}

/// The spec at `path` (relative to the source tree); fails the test if it
/// does not load.
inline std::optional<frontend::Spec> repoSpec(const std::string &path) {
  std::string error;
  std::optional<frontend::Spec> spec =
      frontend::loadSpec(std::string(KILN_SOURCE_DIR) + "/" + path, error);
  EXPECT_TRUE(spec) << error;
  return spec;
}

/// "r1_tiny" for "models/r1-tiny.json": a spec path as a test name part.
inline std::string specTestName(std::string path) {
  path = path.substr(path.rfind('/') + 1);
  path = path.substr(0, path.find('.'));
  std::replace(path.begin(), path.end(), '-', '_');
  return path;
}

/// Runs `steps` steps of the single-device step (global batch `rows`) and
/// of the partitioned one, comparing every output; returns the comparison.
inline Comparison comparePartitioned(const frontend::Spec &spec, int64_t globalRows,
                                     const Lowering &single, const Lowering &partitioned,
                                     const frontend::Spec &partitionedSpec,
                                     const ShardOf &shardOf, int steps,
                                     const std::string &label) {
  Comparison cmp;
  mlir::MLIRContext context;
  frontend::Spec singleSpec = spec;
  singleSpec.train.microBatch = globalRows;
  mlir::OwningOpRef<mlir::ModuleOp> one = frontend::buildForwardModule(context, singleSpec);
  mlir::OwningOpRef<mlir::ModuleOp> many = frontend::buildForwardModule(context, partitionedSpec);
  if (!one || !many || mlir::failed(single(*one)) || mlir::failed(partitioned(*many))) {
    ADD_FAILURE() << label << ": lowering failed";
    return cmp;
  }
  auto forward = one->lookupSymbol<mlir::func::FuncOp>("forward");
  mlir::FailureOr<reference::Signature> sig = reference::readSignature(forward);
  if (mlir::failed(sig)) {
    ADD_FAILURE() << label << ": bad forward signature";
    return cmp;
  }
  llvm::SmallVector<RefTensor> forwardArgs(sig->numArgs);
  std::map<std::string, RefTensor> initial; // by key
  for (const reference::ParamSlot &p : sig->params)
    initial["param:" + p.name] = reference::initParameter(p, spec.train.seed);
  reference::TokenBatch batch = reference::seededBatch(globalRows, spec.train.seqLen,
                                                       spec.model.vocabSize, spec.train.seed);
  std::string error;
  if (!reference::bindNextTokenInputs(batch, *sig, forwardArgs, error)) {
    ADD_FAILURE() << error;
    return cmp;
  }
  for (const reference::InputSlot &in : sig->inputs)
    initial["input:" + in.role] = forwardArgs[in.argIndex];

  StepIO oneIO{one->lookupSymbol<mlir::func::FuncOp>("train_step")};
  int64_t ranks = reference::numRanksOf(*many);
  // SPMD programs: @train_step on every rank; pipeline stages: the
  // functions marked kiln.program = "train_step", by their kiln.ranks.
  std::vector<StepIO> manyIO(ranks, StepIO{many->lookupSymbol<mlir::func::FuncOp>("train_step")});
  for (auto f : many->getOps<mlir::func::FuncOp>())
    if (auto program = f->getAttrOfType<mlir::StringAttr>("kiln.program");
        program && program.getValue() == "train_step")
      for (int64_t r : f->getAttrOfType<mlir::DenseI64ArrayAttr>("kiln.ranks").asArrayRef())
        manyIO[r] = StepIO{f};
  for (int64_t r = 0; r < ranks; ++r)
    if (!manyIO[r].step) {
      ADD_FAILURE() << label << ": rank " << r << " has no program";
      return cmp;
    }

  // Single-device arguments: parameters and rows as drawn, zero moments.
  llvm::SmallVector<RefTensor> oneArgs(oneIO.step.getNumArguments());
  for (unsigned i = 0; i < oneArgs.size(); ++i) {
    std::string key = oneIO.argKey(i);
    auto type = mlir::cast<mlir::RankedTensorType>(oneIO.step.getArgumentTypes()[i]);
    oneArgs[i] = initial.count(key) ? initial[key]
                                    : RefTensor(type.getElementType(), type.getShape());
    oneArgs[i].elementType = type.getElementType();
  }
  auto stepIndex = [](StepIO &io) {
    for (unsigned i = 0; i < io.step.getNumArguments(); ++i)
      if (io.argKey(i) == "input:step")
        return i;
    return 0u;
  };
  unsigned oneStep = stepIndex(oneIO);
  std::map<std::string, unsigned> oneArgOf;
  for (unsigned i = 0; i < oneArgs.size(); ++i)
    oneArgOf[oneIO.argKey(i)] = i;

  // Each rank's arguments: its part of every single-device argument.
  std::vector<llvm::SmallVector<RefTensor>> manyArgs(ranks);
  for (int64_t r = 0; r < ranks; ++r)
    for (unsigned i = 0; i < manyIO[r].step.getNumArguments(); ++i)
      manyArgs[r].push_back(shardOf(manyIO[r].argKey(i),
                                    oneArgs[oneArgOf.at(manyIO[r].argKey(i))], r,
                                    manyIO[r].step, i, false));

  std::vector<std::string> oneKeys = oneIO.resultKeys();
  std::vector<std::vector<std::string>> manyKeys;
  for (StepIO &io : manyIO)
    manyKeys.push_back(io.resultKeys());
  reference::Evaluator evaluator(*one);
  for (int t = 1; t <= steps; ++t) {
    oneArgs[oneStep].data[0] = t;
    for (int64_t r = 0; r < ranks; ++r)
      for (unsigned i = 0; i < manyArgs[r].size(); ++i)
        if (manyIO[r].argKey(i) == "input:step")
          manyArgs[r][i].data[0] = t;
    mlir::FailureOr<llvm::SmallVector<RefTensor>> want = evaluator.call("train_step", oneArgs);
    auto got = reference::evaluateAllRanks(
        *many, [&](int64_t r) { return manyIO[r].step.getSymName().str(); }, manyArgs);
    if (mlir::failed(want) || mlir::failed(got)) {
      ADD_FAILURE() << label << ": evaluation failed at step " << t;
      return cmp;
    }
    std::map<std::string, unsigned> oneResultOf;
    for (unsigned r = 0; r < oneKeys.size(); ++r)
      oneResultOf[oneKeys[r]] = r;
    for (int64_t rank = 0; rank < ranks; ++rank)
      for (unsigned r = 0; r < manyKeys[rank].size(); ++r) {
        const std::string &key = manyKeys[rank][r];
        const RefTensor &full = (*want)[oneResultOf.at(key)];
        RefTensor expected = shardOf(key, full, rank, manyIO[rank].step, r, true);
        cmp.add(label + " step " + std::to_string(t) + " rank " + std::to_string(rank) + " " + key,
                (*got)[rank][r], expected);
      }
    for (unsigned r = 0; r < oneKeys.size(); ++r) {
      const double rows = std::accumulate((*want)[r].data.begin(), (*want)[r].data.end(), 0.0);
      if (oneKeys[r].rfind("expert_load#", 0) == 0) {
        cmp.routedRows += rows;
      } else if (oneKeys[r].rfind("expert_kept#", 0) == 0) {
        cmp.keptRows += rows;
        cmp.capacity = true;
      }
    }
    for (const char *scalar : {"loss", "main_loss", "grad_norm"})
      if (oneResultOf.count(scalar))
        std::printf("[%s] step %d %-9s single %.17g  rank 0 %.17g\n", label.c_str(), t, scalar,
                    (*want)[oneResultOf[scalar]].data[0],
                    (*got)[0][std::find(manyKeys[0].begin(), manyKeys[0].end(), scalar) -
                              manyKeys[0].begin()]
                        .data[0]);
    // The next step starts from this one's parameters and moments.
    for (unsigned i = 0; i < oneArgs.size(); ++i)
      if (oneResultOf.count(oneIO.argKey(i)))
        oneArgs[i] = (*want)[oneResultOf[oneIO.argKey(i)]];
    for (int64_t rank = 0; rank < ranks; ++rank)
      for (unsigned i = 0; i < manyArgs[rank].size(); ++i) {
        const std::vector<std::string> &keys = manyKeys[rank];
        auto it = std::find(keys.begin(), keys.end(), manyIO[rank].argKey(i));
        if (it != keys.end())
          manyArgs[rank][i] = (*got)[rank][it - keys.begin()];
      }
  }
  std::printf("[%s] %d tensors compared over %d steps and %lld ranks, max relative error %.3g "
              "(%s)\n",
              label.c_str(), cmp.tensors, steps, (long long)ranks, cmp.worst, cmp.where.c_str());
  return cmp;
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_PARTITIONHARNESS_H
