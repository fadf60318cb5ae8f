//===- PipelinePlan.h - kiln-pipeline's analysis of a micro step ---------===//
//
// What kiln-pipeline (Pipeline.cpp) decides before it writes any rank's
// program: where each op of the micro step runs (stage and phase), which
// values cross each stage boundary, which block backwards are cut into
// input and weight halves, how each micro output is summed, and the order
// each rank runs its schedule's actions in. Pipeline.cpp's header comment
// has the rules; Passes.td the contract.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_PIPELINEPLAN_H
#define KILN_PASSES_PIPELINEPLAN_H

#include "passes/BackwardSplit.h"
#include "passes/PipelineSchedule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::pipeline_lowering {

using namespace mlir;

enum class Phase : uint8_t { Free, Forward, Backward, Dissolved };

struct Placement {
  Phase phase = Phase::Free;
  int32_t stage = 0;
};

/// Which ranks hold a value of the step after the micro-batches (bit r:
/// pipeline rank r).
using Holders = llvm::BitVector;

/// The layers of each stage as contiguous ranges minimising the largest
/// stage cost (the linear partition problem); the first and last stage
/// also pay `firstExtra` and `lastExtra`. Returns the first layer of each
/// stage.
SmallVector<int64_t> balancedSplit(ArrayRef<double> cost, int64_t stages, double firstExtra,
                                   double lastExtra);

struct RewriteOptions {
  std::string entry, schedule;
  int64_t pp = 1, chunks = 1, layers = 0;
  SmallVector<int64_t> layersPerStage;
};

class PipelineRewrite {
public:
  PipelineRewrite(ModuleOp module, func::FuncOp step, RewriteOptions options)
      : module(module), step(step), opts(std::move(options)), symbols(module) {}

  LogicalResult run();
  bool splitsWeightsReport() const { return splitsWeights; }

  // What the report says.
  SmallVector<int64_t> firstLayer;
  std::vector<int64_t> edgeBytesF, edgeBytesB;
  std::optional<pipeline::Simulation> simulation;
  pipeline::Schedule schedule;
  /// The costliest stage's FLOPs per action (StepCost.h's model) and the
  /// schedule simulated with them.
  pipeline::Costs stageCosts;
  std::optional<pipeline::Simulation> pricedSimulation;
  /// The same with each stage's own FLOPs (what a run measures).
  std::optional<pipeline::Simulation> simulationByStage;

private:
  LogicalResult findMicroCalls();
  void classifyMicroOps();
  LogicalResult placeForward();
  void placeBackward();
  void collectOutputs();
  LogicalResult collectEdges();
  LogicalResult splitBackwards();
  LogicalResult findSums();
  LogicalResult buildActionLists();
  void priceStages();
  LogicalResult buildRank(int32_t rank);

  int32_t stages() const { return int32_t(opts.pp * opts.chunks); }
  int32_t rankOfStage(int32_t stage) const { return schedule.placeOf(stage).first; }
  Placement placeOf(Value v) {
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != &micro.getBody().front())
      return Placement{};
    return place.lookup(def);
  }

  ModuleOp module;
  func::FuncOp step, micro;
  RewriteOptions opts;
  SymbolTable symbols;
  SmallVector<func::CallOp> calls; // one per micro-batch, in order
  llvm::DenseSet<Operation *> stepPrologue, stepSumChain;
  SmallVector<Value> sumOf; // per micro output: the step's sum over micro-batches

  llvm::DenseMap<Operation *, Placement> place;
  /// Per micro output: per stage, the pieces summed into it.
  std::vector<std::map<int32_t, SmallVector<Value>>> outputParts;
  /// Edge e joins stages e and e + 1: the values the forward sends up it
  /// and the backward sends down it, per micro-batch.
  std::vector<llvm::SetVector<Value>> edgeF, edgeB;
  /// Backward ops of the B (input gradient) action; the rest are W's.
  llvm::DenseSet<Operation *> inputOps;
  llvm::DenseMap<Operation *, BackwardSplit> splitOf;
  bool splitsWeights = false;
  /// Per rank, the order its actions run in (indices into the schedule's).
  std::vector<std::vector<size_t>> order;

  friend class RankBuilder;
};

} // namespace kiln::pipeline_lowering

#endif // KILN_PASSES_PIPELINEPLAN_H
