//===- kilnc.cpp - the Kiln compiler driver -------------------------------===//
//
//   kilnc SPEC                      validate the spec, print the model summary
//   kilnc SPEC --summary=json       the same as one JSON object
//   kilnc SPEC --activations        the summary with each checkpointing policy
//                                   priced (arena, saved bytes, recompute FLOPs)
//   kilnc SPEC --emit=kiln          print the forward module (kiln IR)
//   kilnc SPEC --emit=decode        print the decode program's one-token step
//   kilnc SPEC --eval [--params P.safetensors] [--tokens T.json]
//                                   forward loss on a batch (reference evaluator)
//   kilnc SPEC --save-params P      write the seeded initial parameters (HF names)
//   kilnc SPEC --emit=train         print the training step (kiln-autodiff)
//   kilnc SPEC --emit=partitioned   print the per-rank step of the spec's layout
//   kilnc SPEC --eval --save-grads G [--eval-loss=main|total]
//                                   also write the gradient of the printed loss
//   kilnc SPEC --emit=kernels       print the planned kernel-level step
//   kilnc SPEC --emit=cpp           print the host C++ program
//   kilnc SPEC --emit=schedule      print the pipeline schedule (actions per rank)
//   kilnc SPEC --emit=schedule-svg  draw its simulated timeline
//   kilnc SPEC -o DIR               write DIR/train.cpp, DIR/build.sh and build
//                                   DIR/train, the standalone training executable
//   kilnc SPEC --compress-2-4 DIR   the 2:4 weights of checkpoint DIR as values +
//                                   mma.sp metadata (DIR/sparse-2of4.safetensors)
//   --report                        remarks from the lowering passes (kernels
//                                   fused, arena bytes) on stderr
//
// MLIR's pass-manager flags (--mlir-print-ir-after-all, --mlir-timing, ...)
// apply to the pipeline kilnc runs on the module.
//
//===----------------------------------------------------------------------===//

#include "codegen/CudaEmitter.h"
#include "codegen/HostEmitter.h"
#include "frontend/DecodeGen.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "frontend/Summary.h"
#include "dialects/kiln/reference/Batch.h"
#include "tools/common/HelpOptions.h"
#include "passes/PipelineSchedule.h"
#include "tools/kilnc/Compress24.h"
#include "tools/kilnc/Evaluate.h"
#include "tools/kilnc/HostBuild.h"
#include "tools/kilnc/Pipeline.h"
#include "tools/kilnc/PipelinePricing.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace cl = llvm::cl;

/// Kiln's own options by purpose: what --help lists, next to MLIR's (IR
/// printing, pass manager). LLVM's back-end flags still parse but stay out
/// of --help (tools/common/HelpOptions.h).
static cl::OptionCategory specOptions("Spec and summary");
static cl::OptionCategory emitOptions("Emit and inspect");
static cl::OptionCategory buildOptions("Build");
static cl::OptionCategory evalOptions("Evaluation (the f64 reference evaluator)");

static cl::opt<std::string> specPath(cl::Positional, cl::desc("<spec.json>"), cl::Required,
                                     cl::cat(specOptions));

enum class Emit { None, Kiln, Decode, Train, Partitioned, Kernels, Cpp, Schedule, ScheduleSvg };
static cl::opt<Emit>
    emit("emit", cl::desc("Print a stage of the compilation"), cl::init(Emit::None),
         cl::values(clEnumValN(Emit::Kiln, "kiln", "the forward module in the kiln dialect"),
                    clEnumValN(Emit::Decode, "decode",
                               "the decode program's one-token step (KV caches, kiln dialect)"),
                    clEnumValN(Emit::Train, "train", "the training step (after kiln-autodiff)"),
                    clEnumValN(Emit::Partitioned, "partitioned",
                               "the per-rank training step of the spec's "
                               "parallel layout (kiln-expert-parallel, kiln-data-parallel)"),
                    clEnumValN(Emit::Kernels, "kernels", "the planned kernel-level step"),
                    clEnumValN(Emit::Cpp, "cpp", "the training program: host C++, or CUDA for target cuda"),
                    clEnumValN(Emit::Schedule, "schedule",
                               "the pipeline schedule: actions per rank (CSV), bubble, "
                               "in-flight peak"),
                    clEnumValN(Emit::ScheduleSvg, "schedule-svg",
                               "the pipeline schedule's simulated timeline (SVG)")),
         cl::cat(emitOptions));
