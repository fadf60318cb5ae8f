//===- TrainMain.cpp - The host training loop around a generated step -----===//
//
// Reads top to bottom like the run it drives: flags, threads, checkpoint
// directory, parameter layout, initial or resumed state, data, then the
// step loop with metrics and checkpoints, then one summary line. Helpers
// above trainMain() each own one of those pieces.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/TrainMain.h"
#include "runtime/io/AtomicFile.h"

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/data/SyntheticCorpus.h"
#include "runtime/data/TokenLoader.h"
#include "runtime/driver/ActionTrace.h"
#include "runtime/driver/BatchRampup.h"
#include "runtime/driver/CommandLine.h"
#include "runtime/driver/Generate.h"
#include "runtime/data/LlmcShard.h"
#include "runtime/driver/Curriculum.h"
#include "runtime/driver/GrpoRollout.h"
#include "runtime/driver/KernelProfile.h"
#include "runtime/driver/MemoryCheck.h"
#include "runtime/driver/Metrics.h"
#include "runtime/driver/PeakFlops.h"
#include "runtime/driver/Ranks.h"
#include "runtime/driver/Timer.h"
#include "runtime/driver/TrainData.h"
#include "runtime/driver/TrainState.h"
#include "runtime/init/HfNames.h"
#include "runtime/init/SeededRng.h"
#include "runtime/safetensors/Safetensors.h"

#include <algorithm>
#include <fstream>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <omp.h>
#include <optional>
#include <csignal>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace kiln::driver {

namespace {

using namespace detail;

//===----------------------------------------------------------------------===//
// Preemption (SIGTERM, SIGINT)
//===----------------------------------------------------------------------===//

/// The signal that asked the run to stop, or 0. Set by the handler only.
volatile std::sig_atomic_t gStopSignal = 0;

extern "C" void onStopSignal(int signal) {
  if (gStopSignal != 0) {
    // A second request: stop now, the default way.
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  gStopSignal = signal;
}

/// Installs the stop handlers for the training loop and restores the
/// previous ones after it (trainMain may run more than once in a process).
class StopSignals {
public:
  StopSignals() {
    gStopSignal = 0;
    struct sigaction action = {};
    action.sa_handler = onStopSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, &oldTerm_);
    sigaction(SIGINT, &action, &oldInt_);
  }
  ~StopSignals() {
    sigaction(SIGTERM, &oldTerm_, nullptr);
    sigaction(SIGINT, &oldInt_, nullptr);
    gStopSignal = 0;
  }
  StopSignals(const StopSignals &) = delete;
  StopSignals &operator=(const StopSignals &) = delete;

  int pending() const { return gStopSignal; }

private:
  struct sigaction oldTerm_ = {}, oldInt_ = {};
};

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsageError = 2;

int fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return kExitRuntimeError;
}

//===----------------------------------------------------------------------===//
// --save-grads
//===----------------------------------------------------------------------===//

/// Copies the gradients the step reports through StepBuffers::gradSink
/// (only once: the first executed step); they are written after the step.
struct GradCapture {
  const std::vector<ParamLayout> *layouts = nullptr;
  const std::vector<size_t> *trainable = nullptr;
  bool called = false;
  bool outOfMemory = false;
  std::vector<std::vector<float>> grads;
};

void captureGrads(void *context, const float *const *grads) {
  GradCapture &capture = *static_cast<GradCapture *>(context);
  if (capture.called)
    return;
  capture.called = true;
  try {
    for (size_t k = 0; k < capture.trainable->size(); ++k) {
      const ParamLayout &l = (*capture.layouts)[(*capture.trainable)[k]];
      capture.grads.emplace_back(grads[k], grads[k] + l.numElements);
    }
  } catch (...) {
    capture.outOfMemory = true; // Exceptions must not cross the generated step.
  }
}

