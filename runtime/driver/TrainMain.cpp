//===- TrainMain.cpp - The host training loop around a generated step -----===//
//
// Reads top to bottom like the run it drives: flags, threads, checkpoint
// directory, parameter layout, initial or resumed state, data, then the
// step loop with metrics and checkpoints, then one summary line. Helpers
// above trainMain() each own one of those pieces.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/TrainMain.h"

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/data/SyntheticCorpus.h"
#include "runtime/data/TokenLoader.h"
#include "runtime/driver/CommandLine.h"
#include "runtime/driver/KernelProfile.h"
#include "runtime/driver/Metrics.h"
#include "runtime/driver/Ranks.h"
#include "runtime/driver/Timer.h"
#include "runtime/init/HfNames.h"
#include "runtime/init/SeededRng.h"
#include "runtime/safetensors/Safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <omp.h>
#include <optional>
#include <csignal>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace kiln::driver {

namespace {

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
// Buffers
//===----------------------------------------------------------------------===//

/// A zero-filled, 64-byte aligned array: what the generated step expects of
/// its parameter, moment and arena buffers (it may use aligned vector loads).
template <class T> class AlignedArray {
public:
  AlignedArray() = default;
  AlignedArray(AlignedArray &&other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  AlignedArray(const AlignedArray &) = delete;
  AlignedArray &operator=(const AlignedArray &) = delete;
  AlignedArray &operator=(AlignedArray &&) = delete;
  ~AlignedArray() { std::free(data_); }

  /// False when `count` elements do not fit in memory.
  bool allocate(uint64_t count) {
    // Round up to whole 64-byte lines; never 0 bytes, so data() is never null.
    uint64_t bytes;
    if (__builtin_mul_overflow(count, uint64_t(sizeof(T)), &bytes) || bytes > (uint64_t(1) << 62))
      return false;
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0)
      bytes = 64;
    void *p = nullptr;
    if (::posix_memalign(&p, 64, size_t(bytes)) != 0)
      return false;
    std::memset(p, 0, size_t(bytes));
    data_ = static_cast<T *>(p);
    size_ = count;
    return true;
  }

  T *data() const { return data_; }
  uint64_t size() const { return size_; }

private:
  T *data_ = nullptr;
  uint64_t size_ = 0;
};

//===----------------------------------------------------------------------===//
// Parameter layout
//===----------------------------------------------------------------------===//

/// One ParamDesc as it is stored: a stacked expert tensor is `numStored`
/// Hugging Face tensors of `hfShape`, expert e under hfNames[e].
struct ParamLayout {
  const ParamDesc *desc = nullptr;
  uint64_t numElements = 0;
  uint64_t perStored = 0;
  std::vector<int64_t> hfShape;
  std::vector<std::string> hfNames;
  /// Where this rank's tensor sits in the whole model: an expert-parallel
  /// rank holds experts [firstExpert, firstExpert + hfNames.size()) of
  /// wholeExperts (0 and hfNames.size() otherwise).
  uint64_t firstExpert = 0, wholeExperts = 0;
  /// True when the rank holds only some of the tensor's experts.
  bool expertSplit() const { return wholeExperts != hfNames.size(); }
  /// ZeRO-1: the rank holds shard `momentShard` of `momentShards` of each
  /// moment (ceil(numElements / momentShards) elements); 1: whole moments.
  int momentShards = 1, momentShard = 0;
};

/// Which part of the model a rank holds (TrainStep.h: ModelDesc::ep and
/// shardedState); the default is the whole model, unsharded.
struct Placement {
  int rank = 0, ranks = 1;
  int64_t ep = 1;
  bool shardedState = false;
  bool wholeModel = true;
};

/// Checks what the generated file describes (a kilnc bug otherwise, but a
/// clear message beats a crash) and derives the stored layout.
bool describeParams(const ModelDesc &model, const Placement &placement,
                    std::vector<ParamLayout> &out, std::string &error) {
  if (model.batch < 1 || model.seqLen < 1 || model.vocabSize < 1 || model.numParams < 0 ||
      model.numExpertLoads < 0 || model.numExperts < 0 || model.numExpertKept < 0 ||
      model.numExpertKept > model.numExpertLoads || (model.numParams > 0 && !model.params)) {
    error = "model description: batch " + std::to_string(model.batch) + ", seq_len " +
            std::to_string(model.seqLen) + ", vocab " + std::to_string(model.vocabSize) + ", " +
            std::to_string(model.numParams) +
            " params; all must be positive (params may be 0); regenerate with kilnc";
    return false;
  }
  for (int64_t i = 0; i < model.numParams; ++i) {
    const ParamDesc &p = model.params[i];
    const std::string name = p.name ? p.name : "";
    const std::string where =
        "model description: parameter " + std::to_string(i) + " '" + name + "'";
    const size_t star = name.find('*');
    const bool stacked = star != std::string::npos;
    if (name.empty() || (stacked && name.find('*', star + 1) != std::string::npos)) {
      error = where + ": expected a non-empty name with at most one '*'";
      return false;
    }
    if (p.rank < (stacked ? 2 : 0) || p.rank > 4) {
      error = where + ": rank " + std::to_string(p.rank) + ", expected " +
              (stacked ? "2 to 4 (expert dimension first)" : "0 to 4");
      return false;
    }
    ParamLayout layout;
    layout.desc = &p;
    layout.numElements = 1;
    for (int64_t d = 0; d < p.rank; ++d) {
      if (p.shape[d] < 1 ||
          __builtin_mul_overflow(layout.numElements, uint64_t(p.shape[d]), &layout.numElements)) {
        error = where + ": dimension " + std::to_string(d) + " is " + std::to_string(p.shape[d]) +
                ", expected a positive size whose product fits in memory";
        return false;
      }
      if (d >= (stacked ? 1 : 0))
        layout.hfShape.push_back(p.shape[d]);
    }
    if (p.expertSplit && (!stacked || model.ep < 1)) {
      error = where + ": split over ep but not a stacked expert tensor (or ep " +
              std::to_string(model.ep) + "); regenerate with kilnc";
      return false;
    }
    const int64_t numStored = stacked ? p.shape[0] : 1;
    layout.perStored = layout.numElements / uint64_t(numStored);
    // An expert-parallel rank holds the experts of its ep coordinate; the
    // whole model (a checkpoint's view) holds all of them.
    const bool split = p.expertSplit && model.ep > 1;
    const int64_t experts = split && placement.wholeModel ? numStored * model.ep : numStored;
    layout.firstExpert =
        split && !placement.wholeModel ? uint64_t(placement.rank % model.ep * numStored) : 0;
    layout.wholeExperts = uint64_t(split ? numStored * model.ep : numStored);
    if (experts != numStored)
      layout.numElements = layout.perStored * uint64_t(experts);
    for (int64_t e = 0; e < experts; ++e)
      layout.hfNames.push_back(init::expertTensorName(name, int64_t(layout.firstExpert) + e));
    if (placement.shardedState && !placement.wholeModel) {
      // Expert moments are sharded over the dp / ep ranks holding the same
      // experts (kiln.sharded axes ["edp"]), the others over every rank.
      layout.momentShards = split ? placement.ranks / int(model.ep) : placement.ranks;
      layout.momentShard = split ? placement.rank / int(model.ep) : placement.rank;
    }
    out.push_back(std::move(layout));
  }
  return true;
}

/// Checkpoint names of the error-feedback residuals (rank state).
const std::string kResidualPrefix = "rank_state.grad_residual.";

/// Parameters and AdamW moments; moments[k] belong to the k-th trainable
/// parameter (trainable[k] is its index in ModelDesc::params).
struct TrainState {
  std::vector<AlignedArray<float>> params, expAvg, expAvgSq;
  /// Gradient compression's error-feedback residuals (this rank's own),
  /// like the moments indexed by trainable parameter; empty without it.
  std::vector<AlignedArray<float>> gradResidual;
  std::vector<size_t> trainable;
};

/// Allocates the state (zeros) and, when `seeded`, initialises the
/// parameters exactly as the reference evaluator does
/// (dialects/kiln/reference/Parameters.cpp, initParameter): per HF tensor,
/// SeededRng(seed, name).normal() * std rounded to f32, in row-major order.
/// A state a checkpoint will overwrite is not seeded.
bool initState(const std::vector<ParamLayout> &layouts, uint64_t seed, bool seeded,
               TrainState &state, std::string &error) {
  for (size_t i = 0; i < layouts.size(); ++i) {
    const ParamLayout &l = layouts[i];
    AlignedArray<float> values;
    if (!values.allocate(l.numElements)) {
      error = "out of memory for parameter '" + std::string(l.desc->name) + "' (" +
              std::to_string(l.numElements) + " floats)";
      return false;
    }
    if (seeded && l.desc->init == InitKind::Ones)
      std::fill(values.data(), values.data() + l.numElements, 1.0f);
    else if (seeded && l.desc->init == InitKind::Normal)
      for (size_t e = 0; e < l.hfNames.size(); ++e) {
        init::SeededRng rng(seed, l.hfNames[e]);
        float *out = values.data() + e * l.perStored;
        for (uint64_t k = 0; k < l.perStored; ++k)
          out[k] = float(rng.normal() * l.desc->initStd);
      }
    state.params.push_back(std::move(values));
    if (!l.desc->trainable)
      continue;
    state.trainable.push_back(i);
    AlignedArray<float> m, v;
    const uint64_t momentElements = shardElements(l.numElements, l.momentShards);
    if (!m.allocate(momentElements) || !v.allocate(momentElements)) {
      error = "out of memory for the AdamW state of '" + std::string(l.desc->name) + "'";
      return false;
    }
    state.expAvg.push_back(std::move(m));
    state.expAvgSq.push_back(std::move(v));
  }
  return true;
}

/// A view of one stored tensor of the state.
struct StoredTensor {
  std::string name;
  const std::vector<int64_t> *shape;
  float *values;
  uint64_t count;
};

/// Every tensor of a checkpoint, in file order: the parameters, then
/// exp_avg and exp_avg_sq of the trainable ones.
std::vector<StoredTensor> checkpointTensors(const std::vector<ParamLayout> &layouts,
                                            const TrainState &state) {
  std::vector<StoredTensor> out;
  auto add = [&](const std::string &prefix, const ParamLayout &l, float *base) {
    for (size_t e = 0; e < l.hfNames.size(); ++e)
      out.push_back({prefix + l.hfNames[e], &l.hfShape, base + e * l.perStored, l.perStored});
  };
  for (size_t i = 0; i < layouts.size(); ++i)
    add("", layouts[i], state.params[i].data());
  for (size_t k = 0; k < state.trainable.size(); ++k)
    add("optimizer.exp_avg.", layouts[state.trainable[k]], state.expAvg[k].data());
  for (size_t k = 0; k < state.trainable.size(); ++k)
    add("optimizer.exp_avg_sq.", layouts[state.trainable[k]], state.expAvgSq[k].data());
  return out;
}

//===----------------------------------------------------------------------===//
// Checkpoint directory, resume, save
//===----------------------------------------------------------------------===//

/// Creates `dir` (and missing parents) and proves it writable by creating
/// and removing a probe file, so a bad --checkpoint-dir fails before any
/// training rather than after hours of it.
bool prepareCheckpointDir(const std::string &dir, std::string &error) {
  for (size_t slash = dir.find('/', 1); slash != std::string::npos;
       slash = dir.find('/', slash + 1))
    ::mkdir(dir.substr(0, slash).c_str(), 0755); // Failures show up below.
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    error = dir + ": cannot create the checkpoint directory: " + std::strerror(errno) +
            "; pass a writable --checkpoint-dir";
    return false;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = dir + ": --checkpoint-dir exists but is not a directory; pass a directory path";
    return false;
  }
  const std::string probe = dir + "/.kiln-write-probe." + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::write(fd, "k", 1) != 1) {
    error = dir + ": cannot write to the checkpoint directory: " + std::strerror(errno) +
            "; pass a writable --checkpoint-dir";
    if (fd >= 0) {
      ::close(fd);
      ::unlink(probe.c_str());
    }
    return false;
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

/// Loads `<dir>/latest` into `state`; the layout check (names, shapes,
/// fingerprint) is checkpoint::loadLatest's, and `state` is only written
/// once everything has been read.
bool resumeState(const std::string &dir, const ModelDesc &model,
                 const std::vector<ParamLayout> &layouts, TrainState &state, int rank,
                 checkpoint::Checkpoint &ckpt, std::string &error) {
  std::vector<StoredTensor> tensors = checkpointTensors(layouts, state);
  std::vector<checkpoint::Tensor> layout;
  for (const StoredTensor &t : tensors)
    layout.push_back({t.name, *t.shape, {}});
  if (!checkpoint::loadLatest(dir, layout, model.specFingerprint, ckpt, error, rank))
    return false;
  for (size_t i = 0; i < tensors.size(); ++i)
    std::copy(ckpt.tensors[i].values.begin(), ckpt.tensors[i].values.end(), tensors[i].values);
  ckpt.tensors.clear(); // The values now live in `state`.
  return true;
}

/// Rank `rank`'s part of the checkpoint of `state`. Parameters every rank
/// holds are spread over the model files (checkpoint::assignModelFiles); an
/// expert-parallel rank's experts go to the file of the first rank holding
/// them (edp coordinate 0, i.e. rank = its ep coordinate). Of every AdamW
/// moment the rank writes its ZeRO-1 range (chunk `momentShard` of
/// `momentShards`, or the same chunking of the whole moment it holds
/// without ZeRO), cut where it spans several HF tensors and named by the
/// experts' global indices, so the files do not depend on ZeRO. `manifest`
/// gets the weight map every rank computes alike.
checkpoint::RankShard rankShard(const std::vector<ParamLayout> &layouts, const TrainState &state,
                                const Placement &placement, checkpoint::Manifest &manifest) {
  const int rank = placement.rank, ranks = placement.ranks;
  const int64_t ep = placement.ep;
  checkpoint::RankShard shard;
  shard.rank = rank;
  shard.ranks = ranks;
  std::vector<StoredTensor> replicated;
  std::vector<uint64_t> bytes;
  bool anySplit = false;
  for (size_t i = 0; i < layouts.size(); ++i) {
    const ParamLayout &l = layouts[i];
    if (l.expertSplit()) {
      anySplit = true;
      continue;
    }
    for (size_t e = 0; e < l.hfNames.size(); ++e) {
      replicated.push_back({l.hfNames[e], &l.hfShape, state.params[i].data() + e * l.perStored,
                            l.perStored});
      bytes.push_back(l.perStored * sizeof(float));
    }
  }
  const std::vector<int> file = checkpoint::assignModelFiles(bytes, ranks);
  shard.modelFiles = anySplit ? ranks : file.empty() ? 1 : file.back() + 1;
  manifest.ranks = ranks;
  manifest.modelFiles = shard.modelFiles;
  for (size_t i = 0; i < replicated.size(); ++i) {
    manifest.weightMap.push_back({replicated[i].name, file[i], bytes[i]});
    if (file[i] == rank)
      shard.model.push_back({replicated[i].name, replicated[i].shape, 0, replicated[i].count,
                             replicated[i].values});
  }
  for (size_t i = 0; i < layouts.size(); ++i) {
    const ParamLayout &l = layouts[i];
    if (!l.expertSplit())
      continue;
    const uint64_t local = l.hfNames.size();
    for (uint64_t e = 0; e < l.wholeExperts; ++e)
      manifest.weightMap.push_back({init::expertTensorName(l.desc->name, int64_t(e)),
                                    int(e / local), l.perStored * sizeof(float)});
    if (rank / ep == 0)
      for (uint64_t e = 0; e < local; ++e)
        shard.model.push_back({l.hfNames[e], &l.hfShape, 0, l.perStored,
                               state.params[i].data() + e * l.perStored});
  }
  auto addMoment = [&](const std::string &prefix, const ParamLayout &l, const float *held) {
    const bool split = l.expertSplit();
    const int chunks = l.momentShards > 1 ? l.momentShards : split ? ranks / int(ep) : ranks;
    const int chunkIndex = l.momentShards > 1 ? l.momentShard : split ? rank / int(ep) : rank;
    const uint64_t chunk = shardElements(l.numElements, chunks);
    const uint64_t begin = std::min(l.numElements, uint64_t(chunkIndex) * chunk),
                   end = std::min(l.numElements, begin + chunk);
    const float *range = l.momentShards > 1 ? held : held + begin;
    for (size_t e = 0; e < l.hfNames.size(); ++e) {
      const uint64_t pieceBegin = e * l.perStored, pieceEnd = pieceBegin + l.perStored;
      const uint64_t lo = std::max(begin, pieceBegin), hi = std::min(end, pieceEnd);
      if (lo < hi)
        shard.optimizer.push_back(
            {prefix + l.hfNames[e], &l.hfShape, lo - pieceBegin, hi - lo, range + (lo - begin)});
    }
  };
  for (size_t k = 0; k < state.trainable.size(); ++k)
    addMoment("optimizer.exp_avg.", layouts[state.trainable[k]], state.expAvg[k].data());
  for (size_t k = 0; k < state.trainable.size(); ++k)
    addMoment("optimizer.exp_avg_sq.", layouts[state.trainable[k]], state.expAvgSq[k].data());
  // Gradient compression's residuals are this rank's alone.
  for (size_t k = 0; k < state.gradResidual.size(); ++k) {
    const ParamLayout &l = layouts[state.trainable[k]];
    for (size_t e = 0; e < l.hfNames.size(); ++e)
      shard.rankState.push_back({kResidualPrefix + l.hfNames[e], &l.hfShape, 0, l.perStored,
                                 state.gradResidual[k].data() + e * l.perStored});
  }
  return shard;
}

/// The checkpoint of step `step`, a collective: every rank writes its files
/// in parallel (phase one), the ranks exchange their files' sizes (or a
/// failure), and only then rank 0 commits (phase two), so a rank killed
/// mid-write leaves `latest` at the previous checkpoint.
bool saveCheckpointOfRanks(Ranks &ranks, const std::string &dir, const ModelDesc &model,
                           const Placement &placement, const std::vector<ParamLayout> &layouts,
                           const TrainState &state, uint64_t step, uint64_t seed,
                           uint64_t dataPosition, std::string &error) {
  const checkpoint::StepInfo info{step, seed, dataPosition, model.specFingerprint};
  checkpoint::Manifest manifest;
  const checkpoint::RankShard shard = rankShard(layouts, state, placement, manifest);
  checkpoint::ShardBytes mine;
  const bool wrote = checkpoint::writeShard(dir, info, shard, mine, error);
  manifest.written.assign(size_t(ranks.size), {});
  if (ranks.size == 1) {
    if (!wrote)
      return false;
    manifest.written[0] = mine;
  } else {
    // Each rank fills its two slots: its files' sizes, or -1 if it failed.
    std::vector<int64_t> sizes(2 * size_t(ranks.size), 0);
    sizes[2 * ranks.rank] = wrote ? int64_t(mine.model) : -1;
    sizes[2 * ranks.rank + 1] = wrote ? int64_t(mine.optimizer) : -1;
    if (!ranks.world->allReduce(sizes.data(), sizes.size(), comm::DType::I64,
                                comm::ReduceOp::Sum)) {
      error = ranks.world->error();
      return false;
    }
    if (!wrote)
      return false;
    for (int r = 0; r < ranks.size; ++r) {
      if (sizes[2 * r + 1] < 0) {
        error = "rank " + std::to_string(r) + " could not write its files of " + dir + "/" +
                checkpoint::stepDirName(step) + " (its message says why); the step is not "
                "committed and `latest` is unchanged";
        return false;
      }
      manifest.written[r] = {uint64_t(sizes[2 * r]), uint64_t(sizes[2 * r + 1])};
    }
  }
  return !ranks.lead() || checkpoint::commit(dir, info, manifest, error);
}

//===----------------------------------------------------------------------===//
// Data
//===----------------------------------------------------------------------===//

/// The loader of global batches: `ranks` x model.batch rows per step, of which
/// each rank trains its own (rank r: rows [r * batch, (r + 1) * batch)).
std::optional<data::TokenLoader> openData(const TrainOptions &options, const ModelDesc &model,
                                          uint64_t seed, int ranks, std::string &error) {
  const uint64_t rows = uint64_t(model.batch) * uint64_t(ranks),
                 seqLen = uint64_t(model.seqLen);
  const uint64_t vocab = uint64_t(model.vocabSize);
  if (!options.dataPath.empty()) {
    if (model.sft) {
      error = "--data " + options.dataPath + ": spec '" + model.specName +
              "' is SFT (loss only on answer tokens) but token files carry no answer masks; "
              "run without --data to train on the built-in synthetic corpus";
      return std::nullopt;
    }
    return data::TokenLoader::open(options.dataPath, rows, seqLen, error, vocab);
  }
  if (vocab < data::kCorpusVocabSize) {
    error = "spec '" + std::string(model.specName) + "' has a vocabulary of " +
            std::to_string(vocab) + ", but the built-in synthetic corpus is byte-level (" +
            std::to_string(data::kCorpusVocabSize) + " ids); pass --data FILE";
    return std::nullopt;
  }
  data::CorpusTokens corpus;
  if (!data::generateCorpus(seed, data::CorpusOptions{}, kSyntheticTokens, corpus, error))
    return std::nullopt;
  return data::TokenLoader::fromMemory(
      "synthetic arithmetic corpus (seed " + std::to_string(seed) + ")", std::move(corpus.tokens),
      std::move(corpus.answerMask), rows, seqLen, error, vocab);
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

/// The gradients are written after the first step, which for a big model
/// is minutes in; a path that cannot be written should fail before that.
bool checkSaveGradsPath(const std::string &path, std::string &error) {
  const size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                                        : path.substr(0, slash);
  // access() alone passes a regular file for root; the parent must be a
  // directory we may write to.
  struct stat info;
  std::string why;
  if (::stat(parent.c_str(), &info) != 0)
    why = std::strerror(errno);
  else if (!S_ISDIR(info.st_mode))
    why = "Not a directory";
  else if (::access(parent.c_str(), W_OK) != 0)
    why = std::strerror(errno);
  if (!why.empty()) {
    error = "--save-grads " + path + ": cannot write to the directory '" + parent + "': " + why +
            "; pass a path in a writable directory";
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

int run(int argc, char **argv, const ModelDesc &model, TrainStepFn step) {
  // 1. Flags.
  const SpecDefaults defaults{model.defaultSteps, model.defaultSeed};
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
  std::vector<ParamLayout> layouts;
  if (!step || !model.specName || !model.specFingerprint)
    return fail("model description: missing step function, spec name or fingerprint; "
                "regenerate with kilnc");
  if (!describeParams(model, Placement{}, layouts, error))
    return fail(error);

  // Ranks: this process alone, or the mpirun job a multi-rank build needs.
  Ranks ranks;
  if (!setupRanks(model, &argc, &argv, program, double(options.collectiveTimeoutSec), ranks,
                  error))
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
  if (!options.saveGradsPath.empty() && !checkSaveGradsPath(options.saveGradsPath, error))
    return failJob(error);

  // 4. State: seeded init, or the checkpoint's. This rank's part of the
  // model: its experts (expert parallelism), its moment shards (ZeRO-1).
  const Placement placement{ranks.rank, ranks.size, model.ep, model.shardedState,
                            /*wholeModel=*/false};
  layouts.clear();
  if (!describeParams(model, placement, layouts, error))
    return failJob(error);
  TrainState state;
  if (!initState(layouts, options.seed, /*seeded=*/!options.resume, state, error))
    return failJob(error);
  uint64_t startStep = 0, seed = options.seed, dataPosition = 0;
  std::vector<checkpoint::Tensor> checkpointRankState; // this rank's, when resuming
  int checkpointRanks = 0;
  if (options.resume) {
    checkpoint::Checkpoint ckpt;
    // A checkpoint holds whole tensors of the whole model; the rank keeps
    // its part.
    std::vector<ParamLayout> wholeLayouts;
    TrainState whole;
    if (!describeParams(model, Placement{}, wholeLayouts, error) ||
        !initState(wholeLayouts, options.seed, /*seeded=*/false, whole, error) ||
        !resumeState(ckptDir, model, wholeLayouts, whole, ranks.rank, ckpt, error))
      return failJob(error);
    for (size_t i = 0; i < layouts.size(); ++i) {
      const ParamLayout &l = layouts[i];
      std::copy_n(whole.params[i].data() + l.firstExpert * l.perStored, l.numElements,
                  state.params[i].data());
    }
    for (size_t k = 0; k < state.trainable.size(); ++k) {
      const ParamLayout &l = layouts[state.trainable[k]];
      const uint64_t first = l.firstExpert * l.perStored;
      takeShard(whole.expAvg[k].data() + first, l.numElements, l.momentShard, l.momentShards,
                state.expAvg[k].data());
      takeShard(whole.expAvgSq[k].data() + first, l.numElements, l.momentShard, l.momentShards,
                state.expAvgSq[k].data());
    }
    startStep = ckpt.step;
    dataPosition = ckpt.dataPosition;
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

  // 5. Data.
  std::optional<data::TokenLoader> loader = openData(options, model, seed, ranks.size, error);
  if (!loader)
    return failJob(error);
  loader->seek(dataPosition);

  std::optional<MetricsLog> log;
  if (!options.logPath.empty() && ranks.lead()) {
    log = MetricsLog::open(options.logPath, /*append=*/options.resume, error);
    if (!log)
      return failJob(error);
  }

  // What is about to run, in one line, so a log says what produced it.
  uint64_t numParams = 0, hfTensors = 0;
  for (const ParamLayout &l : layouts) {
    numParams += l.numElements;
    hfTensors += l.hfNames.size();
  }
  std::string dataName = loader->name();
  if (loader->format() != data::TokenFileFormat::InMemory)
    dataName += std::string(" (") + data::tokenFileFormatName(loader->format()) + ")";
  const int threads = omp_get_max_threads();
  const std::string layout =
      ranks.size > 1 ? " on each of dp " + std::to_string(ranks.size) + " ranks" +
                           (model.shardedState ? " (ZeRO-1)" : "")
                     : "";
  if (ranks.lead())
    std::fprintf(stderr,
                 "%s: %s parameters in %llu tensors, batch %lld x %lld tokens%s, arena %.1f MB, "
                 "%d thread%s; data: %s; %s step %llu\n",
                 model.specName, formatRate(double(numParams)).c_str(),
                 (unsigned long long)hfTensors, (long long)model.batch, (long long)model.seqLen,
                 layout.c_str(), double(model.arenaBytes) / 1e6, threads,
                 threads == 1 ? "" : "s", dataName.c_str(),
                 options.resume ? "resuming after" : "starting at", (unsigned long long)startStep);

  // 6. Step buffers.
  const uint64_t B = uint64_t(model.batch), T = uint64_t(model.seqLen);
  // Throughput is the whole job's: every rank trains B rows.
  const uint64_t tokensPerStep = B * T * uint64_t(ranks.size);
  const uint64_t rankTokens = B * T, firstRow = B * uint64_t(ranks.rank);
  std::vector<int64_t> batch(loader->batchTokens());
  std::vector<uint8_t> batchMask(loader->batchTokens());
  AlignedArray<int32_t> tokens, targets;
  AlignedArray<float> lossMask;
  AlignedArray<unsigned char> arena;
  std::vector<AlignedArray<float>> loads(size_t(model.numExpertLoads)),
      kept(size_t(model.numExpertKept));
  bool allocated = tokens.allocate(rankTokens) && targets.allocate(rankTokens) &&
                   lossMask.allocate(rankTokens) && arena.allocate(model.arenaBytes);
  for (AlignedArray<float> &l : loads)
    allocated = allocated && l.allocate(uint64_t(model.numExperts));
  for (AlignedArray<float> &l : kept)
    allocated = allocated && l.allocate(uint64_t(model.numExperts));
  if (!allocated)
    return failJob("out of memory for the step buffers (arena of " + std::to_string(model.arenaBytes) +
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

  // 7. The loop.
  StopSignals stopSignals;
  Timer timer;
  std::string lastCheckpoint;
  float lastLoss = std::nanf("");
  for (uint64_t s = startStep + 1; s <= options.steps; ++s) {
    timer.lap(); // Starts this step's lap; saving the previous one is not step time.
    if (!loader->next(batch.data(), batchMask.data(), error))
      return stop(error);
    // Row b holds T + 1 tokens: inputs are [0, T), targets [1, T + 1). This
    // rank trains rows [firstRow, firstRow + B) of the global batch.
    for (uint64_t b = 0; b < B; ++b)
      for (uint64_t t = 0; t < T; ++t) {
        const uint64_t in = (firstRow + b) * (T + 1) + t, out = b * T + t;
        tokens.data()[out] = int32_t(batch[in]);
        targets.data()[out] = int32_t(batch[in + 1]);
        lossMask.data()[out] = model.sft ? float(batchMask[in + 1]) : 1.0f;
      }

    const int64_t stepNumber = int64_t(s);
    float loss = std::nanf(""), mainLoss = std::nanf(""), gradNorm = std::nanf(""),
          lr = std::nanf("");
    StepBuffers buffers{};
    buffers.params = paramPtrs.data();
    buffers.expAvg = expAvgPtrs.data();
    buffers.expAvgSq = expAvgSqPtrs.data();
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
    buffers.profile = options.profile ? &profile : nullptr;
    buffers.arena = arena.data();
    buffers.gradSink = wantGrads ? captureGrads : nullptr;
    buffers.gradSinkContext = wantGrads ? &capture : nullptr;
    buffers.comm = ranks.stepComm.get();
    ranks.world->setStep(stepNumber);
    if (ranks.stepComm)
      ranks.stepComm->resetStats();
    std::string stepError;
    if (!step(buffers, stepError))
      return stop("step " + std::to_string(s) + ": " + stepError);
    const double stepSec = timer.lap();
    profiledSeconds += stepSec;

    if (wantGrads) {
      if (!writeGrads(options.saveGradsPath, s, capture, error))
        return stop(error);
      wantGrads = false;
    }
    if (!std::isfinite(loss))
      return stop(
          "step " + std::to_string(s) + ": the loss is " + std::to_string(loss) +
          "; stopping without a checkpoint for this step" +
          (lastCheckpoint.empty() ? std::string() : " (the last one is " + lastCheckpoint + ")") +
          "; try a lower learning rate");
    lastLoss = loss;

    StepMetrics metrics;
    metrics.step = s;
    metrics.loss = loss;
    metrics.mainLoss = mainLoss;
    metrics.lr = lr;
    metrics.gradNorm = gradNorm;
    metrics.tokensPerSec = stepSec > 0 ? double(tokensPerStep) / stepSec : 0;
    metrics.elapsedSec = timer.seconds();
    metrics.multiRank = ranks.size > 1;
    metrics.commSec = ranks.stepComm ? ranks.stepComm->commSeconds() : 0.0;
    metrics.commBytes = ranks.stepComm ? ranks.stepComm->commBytes() : 0;
    if (model.allToAllBytesPerStep > 0 && ranks.stepComm) {
      // The prediction is for all ranks together: sum what each passed.
      int64_t bytes = int64_t(ranks.stepComm->allToAllBytes);
      if (!ranks.world->allReduce(&bytes, 1, comm::DType::I64, comm::ReduceOp::Sum))
        return stop(ranks.world->error());
      metrics.allToAllBytes = uint64_t(bytes);
      metrics.allToAllBytesPredicted = model.allToAllBytesPerStep;
    }
    metrics.gradBytesSent = model.gradBytesSent;
    metrics.gradBytesUncompressed = model.gradBytesUncompressed;
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
                      estimateEta(s - startStep, options.steps - startStep, metrics.elapsedSec)};
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
      if (!saveCheckpointOfRanks(ranks, ckptDir, model, placement, layouts, state, s, seed,
                                 loader->position(), error))
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

  // 8. Summary.
  const double seconds = timer.seconds();
  const uint64_t stepsRun = options.steps - startStep;
  std::string summary = "trained steps " + std::to_string(startStep + 1) + "-" +
                        std::to_string(options.steps) + " (" + std::to_string(stepsRun) +
                        ") | final loss ";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.4f | %.2f s | ", double(lastLoss), seconds);
  summary += buffer;
  summary += formatRate(seconds > 0 ? double(stepsRun * tokensPerStep) / seconds : 0) + " tok/s";
  if (model.numExpertKept > 0) {
    std::snprintf(buffer, sizeof(buffer), " | dropped %.3g%% of routed rows",
                  routedTotal ? 100.0 * double(droppedTotal) / double(routedTotal) : 0.0);
    summary += buffer;
  }
  if (!lastCheckpoint.empty())
    summary += " | checkpoint " + lastCheckpoint;
  if (ranks.lead())
    std::fprintf(stderr, "%s\n", summary.c_str());
  if (options.profile && ranks.lead())
    std::fprintf(stderr, "%s", profile.format(stepsRun, profiledSeconds).c_str());
  return 0;
}

} // namespace

int trainMain(int argc, char **argv, const ModelDesc &model, TrainStepFn step) {
  // runtime/ reports failures through return values; this is the one net
  // for what slips through (std::bad_alloc from a std::string or vector).
  try {
    return run(argc, argv, model, step);
  } catch (const std::exception &e) {
    return fail(std::string("unexpected failure: ") + e.what());
  } catch (...) {
    return fail("unexpected failure");
  }
}

} // namespace kiln::driver
