//===- PipelinePricing.h - a pipeline layout priced before it is built ----===//
//
// kilnc's summary of a pp > 1 spec (Summary.h, ModelSummary::PipelineCost)
// and the costs `--emit=schedule` simulates with: the planner's FLOPs per
// action of the costliest stage, from the per-piece FLOPs of
// frontend::pipelinePieceFlops, so that DeepSeek-V3's layout (pp 16,
// dualpipev, 120 micro-batches) is priced in well under a second.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILNC_PIPELINEPRICING_H
#define KILN_TOOLS_KILNC_PIPELINEPRICING_H

#include "frontend/Spec.h"
#include "frontend/Summary.h"
#include "passes/PipelineSchedule.h"

namespace kiln {

/// Per-action costs (FLOPs per micro-batch) of the costliest stage of the
/// spec's layout; `layersPerStage` gets the stages' layer counts.
pipeline::Costs plannedStageCosts(const frontend::Spec &spec,
                                  std::vector<int64_t> &layersPerStage);

/// Fills summary.pipeline (or summary.pipelineNote) for pp > 1. With
/// `activations`, builds a one-rank step of the spec's layer kinds (a dense
/// and an MoE layer, MTP) to price the values each block keeps, and adds
/// each rank's peak of them.
void pricePipeline(const frontend::Spec &spec, bool activations,
                   frontend::ModelSummary &summary);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_PIPELINEPRICING_H