static cl::opt<std::string> outputDir("o", cl::desc("Build the training executable DIR/train"),
                                      cl::value_desc("DIR"), cl::cat(buildOptions));
static cl::opt<bool> report("report",
                            cl::desc("Print the lowering passes' remarks (fusion, arena)"),
                            cl::cat(emitOptions));
static cl::opt<bool>
    fuseElementwise("fuse-elementwise", cl::init(true),
                    cl::desc("Merge elementwise chains into one loop (default on)"),
                    cl::cat(buildOptions));
static cl::opt<bool>
    arenaReuse("arena-reuse", cl::init(true),
               cl::desc("Share arena bytes between buffers with disjoint lifetimes (default on)"),
               cl::cat(buildOptions));
static cl::opt<bool> overlapSendRecv(
    "overlap-send-recv", cl::init(true),
    cl::desc("Post pipeline sends and receives early, wait late (default on)"),
    cl::cat(buildOptions));
static cl::opt<std::string> summaryFormat("summary", cl::desc("Summary format: text or json"),
                                          cl::init("text"), cl::cat(specOptions));
static cl::opt<bool> priceActivations(
    "activations",
    cl::desc("Add to the summary each train.checkpointing policy's planned arena, saved bytes per "
             "block and recompute FLOPs (builds the step once per policy)"),
    cl::cat(specOptions));
static cl::opt<std::string> compress24(
    "compress-2-4",
    cl::desc("Write DIR/sparse-2of4.safetensors: the 2:4 weights of checkpoint DIR as values + "
             "mma.sp metadata"),
    cl::value_desc("DIR"), cl::cat(buildOptions));
static cl::opt<bool> evaluate("eval", cl::desc("Print the forward loss on a batch"),
                              cl::cat(evalOptions));
static cl::opt<std::string> paramsPath("params",
                                       cl::desc("Parameters (safetensors, HF names) for --eval"),
                                       cl::cat(evalOptions));
static cl::opt<std::string> tokensPath("tokens",
                                       cl::desc("Token batch (JSON array of rows) for --eval"),
                                       cl::cat(evalOptions));
static cl::opt<std::string> saveParams("save-params",
                                       cl::desc("Write the initial parameters (safetensors)"),
                                       cl::cat(evalOptions));
static cl::opt<std::string> saveBatch("save-batch", cl::desc("Write the token batch as JSON"),
                                      cl::cat(evalOptions));
static cl::opt<std::string> evalJson("eval-json",
                                     cl::desc("Write losses and logits statistics as JSON"),
                                     cl::cat(evalOptions));
static cl::opt<std::string>
    saveGrads("save-grads",
              cl::desc("With --eval: write the loss gradients (safetensors, HF names)"),
              cl::cat(evalOptions));
static cl::opt<std::string>
    evalLoss("eval-loss",
             cl::desc("Loss --eval prints and --save-grads differentiates: main (default) "
                      "or total (with the MTP and balance terms)"),
             cl::init("main"), cl::cat(evalOptions));
static cl::opt<int64_t> seedOverride("seed", cl::desc("Seed (default: the spec's train.seed)"),
                                     cl::init(-1), cl::cat(evalOptions));
