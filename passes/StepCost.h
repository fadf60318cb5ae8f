//===- StepCost.h - what a training step computes and keeps, priced -------===//
//
// The cost model kiln-activation-checkpointing chooses with and kilnc
// reports (--report, --summary=json):
//
//  * FLOPs of one forward op: 2 per multiply-accumulate for the GEMMs
//    (linear, matmul, grouped_matmul, scaled_matmul, scaled_grouped_matmul:
//    2 x result elements x K) and causal attention (2 x batch x heads x
//    seq x keys x (d_qk + d_v), keys = (seq + 1) / 2 on average when
//    causal), as Summary.h counts a token's forward; every other op counts
//    one FLOP per result element (norms, activations, RoPE, elementwise and
//    data movement are cheap but not free, so recomputing them is preferred
//    to recomputing a GEMM, and never counted as costless). A call costs
//    its callee's ops. Backward GEMMs (linear_dgrad / wgrad,
//    grouped_matmul_dgrad / wgrad) cost what their forward does, 2 per
//    multiply-accumulate, and attention_grad twice its forward; other
//    backward ops follow the per-element rule. kiln-pipeline prices its
//    F, I and W actions with these; the checkpointing report compares two
//    builds of one step (what recomputation adds).
//  * Saved bytes per block: the bytes of the saved values (kiln.saved) the
//    step hands to each block backward it calls.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_STEPCOST_H
#define KILN_PASSES_STEPCOST_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"

#include <string>
#include <vector>

namespace kiln {

/// FLOPs of one op by the rules above (a call: its callee's body).
double opFlops(mlir::Operation *op, mlir::SymbolTableCollection &symbols);

/// FLOPs of running `f` once.
double functionFlops(mlir::func::FuncOp f, mlir::SymbolTableCollection &symbols);

/// FLOPs of every function in `module` that no other function calls (the
/// training step), summed.
double entryFlops(mlir::ModuleOp module);

/// One block backward call of the step and what it is handed to keep.
struct SavedBlock {
  std::string backward; ///< the callee, e.g. decoder_layer_bwd
  int64_t savedValues = 0;
  int64_t savedBytes = 0;
};

/// The block backwards the step (every function no other calls) calls, in
/// forward order (the reverse of the backward's), with their saved values.
std::vector<SavedBlock> savedValuesPerBlock(mlir::ModuleOp module);

} // namespace kiln

#endif // KILN_PASSES_STEPCOST_H
