//===- KilnDialect.h - the kiln dialect, its attributes and ops -----------===//

#ifndef KILN_DIALECT_H
#define KILN_DIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/kiln/GradientContext.h"
#include "dialects/kiln/KilnInterfaces.h.inc"

#include "dialects/kiln/KilnDialect.h.inc"

namespace kiln {
/// Marks a kiln.linear (and the linear_dgrad / linear_wgrad autodiff makes
/// of it) whose GEMM kiln-lower-fp8 runs in FP8 (kiln-mixed-precision
/// policy=fp8 sets it).
inline constexpr llvm::StringLiteral kFp8Attr = "kiln.fp8";

/// On a block function's backward F_bwd (kiln-autodiff): its forward F_fwd
/// (a FlatSymbolRefAttr) and how many saved values its last arguments are,
/// which are F_fwd's last results. kiln-activation-checkpointing reads them
/// to recompute the saved values instead of keeping them.
inline constexpr llvm::StringLiteral kForwardAttr = "kiln.forward";
inline constexpr llvm::StringLiteral kSavedAttr = "kiln.saved";

/// The `kiln.state` roles of dynamic loss scaling's step state
/// (kiln-autodiff loss-scale=dynamic, kiln.grad_scaler's operands 1-3 and
/// results 2-4, in that order), which belong to no parameter.
inline constexpr llvm::StringLiteral kLossScalerStateRoles[] = {
    "loss_scale", "growth_tracker", "optimizer_updates"};
inline bool isLossScalerStateRole(llvm::StringRef role) {
  return llvm::is_contained(kLossScalerStateRoles, role);
}

/// kiln-pipeline marks every op of a rank's program with the schedule action
/// it belongs to: the op's location becomes callsite(<its location> at
/// "pipeline action 0F3"), which inlining and lowering keep as the outermost
/// caller, so the host program can time each action (train --trace).
inline constexpr llvm::StringLiteral kPipelineActionPrefix = "pipeline action ";
/// The location of an op of `action` ("0F3", formatAction's spelling).
mlir::Location pipelineActionLoc(mlir::Location loc, llvm::StringRef action);
/// The action `loc` belongs to ("0F3"), or "" when it has none; for a fused
/// location, that of its first part that has one.
llvm::StringRef pipelineActionOf(mlir::Location loc);

/// Parses an f64 attribute parameter written as a float literal.
mlir::FailureOr<llvm::APFloat> parseF64Parameter(mlir::AsmParser &parser);
} // namespace kiln

#define GET_ATTRDEF_CLASSES
#include "dialects/kiln/KilnAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/kiln/KilnOps.h.inc"

#endif // KILN_DIALECT_H
