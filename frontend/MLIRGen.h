//===- MLIRGen.h - validated spec -> kiln IR ------------------------------===//

#ifndef KILN_FRONTEND_MLIRGEN_H
#define KILN_FRONTEND_MLIRGEN_H

#include "frontend/Spec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace kiln::frontend {

/// Loads the dialects kiln IR uses into `context`.
void loadKilnDialects(mlir::MLIRContext &context);

/// Builds the forward module of `spec`:
///
///   func.func @forward(params..., %tokens, %targets, %loss_mask)
///       -> (loss, logits, mtp_loss_1, mtp_logits_1, ...)
///
/// Parameters are arguments named by kiln.param (HF names), inputs by
/// kiln.input, results by kiln.result. With train.stage "grpo" the loss is
/// kiln.grpo_loss over three more inputs (advantages [B], old_logprobs and
/// ref_logprobs [B, S]) and there are no MTP modules. Each distinct decoder-layer kind and
/// MTP module is one private function called once per layer, so the IR does
/// not grow with experts and only by one call per layer.
mlir::OwningOpRef<mlir::ModuleOp> buildForwardModule(mlir::MLIRContext &context,
                                                     const Spec &spec);

} // namespace kiln::frontend

#endif // KILN_FRONTEND_MLIRGEN_H
