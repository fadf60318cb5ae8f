//===- Recompute.h - make a block backward recompute its saved values -----===//
//
// kiln-autodiff gives each block function F a forward F_fwd that returns,
// after F's results, the values F_bwd needs, and a backward F_bwd that takes
// them as its last arguments (kiln.forward and kiln.saved on F_bwd say which
// and how many). These rewrite one F_bwd so that it computes some of those
// values itself, at its start, from its own arguments (the block's inputs)
// and the saved values it still takes. The caller drops the corresponding
// operands of F_bwd's calls. kiln-activation-checkpointing applies them per
// policy.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_RECOMPUTE_H
#define KILN_PASSES_RECOMPUTE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/BitVector.h"

namespace kiln {

/// The number of saved values `f` takes last (0 for other functions).
int64_t savedCountOf(mlir::func::FuncOp f);

/// The selective rule: ops cheap to recompute per byte they would keep
/// (Passes.td, kiln-activation-checkpointing, lists them).
bool isCheapToRecompute(mlir::Operation *op);

/// Makes `bwd` recompute every saved value from a copy of `fwd`'s body (ops
/// that only F's results needed are not copied); it no longer takes any.
/// Returns the bytes per call it no longer keeps.
mlir::FailureOr<int64_t> recomputeAllSaved(mlir::func::FuncOp bwd, mlir::func::FuncOp fwd);

/// Makes `bwd` recompute the saved values that cheap ops alone make from
/// its arguments and the saved values it keeps. Returns which saved values
/// (by index among them) it no longer takes, and adds their bytes to
/// `bytes`.
mlir::FailureOr<llvm::BitVector> recomputeCheapSaved(mlir::func::FuncOp bwd,
                                                     mlir::func::FuncOp fwd, int64_t &bytes);

} // namespace kiln

#endif // KILN_PASSES_RECOMPUTE_H
