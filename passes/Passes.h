//===- Passes.h - Kiln passes ---------------------------------------------===//

#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include "dialects/kernel/KernelDialect.h"
#include "dialects/kiln/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <functional>

namespace kiln {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The bytes of a statically shaped tensor of `type` (sub-byte elements
/// round up to a byte), as the passes' reports and cost models count them.
inline int64_t bytesOf(mlir::Type type) {
  auto shaped = mlir::cast<mlir::ShapedType>(type);
  return shaped.getNumElements() * int64_t((shaped.getElementTypeBitWidth() + 7) / 8);
}

/// Plans the arena of a kiln-level module as the build would: lowers the
/// module (a clone the caller may throw away) to the kernel level and
/// returns its arena bytes. kiln-activation-checkpointing's budget policy
/// prices its candidates with it.
using ArenaPricer = std::function<mlir::FailureOr<int64_t>(mlir::ModuleOp)>;

/// kiln-activation-checkpointing with the pricer of a driver that runs more
/// passes between it and the kernel level (kilnc: data parallelism). The
/// default pricer (a null `pricer`, or the flag) runs addKernelLowering.
std::unique_ptr<mlir::Pass>
createKilnActivationCheckpointing(const KilnActivationCheckpointingOptions &options,
                                  ArenaPricer pricer);

/// Adds the lowering of a kiln training step (`@train_step`, or `entry`: a
/// decode program's `@decode`) to the planned kernel level: inline,
/// convert-kiln-to-kernel, kiln-fuse-elementwise and kiln-overlap-send-recv
/// (unless disabled), kiln-overlap-collectives (when asked: kilnc asks for
/// the CUDA target's data-parallel steps) and kiln-plan-arena.
void addKernelLowering(mlir::OpPassManager &pm, bool fuseElementwise, bool arenaReuse,
                       bool report, bool overlapSendRecv = true,
                       llvm::StringRef entry = "train_step", bool overlapCollectives = false);

/// Registers `kiln-kernel-lowering`, addKernelLowering's pipeline with fusion
/// and reuse on, for kiln-opt.
void registerKilnPipelines();

/// Runs the pipeline `addLowering` builds on `module` (which it changes) and
/// returns the largest kiln_kernel.arena_bytes of its functions.
mlir::FailureOr<int64_t>
plannedArenaBytes(mlir::ModuleOp module,
                  llvm::function_ref<void(mlir::OpPassManager &)> addLowering);

} // namespace kiln

#endif // KILN_PASSES_PASSES_H
