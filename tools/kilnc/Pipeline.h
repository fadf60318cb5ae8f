//===- Pipeline.h - the pass pipelines kilnc runs for a spec --------------===//
//
// The driver is where a spec's recipe becomes pass options: passes never read
// a spec themselves.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILNC_PIPELINE_H
#define KILN_TOOLS_KILNC_PIPELINE_H

#include "frontend/Spec.h"
#include "frontend/Summary.h"
#include "passes/Passes.h"

namespace kiln {

/// kiln-autodiff options for the spec's training recipe.
KilnAutodiffOptions autodiffOptionsFor(const frontend::Spec &spec);

/// Adds kiln-mixed-precision with the spec's train.precision (nothing for
/// fp32); it runs on the forward module, before kiln-autodiff.
void addMixedPrecision(mlir::OpPassManager &pm, const frontend::Spec &spec, bool report);

/// Adds kiln-lower-fp8 when train.precision is fp8; it runs after
/// kiln-autodiff.
void addFp8Lowering(mlir::OpPassManager &pm, const frontend::Spec &spec, bool report);
/// kiln-activation-checkpointing with train.checkpointing's policy (none: no pass).
void addActivationCheckpointing(mlir::OpPassManager &pm, const frontend::Spec &spec,
                                bool report);

/// Adds kiln-sparsity-2-4 with train.sparsity (nothing for "none"); it runs
/// after kiln-activation-checkpointing.
void addSparsity(mlir::OpPassManager &pm, const frontend::Spec &spec, bool report);

/// Lowers a forward module (from MLIRGen) in place to the per-rank training
/// step of the spec's layout: kiln-autodiff, then (when dp or microbatches
/// > 1) kiln-data-parallel and kiln-verify-collectives. Layouts the passes do not build yet (ep, pp > 1)
/// are errors naming the field. `report` prints the passes' remarks.
mlir::LogicalResult lowerToPartitionedStep(mlir::ModuleOp module, const frontend::Spec &spec,
                                           bool report, std::string &error);

/// Lowers a forward module (from MLIRGen) in place to the planned kernel-level
/// training step: kiln-autodiff, inline, convert-kiln-to-kernel,
/// kiln-fuse-elementwise (unless disabled), kiln-plan-arena. Disabling fusion
/// or reuse must change no number the step computes; tests check that.
struct KernelLoweringOptions {
  bool report = false;        ///< the passes' remarks (kernels fused, arena bytes)
  bool fuseElementwise = true;
  bool arenaReuse = true;
  bool overlapSendRecv = true; ///< kiln-overlap-send-recv
};
mlir::LogicalResult lowerToKernels(mlir::ModuleOp module, const frontend::Spec &spec,
                                   const KernelLoweringOptions &options);

/// train.batch_rampup: each smaller global batch (start, start + increment,
/// ... below the spec's) as its global rows and `forward` (the forward
/// module from MLIRGen, not modified) lowered like lowerToKernels with that
/// many micro-batches. Empty without a rampup; failure with the
/// diagnostics emitted.
mlir::FailureOr<std::vector<std::pair<int64_t, mlir::OwningOpRef<mlir::ModuleOp>>>>
buildRampupKernels(mlir::ModuleOp forward, const frontend::Spec &spec,
                   const KernelLoweringOptions &options);

/// Prices train.checkpointing for the summary: builds the spec's step with
/// each policy (none, selective, full, and the spec's own budget) down to
/// the planned kernel level and fills summary.checkpointing, or
/// summary.checkpointingNote with why not (pp > 1, a budget below the
/// smallest feasible arena).
/// Builds the spec's decode program (frontend/DecodeGen.cpp) for chunks of
/// `chunk` tokens and lowers it to the planned kernel level (inline,
/// convert-kiln-to-kernel with entry @decode, fusion, arena); null, with the
/// diagnostics emitted, on failure.
mlir::OwningOpRef<mlir::ModuleOp> buildDecodeKernels(mlir::MLIRContext &context,
                                                     const frontend::Spec &spec, int64_t chunk,
                                                     const KernelLoweringOptions &options);

/// The name of the entry function of the score program.
inline constexpr const char *kScoreEntry = "score";

/// Builds the spec's score program — @forward with its loss replaced by
/// kiln.token_logprobs of the targets under the logits (at
/// train.grpo.temperature), the inputs only the loss read removed — and
/// lowers it to the planned kernel level like the step. GRPO's old-policy
/// and reference log-probs come from it: the same forward kernels the step
/// runs, so at the first update the policy ratio is exactly 1. Null, with
/// diagnostics emitted, on failure.
mlir::OwningOpRef<mlir::ModuleOp> buildScoreKernels(mlir::MLIRContext &context,
                                                    const frontend::Spec &spec,
                                                    const KernelLoweringOptions &options);

/// train.grpo's options as the initialisers of runtime/driver/GrpoProgram.h's
/// GrpoDesc fields before `score`.
std::string grpoDescFields(const frontend::GrpoConfig &grpo);

/// Whether `spec`'s executable gets a decode program: its training program
/// must hold the whole model on one rank (pp 1, ep 1), whose parameters
/// `train --generate` decodes with.
bool buildsDecodeProgram(const frontend::Spec &spec);

void priceCheckpointing(const frontend::Spec &spec, frontend::ModelSummary &summary);

/// Whether the host C++ target can build `spec` as written. Recipe features
/// the host program does not implement yet (another target, GRPO, pipeline
/// parallelism) are errors naming the spec field, never
/// silently dropped. Data and expert parallelism and micro-batches build
/// (mpirun for dp > 1).
bool checkHostTarget(const frontend::Spec &spec, std::string &error);

/// Whether the CUDA target can build `spec` (target.kind "cuda"; what
/// checkHostTarget calls for it): one GPU so far, no GRPO, no batch rampup;
/// errors name the spec field.
bool checkCudaTarget(const frontend::Spec &spec, std::string &error);

/// Hex FNV-1a of the printed forward module built for one row: a checkpoint
/// records it and a resumed run must match it (same architecture, same
/// loss), whatever the layout (dp, micro-batches, micro_batch) of either run.
/// Empty if the module cannot be built.
std::string specFingerprint(mlir::MLIRContext &context, const frontend::Spec &spec);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_PIPELINE_H
