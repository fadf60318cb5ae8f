//===- Pipeline.cpp - the pass pipelines kilnc runs for a spec ------------===//

#include "tools/kilnc/Pipeline.h"
#include "runtime/init/SeededRng.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/Format.h"

using namespace mlir;

namespace kiln {

KilnAutodiffOptions autodiffOptionsFor(const frontend::Spec &spec) {
  const frontend::TrainConfig &t = spec.train;
  KilnAutodiffOptions o;
  o.mtpLossWeight = t.mtpLossWeight;
  o.auxLossAlpha = t.auxLossAlpha;
  o.biasUpdateSpeed = t.biasUpdateSpeed;
  o.lr = t.lr;
  o.minLr = t.minLr;
  o.warmupSteps = t.warmupSteps;
  o.totalSteps = t.steps;
  o.beta1 = t.beta1;
  o.beta2 = t.beta2;
  o.eps = t.eps;
  o.weightDecay = t.weightDecay;
  o.gradClip = t.gradClip;
  return o;
}

LogicalResult lowerToKernels(ModuleOp module, const frontend::Spec &spec, bool report) {
  PassManager pm(module.getContext());
  if (failed(applyPassManagerCLOptions(pm)))
    return failure();
  pm.addPass(createKilnAutodiff(autodiffOptionsFor(spec)));
  // Block functions are inlined into the step: the kernel level is one
  // straight-line function, which is what liveness planning wants. No
  // cleanup pipeline: canonicalization could refold arithmetic.
  pm.addPass(createInlinerPass({}, [](OpPassManager &) {}));
  pm.addPass(createConvertKilnToKernel());
  KilnFuseElementwiseOptions fuse;
  fuse.report = report;
  pm.addNestedPass<func::FuncOp>(createKilnFuseElementwise(fuse));
  KilnPlanArenaOptions plan;
  plan.report = report;
  pm.addNestedPass<func::FuncOp>(createKilnPlanArena(plan));
  return pm.run(module);
}

std::string specFingerprint(ModuleOp forward) {
  std::string text;
  llvm::raw_string_ostream os(text);
  forward.print(os, OpPrintingFlags().elideLargeElementsAttrs(0));
  std::string hex;
  llvm::raw_string_ostream hexOs(hex);
  hexOs << llvm::format_hex_no_prefix(init::fnv1a64(text), 16);
  return hex;
}

} // namespace kiln
