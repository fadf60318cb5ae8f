//===- TrainState.cpp - the state a rank trains: layout, buffers, checkpoints ===//

#include "runtime/driver/TrainState.h"

#include "runtime/init/HfNames.h"
#include "runtime/init/SeededRng.h"

#include <algorithm>
#include <map>
#include <set>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::driver::detail {

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

bool layoutIndicesByName(const char *const *names, int64_t count,
                         const std::vector<ParamLayout> &layouts, std::vector<size_t> &indices,
                         std::string &missing) {
  std::map<std::string, size_t> byName;
  for (size_t i = 0; i < layouts.size(); ++i)
    byName[layouts[i].desc->name] = i;
  indices.clear();
  for (int64_t i = 0; i < count; ++i) {
    auto it = byName.find(names[i]);
    if (it == byName.end()) {
      missing = names[i];
      return false;
    }
    indices.push_back(it->second);
  }
  return true;
}

bool describeStages(const StageProgram *stages, int64_t count, const Placement &placement,
                    std::vector<std::vector<ParamLayout>> &stageLayouts,
                    std::vector<ParamLayout> &wholeModel, std::string &error) {
  if (!stages || count < 1 || !stages[0].model || count != stages[0].model->pp) {
    error = "model description: " + std::to_string(count) + " stage programs for pp " +
            (stages && count > 0 && stages[0].model ? std::to_string(stages[0].model->pp)
                                                    : std::string("?")) +
            "; regenerate with kilnc";
    return false;
  }
  const ModelDesc &first = *stages[0].model;
  std::map<std::string, size_t> seen; // name -> index in wholeModel
  for (int64_t s = 0; s < count; ++s) {
    const ModelDesc *m = stages[s].model;
    const std::string where = "model description: stage " + std::to_string(s);
    if (!m || !stages[s].step || !m->specName || !m->specFingerprint) {
      error = where + ": missing step function, spec name or fingerprint; regenerate with kilnc";
      return false;
    }
    if (m->stage != s || m->pp != first.pp || m->dp != first.dp || m->batch != first.batch ||
        m->seqLen != first.seqLen || m->vocabSize != first.vocabSize || m->sft != first.sft ||
        std::strcmp(m->specFingerprint, first.specFingerprint) != 0 ||
        m->defaultSteps != first.defaultSteps || m->defaultSeed != first.defaultSeed) {
      error = where + " (of pp " + std::to_string(m->pp) + ", numbered " +
              std::to_string(m->stage) +
              ") was not built with stage 0 from one spec (spec, batch, ranks or defaults "
              "differ); regenerate with kilnc";
      return false;
    }
    std::vector<ParamLayout> layouts, whole;
    if (!describeParams(*m, placement, layouts, error) ||
        !describeParams(*m, Placement{}, whole, error))
      return false;
    stageLayouts.push_back(std::move(layouts));
    for (ParamLayout &l : whole) {
      auto [it, fresh] = seen.emplace(l.desc->name, wholeModel.size());
      if (fresh) {
        wholeModel.push_back(std::move(l));
        continue;
      }
      const ParamLayout &held = wholeModel[it->second];
      if (held.numElements != l.numElements || held.hfShape != l.hfShape) {
        error = where + ": parameter '" + std::string(l.desc->name) +
                "' has another shape than on an earlier stage; regenerate with kilnc";
        return false;
      }
    }
  }
  return true;
}

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
    const uint64_t momentElements = shardElements(l.numElements, l.momentShards);
    bool allocated;
    if (state.bf16Moments) {
      AlignedArray<kernels::Bf16> m, v; // zero bits: +0
      allocated = m.allocate(momentElements) && v.allocate(momentElements);
      state.expAvgBf16.push_back(std::move(m));
      state.expAvgSqBf16.push_back(std::move(v));
    } else {
      AlignedArray<float> m, v;
      allocated = m.allocate(momentElements) && v.allocate(momentElements);
      state.expAvg.push_back(std::move(m));
      state.expAvgSq.push_back(std::move(v));
    }
    AlignedArray<float> mask; // ones: dense until train.sparsity's start_step
    if (l.desc->sparse) {
      allocated = allocated && mask.allocate(l.numElements);
      if (allocated)
        std::fill(mask.data(), mask.data() + l.numElements, 1.0f);
    }
    state.sparsityMask.push_back(std::move(mask));
    if (!allocated) {
      error = "out of memory for the AdamW state of '" + std::string(l.desc->name) + "'";
      return false;
    }
  }
  return true;
}

