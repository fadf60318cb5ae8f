//===- PipelinePricing.cpp - a pipeline layout priced before it is built --===//

#include "tools/kilnc/PipelinePricing.h"

#include "frontend/MLIRGen.h"
#include "passes/StepCost.h"
#include "tools/kilnc/Pipeline.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <algorithm>

using namespace mlir;

namespace kiln {

/// Layers per stage: contiguous, the first (layers % stages) one longer.
static std::vector<int64_t> uniformStages(int64_t layers, int64_t stages) {
  std::vector<int64_t> counts(stages, layers / stages);
  for (int64_t s = 0; s < layers % stages; ++s)
    ++counts[s];
  return counts;
}

pipeline::Costs plannedStageCosts(const frontend::Spec &spec,
                                  std::vector<int64_t> &layersPerStage) {
  const frontend::ModelConfig &m = spec.model;
  const int64_t stages = spec.parallel.pp * spec.parallel.chunksPerRank();
  layersPerStage = uniformStages(m.numHiddenLayers, stages);
  const std::vector<frontend::PieceFlops> pieces = frontend::pipelinePieceFlops(spec);
  const double tokens = double(spec.train.microBatch) * double(spec.train.seqLen);
  pipeline::Costs best;
  double bestTotal = -1;
  int64_t layer = 0;
  for (int64_t s = 0; s < stages; ++s) {
    frontend::PieceFlops stage;
    auto add = [&](const frontend::PieceFlops &p) {
      stage.gemm += p.gemm;
      stage.attention += p.attention;
    };
    for (int64_t k = 0; k < layersPerStage[s]; ++k)
      add(pieces[layer++]);
    if (s == stages - 1) // head and MTP
      for (size_t k = m.numHiddenLayers; k < pieces.size(); ++k)
        add(pieces[k]);
    pipeline::Costs c;
    c.f = tokens * (stage.gemm + stage.attention);
    c.b = tokens * (stage.gemm + 2 * stage.attention);
    c.w = tokens * stage.gemm;
    if (c.f + c.b + c.w > bestTotal) {
      bestTotal = c.f + c.b + c.w;
      best = c;
    }
  }
  return best;
}

/// Bytes of saved values per block of each kind: a one-rank step of the
/// spec's first dense layer, first MoE layer and MTP modules, built with its
/// checkpointing policy. Returns per layer of the model, then per MTP
/// module; empty (with `note`) when the step does not build.
static std::vector<int64_t> savedBytesPerPiece(const frontend::Spec &spec, std::string &note) {
  const frontend::ModelConfig &m = spec.model;
  int64_t firstMoE = -1;
  for (int64_t l = 0; l < m.numHiddenLayers && firstMoE < 0; ++l)
    if (m.isMoELayer(l))
      firstMoE = l;
  frontend::Spec reduced = spec;
  reduced.parallel = frontend::ParallelConfig();
  reduced.train.sparsity = frontend::SparsityConfig();
  if (reduced.train.checkpointing == "budget")
    reduced.train.checkpointing = "selective";
  reduced.model.numHiddenLayers = firstMoE < 0 ? 1 : firstMoE + 1;
  MLIRContext context;
  DialectRegistry registry;
  func::registerInlinerExtension(registry);
  context.appendDialectRegistry(registry);
  ScopedDiagnosticHandler quiet(&context, [](Diagnostic &) { return success(); });
  OwningOpRef<ModuleOp> step = frontend::buildForwardModule(context, reduced);
  std::string error;
  if (!step || failed(lowerToPartitionedStep(*step, reduced, /*report=*/false, error))) {
    note = "activations not priced: the one-rank step of its layer kinds does not build";
    return {};
  }
  std::vector<SavedBlock> blocks = savedValuesPerBlock(*step);
  const size_t reducedLayers = size_t(reduced.model.numHiddenLayers);
  if (blocks.size() != reducedLayers + size_t(m.numNextnPredictLayers)) {
    note = "activations not priced: the one-rank step has " + std::to_string(blocks.size()) +
           " blocks, expected " + std::to_string(reducedLayers + m.numNextnPredictLayers);
    return {};
  }
  std::vector<int64_t> bytes;
  for (int64_t l = 0; l < m.numHiddenLayers; ++l)
    bytes.push_back(blocks[m.isMoELayer(l) ? reducedLayers - 1 : 0].savedBytes);
  for (int64_t k = 0; k < m.numNextnPredictLayers; ++k)
    bytes.push_back(blocks[reducedLayers + k].savedBytes);
  return bytes;
}

void pricePipeline(const frontend::Spec &spec, bool activations,
                   frontend::ModelSummary &summary) {
  const frontend::ParallelConfig &p = spec.parallel;
  if (p.pp <= 1)
    return;
  frontend::ModelSummary::PipelineCost cost;
  const pipeline::Costs costs = plannedStageCosts(spec, cost.layersPerStage);
  cost.chunks = p.chunksPerRank();
  cost.stages = p.pp * cost.chunks;
  cost.f = costs.f;
  cost.i = costs.b;
  cost.w = costs.w;
  cost.edgeBytes = 4 * spec.train.microBatch * spec.train.seqLen * spec.model.hiddenSize;
  std::string error;
  std::optional<pipeline::Schedule> schedule = pipeline::buildSchedule(
      p.schedule, int32_t(p.pp), int32_t(p.virtualStages), int32_t(p.microbatches), costs, error);
  std::optional<pipeline::Simulation> sim;
  if (schedule)
    sim = pipeline::simulate(*schedule, costs, error);
  if (!sim) {
    summary.pipelineNote = "schedule not priced: " + error;
    return;
  }
  for (int32_t r = 0; r < schedule->ranks; ++r) {
    const double fraction = sim->bubble[r] / sim->makespan;
    if (fraction > cost.bubbleFraction) {
      cost.bubbleFraction = fraction;
      cost.bubbleRank = r;
    }
    cost.peakInFlight = std::max<int64_t>(cost.peakInFlight, sim->peakInFlight[r]);
  }
  if (activations) {
    std::vector<int64_t> perPiece = savedBytesPerPiece(spec, summary.pipelineNote);
    if (!perPiece.empty()) {
      // Bytes one micro-batch keeps on each stage.
      std::vector<int64_t> stageBytes(cost.stages, 0);
      int64_t layer = 0;
      for (int64_t s = 0; s < cost.stages; ++s)
        for (int64_t k = 0; k < cost.layersPerStage[s]; ++k)
          stageBytes[s] += perPiece[layer++];
      for (size_t k = spec.model.numHiddenLayers; k < perPiece.size(); ++k)
        stageBytes[cost.stages - 1] += perPiece[k];
      // Each rank's peak: a forward's values are held until its W (or
      // whole backward).
      using pipeline::Op;
      for (int32_t r = 0; r < schedule->ranks; ++r) {
        int64_t held = 0, peak = 0;
        for (const pipeline::Action &a : schedule->actions[r]) {
          const int64_t bytes = stageBytes[schedule->stageOf[r][a.chunk]];
          if (a.op == Op::F || a.op == Op::FB)
            held += bytes;
          peak = std::max(peak, held);
          if (a.op == Op::W || a.op == Op::BW)
            held -= bytes;
          if (a.op == Op::FB)
            held -= stageBytes[schedule->stageOf[r][a.chunk2]];
        }
        cost.activationBytesPerRank.push_back(peak);
      }
    }
  }
  summary.pipeline = cost;
}

} // namespace kiln
