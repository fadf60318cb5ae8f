//===- TrainState.h - the state a rank trains: layout, buffers, checkpoints -*- C++ -*-===//
//
// What the training loop (TrainMain.cpp) holds between steps and how it
// reaches the disk: the stored layout of each parameter (experts, ZeRO-1
// shards), the zero-filled aligned buffers, the seeded initial state, and
// the rank's part of a sharded checkpoint, written in two phases and
// resumed on any layout.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_TRAINSTATE_H
#define KILN_RUNTIME_DRIVER_TRAINSTATE_H

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/driver/Ranks.h"
#include "runtime/driver/TrainStep.h"
#include "runtime/kernels/PrecisionMath.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace kiln::driver::detail {

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

/// Which part of the model a rank holds (TrainStep.h: ModelDesc::ep,
/// shardedState, pp and stage); the default is the whole model, unsharded.
/// `rank` and `ranks` are the rank's coordinate and count on the data-
/// parallel axis (the world rank and size without pipeline stages).
struct Placement {
  int rank = 0, ranks = 1;
  int64_t ep = 1;
  bool shardedState = false;
  bool wholeModel = true;
  /// Pipeline parallelism: the rank's stage of `stages`, and every stage's
  /// layouts (null for one stage), from which each rank derives the same
  /// checkpoint weight map. A tensor several stages hold is written by the
  /// lowest of them.
  int stage = 0, stages = 1;
  const std::vector<std::vector<ParamLayout>> *stageLayouts = nullptr;
  int worldRank() const { return stage * ranks + rank; }
  int worldSize() const { return stages * ranks; }
};



/// Checks what the generated file describes (a kilnc bug otherwise, but a
/// clear message beats a crash) and derives the stored layout.
bool describeParams(const ModelDesc &model, const Placement &placement,
                    std::vector<ParamLayout> &out, std::string &error);

/// The parameter layouts of a pipeline's stages (`count` programs, stage s
/// at index s) under `placement`, and the whole model: every stage's
/// parameters, each name once (a name two stages hold must have one shape).
/// The stages must agree on what they were built from (spec, batch, ranks).
/// One program (pp 1) is the plain case: its layouts and its whole model.
bool describeStages(const StageProgram *stages, int64_t count, const Placement &placement,
                    std::vector<std::vector<ParamLayout>> &stageLayouts,
                    std::vector<ParamLayout> &wholeModel, std::string &error);

/// The index in `layouts` of each of `names` (a decode or score program's
/// parameters, ParamDesc names), into `indices`. Fails, with the first name
/// `layouts` lacks in `missing`, if any.
bool layoutIndicesByName(const char *const *names, int64_t count,
                         const std::vector<ParamLayout> &layouts, std::vector<size_t> &indices,
                         std::string &missing);

/// Checkpoint names of the 2:4 sparsity masks (optimizer state).
inline const std::string kSparsityMaskPrefix = "optimizer.sparsity_mask.";

/// Checkpoint names of the error-feedback residuals (rank state).
inline const std::string kResidualPrefix = "rank_state.grad_residual.";

/// Parameters and AdamW moments; moments[k] belong to the k-th trainable
/// parameter (trainable[k] is its index in ModelDesc::params). With
/// bf16Moments the step's moments are expAvgBf16 / expAvgSqBf16, and expAvg
/// / expAvgSq hold f32 copies only while a checkpoint is written or read.
struct TrainState {
  std::vector<AlignedArray<float>> params, expAvg, expAvgSq;
  bool bf16Moments = false;
  std::vector<AlignedArray<kernels::Bf16>> expAvgBf16, expAvgSqBf16;
  /// Gradient compression's error-feedback residuals (this rank's own),
  /// like the moments indexed by trainable parameter; empty without it.
  std::vector<AlignedArray<float>> gradResidual;
  /// 2:4 sparsity masks, indexed like the moments; empty arrays for the
  /// parameters that are not ParamDesc::sparse.
  std::vector<AlignedArray<float>> sparsityMask;
  std::vector<size_t> trainable;
  /// Dynamic loss scaling (ModelDesc::initialLossScale > 0): the step's
  /// StepBuffers::lossScale, growthTracker and optimizerUpdates.
  float lossScale = 0;
  int64_t growthTracker = 0, optimizerUpdates = 0;
  /// More of this rank's own state to checkpoint (whole tensors, named
  /// "rank_state.*"), owned elsewhere: GRPO's reference model
  /// (GrpoRollout.h).
  struct ExtraTensor {
    std::string name;
    std::vector<int64_t> shape;
    const float *values;
  };
  std::vector<ExtraTensor> extraRankState;
};

/// Allocates the state (zeros) and, when `seeded`, initialises the
/// parameters exactly as the reference evaluator does
/// (dialects/kiln/reference/Parameters.cpp, initParameter): per HF tensor,
/// SeededRng(seed, name).normal() * std rounded to f32, in row-major order.
/// A state a checkpoint will overwrite is not seeded.
bool initState(const std::vector<ParamLayout> &layouts, uint64_t seed, bool seeded,
               TrainState &state, std::string &error);

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
                                            const TrainState &state);

//===----------------------------------------------------------------------===//
// Checkpoint directory, resume, save
//===----------------------------------------------------------------------===//

/// Creates `dir` (and missing parents) and proves it writable by creating
/// and removing a probe file, so a bad --checkpoint-dir fails before any
/// training rather than after hours of it.
bool prepareCheckpointDir(const std::string &dir, std::string &error);

/// Loads `<dir>/latest` into `state`; the layout check (names, shapes,
/// fingerprint) is checkpoint::loadLatest's, and `state` is only written
/// once everything has been read.
bool resumeState(const std::string &dir, const ModelDesc &model,
                 const std::vector<ParamLayout> &layouts, TrainState &state, int rank,
                 checkpoint::Checkpoint &ckpt, std::string &error);

/// Rank `rank`'s part of the checkpoint of `state`. Parameters every rank
/// holds are spread over the model files (checkpoint::assignModelFiles;
/// with pipeline stages, stage s's own tensors over files s * ranks + f of
/// its ranks, and a tensor and its moments that a lower stage also holds
/// are that stage's to write); an
/// expert-parallel rank's experts go to the file of the first rank holding
/// them (edp coordinate 0, i.e. rank = its ep coordinate). Of every AdamW
/// moment the rank writes its ZeRO-1 range (chunk `momentShard` of
/// `momentShards`, or the same chunking of the whole moment it holds
/// without ZeRO), cut where it spans several HF tensors and named by the
/// experts' global indices, so the files do not depend on ZeRO. `manifest`
/// gets the weight map every rank computes alike.
checkpoint::RankShard rankShard(const std::vector<ParamLayout> &layouts, const TrainState &state,
                                const Placement &placement, checkpoint::Manifest &manifest);

/// The checkpoint of step `step`, a collective: every rank writes its files
/// in parallel (phase one), the ranks exchange their files' sizes (or a
/// failure), and only then rank 0 commits (phase two), so a rank killed
/// mid-write leaves `latest` at the previous checkpoint.
/// bf16 moments are widened into f32 copies for the write (checkpoints hold
/// f32, so a program with f32 moments resumes them too), freed after it.
bool saveCheckpointOfRanks(Ranks &ranks, const std::string &dir, const ModelDesc &model,
                           const Placement &placement, const std::vector<ParamLayout> &layouts,
                           TrainState &state, uint64_t step, uint64_t seed,
                           uint64_t dataPosition, std::string &error);

} // namespace kiln::driver::detail

#endif // KILN_RUNTIME_DRIVER_TRAINSTATE_H
