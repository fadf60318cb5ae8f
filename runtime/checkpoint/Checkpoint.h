//===- Checkpoint.h - training checkpoints: sharded, atomic, strict -------===//
//
// A checkpoint of step N is a directory `<dir>/step-NNNNNNNN/` holding a
// Hugging Face sharded checkpoint plus the optimizer state:
//
//   model-0000k-of-0000n.safetensors     parameters, whole tensors, HF names
//   model.safetensors.index.json         HF's index: "weight_map" name -> file,
//                                        "metadata.total_size"; plus a "kiln"
//                                        object (step, spec fingerprint,
//                                        optimizer files)
//   optimizer-0000r-of-0000R.safetensors rank r's slices of the AdamW moments
//                                        ("optimizer.exp_avg.<HF name>", ...),
//                                        with the step, RNG state, spec
//                                        fingerprint and rank r's data
//                                        position in the metadata; and
//                                        rank r's own state, which belongs
//                                        to no whole tensor (gradient
//                                        compression's error-feedback
//                                        residuals: "rank_state.<what>.<HF
//                                        name>", listed in "rank_state")
//
// Slices are contiguous ranges of a tensor's row-major elements; the loader
// reassembles whole tensors by name, so a checkpoint written by any layout
// (dp, ZeRO, microbatches) resumes in any other.
//
// Ranks write their files in parallel (each file atomically: temp file,
// fsync, rename). Then, and only after every rank reported its files
// complete, one rank commits: it checks every file is there with the size its
// writer reported, writes the index, and replaces `<dir>/latest` with the
// step's name. A crash of any rank at any point (SIGKILL included) leaves
// `latest` naming a complete checkpoint. Single-file checkpoints of older
// Kiln versions (`latest` naming `step-NNNNNNNN.safetensors`) still load.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CHECKPOINT_H
#define KILN_RUNTIME_CHECKPOINT_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::checkpoint {

/// Elements of a tensor of `shape` (1 for a scalar).
inline uint64_t elementCount(const std::vector<int64_t> &shape) {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= uint64_t(d);
  return n;
}

/// A whole tensor (loaded, or for the single-process save()).
struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

/// Elements [offset, offset + count) of the row-major flattening of tensor
/// `name` (whole shape `shape`), read from `values` when written. A whole
/// tensor is the slice at offset 0 with every element.
struct SliceRef {
  std::string name;
  const std::vector<int64_t> *shape;
  uint64_t offset;
  uint64_t count;
  const float *values;
};

/// Dynamic loss scaling's state (fp16 programs), the same on every rank;
/// in each optimizer file's metadata as loss_scale (the f32's shortest
/// round-trip decimal), growth_tracker and optimizer_updates.
struct LossScalerState {
  bool present = false;
  float scale = 0;
  uint64_t growthTracker = 0;
  /// AdamW updates applied (steps minus the skipped ones).
  uint64_t optimizerUpdates = 0;
};

/// Run state written with every checkpoint.
struct StepInfo {
  uint64_t step = 0;
  uint64_t rngState = 0;
  uint64_t dataPosition = 0;
  std::string specFingerprint;
  LossScalerState scaler;
};

struct Checkpoint {
  uint64_t step = 0;
  uint64_t rngState = 0;
  /// The data position all ranks agree on (the loader refuses a checkpoint
  /// whose ranks disagree).
  uint64_t dataPosition = 0;
  std::string specFingerprint;
  std::vector<Tensor> tensors;
  /// The rank state of the rank loadLatest was asked for, when the
  /// checkpoint was written by `rankStateRanks` ranks (the same layout is
  /// the caller's to check: rank state does not carry over to another).
  std::vector<Tensor> rankState;
  int rankStateRanks = 0;
  /// The loss scaler's state, when the writing program had one (every rank
  /// agreed on it).
  LossScalerState scaler;
};

/// `step-NNNNNNNN`, the directory of a step's checkpoint.
std::string stepDirName(uint64_t step);
/// `model-0000k-of-0000n.safetensors` for the 0-based file `index` of `files`.
std::string modelFileName(int index, int files);
/// `optimizer-0000r-of-0000R.safetensors` for the 0-based rank `rank` of `ranks`.
std::string optimizerFileName(int rank, int ranks);

/// The model file (0-based) each tensor of `bytes` goes to when `ranks` ranks
/// write them: contiguous runs in order, balanced by bytes, one file per rank
/// up to the number of tensors. Every rank computes the same assignment.
std::vector<int> assignModelFiles(const std::vector<uint64_t> &bytes, int ranks);

/// What one rank writes of a step's checkpoint.
struct RankShard {
  int rank = 0, ranks = 1;
  /// The number of model files (see assignModelFiles); rank r < modelFiles
  /// writes model file r with the whole tensors in `model`.
  int modelFiles = 1;
  std::vector<SliceRef> model;
  /// This rank's slices of the optimizer state.
  std::vector<SliceRef> optimizer;
  /// This rank's own state, whole tensors named "rank_state.*".
  std::vector<SliceRef> rankState;
};

/// Bytes of the files one rank wrote (0 for a model file it does not write).
struct ShardBytes {
  uint64_t model = 0, optimizer = 0;
};

/// Phase one: writes `shard`'s files under `<dir>/step-NNNNNNNN/` (creating
/// both directories if needed). `latest` is not touched.
bool writeShard(const std::string &dir, const StepInfo &info, const RankShard &shard,
                ShardBytes &written, std::string &error);

/// The commit record of a step: which file holds each model tensor, and the
/// size each writer reported for its files.
struct Manifest {
  int ranks = 1, modelFiles = 1;
  /// A model tensor: its HF name, its model file and its data bytes (the
  /// index's total_size is their sum).
  struct Entry {
    std::string name;
    int file;
    uint64_t bytes;
  };
  /// Every model tensor, in file order.
  std::vector<Entry> weightMap;
  /// Per rank, what writeShard reported.
  std::vector<ShardBytes> written;
};

/// Phase two, on one rank after every rank's writeShard succeeded: checks
/// each file exists with its reported size, writes the index, then points
/// `<dir>/latest` at the step. On failure `latest` is unchanged.
bool commit(const std::string &dir, const StepInfo &info, const Manifest &manifest,
            std::string &error);

/// Both phases in one process (one rank): `ckpt`'s tensors named
/// "optimizer.*" go to the optimizer file, the rest to the model file.
bool save(const std::string &dir, const Checkpoint &ckpt, std::string &error);

/// Reads the checkpoint `<dir>/latest` names. `layout` gives the expected
/// tensors (names and shapes; values ignored) and `specFingerprint` the run's
/// spec: a missing, extra or differently shaped tensor, optimizer slices that
/// leave a gap or overlap, ranks that disagree, or another spec's
/// fingerprint is an error naming the file and tensor. With `rankStateOf` >=
/// 0, the rank state in that rank's optimizer file goes to ckpt.rankState.
bool loadLatest(const std::string &dir, const std::vector<Tensor> &layout,
                const std::string &specFingerprint, Checkpoint &ckpt, std::string &error,
                int rankStateOf = -1);

/// Every model tensor (parameters under their Hugging Face names, no
/// optimizer state) of the checkpoint `<dir>/latest` names, whatever spec
/// wrote it: what a warm start (`train --init-from`) copies by name. The
/// whole model is read into memory.
bool loadLatestModelTensors(const std::string &dir, std::vector<Tensor> &out,
                            std::string &error);

/// True when `<dir>/latest` exists (a run can resume from it).
bool hasLatest(const std::string &dir);

} // namespace kiln::checkpoint

#endif // KILN_RUNTIME_CHECKPOINT_H
