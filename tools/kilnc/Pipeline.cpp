//===- Pipeline.cpp - the pass pipelines kilnc runs for a spec ------------===//

#include "tools/kilnc/Pipeline.h"
#include "frontend/DecodeGen.h"
#include "frontend/MLIRGen.h"
#include "passes/StepCost.h"
#include "runtime/init/SeededRng.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

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

/// Whether the build puts the step's collectives on a communication stream
/// (kiln-overlap-collectives): the CUDA target's multi-rank steps, whose
/// NCCL collectives then overlap the compute stream. The host's block
/// where they are issued, so its programs do not run the pass.
static bool overlapsCollectives(const frontend::Spec &spec) {
  return spec.target.kind == "cuda" && spec.parallel.dp > 1;
}

/// The passes between kiln-activation-checkpointing and the partitioned step:
/// kiln-data-parallel (dp or micro-batches > 1), gradient compression, and
/// kiln-verify-collectives.
static void addDataParallel(OpPassManager &pm, const frontend::Spec &spec, bool report) {
  const frontend::ParallelConfig &p = spec.parallel;
  if (p.dp == 1 && p.microbatches == 1 && p.pp == 1)
    return;
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
  if (p.pp > 1) {
    KilnPipelineOptions pipeline;
    pipeline.pp = p.pp;
    pipeline.schedule = p.schedule;
    pipeline.virtualStages = p.virtualStages;
    pipeline.layers = spec.model.numHiddenLayers;
    pipeline.report = report;
    pm.addPass(createKilnPipeline(pipeline));
  }
  // Every multi-rank build proves its ranks meet each other before any
  // code is emitted: a mismatch is a compile error, not a hang at step N.
  KilnVerifyCollectivesOptions verify;
  verify.report = report;
  pm.addPass(createKilnVerifyCollectives(verify));
}

void addActivationCheckpointing(OpPassManager &pm, const frontend::Spec &spec, bool report) {
  if (spec.train.checkpointing == "none")
    return;
  KilnActivationCheckpointingOptions options;
  options.policy = spec.train.checkpointing;
  options.budgetBytes = spec.train.checkpointBudgetBytes;
  options.report = report;
  // A budget is for the arena this build plans: price candidates through
  // the passes lowerToKernels runs after this one.
  ArenaPricer pricer = [spec](ModuleOp candidate) {
    return plannedArenaBytes(candidate, [&](OpPassManager &lowering) {
      addDataParallel(lowering, spec, /*report=*/false);
      addKernelLowering(lowering, /*fuseElementwise=*/true, /*arenaReuse=*/true,
                        /*report=*/false, /*overlapSendRecv=*/true, "train_step",
                        overlapsCollectives(spec));
    });
  };
  pm.addPass(createKilnActivationCheckpointing(options, std::move(pricer)));
}

void addSparsity(OpPassManager &pm, const frontend::Spec &spec, bool report) {
  const frontend::SparsityConfig &s = spec.train.sparsity;
  if (s.pattern == "none")
    return;
  KilnSparsity24Options options;
  options.targets.assign(s.targets.begin(), s.targets.end());
  options.startStep = s.startStep;
  options.method = s.method;
  options.maskEvery = s.maskEvery;
  options.decay = s.decay;
  options.report = report;
  pm.addPass(createKilnSparsity24(options));
}

