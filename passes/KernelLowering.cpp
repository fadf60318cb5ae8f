//===- KernelLowering.cpp - a kiln step to the planned kernel level -------===//
//
// The tail every build of a step runs (kilnc's lowerToKernels) and the
// pricing kiln-activation-checkpointing's budget policy plans with: one
// definition, so the price is the arena the build gets.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace kiln {

void addKernelLowering(OpPassManager &pm, bool fuseElementwise, bool arenaReuse, bool report,
                       bool overlapSendRecv, StringRef entry, bool overlapCollectives) {
  // Block functions are inlined into the step: the kernel level is one
  // straight-line function, which is what liveness planning wants. No
  // cleanup pipeline: canonicalization could refold arithmetic.
  pm.addPass(createInlinerPass({}, [](OpPassManager &) {}));
  ConvertKilnToKernelOptions convert;
  convert.entry = entry.str();
  pm.addPass(createConvertKilnToKernel(convert));
  if (fuseElementwise) {
    KilnFuseElementwiseOptions fuse;
    fuse.report = report;
    pm.addNestedPass<func::FuncOp>(createKilnFuseElementwise(fuse));
  }
  if (overlapSendRecv) {
    KilnOverlapSendRecvOptions overlap;
    overlap.report = report;
    pm.addNestedPass<func::FuncOp>(createKilnOverlapSendRecv(overlap));
  }
  if (overlapCollectives) {
    KilnOverlapCollectivesOptions collectives;
    collectives.report = report;
    pm.addNestedPass<func::FuncOp>(createKilnOverlapCollectives(collectives));
  }
  KilnPlanArenaOptions plan;
  plan.reuse = arenaReuse;
  plan.report = report;
  pm.addNestedPass<func::FuncOp>(createKilnPlanArena(plan));
}

void registerKilnPipelines() {
  PassPipelineRegistration<>(
      "kiln-kernel-lowering",
      "Lowers a kiln training step to the planned kernel level as kilnc builds it: inline, "
      "convert-kiln-to-kernel, kiln-fuse-elementwise, kiln-overlap-send-recv, kiln-plan-arena",
      [](OpPassManager &pm) {
        addKernelLowering(pm, /*fuseElementwise=*/true, /*arenaReuse=*/true, /*report=*/false);
      });
}

FailureOr<int64_t> plannedArenaBytes(ModuleOp module,
                                     llvm::function_ref<void(OpPassManager &)> addLowering) {
  PassManager pm(module.getContext());
  addLowering(pm);
  if (failed(pm.run(module)))
    return failure();
  int64_t bytes = -1;
  module.walk([&](func::FuncOp f) {
    if (auto arena = f->getAttrOfType<IntegerAttr>(kernel::kArenaBytesAttr))
      bytes = std::max(bytes, arena.getInt());
  });
  if (bytes < 0)
    return module.emitError() << "no function of the lowered module has a planned arena "
                                 "(kiln_kernel.arena_bytes)";
  return bytes;
}

} // namespace kiln
