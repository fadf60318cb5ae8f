//===- BackwardSplit.h - a block backward cut into dgrad and wgrad halves --===//
//
// Zero-bubble pipeline schedules run a stage's backward in two actions: B,
// the ops the previous stage waits for (the gradient of the stage's input,
// dgrad), and W, the rest (the weight gradients, wgrad), which may be
// deferred to fill bubbles. kiln-autodiff keeps the two apart op by op
// (linear_dgrad / linear_wgrad), but a block's backward is one function; a
// stage that must send a block's input gradient before its weight
// gradients are computed calls the two halves of that function instead.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_BACKWARDSPLIT_H
#define KILN_PASSES_BACKWARDSPLIT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/DenseSet.h"

namespace kiln {

/// `input` computes the results of the original marked in `needed` (in
/// index order), followed by the "bridge" values the rest reads from it;
/// `weight` takes the original's arguments followed by the bridges and
/// computes the other results (in index order). Calling `input` then
/// `weight` computes exactly the ops of one call of the original, each
/// once.
struct BackwardSplit {
  mlir::func::FuncOp input, weight;
  llvm::BitVector needed; ///< the original's results `input` computes
  unsigned numNeeded = 0, numBridges = 0;
};

/// The ops of `f` (one block) that the results marked in `results` depend
/// on, added to `slice`; returns the arguments they read.
llvm::BitVector sliceOfResults(mlir::func::FuncOp f, const llvm::BitVector &results,
                               llvm::DenseSet<mlir::Operation *> &slice);

/// Splits `backward` (one block, no ops with regions) at `needed`; the two
/// functions are inserted into `symbols` next to it, named
/// `<name>_input` and `<name>_weight` (uniqued).
mlir::FailureOr<BackwardSplit> splitBackward(mlir::func::FuncOp backward,
                                             const llvm::BitVector &needed,
                                             mlir::SymbolTable &symbols);

} // namespace kiln

#endif // KILN_PASSES_BACKWARDSPLIT_H