LogicalResult lowerToPartitionedStep(ModuleOp module, const frontend::Spec &spec, bool report,
                                     std::string &error) {
  const frontend::ParallelConfig &p = spec.parallel;
  if (p.pp > 1 && p.ep > 1) {
    error = spec.path + ": parallel.ep: " + std::to_string(p.ep) +
            " with pp " + std::to_string(p.pp) +
            ": pipeline stages over expert-parallel grids are not built yet; use ep 1 with pp > 1";
    return failure();
  }
  if (p.pp > 1 && spec.train.checkpointing == "budget") {
    error = spec.path + ": train.activation_checkpointing: a byte budget is priced on one "
                        "program, and pp " + std::to_string(p.pp) +
            " builds one per stage; use \"full\", \"selective\" or \"none\" with pp > 1";
    return failure();
  }
  if (spec.train.sparsity.pattern != "none" && p.ep > 1) {
    error = spec.path + ": train.sparsity: 2:4 sparsity is built for data and pipeline "
                        "parallelism (ZeRO-1 included) and micro-batches so far; use ep 1 with it";
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
  addSparsity(pm, spec, report);
  addDataParallel(pm, spec, report);
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
  addKernelLowering(pm, options.fuseElementwise, options.arenaReuse, options.report,
                    options.overlapSendRecv, "train_step", overlapsCollectives(spec));
  return pm.run(module);
}

FailureOr<std::vector<std::pair<int64_t, OwningOpRef<ModuleOp>>>>
buildRampupKernels(ModuleOp forward, const frontend::Spec &spec,
                   const KernelLoweringOptions &options) {
  std::vector<std::pair<int64_t, OwningOpRef<ModuleOp>>> sized;
  const frontend::BatchRampupConfig &r = spec.train.batchRampup;
  if (r.start == 0)
    return sized;
  const int64_t unit = spec.parallel.dp * spec.train.microBatch,
                global = spec.parallel.globalBatchRows(spec.train.microBatch);
  for (int64_t rows = r.start; rows < global; rows += r.increment) {
    // The spec's checks made every size a whole number of micro-batches.
    frontend::Spec smaller = spec;
    smaller.parallel.microbatches = rows / unit;
    OwningOpRef<ModuleOp> module = forward.clone();
    KernelLoweringOptions quiet = options;
    quiet.report = false; // the main program's report stands for all sizes
    if (failed(lowerToKernels(*module, smaller, quiet))) {
      forward.emitError() << "train.batch_rampup: the step of a global batch of " << rows
                          << " rows (" << rows / unit << " micro-batches) does not build";
      return failure();
    }
    sized.emplace_back(rows, std::move(module));
  }
  return sized;
}

/// Lowers a single-rank program @`entry` of `module` (decode, score) to the
/// planned kernel level as the step is; null on failure.
static OwningOpRef<ModuleOp> lowerProgram(OwningOpRef<ModuleOp> module, StringRef entry,
                                          const KernelLoweringOptions &options) {
  PassManager pm(module->getContext());
  if (failed(applyPassManagerCLOptions(pm)))
    return nullptr;
  pm.addNestedPass<func::FuncOp>(createCSEPass()); // as the forward module
  addKernelLowering(pm, options.fuseElementwise, options.arenaReuse, options.report,
                    /*overlapSendRecv=*/false, entry);
  if (failed(pm.run(*module)))
    return nullptr;
  return module;
}

OwningOpRef<ModuleOp> buildDecodeKernels(MLIRContext &context, const frontend::Spec &spec,
                                         int64_t chunk, const KernelLoweringOptions &options) {
  return lowerProgram(frontend::buildDecodeModule(context, spec, chunk), frontend::kDecodeEntry,
                      options);
}

OwningOpRef<ModuleOp> buildScoreKernels(MLIRContext &context, const frontend::Spec &spec,
                                        const KernelLoweringOptions &options) {
  OwningOpRef<ModuleOp> module = frontend::buildForwardModule(context, spec);
  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  auto ret = cast<func::ReturnOp>(forward.getBody().front().getTerminator());
  Value logits, targets;
  for (unsigned i = 0; i < forward.getNumResults(); ++i)
    if (auto role = forward.getResultAttrOfType<StringAttr>(i, "kiln.result");
        role && role.getValue() == "logits")
      logits = ret.getOperand(i);
  for (BlockArgument arg : forward.getArguments())
    if (auto role = forward.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "kiln.input");
        role && role.getValue() == "targets")
      targets = arg;
  if (!logits || !targets) {
    forward.emitError() << "@forward has no logits result or targets input to score";
    return nullptr;
  }
  OpBuilder b(ret);
  auto logitsType = cast<RankedTensorType>(logits.getType());
  auto scoresType = RankedTensorType::get(logitsType.getShape().drop_back(), b.getF32Type());
  Value scores = TokenLogprobsOp::create(b, ret.getLoc(), scoresType, logits, targets,
                                         b.getF64FloatAttr(spec.train.grpo.temperature));
  func::ReturnOp::create(b, ret.getLoc(), scores);
  ret.erase();
  // The losses (and what only they read) are dead now; erase them, last
  // first, then the inputs nothing reads.
  Block &body = forward.getBody().front();
  SmallVector<Operation *> ops =
      llvm::map_to_vector(body.without_terminator(), [](Operation &op) { return &op; });
  for (Operation *op : llvm::reverse(ops))
    if (op->use_empty() && isPure(op))
      op->erase();
  llvm::BitVector unused(forward.getNumArguments());
  for (BlockArgument arg : forward.getArguments())
    if (arg.use_empty() && forward.getArgAttr(arg.getArgNumber(), "kiln.input"))
      unused.set(arg.getArgNumber());
  if (failed(forward.eraseArguments(unused)))
    return nullptr;
  forward.setType(FunctionType::get(&context, forward.getArgumentTypes(), {scoresType}));
  forward.setResultAttr(0, "kiln.result", b.getStringAttr("logprobs"));
  forward.setSymName(kScoreEntry);
  return lowerProgram(std::move(module), kScoreEntry, options);
}