bool writeGrads(const std::string &path, uint64_t step, const GradCapture &capture,
                std::string &error) {
  if (!capture.called) {
    error = "--save-grads " + path + ": step " + std::to_string(step) +
            " did not report its gradients (no gradSink call); regenerate the step with kilnc";
    return false;
  }
  if (capture.outOfMemory) {
    error = "--save-grads " + path + ": out of memory copying the gradients";
    return false;
  }
  safetensors::Writer writer;
  if (!writer.setMetadata("format", "pt", error) ||
      !writer.setMetadata("step", std::to_string(step), error))
    return false;
  for (size_t k = 0; k < capture.grads.size(); ++k) {
    const ParamLayout &l = (*capture.layouts)[(*capture.trainable)[k]];
    for (size_t e = 0; e < l.hfNames.size(); ++e) {
      const float *g = capture.grads[k].data() + e * l.perStored;
      if (!writer.add(l.hfNames[e], safetensors::DType::F32, l.hfShape,
                      std::vector<double>(g, g + l.perStored), error)) {
        error = "--save-grads " + path + ": " + error;
        return false;
      }
    }
  }
  if (!writer.writeAtomic(path, error)) {
    error = "--save-grads " + error;
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// The run
//===----------------------------------------------------------------------===//

void setThreads(uint64_t threads) {
  // 0 means all: set it explicitly anyway, so the count (which decides the
  // reduction order, hence the bits) does not depend on earlier calls.
  const int n = threads ? int(threads) : omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

/// Copies the parameters of `dir`'s latest checkpoint into `state` by HF
/// name: every tensor the rank holds must be there with its shape; tensors
/// it does not hold (another stage's MTP modules, say) are left, and counted
/// in a note.
bool warmStart(const std::string &dir, const std::vector<ParamLayout> &layouts, TrainState &state,
               bool lead, std::string &error) {
  std::vector<checkpoint::Tensor> tensors;
  if (!checkpoint::loadLatestModelTensors(dir, tensors, error)) {
    error = "--init-from: " + error;
    return false;
  }
  std::map<std::string, const checkpoint::Tensor *> byName;
  for (const checkpoint::Tensor &t : tensors)
    byName[t.name] = &t;
  size_t used = 0;
  for (size_t i = 0; i < layouts.size(); ++i) {
    const ParamLayout &l = layouts[i];
    for (size_t e = 0; e < l.hfNames.size(); ++e) {
      auto it = byName.find(l.hfNames[e]);
      if (it == byName.end() || it->second->shape != l.hfShape) {
        error = "--init-from " + dir + ": " +
                (it == byName.end() ? "has no tensor '" + l.hfNames[e] + "'"
                                    : "'" + l.hfNames[e] + "' has another shape") +
                "; expected a checkpoint of this model (any stage)";
        return false;
      }
      std::copy(it->second->values.begin(), it->second->values.end(),
                state.params[i].data() + e * l.perStored);
      ++used;
    }
  }
  if (lead)
    std::fprintf(stderr, "initialised %zu tensors from %s/latest%s\n", used, dir.c_str(),
                 used < tensors.size()
                     ? (" (" + std::to_string(tensors.size() - used) +
                        " tensors this model does not have were left out)")
                           .c_str()
                     : "");
  return true;
}

int run(int argc, char **argv, const StageProgram *stages, int64_t numStages,
        const DecodeDesc *decode, const GrpoDesc *grpo) {
  // 1. Flags.
  if (!stages || numStages < 1 || !stages[0].model)
    return fail("model description: no stage programs; regenerate with kilnc");
  const ModelDesc &stageZero = *stages[0].model;
  const SpecDefaults defaults{stageZero.defaultSteps, stageZero.defaultSeed};
  const std::string program = argc > 0 && argv[0] ? argv[0] : "train";
  TrainOptions options;
  std::string error;
  if (!parseCommandLine(argc, argv, defaults, options, error)) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return kExitUsageError;
  }
  if (options.help) {
    std::fputs(helpText(program, defaults).c_str(), stdout);
    return 0;
  }
  // --generate: sampling, not training (Generate.h).
  if (!options.generatePath.empty()) {
    if (!decode) {
      std::fprintf(stderr,
                   "error: --generate: this executable has no decode program (it was built "
                   "%s); it can only train\n",
                   numStages > 1 ? "with pipeline stages" : "without one");
      return kExitUsageError;
    }
    setThreads(options.threads);
    return generateMain(options, stageZero, *decode);
  }
  // The whole model: every stage's parameters (one stage without pipeline
  // parallelism), checked before anything else.
  std::vector<std::vector<ParamLayout>> stageLayouts;
  std::vector<ParamLayout> wholeModel;
  if (!describeStages(stages, numStages, Placement{}, stageLayouts, wholeModel, error))
    return fail(error);

  // Ranks: this process alone, or the mpirun job a multi-rank build needs.
  Ranks ranks;
  if (!setupRanks(stageZero, &argc, &argv, program, double(options.collectiveTimeoutSec), ranks,
                  error))
    return fail(error);
  // This rank's stage and data-parallel coordinate (pp x dp, dp fastest).
  const int dpRanks = int(stageZero.dp), dpRank = ranks.rank % dpRanks,
            stage = ranks.rank / dpRanks;
  const ModelDesc &model = *stages[stage].model;
  const TrainStepFn step = stages[stage].step;
  // MFU's denominator: the device's peak (the CUDA target); 0 on the host.
  const double peakFlops = model.peakFlops ? model.peakFlops() : 0;
  // train.batch_rampup: each step's global batch, and the program of that
  // many micro-batches.
  const BatchSchedule schedule(model, step);
  if (!checkRampupPrograms(model, step, error))
    return fail(error);
  // From here on a failure on one rank ends the whole job, so that no rank
  // waits for it in a collective.
  auto failJob = [&](const std::string &message) {
    // Communicator errors already begin with the rank.
    bool named = message.find("rank " + std::to_string(ranks.rank) + ": ") != std::string::npos;
    int code = fail(ranks.size > 1 && !named ? "rank " + std::to_string(ranks.rank) + ": " + message
                                             : message);
    if (ranks.size > 1)
      ranks.world->abortJob(code);
    return code;
  };
  if (ranks.size > 1 && !options.saveGradsPath.empty())
    return failJob("--save-grads writes one rank's gradients, and this program runs on " +
                   std::to_string(ranks.size) + "; compile the spec with dp 1 for it");

  // GRPO samples its own data; what it cannot do yet is refused here.
  if (grpo && !decode)
    return failJob("this GRPO executable has no decode program to sample rollouts with; "
                   "rebuild it with kilnc");
  if (!grpo && !options.rolloutsPath.empty())
    return failJob("--rollouts: this executable's step is not GRPO (train.stage \"" +
                   std::string(stageZero.sft ? "sft" : "pretrain") + "\")");
  if (grpo && !options.dataPath.empty())
    return failJob("--data: a GRPO run samples its rollouts from the built-in arithmetic "
                   "corpus; run without --data");

  // 2. Threads.
  setThreads(options.threads);

  // 3. Checkpoint directory: fail on a missing checkpoint or an unwritable
  // directory before anything expensive.
  const std::string &ckptDir = options.checkpointDir;
  if (options.resume && !checkpoint::hasLatest(ckptDir))
    return failJob(ckptDir + "/latest: no checkpoint to resume from; run without --resume to "
                          "start from step 0");
  if (!ckptDir.empty() && ranks.lead() && !prepareCheckpointDir(ckptDir, error))
    return failJob(error);
  if (!options.saveGradsPath.empty() &&
      !io::checkWritablePath("--save-grads", options.saveGradsPath, error))
    return failJob(error);

  // 4. State: seeded init, or the checkpoint's. This rank's part of the
  // model: its experts (expert parallelism), its moment shards (ZeRO-1).
  // What the whole run allocates is checked against the machine first.
  const Placement placement{dpRank,       dpRanks,         model.ep,          model.shardedState,
                            /*wholeModel=*/false, stage, int(numStages), &stageLayouts};
  std::vector<ParamLayout> layouts;
  stageLayouts.clear();
  std::vector<ParamLayout> unused;
  if (!describeStages(stages, numStages, placement, stageLayouts, unused, error))
    return failJob(error);
  layouts = stageLayouts[size_t(stage)];
  if (!checkMemoryFits(rankMemory(model, layouts, options.resume ? &wholeModel : nullptr),
                       ranksOnThisMachine(), error))
    return failJob(error);
  TrainState state;
  state.bf16Moments = model.bf16Moments;
  if (!initState(layouts, options.seed, /*seeded=*/!options.resume, state, error))
    return failJob(error);
  // --init-from: another run's parameters (an SFT model for GRPO, say),
  // by Hugging Face name; the optimizer starts fresh at step 0.
  if (!options.initFrom.empty() && !warmStart(options.initFrom, layouts, state, ranks.lead(), error))
    return failJob(error);
  const bool lossScaling = model.initialLossScale > 0;
  if (lossScaling) // GradScaler's start; a checkpoint's state replaces it below.
    state.lossScale = float(model.initialLossScale);
  uint64_t startStep = 0, seed = options.seed, dataPosition = 0;
  std::vector<checkpoint::Tensor> checkpointRankState; // this rank's, when resuming
  int checkpointRanks = 0;
  if (options.resume) {
    checkpoint::Checkpoint ckpt;
    // A checkpoint holds whole tensors of the whole model; the rank keeps
    // its part.
    TrainState whole;
    if (!initState(wholeModel, options.seed, /*seeded=*/false, whole, error) ||
        !resumeState(ckptDir, model, wholeModel, whole, ranks.rank, ckpt, error))
      return failJob(error);
    // By name: a pipeline stage holds some of the whole model's tensors.
    std::map<std::string, size_t> wholeIndex;
    for (size_t j = 0; j < wholeModel.size(); ++j)
      wholeIndex[wholeModel[j].desc->name] = j;
    std::vector<size_t> wholeTrainable(wholeModel.size(), 0);
    for (size_t k = 0; k < whole.trainable.size(); ++k)
      wholeTrainable[whole.trainable[k]] = k;
    for (size_t i = 0; i < layouts.size(); ++i) {
      const ParamLayout &l = layouts[i];
      std::copy_n(whole.params[wholeIndex.at(l.desc->name)].data() + l.firstExpert * l.perStored,
                  l.numElements, state.params[i].data());
    }
    for (size_t k = 0; k < state.trainable.size(); ++k) {
      const ParamLayout &l = layouts[state.trainable[k]];
      const size_t w = wholeTrainable[wholeIndex.at(l.desc->name)];
      const uint64_t first = l.firstExpert * l.perStored;
      // A 2:4 mask is held whole by every rank that holds its parameter.
      if (k < state.sparsityMask.size() && state.sparsityMask[k].data())
        std::copy_n(whole.sparsityMask[w].data() + first, l.numElements,
                    state.sparsityMask[k].data());
      if (!state.bf16Moments) {
        takeShard(whole.expAvg[w].data() + first, l.numElements, l.momentShard, l.momentShards,
                  state.expAvg[k].data());
        takeShard(whole.expAvgSq[w].data() + first, l.numElements, l.momentShard,
                  l.momentShards, state.expAvgSq[k].data());
        continue;
      }
      // bf16 moments: exact for a checkpoint of bf16 moments, rounded to
      // nearest even for one of f32 moments.
      std::vector<float> shard(state.expAvgBf16[k].size());
      for (auto [from, to] : {std::pair{&whole.expAvg[w], &state.expAvgBf16[k]},
                              std::pair{&whole.expAvgSq[w], &state.expAvgSqBf16[k]}}) {
        takeShard(from->data() + first, l.numElements, l.momentShard, l.momentShards,
                  shard.data());
        for (size_t i = 0; i < shard.size(); ++i)
          to->data()[i] = kernels::narrowTo<kernels::Bf16>(shard[i]);
      }
    }
    startStep = ckpt.step;
    dataPosition = ckpt.dataPosition;
    if (lossScaling && ckpt.scaler.present) {
      state.lossScale = ckpt.scaler.scale;
      state.growthTracker = int64_t(ckpt.scaler.growthTracker);
      state.optimizerUpdates = int64_t(ckpt.scaler.optimizerUpdates);
    } else if (lossScaling) {
      state.optimizerUpdates = int64_t(ckpt.step);
      if (ranks.lead())
        std::fprintf(stderr,
                     "note: the checkpoint has no loss scaler state (its program had no loss "
                     "scaling); the scale starts again at %g, with all %llu steps counted "
                     "as AdamW updates\n",
                     model.initialLossScale, (unsigned long long)ckpt.step);
    } else if (ckpt.scaler.present && ranks.lead()) {
      std::fprintf(stderr,
                   "note: the checkpoint's loss scaler state (scale %g, %llu of %llu steps "
                   "applied) is not used: this program has no loss scaling, and AdamW's bias "
                   "correction counts every step from here\n",
                   double(ckpt.scaler.scale), (unsigned long long)ckpt.scaler.optimizerUpdates,
                   (unsigned long long)ckpt.step);
    }
    checkpointRankState = std::move(ckpt.rankState);
    checkpointRanks = ckpt.rankStateRanks;
    // The seed chose the synthetic corpus; the resumed run must read the
    // same one to continue bit-exactly.
    if (ckpt.rngState != options.seed && ranks.lead())
      std::fprintf(stderr, "note: resuming with the checkpoint's seed %llu, not %llu\n",
                   (unsigned long long)ckpt.rngState, (unsigned long long)options.seed);
    seed = ckpt.rngState;
    if (startStep >= options.steps) {
      if (ranks.lead())
        std::fprintf(
          stderr, "nothing to do: the checkpoint in %s is at step %llu and --steps is %llu\n",
          ckptDir.c_str(), (unsigned long long)startStep, (unsigned long long)options.steps);
      return 0;
    }
  }

  // 5. Data: a token stream, except for GRPO, which samples its own.
  std::optional<data::TokenLoader> loader;
  if (!grpo) {
    loader = openTrainingData(options, model, schedule, seed, dpRanks, error);
    if (!loader)
      return failJob(error);
    loader->seek(dataPosition);
  }

  std::optional<MetricsLog> log;
  if (!options.logPath.empty() && ranks.lead()) {
    log = MetricsLog::open(options.logPath, /*append=*/options.resume, error);
    if (!log)
      return failJob(error);
  }

  // What is about to run, in one line, so a log says what produced it.
  // With pipeline stages, the whole model's (rank 0 holds stage 0's part).
  uint64_t numParams = 0, hfTensors = 0;
  for (const ParamLayout &l : numStages > 1 ? wholeModel : layouts) {
    numParams += l.numElements;
    hfTensors += l.hfNames.size();
  }
  std::string dataName = !loader ? std::string(options.rolloutsPath.empty()
                                                    ? "GRPO rollouts sampled each step"
                                                    : "GRPO rollouts from " + options.rolloutsPath)
                                : loader->name();
  if (loader && loader->format() != data::TokenFileFormat::InMemory)
    dataName += std::string(" (") + data::tokenFileFormatName(loader->format()) + ")";
  const int threads = omp_get_max_threads();
  const std::string layout =
      numStages > 1 ? " on each of dp " + std::to_string(dpRanks) + " ranks" +
                          (model.shardedState ? " (ZeRO-1)" : "") + ", in pp " +
                          std::to_string(numStages) + " stages"
      : ranks.size > 1 ? " on each of dp " + std::to_string(ranks.size) + " ranks" +
                             (model.shardedState ? " (ZeRO-1)" : "")
                       : "";
  const std::string rampup =
      model.rampup ? " (rampup from " + std::to_string(model.rampup->startRows) + " global rows by " +
                         std::to_string(model.rampup->incrementRows) + " over " +
                         std::to_string(model.rampup->samples) + " samples)"
                   : "";
  if (ranks.lead())
    std::fprintf(stderr,
                 "%s: %s parameters in %llu tensors, batch %lld x %lld tokens%s%s, arena %.1f MB, "
                 "%d thread%s; data: %s; %s step %llu\n",
                 model.specName, formatRate(double(numParams)).c_str(),
                 (unsigned long long)hfTensors, (long long)model.batch, (long long)model.seqLen,
                 layout.c_str(), rampup.c_str(), double(model.arenaBytes) / 1e6, threads,
                 threads == 1 ? "" : "s", dataName.c_str(),
                 options.resume ? "resuming after" : "starting at", (unsigned long long)startStep);

  // 6. Step buffers.
  // The buffers hold the largest batch; a rampup step uses its first rows.
  const uint64_t B = uint64_t(model.batch), T = uint64_t(model.seqLen);
  const uint64_t rankTokens = B * T;
  uint64_t arenaBytes = model.arenaBytes;
  if (model.rampup)
    for (int64_t i = 0; i < model.rampup->numPrograms; ++i)
      arenaBytes = std::max<uint64_t>(arenaBytes, model.rampup->programs[i].model->arenaBytes);
  // Samples the steps before this run's first consumed (Megatron's
  // consumed_train_samples), from the step number alone.
  uint64_t consumedSamples = schedule.consumedBefore(startStep + 1);
  uint64_t trainedTokens = 0;
  std::vector<int64_t> batch(loader ? loader->batchTokens() : 0);
  std::vector<uint8_t> batchMask(loader ? loader->batchTokens() : 0);
  AlignedArray<int32_t> tokens, targets;
  AlignedArray<float> lossMask;
  AlignedArray<unsigned char> arena;
  std::vector<AlignedArray<float>> loads(size_t(model.numExpertLoads)),
      kept(size_t(model.numExpertKept));
  bool allocated = tokens.allocate(rankTokens) && targets.allocate(rankTokens) &&
                   lossMask.allocate(rankTokens) && arena.allocate(arenaBytes);
  for (AlignedArray<float> &l : loads)
    allocated = allocated && l.allocate(uint64_t(model.numExperts));
  for (AlignedArray<float> &l : kept)
    allocated = allocated && l.allocate(uint64_t(model.numExperts));
  // GRPO's inputs: an advantage per row, old and reference log-probs.
  AlignedArray<float> advantages, oldLogprobs, refLogprobs;
  if (grpo)
    allocated = allocated && advantages.allocate(B) && oldLogprobs.allocate(rankTokens) &&
                refLogprobs.allocate(rankTokens);
  if (!allocated)
    return failJob("out of memory for the step buffers (arena of " + std::to_string(arenaBytes) +
                " bytes)");
  std::vector<float *> paramPtrs, expAvgPtrs, expAvgSqPtrs, loadPtrs, keptPtrs, residualPtrs;
  if (model.gradResiduals)
    for (size_t k = 0; k < state.trainable.size(); ++k) {
      AlignedArray<float> residual; // zeros: nothing held back before step 1
      if (!residual.allocate(layouts[state.trainable[k]].numElements))
        return failJob("out of memory for the gradient residual of '" +
                       std::string(layouts[state.trainable[k]].desc->name) + "'");
      residualPtrs.push_back(residual.data());
      state.gradResidual.push_back(std::move(residual));
    }
  // A resumed run continues with the residuals its rank held, which only
  // mean something on the layout that wrote them.
  if (model.gradResiduals && options.resume) {
    std::map<std::string, const checkpoint::Tensor *> saved;
    for (const checkpoint::Tensor &t : checkpointRankState)
      saved[t.name] = &t;
    size_t restored = 0, wanted = 0;
    for (size_t k = 0; k < state.trainable.size(); ++k) {
      const ParamLayout &l = layouts[state.trainable[k]];
      for (size_t e = 0; e < l.hfNames.size(); ++e, ++wanted) {
        auto it = saved.find(kResidualPrefix + l.hfNames[e]);
        if (it == saved.end())
          continue;
        if (it->second->values.size() != l.perStored)
          return failJob(ckptDir + ": the gradient residual '" + it->first + "' of rank " +
                         std::to_string(ranks.rank) + " has " +
                         std::to_string(it->second->values.size()) + " elements, expected " +
                         std::to_string(l.perStored));
        std::copy(it->second->values.begin(), it->second->values.end(),
                  state.gradResidual[k].data() + e * l.perStored);
        ++restored;
      }
    }
    if (restored != wanted && restored != 0)
      return failJob(ckptDir + ": rank " + std::to_string(ranks.rank) + " found " +
                     std::to_string(restored) + " of its " + std::to_string(wanted) +
                     " gradient residuals in the checkpoint; it was written by another "
                     "model or layout");
    if (restored == 0 && ranks.lead())
      std::fprintf(stderr,
                   "note: the checkpoint holds no gradient residuals for this layout (written "
                   "by %d ranks%s); error feedback starts again from zero\n",
                   checkpointRanks,
                   checkpointRanks == ranks.size ? " without error feedback" : "");
  }
  for (auto &p : state.params)
    paramPtrs.push_back(p.data());
  for (auto &m : state.expAvg)
    expAvgPtrs.push_back(m.data());
  for (auto &v : state.expAvgSq)
    expAvgSqPtrs.push_back(v.data());
  std::vector<float *> maskPtrs; // null for the parameters without a 2:4 mask
  for (auto &mask : state.sparsityMask)
    maskPtrs.push_back(mask.data());
  std::vector<kernels::Bf16 *> expAvgBf16Ptrs, expAvgSqBf16Ptrs;
  for (auto &m : state.expAvgBf16)
    expAvgBf16Ptrs.push_back(m.data());
  for (auto &v : state.expAvgSqBf16)
    expAvgSqBf16Ptrs.push_back(v.data());
  for (auto &l : loads)
    loadPtrs.push_back(l.data());
  for (auto &l : kept)
    keptPtrs.push_back(l.data());
  // Expert capacity: every layer's routed rows (loads) against those its
  // experts kept; the loads and kept counts are sums over all ranks.
  auto countRows = [&](std::vector<AlignedArray<float>> &counts) {
    double rows = 0;
    for (AlignedArray<float> &c : counts)
      for (int64_t e = 0; e < model.numExperts; ++e)
        rows += double(c.data()[e]);
    return uint64_t(rows);
  };
  uint64_t droppedTotal = 0, routedTotal = 0;
  KernelProfile profile; // --profile
  double profiledSeconds = 0;
  const GrpoBatch grpoBatch{tokens.data(), targets.data(), lossMask.data(), advantages.data(),
                            oldLogprobs.data(), refLogprobs.data()};
  std::optional<GrpoRollout> rollout =
      grpo ? GrpoRollout::create(model, *decode, *grpo, layouts, paramPtrs.data(),
                                 ranks.size > 1 ? ranks.world.get() : nullptr, error)
           : std::nullopt;
  if (grpo && !rollout)
    return failJob(error);
  const bool fixedRollouts = grpo && !options.rolloutsPath.empty();
  if (fixedRollouts && !readRollouts(options.rolloutsPath, model, dpRank, grpoBatch, error))
    return failJob(error);
  if (grpo) {
    // The reference model is checkpointed with the rank's state, and a
    // resumed run continues with the one the checkpoint holds.
    if (options.resume && !rollout->restoreReference(checkpointRankState, error))
      return failJob(ckptDir + ": " + error);
    rollout->exposeReference(state);
  }

  GradCapture capture;
  capture.layouts = &layouts;
  capture.trainable = &state.trainable;
  bool wantGrads = !options.saveGradsPath.empty();

  // Live line on a terminal; on a pipe or file, ~20 plain lines per run.
  std::optional<ProgressPrinter> printer;
  if (ranks.lead() && ::isatty(::fileno(stderr)))
    printer.emplace(stderr);
  const uint64_t printEvery = std::max<uint64_t>(1, options.steps / 20);
  auto stop = [&](const std::string &message) {
    if (printer)
      printer->finish();
    return failJob(message);
  };

  // --trace: the ranks' clocks start together.
  std::optional<ActionTrace> trace;
  if (!options.tracePath.empty()) {
    trace.emplace(ranks.rank, stage, dpRank);
    if (!trace->start(*ranks.world, error))
      return stop(error);
  }

  // 7. The loop.
  StopSignals stopSignals;
  Timer timer;
  std::string lastCheckpoint;
  float lastLoss = std::nanf("");
  uint64_t skippedSteps = 0, nonFiniteRun = 0;
  constexpr uint64_t kMaxNonFiniteSkips = 20;
  for (uint64_t s = startStep + 1; s <= options.steps; ++s) {
    timer.lap(); // Starts this step's lap; saving the previous one is not step time.
    StepMetrics metrics;
    // This step's global batch and its program (one size without a rampup).
    const int64_t globalRows = schedule.globalRowsAfter(consumedSamples);
    const RampupProgram &program = schedule.programFor(globalRows);
    const uint64_t stepRows = uint64_t(program.model->batch),
                   firstRow = stepRows * uint64_t(dpRank);
    // Throughput is the whole job's: every data-parallel rank trains its
    // rows (and each of its pipeline stages passes them on).
    const uint64_t tokensPerStep = stepRows * T * uint64_t(dpRanks);
    if (loader && !loader->setRows(stepRows * uint64_t(dpRanks)))
      return stop("step " + std::to_string(s) + ": a global batch of " +
                  std::to_string(globalRows) + " rows is larger than the program's");
    if (fixedRollouts) {
      // --rollouts: the same given batch every step.
    } else if (grpo) {
      // GRPO: the batch is this step's rollouts of the current policy.
      if (!rollout->prepare(seed, s, grpoBatch, metrics, error))
        return stop(error);
    } else {
      if (!loader->next(batch.data(), batchMask.data(), error))
        return stop(error);
      // Row b holds T + 1 tokens: inputs are [0, T), targets [1, T + 1). This
      // rank trains rows [firstRow, firstRow + stepRows) of the global batch
      // (every stage of a pipeline gets them; each reads what its program
      // needs).
      for (uint64_t b = 0; b < stepRows; ++b)
        for (uint64_t t = 0; t < T; ++t) {
          const uint64_t in = (firstRow + b) * (T + 1) + t, out = b * T + t;
          tokens.data()[out] = int32_t(batch[in]);
          targets.data()[out] = int32_t(batch[in + 1]);
          lossMask.data()[out] = model.sft ? float(batchMask[in + 1]) : 1.0f;
        }
    }

    const int64_t stepNumber = int64_t(s);
    float loss = std::nanf(""), mainLoss = std::nanf(""), gradNorm = std::nanf(""),
          lr = std::nanf("");
    StepBuffers buffers{};
    buffers.params = paramPtrs.data();
    buffers.expAvg = expAvgPtrs.data();
    buffers.expAvgSq = expAvgSqPtrs.data();
    buffers.expAvgBf16 = expAvgBf16Ptrs.data();
    buffers.expAvgSqBf16 = expAvgSqBf16Ptrs.data();
    buffers.step = &stepNumber;
    buffers.tokens = tokens.data();
    buffers.targets = targets.data();
    buffers.lossMask = lossMask.data();
    buffers.loss = &loss;
    buffers.mainLoss = &mainLoss;
    buffers.gradNorm = &gradNorm;
    buffers.lr = &lr;
    buffers.expertLoads = loadPtrs.data();
    buffers.expertKept = keptPtrs.empty() ? nullptr : keptPtrs.data();
    buffers.gradResidual = residualPtrs.empty() ? nullptr : residualPtrs.data();
    buffers.sparsityMask = maskPtrs.data();
    buffers.profile = options.profile ? &profile : nullptr;
    buffers.arena = arena.data();
    buffers.gradSink = wantGrads ? captureGrads : nullptr;
    buffers.gradSinkContext = wantGrads ? &capture : nullptr;
    buffers.comm = ranks.stepComm.get();
    if (grpo) {
      buffers.advantages = advantages.data();
      buffers.oldLogprobs = oldLogprobs.data();
      buffers.refLogprobs = refLogprobs.data();
    }
    const float stepLossScale = state.lossScale;
    const int64_t updatesBefore = state.optimizerUpdates;
    if (lossScaling) {
      buffers.lossScale = &state.lossScale;
      buffers.growthTracker = &state.growthTracker;
      buffers.optimizerUpdates = &state.optimizerUpdates;
    }
    ranks.world->setStep(stepNumber);
    if (ranks.stepComm)
      ranks.stepComm->resetStats();
    buffers.trace = trace ? &*trace : nullptr;
    if (trace)
      trace->beginStep(s);
    std::string stepError;
    if (!program.step(buffers, stepError))
      return stop("step " + std::to_string(s) + ": " + stepError);
    // GRPO's further updates on the same rollouts (train.grpo.
    // updates_per_batch); the metrics keep the first, on-policy, update's
    // loss, gradient norm and learning rate.
    for (int64_t u = 2; grpo && u <= grpo->updatesPerBatch; ++u) {
      float again = 0, againMain = 0, againNorm = 0, againLr = 0;
      buffers.loss = &again;
      buffers.mainLoss = &againMain;
      buffers.gradNorm = &againNorm;
      buffers.lr = &againLr;
      buffers.gradSink = nullptr;
      if (!rollout->measureClipping(grpoBatch, metrics, error))
        return stop("step " + std::to_string(s) + ": " + error);
      if (!step(buffers, stepError))
        return stop("step " + std::to_string(s) + " update " + std::to_string(u) + ": " +
                    stepError);
    }
    if (grpo)
      rollout->finishStep(s);
    if (trace)
      trace->endStep();
    const double stepSec = timer.lap();
    profiledSeconds += stepSec;

    if (wantGrads) {
      if (!writeGrads(options.saveGradsPath, s, capture, error))
        return stop(error);
      wantGrads = false;
    }
    // Loss scaling skips a step whose gradients overflowed, as GradScaler
    // does; a forward that overflows (a non-finite loss) is skipped too, but
    // no scale fixes it, so many in a row end the run.
    const bool skipped = lossScaling && state.optimizerUpdates == updatesBefore;
    skippedSteps += skipped;
    nonFiniteRun = std::isfinite(loss) ? 0 : nonFiniteRun + 1;
    if (!std::isfinite(loss) && (!skipped || nonFiniteRun >= kMaxNonFiniteSkips))
      return stop(
          "step " + std::to_string(s) + ": the loss is " + std::to_string(loss) +
          "; stopping without a checkpoint for this step" +
          (lastCheckpoint.empty() ? std::string() : " (the last one is " + lastCheckpoint + ")") +
          (skipped ? "; the loss was not finite on " + std::to_string(nonFiniteRun) +
                         " steps in a row, which loss scaling skipped: the forward pass "
                         "overflows whatever the scale"
                   : std::string()) +
          "; try a lower learning rate");
    if (std::isfinite(loss))
      lastLoss = loss;

    metrics.step = s;
    metrics.loss = loss;
    metrics.mainLoss = mainLoss;
    metrics.lr = lr;
    metrics.gradNorm = gradNorm;
    metrics.tokensPerSec = stepSec > 0 ? double(tokensPerStep) / stepSec : 0;
    metrics.mfu = modelFlopsUtilization(model.modelFlopsPerToken, metrics.tokensPerSec,
                                        ranks.size, peakFlops);
    trainedTokens += tokensPerStep;
    if (schedule.ramps()) {
      metrics.globalBatch = uint64_t(globalRows);
      metrics.consumedSamples = consumedSamples;
    }
    consumedSamples += uint64_t(globalRows);
    metrics.elapsedSec = timer.seconds();
    metrics.multiRank = ranks.size > 1;
    metrics.commSec = ranks.stepComm ? ranks.stepComm->commSeconds() : 0.0;
    metrics.commBytes = ranks.stepComm ? ranks.stepComm->commBytes() : 0;
    if (program.model->allToAllBytesPerStep > 0 && ranks.stepComm) {
      // The prediction is for all ranks together: sum what each passed.
      int64_t bytes = int64_t(ranks.stepComm->allToAllBytes);
      if (!ranks.world->allReduce(&bytes, 1, comm::DType::I64, comm::ReduceOp::Sum))
        return stop(ranks.world->error());
      metrics.allToAllBytes = uint64_t(bytes);
      metrics.allToAllBytesPredicted = program.model->allToAllBytesPerStep;
    }
    metrics.lossScaling = lossScaling;
    metrics.lossScale = stepLossScale;
    metrics.skipped = skipped;
    metrics.gradBytesSent = program.model->gradBytesSent;
    metrics.gradBytesUncompressed = program.model->gradBytesUncompressed;
    if (model.numExpertKept > 0) {
      metrics.expertCapacity = true;
      metrics.routedRows = countRows(loads);
      const uint64_t keptRows = countRows(kept);
      metrics.droppedRows = metrics.routedRows > keptRows ? metrics.routedRows - keptRows : 0;
      if (metrics.droppedRows > 0 && droppedTotal == 0 && ranks.lead())
        std::fprintf(stderr,
                     "warning: step %llu: %llu of %llu routed expert rows were over "
                     "parallel.expert_capacity and dropped (their tokens keep the residual "
                     "and shared experts); dropped_rows in the metrics log counts them each "
                     "step\n",
                     (unsigned long long)s, (unsigned long long)metrics.droppedRows,
                     (unsigned long long)metrics.routedRows);
      droppedTotal += metrics.droppedRows;
      routedTotal += metrics.routedRows;
    }
    if (log && !log->write(metrics, error))
      return stop(error);

    Progress progress{s,
                      options.steps,
                      loss,
                      lr,
                      gradNorm,
                      metrics.tokensPerSec,
                      estimateEta(s - startStep, options.steps - startStep, metrics.elapsedSec),
                      metrics.mfu};
    if (printer)
      printer->update(progress);
    else if (ranks.lead() && (s % printEvery == 0 || s == options.steps))
      std::fprintf(stderr, "%s\n", formatProgressLine(progress).c_str());

    const bool every = options.checkpointEvery && s % options.checkpointEvery == 0;
    int signal = stopSignals.pending();
    if (ranks.size > 1) {
      // mpirun forwards a signal to every rank, not always before the same
      // step: the ranks agree to stop after this one if any of them got it.
      float anySignal = float(signal);
      if (!ranks.world->allReduce(&anySignal, 1, comm::DType::F32, comm::ReduceOp::Max))
        return stop(ranks.world->error());
      signal = int(anySignal);
    }
    if (!ckptDir.empty() && (every || s == options.steps || signal)) {
      if (model.syncStateToHost && !model.syncStateToHost(error))
        return stop(error);
      if (!saveCheckpointOfRanks(ranks, ckptDir, model, placement, layouts, state, s, seed,
                                 loader ? loader->position() : 0, error))
        return stop(error);
      lastCheckpoint = ckptDir + "/" + checkpoint::stepDirName(s);
    }
    if (signal) {
      if (printer)
        printer->finish();
      if (ranks.lead())
        std::fprintf(stderr, "stopped by %s after step %llu%s\n",
                   signal == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)s,
                   lastCheckpoint.empty()
                       ? "; no --checkpoint-dir, so nothing was saved"
                       : ("; checkpoint " + lastCheckpoint + ", continue with --resume").c_str());
      return 128 + signal;
    }
  }
  if (printer)
    printer->finish();
  if (trace && !trace->write(*ranks.world, options.tracePath, error))
    return failJob(error);

  // 8. Summary.
  const double seconds = timer.seconds();
  const uint64_t stepsRun = options.steps - startStep;
  std::string summary = "trained steps " + std::to_string(startStep + 1) + "-" +
                        std::to_string(options.steps) + " (" + std::to_string(stepsRun) +
                        ") | final loss ";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.4f | %.2f s | ", double(lastLoss), seconds);
  summary += buffer;
  summary += formatRate(seconds > 0 ? double(trainedTokens) / seconds : 0) + " tok/s";
  if (model.numExpertKept > 0) {
    std::snprintf(buffer, sizeof(buffer), " | dropped %.3g%% of routed rows",
                  routedTotal ? 100.0 * double(droppedTotal) / double(routedTotal) : 0.0);
    summary += buffer;
  }
  if (lossScaling) {
    std::snprintf(buffer, sizeof(buffer), " | loss scale %g, %llu step%s skipped",
                  double(state.lossScale), (unsigned long long)skippedSteps,
                  skippedSteps == 1 ? "" : "s");
    summary += buffer;
  }
  if (!lastCheckpoint.empty())
    summary += " | checkpoint " + lastCheckpoint;
  if (trace)
    summary += " | trace " + options.tracePath;
  if (ranks.lead())
    std::fprintf(stderr, "%s\n", summary.c_str());
  if (options.profile && ranks.lead())
    std::fprintf(stderr, "%s", profile.format(stepsRun, profiledSeconds).c_str());
  return 0;
}

int guardedRun(int argc, char **argv, const StageProgram *stages, int64_t numStages,
               const DecodeDesc *decode, const GrpoDesc *grpo = nullptr) {
  // runtime/ reports failures through return values; this is the one net
  // for what slips through (std::bad_alloc from a std::string or vector).
  try {
    return run(argc, argv, stages, numStages, decode, grpo);
  } catch (const std::exception &e) {
    return fail(std::string("unexpected failure: ") + e.what());
  } catch (...) {
    return fail("unexpected failure");
  }
}

} // namespace

int trainMain(int argc, char **argv, const StageProgram *stages, int64_t numStages) {
  return guardedRun(argc, argv, stages, numStages, nullptr);
}

int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step) {
  return trainMain(argc, argv, model, step, nullptr);
}

int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step,
              const DecodeDesc *decode) {
  const StageProgram program{&model, step};
  return guardedRun(argc, argv, &program, 1, decode);
}

int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step,
              const DecodeDesc *decode, const GrpoDesc *grpo) {
  const StageProgram program{&model, step};
  return guardedRun(argc, argv, &program, 1, decode, grpo);
}

} // namespace kiln::driver