/// Every tensor of a checkpoint, in file order: the parameters, then
/// exp_avg and exp_avg_sq of the trainable ones, then the 2:4 masks.
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
  for (size_t k = 0; k < state.sparsityMask.size(); ++k)
    if (state.sparsityMask[k].data())
      add(kSparsityMaskPrefix, layouts[state.trainable[k]], state.sparsityMask[k].data());
  return out;
}

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
  shard.rank = placement.worldRank();
  shard.ranks = placement.worldSize();
  manifest.ranks = shard.ranks;
  // The tensors of stage s (pp 1: the one stage, `layouts`) that no lower
  // stage holds; `written` collects the names as the stages are walked.
  std::set<std::string> written;
  std::vector<bool> owned(layouts.size(), true); // this stage writes layouts[i]
  bool anySplit = false;
  int files = 0;
  for (int s = 0; s < placement.stages; ++s) {
    const bool mine = s == placement.stage;
    const std::vector<ParamLayout> &stage =
        placement.stages == 1 ? layouts : (*placement.stageLayouts)[size_t(s)];
    struct Replicated {
      std::string name;
      const std::vector<int64_t> *shape;
      const float *values;
      uint64_t count;
    };
    std::vector<Replicated> replicated;
    std::vector<uint64_t> bytes;
    for (size_t i = 0; i < stage.size(); ++i) {
      const ParamLayout &l = stage[i];
      const bool fresh = written.insert(l.desc->name).second;
      if (mine)
        owned[i] = fresh;
      if (l.expertSplit()) {
        anySplit = true;
        continue;
      }
      for (size_t e = 0; fresh && e < l.hfNames.size(); ++e) {
        replicated.push_back({l.hfNames[e], &l.hfShape,
                              mine ? state.params[i].data() + e * l.perStored : nullptr,
                              l.perStored});
        bytes.push_back(l.perStored * sizeof(float));
      }
    }
    const std::vector<int> file = checkpoint::assignModelFiles(bytes, ranks);
    for (size_t i = 0; i < replicated.size(); ++i) {
      manifest.weightMap.push_back({replicated[i].name, s * ranks + file[i], bytes[i]});
      if (mine && file[i] == rank)
        shard.model.push_back({replicated[i].name, replicated[i].shape, 0, replicated[i].count,
                               replicated[i].values});
    }
    files = placement.stages > 1 || anySplit ? shard.ranks : file.empty() ? 1 : file.back() + 1;
  }
  shard.modelFiles = files;
  manifest.modelFiles = shard.modelFiles;
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
  // `heldWhole`: the rank holds the whole tensor even under ZeRO-1 (a 2:4
  // mask); it still writes only its chunk.
  auto addMoment = [&](const std::string &prefix, const ParamLayout &l, const float *held,
                       bool heldWhole = false) {
    const bool split = l.expertSplit();
    const int chunks = l.momentShards > 1 ? l.momentShards : split ? ranks / int(ep) : ranks;
    const int chunkIndex = l.momentShards > 1 ? l.momentShard : split ? rank / int(ep) : rank;
    const uint64_t chunk = shardElements(l.numElements, chunks);
    const uint64_t begin = std::min(l.numElements, uint64_t(chunkIndex) * chunk),
                   end = std::min(l.numElements, begin + chunk);
    const float *range = l.momentShards > 1 && !heldWhole ? held : held + begin;
    for (size_t e = 0; e < l.hfNames.size(); ++e) {
      const uint64_t pieceBegin = e * l.perStored, pieceEnd = pieceBegin + l.perStored;
      const uint64_t lo = std::max(begin, pieceBegin), hi = std::min(end, pieceEnd);
      if (lo < hi)
        shard.optimizer.push_back(
            {prefix + l.hfNames[e], &l.hfShape, lo - pieceBegin, hi - lo, range + (lo - begin)});
    }
  };
  for (size_t k = 0; k < state.trainable.size(); ++k)
    if (owned[state.trainable[k]])
      addMoment("optimizer.exp_avg.", layouts[state.trainable[k]], state.expAvg[k].data());
  for (size_t k = 0; k < state.trainable.size(); ++k)
    if (owned[state.trainable[k]])
      addMoment("optimizer.exp_avg_sq.", layouts[state.trainable[k]], state.expAvgSq[k].data());
  for (size_t k = 0; k < state.sparsityMask.size(); ++k)
    if (state.sparsityMask[k].data() && owned[state.trainable[k]])
      addMoment(kSparsityMaskPrefix, layouts[state.trainable[k]], state.sparsityMask[k].data(),
                /*heldWhole=*/true);
  // Gradient compression's residuals are this rank's alone.
  for (size_t k = 0; k < state.gradResidual.size(); ++k) {
    const ParamLayout &l = layouts[state.trainable[k]];
    for (size_t e = 0; e < l.hfNames.size(); ++e)
      shard.rankState.push_back({kResidualPrefix + l.hfNames[e], &l.hfShape, 0, l.perStored,
                                 state.gradResidual[k].data() + e * l.perStored});
  }
  for (const TrainState::ExtraTensor &t : state.extraRankState) {
    uint64_t count = 1;
    for (int64_t d : t.shape)
      count *= uint64_t(d);
    shard.rankState.push_back({t.name, &t.shape, 0, count, t.values});
  }
  return shard;
}