std::string grpoDescFields(const frontend::GrpoConfig &g) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "/*promptsPerStep=*/" << g.promptsPerStep << ", /*samplesPerPrompt=*/"
     << g.samplesPerPrompt << ", /*maxNewTokens=*/" << g.maxNewTokens
     << ", /*temperature=*/" << llvm::format("%.17g", g.temperature)
     << ", /*topP=*/" << llvm::format("%.17g", g.topP) << ", /*topK=*/" << g.topK
     << ", /*clipLow=*/" << llvm::format("%.17g", g.clipLow)
     << ", /*clipHigh=*/" << llvm::format("%.17g", g.clipHigh)
     << ", /*beta=*/" << llvm::format("%.17g", g.beta)
     << ", /*refUpdateEvery=*/" << g.refUpdateEvery
     << ", /*normalizeAdvantages=*/" << (g.advantage == "group-norm" ? "true" : "false")
     << ", /*advantageEps=*/" << llvm::format("%.17g", g.advantageEps)
     << ", /*updatesPerBatch=*/" << g.updatesPerBatch
     << ", /*accuracyReward=*/" << llvm::format("%.17g", g.accuracyReward)
     << ", /*formatReward=*/" << llvm::format("%.17g", g.formatReward)
     << ", /*maskTruncated=*/" << (g.maskTruncated ? "true" : "false");
  return s;
}

bool buildsDecodeProgram(const frontend::Spec &spec) {
  // The decode program is host code: the CUDA target's executable trains.
  return spec.parallel.pp == 1 && spec.parallel.ep == 1 && spec.target.kind != "cuda";
}

void priceCheckpointing(const frontend::Spec &spec, frontend::ModelSummary &summary) {
  if (spec.parallel.pp != 1) {
    summary.checkpointingNote = "policies not priced on pp " + std::to_string(spec.parallel.pp) +
                                "'s per-stage programs; the saved values per rank are below";
    return;
  }
  MLIRContext context;
  DialectRegistry registry;
  func::registerInlinerExtension(registry);
  context.appendDialectRegistry(registry);
  std::string errors;
  ScopedDiagnosticHandler collect(&context, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error)
      errors += (errors.empty() ? "" : "; ") + diag.str();
    return success();
  });
  OwningOpRef<ModuleOp> forward = frontend::buildForwardModule(context, spec);
  PassManager cse(&context);
  cse.addNestedPass<func::FuncOp>(createCSEPass()); // as kilnc's forward module
  if (!forward || failed(cse.run(*forward))) {
    summary.checkpointingNote = "activations not priced: the forward module does not build";
    return;
  }
  std::vector<std::string> policies = {"none", "selective", "full"};
  if (spec.train.checkpointing == "budget")
    policies.push_back("budget");
  double noneFlops = 0;
  for (const std::string &policy : policies) {
    frontend::Spec priced = spec;
    priced.train.checkpointing = policy;
    OwningOpRef<ModuleOp> step = forward->clone();
    std::string error;
    errors.clear();
    if (failed(lowerToPartitionedStep(*step, priced, /*report=*/false, error))) {
      summary.checkpointingNote =
          "activations not priced: policy " + policy + ": " + (error.empty() ? errors : error);
      summary.checkpointing.clear();
      return;
    }
    frontend::ModelSummary::CheckpointingCost cost;
    cost.policy = policy;
    for (const SavedBlock &block : savedValuesPerBlock(*step))
      cost.savedBytesPerBlock.push_back(block.savedBytes);
    const double flops = entryFlops(*step);
    if (policy == "none")
      noneFlops = flops;
    cost.recomputeFlops = flops - noneFlops;
    FailureOr<int64_t> arena = plannedArenaBytes(*step, [](OpPassManager &pm) {
      addKernelLowering(pm, /*fuseElementwise=*/true, /*arenaReuse=*/true, /*report=*/false);
    });
    if (failed(arena)) {
      summary.checkpointingNote = "activations not priced: policy " + policy + ": " + errors;
      summary.checkpointing.clear();
      return;
    }
    cost.arenaBytes = *arena;
    summary.checkpointing.push_back(cost);
  }
}

