//===- Pipeline.cpp - the pass pipelines kilnc runs for a spec ------------===//

#include "tools/kilnc/Pipeline.h"
#include "frontend/MLIRGen.h"
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
  o.momentType = t.stateDtype == "bf16" ? "bf16" : "f32";
  if (t.precision == "fp16") {
    o.lossScale = "dynamic";
    o.lossScaleInit = t.lossScale.init;
    o.lossScaleGrowthFactor = t.lossScale.growthFactor;
    o.lossScaleBackoffFactor = t.lossScale.backoffFactor;
    o.lossScaleGrowthInterval = t.lossScale.growthInterval;
  }
  return o;
}

void addMixedPrecision(OpPassManager &pm, const frontend::Spec &spec, bool report) {
  const std::string &precision = spec.train.precision;
  if (precision == "fp32")
    return;
  KilnMixedPrecisionOptions options;
  options.policy = precision;
  options.highPrecision.assign(spec.train.highPrecision.begin(), spec.train.highPrecision.end());
  options.lowPrecision.assign(spec.train.lowPrecision.begin(), spec.train.lowPrecision.end());
  options.report = report;
  pm.addPass(createKilnMixedPrecision(options));
}

void addFp8Lowering(OpPassManager &pm, const frontend::Spec &spec, bool report) {
  if (spec.train.precision != "fp8")
    return;
  KilnLowerFp8Options options;
  options.report = report;
  pm.addPass(createKilnLowerFp8(options));
}

void addActivationCheckpointing(OpPassManager &pm, const frontend::Spec &spec, bool report) {
  if (spec.train.checkpointing == "none")
    return;
  KilnActivationCheckpointingOptions options;
  options.policy = spec.train.checkpointing;
  options.report = report;
  pm.addPass(createKilnActivationCheckpointing(options));
}

LogicalResult lowerToPartitionedStep(ModuleOp module, const frontend::Spec &spec, bool report,
                                     std::string &error) {
  const frontend::ParallelConfig &p = spec.parallel;
  if (p.pp != 1) {
    error = spec.path + ": parallel.pp: " + std::to_string(p.pp) +
            ": pipeline parallelism (kiln-pipeline) is not built yet; use pp 1";
    return failure();
  }
  PassManager pm(module.getContext());
  if (failed(applyPassManagerCLOptions(pm)))
    return failure();
  if (p.ep > 1) {
    // On the forward: kiln-autodiff differentiates the exchange it builds.
    KilnExpertParallelOptions ep;
    ep.ep = p.ep;
    ep.dp = p.dp;
    ep.report = report;
    pm.addPass(createKilnExpertParallel(ep));
  }
  addMixedPrecision(pm, spec, report);
  pm.addPass(createKilnAutodiff(autodiffOptionsFor(spec)));
  addFp8Lowering(pm, spec, report);
  addActivationCheckpointing(pm, spec, report);
  if (p.dp > 1 || p.microbatches > 1) {
    KilnDataParallelOptions dp;
    dp.dp = p.dp;
    dp.zero = p.zero;
    dp.microbatches = p.microbatches;
    dp.report = report;
    pm.addPass(createKilnDataParallel(dp));
    if (p.gradCompression.enabled) {
      KilnGradCompressionOptions compression;
      compression.ratio = p.gradCompression.ratio;
      compression.quantize = p.gradCompression.quantize;
      compression.errorFeedback = p.gradCompression.errorFeedback;
      compression.report = report;
      pm.addPass(createKilnGradCompression(compression));
    }
    // Every multi-rank build proves its ranks meet each other before any
    // code is emitted: a mismatch is a compile error, not a hang at step N.
    KilnVerifyCollectivesOptions verify;
    verify.report = report;
    pm.addPass(createKilnVerifyCollectives(verify));
  }
  return pm.run(module);
}

LogicalResult lowerToKernels(ModuleOp module, const frontend::Spec &spec,
                             const KernelLoweringOptions &options) {
  std::string error;
  if (failed(lowerToPartitionedStep(module, spec, options.report, error))) {
    if (!error.empty())
      module.emitError() << error;
    return failure();
  }
  PassManager pm(module.getContext());
  if (failed(applyPassManagerCLOptions(pm)))
    return failure();
  // Block functions are inlined into the step: the kernel level is one
  // straight-line function, which is what liveness planning wants. No
  // cleanup pipeline: canonicalization could refold arithmetic.
  pm.addPass(createInlinerPass({}, [](OpPassManager &) {}));
  pm.addPass(createConvertKilnToKernel());
  if (options.fuseElementwise) {
    KilnFuseElementwiseOptions fuse;
    fuse.report = options.report;
    pm.addNestedPass<func::FuncOp>(createKilnFuseElementwise(fuse));
  }
  KilnPlanArenaOptions plan;
  plan.reuse = options.arenaReuse;
  plan.report = options.report;
  pm.addNestedPass<func::FuncOp>(createKilnPlanArena(plan));
  return pm.run(module);
}

bool checkHostTarget(const frontend::Spec &spec, std::string &error) {
  auto fail = [&](const std::string &field, const std::string &what) {
    error = spec.path + ": " + field + ": " + what;
    return false;
  };
  const frontend::TrainConfig &t = spec.train;
  if (spec.target.kind != "host")
    return fail("target", "'" + spec.target.kind +
                              "' cannot be built yet; the host target (\"target\": \"host\") can");

  if (t.checkpointing == "budget")
    return fail("train.checkpointing",
                "the budget policy is not built yet; use \"none\", \"full\" or \"selective\"");
  if (t.sparsity != "none")
    return fail("train.sparsity", "'" + t.sparsity + "' is not built yet; use \"none\"");
  if (t.stage == "grpo")
    return fail("train.stage", "'grpo' is not built yet; \"pretrain\" and \"sft\" are");
  const frontend::ParallelConfig &p = spec.parallel;
  if (p.pp != 1)
    return fail("parallel.pp", std::to_string(p.pp) +
                                   ": pipeline parallelism is not built yet; use pp 1");
  return true;
}

std::string specFingerprint(MLIRContext &context, const frontend::Spec &spec) {
  // Built for one row: the layout (dp, micro-batches, micro_batch) changes
  // the batch dimension of every activation but not what is trained.
  frontend::Spec oneRow = spec;
  oneRow.train.microBatch = 1;
  OwningOpRef<ModuleOp> forward = frontend::buildForwardModule(context, oneRow);
  if (!forward)
    return "";
  PassManager pm(&context);
  pm.addNestedPass<func::FuncOp>(createCSEPass()); // as kilnc's forward module
  if (failed(pm.run(*forward)))
    return "";
  std::string text;
  llvm::raw_string_ostream os(text);
  forward->print(os, OpPrintingFlags().elideLargeElementsAttrs(0));
  std::string hex;
  llvm::raw_string_ostream hexOs(hex);
  hexOs << llvm::format_hex_no_prefix(init::fnv1a64(text), 16);
  return hex;
}

} // namespace kiln