/// f32 copies of bf16 moments, widened exactly, in state.expAvg / expAvgSq.
static bool widenMoments(TrainState &state, std::string &error) {
  for (auto [from, to] : {std::pair{&state.expAvgBf16, &state.expAvg},
                          std::pair{&state.expAvgSqBf16, &state.expAvgSq}}) {
    to->clear();
    for (const AlignedArray<kernels::Bf16> &moment : *from) {
      AlignedArray<float> wide;
      if (!wide.allocate(moment.size())) {
        error = "out of memory for the f32 copy of the bf16 AdamW moments a checkpoint writes";
        return false;
      }
      for (uint64_t i = 0; i < moment.size(); ++i)
        wide.data()[i] = kernels::widen(moment.data()[i]);
      to->push_back(std::move(wide));
    }
  }
  return true;
}

/// The checkpoint of step `step`, a collective: every rank writes its files
/// in parallel (phase one), the ranks exchange their files' sizes (or a
/// failure), and only then rank 0 commits (phase two), so a rank killed
/// mid-write leaves `latest` at the previous checkpoint.
bool saveCheckpointOfRanks(Ranks &ranks, const std::string &dir, const ModelDesc &model,
                           const Placement &placement, const std::vector<ParamLayout> &layouts,
                           TrainState &state, uint64_t step, uint64_t seed,
                           uint64_t dataPosition, std::string &error) {
  // bf16 moments: f32 copies for the write, freed after it. A rank that
  // cannot make them reports a failed write in the exchange below.
  struct FreeCopies {
    TrainState &state;
    ~FreeCopies() {
      if (state.bf16Moments) {
        state.expAvg.clear();
        state.expAvgSq.clear();
      }
    }
  } freeCopies{state};
  const bool widened = !state.bf16Moments || widenMoments(state, error);
  checkpoint::LossScalerState scaler;
  if (model.initialLossScale > 0)
    scaler = {true, state.lossScale, uint64_t(state.growthTracker),
              uint64_t(state.optimizerUpdates)};
  const checkpoint::StepInfo info{step, seed, dataPosition, model.specFingerprint, scaler};
  checkpoint::Manifest manifest;
  checkpoint::ShardBytes mine;
  const bool wrote =
      widened && checkpoint::writeShard(dir, info, rankShard(layouts, state, placement, manifest),
                                        mine, error);
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

} // namespace kiln::driver::detail