bool checkCudaTarget(const frontend::Spec &spec, std::string &error) {
  auto fail = [&](const std::string &field, const std::string &what) {
    error = spec.path + ": " + field + ": " + what;
    return false;
  };
  const frontend::ParallelConfig &p = spec.parallel;
  // Data parallelism runs over NCCL (runtime/cuda/StepCollectives.cuh: the
  // step's all_reduce, all_gather and reduce_scatter); expert parallelism
  // needs all_to_all and pipelines send/recv, which have no CUDA spelling.
  if (p.ep != 1 || p.pp != 1)
    return fail("parallel", "the CUDA target builds data-parallel steps (dp over NCCL, ep and "
                            "pp 1) so far: expert parallelism's all_to_all and pipeline "
                            "stages' send/recv have no CUDA spelling over the NCCL "
                            "communicator yet; use \"target\": \"host\" for ep " +
                            std::to_string(p.ep) + ", pp " + std::to_string(p.pp));
  if (p.gradCompression.enabled)
    return fail("parallel.grad_compression", "the CUDA step does not keep the compressed "
                                             "gradients' error-feedback residuals yet; use "
                                             "\"target\": \"host\" for gradient compression");
  if (spec.train.stage == "grpo")
    return fail("train.stage", "GRPO samples with the host decode program; the CUDA target "
                               "does not build it yet (use \"target\": \"host\")");
  return true;
}

bool checkHostTarget(const frontend::Spec &spec, std::string &error) {
  auto fail = [&](const std::string &field, const std::string &what) {
    error = spec.path + ": " + field + ": " + what;
    return false;
  };
  const frontend::TrainConfig &t = spec.train;
  if (spec.target.kind == "cuda")
    return checkCudaTarget(spec, error);
  if (spec.target.kind != "host")
    return fail("target", "'" + spec.target.kind +
                              "' cannot be built yet; the host target (\"target\": \"host\") can");

  if (t.stage == "grpo") {
    const frontend::ParallelConfig &p = spec.parallel;
    // Each rank samples with the whole model (its decode and score
    // programs): data parallelism only.
    if (p.pp != 1 || p.ep != 1)
      return fail("parallel", "GRPO executables run data-parallel (pp 1, ep 1) so far: every "
                              "rank samples its rollouts with the whole model");
    if (p.microbatches != 1)
      return fail("parallel.microbatches",
                  std::to_string(p.microbatches) +
                      ": a GRPO step scores and trains its rollouts in one micro-batch per "
                      "rank; expected 1 (raise micro_batch or dp instead)");
    const int64_t rows = p.globalBatchRows(t.microBatch);
    if (t.grpo.promptsPerStep * t.grpo.samplesPerPrompt != rows)
      return fail("train.grpo.prompts_per_step",
                  std::to_string(t.grpo.promptsPerStep) + " prompts x " +
                      std::to_string(t.grpo.samplesPerPrompt) + " samples is not the step's " +
                      std::to_string(rows) + " rows (dp x micro_batch); expected " +
                      "prompts_per_step x samples_per_prompt = " + std::to_string(rows));
    if (t.grpo.promptsPerStep % p.dp != 0)
      return fail("train.grpo.prompts_per_step",
                  std::to_string(t.grpo.promptsPerStep) + " prompts do not split over dp " +
                      std::to_string(p.dp) + " ranks; each rank samples whole groups, so "
                      "expected a multiple of " + std::to_string(p.dp));
  }
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