static cl::opt<std::string>
    rounding("rounding",
             cl::desc("--eval arithmetic: ideal (f64 whatever the types, the default) or as-typed "
                      "(every value rounded to its element type, as the kernels store it)"),
             cl::init("ideal"), cl::cat(evalOptions));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  kiln::tools::showOnlyToolAndMlirOptions({&specOptions, &emitOptions, &buildOptions, &evalOptions});
  cl::ParseCommandLineOptions(argc, argv, "Kiln: model spec -> training executable\n");

  if (summaryFormat != "text" && summaryFormat != "json") {
    llvm::errs() << "kilnc: error: --summary must be text or json, got '" << summaryFormat << "'\n";
    return 1;
  }
  if (evalLoss != "main" && evalLoss != "total") {
    llvm::errs() << "kilnc: error: --eval-loss must be main or total, got '" << evalLoss << "'\n";
    return 1;
  }
  if (!saveGrads.empty() && !evaluate) {
    llvm::errs() << "kilnc: error: --save-grads needs --eval (it writes the gradient of "
                    "the loss --eval prints)\n";
    return 1;
  }
  std::string error;
  std::optional<kiln::frontend::Spec> spec = kiln::frontend::loadSpec(specPath, error);
  if (!spec) {
    llvm::errs() << "kilnc: error: " << error << "\n";
    return 1;
  }
  std::string warning = kiln::frontend::formatIgnoredKeysWarning(*spec);
  if (!warning.empty())
    llvm::errs() << "kilnc: " << warning << "\n";

  // --eval of a token file of another shape than the spec's batch: the
  // forward is built for the file's rows x length (an eval-only run; a
  // build or an IR dump keeps the spec's shape).
  if (evaluate && !tokensPath.empty() && emit == Emit::None && outputDir.empty()) {
    int64_t rows = 0, seqLen = 0;
    if (!kiln::reference::readBatchShape(tokensPath, rows, seqLen, error)) {
      llvm::errs() << "kilnc: error: " << error << "\n";
      return 1;
    }
    if (rows != spec->train.microBatch || seqLen != spec->train.seqLen) {
      spec = kiln::frontend::withBatchShape(*spec, rows, seqLen, tokensPath, error);
      if (!spec) {
        llvm::errs() << "kilnc: error: " << error << "\n";
        return 1;
      }
    }
  }

  if (emit == Emit::Schedule || emit == Emit::ScheduleSvg) {
    const kiln::frontend::ParallelConfig &p = spec->parallel;
    // The planner's FLOPs per micro-batch of the costliest stage.
    std::vector<int64_t> layersPerStage;
    const kiln::pipeline::Costs costs = kiln::plannedStageCosts(*spec, layersPerStage);
    std::optional<kiln::pipeline::Schedule> schedule = kiln::pipeline::buildSchedule(
        p.schedule, int32_t(p.pp), int32_t(p.virtualStages), int32_t(p.microbatches), costs,
        error);
    std::optional<kiln::pipeline::Simulation> sim;
    if (schedule)
      sim = kiln::pipeline::simulate(*schedule, costs, error);
    if (!sim) {
      llvm::errs() << "kilnc: error: " << spec->path << ": parallel.schedule: " << error << "\n";
      return 1;
    }
    if (emit == Emit::ScheduleSvg) {
      llvm::outs() << kiln::pipeline::formatScheduleSvg(*schedule, *sim);
      return 0;
    }
    llvm::outs() << kiln::pipeline::formatScheduleCsv(*schedule);
    for (int32_t r = 0; r < schedule->ranks; ++r)
      llvm::outs() << llvm::format("# rank %d: busy %.4g, bubble %.4g of %.4g FLOPs (%.1f%%), "
                                   "peak %d micro-batches in flight\n",
                                   r, sim->busy[size_t(r)], sim->bubble[size_t(r)],
                                   sim->makespan,
                                   100.0 * sim->bubble[size_t(r)] / sim->makespan,
                                   sim->peakInFlight[size_t(r)]);
    llvm::outs() << llvm::format("# costs per action, FLOPs per micro-batch of the costliest "
                                 "stage: F %.4g, I %.4g, W %.4g (B = I + W)\n",
                                 costs.f, costs.b, costs.w);
    return 0;
  }
  if (!compress24.empty()) {
    if (!kiln::writeCompressed24(compress24, error)) {
      llvm::errs() << "kilnc: error: " << error << "\n";
      return 1;
    }
    llvm::errs() << "kilnc: wrote " << compress24 << "/sparse-2of4.safetensors\n";
    return 0;
  }
  bool wantsModule = emit != Emit::None || evaluate || !saveParams.empty() || !saveBatch.empty() ||
                     !outputDir.empty();
  if (!wantsModule) {
    kiln::frontend::ModelSummary summary = kiln::frontend::summarize(*spec);
    if (priceActivations)
      kiln::priceCheckpointing(*spec, summary);
    kiln::pricePipeline(*spec, priceActivations, summary);
    llvm::outs() << (summaryFormat == "json" ? kiln::frontend::formatSummaryJson(*spec, summary)
                                             : kiln::frontend::formatSummaryText(*spec, summary));
    return 0;
  }

  MLIRContext context;
  {
    // The kernel lowering inlines block functions into the step.
    DialectRegistry registry;
    func::registerInlinerExtension(registry);
    context.appendDialectRegistry(registry);
  }
  context.printOpOnDiagnostic(false);
  // One line per diagnostic, with the HF module it is about when known;
  // remarks (--report) included, notes folded into their diagnostic.
  ScopedDiagnosticHandler diagnostics(&context, [](Diagnostic &diag) {
    auto severity = diag.getSeverity();
    const char *kind = severity == DiagnosticSeverity::Error     ? "error"
                       : severity == DiagnosticSeverity::Warning ? "warning"
                       : severity == DiagnosticSeverity::Remark  ? "remark"
                                                                 : "note";
    std::string where;
    if (auto name = dyn_cast<NameLoc>(diag.getLocation()))
      where = " (" + name.getName().str() + ")";
    llvm::errs() << "kilnc: " << kind << where << ": " << diag.str() << "\n";
    for (Diagnostic &note : diag.getNotes())
      llvm::errs() << "kilnc: note: " << note.str() << "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module = kiln::frontend::buildForwardModule(context, *spec);
  if (failed(verify(*module))) {
    // The spec passed validation, which exists so that this cannot happen
    // (fuzz_spec and SpecSweepTest build and verify every spec they get
    // accepted); if it does, the user can only report it.
    llvm::errs() << "kilnc: internal error: the kiln IR built from " << spec->path
                 << " does not verify (errors above); the spec passed validation, so this is "
                    "a bug in Kiln's frontend: please report it with the spec\n";
    return 1;
  }
  PassManager pm(&context);
  if (failed(applyPassManagerCLOptions(pm)))
    return 1;
  // Common-subexpression elimination merges the slices and reshapes that the
  // builder emits once per use; nothing else changes before autodiff.
  pm.addNestedPass<func::FuncOp>(createCSEPass());
  if (failed(pm.run(*module)))
    return 1;

  if (emit == Emit::Kiln)
    module->print(llvm::outs());
  if (emit == Emit::Decode) {
    OwningOpRef<ModuleOp> decode = kiln::frontend::buildDecodeModule(context, *spec, 1);
    PassManager decodePm(&context);
    if (failed(applyPassManagerCLOptions(decodePm)))
      return 1;
    decodePm.addNestedPass<func::FuncOp>(createCSEPass());
    if (failed(verify(*decode)) || failed(decodePm.run(*decode)))
      return 1;
    decode->print(llvm::outs());
  }
  if (emit == Emit::Train) {
    OwningOpRef<ModuleOp> train = module->clone();
    PassManager trainPm(&context);
    if (failed(applyPassManagerCLOptions(trainPm)))
      return 1;
    kiln::addMixedPrecision(trainPm, *spec, report);
    trainPm.addPass(kiln::createKilnAutodiff(kiln::autodiffOptionsFor(*spec)));
    kiln::addFp8Lowering(trainPm, *spec, report);
    kiln::addActivationCheckpointing(trainPm, *spec, report);
    kiln::addSparsity(trainPm, *spec, report);
    if (failed(trainPm.run(*train)))
      return 1;
    train->print(llvm::outs());
  }
  if (emit == Emit::Partitioned) {
    OwningOpRef<ModuleOp> partitioned = module->clone();
    if (failed(kiln::lowerToPartitionedStep(*partitioned, *spec, report, error))) {
      if (!error.empty())
        llvm::errs() << "kilnc: error: " << error << "\n";
      return 1;
    }
    partitioned->print(llvm::outs());
  }
  if ((emit == Emit::Cpp || !outputDir.empty()) && !kiln::checkHostTarget(*spec, error)) {
    llvm::errs() << "kilnc: error: " << error << "\n";
    return 1;
  }
  if (emit == Emit::Kernels || emit == Emit::Cpp || !outputDir.empty()) {
    OwningOpRef<ModuleOp> kernels = module->clone();
    kiln::KernelLoweringOptions lowering;
    lowering.report = report;
    lowering.fuseElementwise = fuseElementwise;
    lowering.arenaReuse = arenaReuse;
    lowering.overlapSendRecv = overlapSendRecv;
    if (failed(kiln::lowerToKernels(*kernels, *spec, lowering)))
      return 1;
    if (emit == Emit::Kernels)
      kernels->print(llvm::outs());
    if (emit == Emit::Cpp || !outputDir.empty()) {
      kiln::codegen::HostProgramInfo info;
      info.specPath = spec->path;
      info.specName = llvm::sys::path::stem(spec->path).str();
      info.specFingerprint = kiln::specFingerprint(context, *spec);
      info.vocabSize = spec->model.vocabSize;
      info.sft = spec->train.stage == "sft";
      info.defaultSteps = spec->train.steps;
      info.defaultSeed = spec->train.seed;
      const kiln::frontend::ModelSummary summary = kiln::frontend::summarize(*spec);
      info.modelFlopsPerToken = 3 * (summary.flopsPerToken + summary.flopsPerTokenMtp);
      info.precision = spec->train.precision;
      for (const kiln::frontend::CurriculumStage &stage : spec->train.curriculum)
        info.curriculum.push_back({stage.untilStep, stage.maxDigits, stage.maxOps});
      // The decode program `train --generate` runs: prefill and one-token
      // steps, each lowered like the step.
      OwningOpRef<ModuleOp> prefill, decodeStep;
      kiln::codegen::DecodeModules decode;
      const kiln::frontend::GenerateConfig &generate = spec->train.generate;
      if (kiln::buildsDecodeProgram(*spec)) {
        prefill = kiln::buildDecodeKernels(context, *spec, generate.maxPromptLen, lowering);
        decodeStep = kiln::buildDecodeKernels(context, *spec, 1, lowering);
        if (!prefill || !decodeStep)
          return 1;
        decode = {*prefill, *decodeStep, generate.maxPromptLen, generate.maxLen};
      }
      // GRPO: the score program (the step's forward, scoring targets) and
      // train.grpo's options.
      OwningOpRef<ModuleOp> score;
      kiln::codegen::GrpoProgram grpo;
      if (spec->train.stage == "grpo") {
        score = kiln::buildScoreKernels(context, *spec, lowering);
        if (!score)
          return 1;
        grpo = {kiln::grpoDescFields(spec->train.grpo), *score};
      }
      // train.batch_rampup: a step program per smaller global batch.
      auto sized = kiln::buildRampupKernels(*module, *spec, lowering);
      if (failed(sized))
        return 1;
      kiln::codegen::RampupPrograms rampup;
      const kiln::frontend::BatchRampupConfig &ramp = spec->train.batchRampup;
      rampup.startRows = ramp.start;
      rampup.incrementRows = ramp.increment;
      rampup.samples = ramp.samples;
      for (auto &[rows, sizedModule] : *sized)
        rampup.programs.emplace_back(rows, *sizedModule);
      std::string program;
      llvm::raw_string_ostream programStream(program);
      const bool cuda = spec->target.kind == "cuda";
      if (cuda ? failed(kiln::codegen::emitCudaProgram(*kernels, "train_step", info,
                                                       programStream,
                                                       sized->empty() ? nullptr : &rampup))
               : failed(kiln::codegen::emitHostProgram(*kernels, "train_step", info,
                                                       programStream,
                                                       prefill ? &decode : nullptr,
                                                       score ? &grpo : nullptr,
                                                       sized->empty() ? nullptr : &rampup)))
        return 1;
      if (emit == Emit::Cpp)
        llvm::outs() << program;
      if (!outputDir.empty()) {
        if (!kiln::buildHostExecutable(outputDir, program, error,
                                       cuda ? spec->target.sm : 0)) {
          llvm::errs() << "kilnc: error: " << error << "\n";
          return 1;
        }
        // One step program, or one per pipeline stage (each rank runs one:
        // its arena is what a rank allocates, the largest what a machine
        // must fit).
        int64_t numKernels = 0, largestArena = 0, programs = 0;
        for (auto step : kernels->getOps<func::FuncOp>()) {
          auto arena = step->getAttrOfType<IntegerAttr>(kiln::kernel::kArenaBytesAttr);
          if (!arena)
            continue;
          ++programs;
          largestArena = std::max<int64_t>(largestArena, arena.getInt());
          step.walk([&](Operation *op) {
            numKernels += isa<kiln::kernel::LaunchOp, kiln::kernel::ElementwiseOp>(op);
          });
        }
        llvm::errs() << "kilnc: wrote " << outputDir << "/train (and "
                     << (cuda ? "train.cu" : "train.cpp") << ", build.sh): "
                     << numKernels << " kernels per step"
                     << (programs > 1 ? " in " + std::to_string(programs) + " stage programs"
                                      : std::string())
                     << ", arena of " << largestArena << " bytes"
                     << (programs > 1 ? " on the largest stage" : "") << "\n";
        kiln::warnIfTooBigForThisMachine(*spec, uint64_t(largestArena), outputDir);
      }
    }
  }
  if (rounding != "ideal" && rounding != "as-typed") {
    llvm::errs() << "kilnc: error: --rounding must be ideal or as-typed, got '" << rounding
                 << "'\n";
    return 1;
  }
  OwningOpRef<ModuleOp> gradModule;
  if (evaluate && (!saveGrads.empty() || evalLoss == "total")) {
    gradModule = module->clone();
    kiln::KilnAutodiffOptions options = kiln::autodiffOptionsFor(*spec);
    options.mode = "gradient";
    options.lossKind = evalLoss;
    options.lossScale = "none"; // --save-grads gives the true, unscaled gradients
    PassManager gradPm(&context);
    kiln::addMixedPrecision(gradPm, *spec, /*report=*/false);
    gradPm.addPass(kiln::createKilnAutodiff(options));
    kiln::addFp8Lowering(gradPm, *spec, /*report=*/false);
    if (failed(gradPm.run(*gradModule)))
      return 1;
  }
  if (evaluate || !saveParams.empty() || !saveBatch.empty()) {
    // --eval evaluates the forward as the spec trains it: with
    // train.precision other than fp32, after kiln-mixed-precision (and, for
    // fp8, kiln-lower-fp8). Ideal rounding then gives the f32 math to f64
    // rounding; as-typed, what the kernels compute.
    OwningOpRef<ModuleOp> evalModule = module->clone();
    PassManager evalPm(&context);
    kiln::addMixedPrecision(evalPm, *spec, /*report=*/false);
    kiln::addFp8Lowering(evalPm, *spec, /*report=*/false);
    if (failed(evalPm.run(*evalModule)))
      return 1;
    kiln::EvalOptions opts;
    opts.seed = seedOverride >= 0 ? uint64_t(seedOverride) : spec->train.seed;
    opts.paramsPath = paramsPath;
    opts.tokensPath = tokensPath;
    opts.saveParams = saveParams;
    opts.saveBatch = saveBatch;
    opts.evalJson = evalJson;
    opts.evaluate = evaluate;
    opts.saveGrads = saveGrads;
    opts.gradModule = gradModule ? *gradModule : ModuleOp();
    opts.rounding = rounding == "as-typed" ? kiln::reference::Rounding::AsTyped
                                           : kiln::reference::Rounding::Ideal;
    if (!kiln::runEvaluation(*evalModule, *spec, opts, llvm::outs()))
      return 1;
  }
  return 0;
}
