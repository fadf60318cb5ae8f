//===- Checkpoint.h - training checkpoints: atomic, strict, resumable -----===//
//
// A checkpoint is one safetensors file holding everything a resumed run needs
// to continue bit-exactly: parameters under their Hugging Face names, AdamW
// state under "optimizer.exp_avg.<name>" / "optimizer.exp_avg_sq.<name>",
// and in the metadata the step, the RNG state, the data position and a
// fingerprint of the spec that produced it.
//
// Files are `<dir>/step-<8 digits>.safetensors`, each written atomically
// (temp file, fsync, rename), and `<dir>/latest` names the newest one; it is
// replaced atomically only after that file is complete. A crash at any point
// (SIGKILL included) leaves `latest` pointing at a complete checkpoint.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CHECKPOINT_H
#define KILN_RUNTIME_CHECKPOINT_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::checkpoint {

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

struct Checkpoint {
  uint64_t step = 0;
  uint64_t rngState = 0;
  uint64_t dataPosition = 0;
  std::string specFingerprint;
  std::vector<Tensor> tensors;
};

/// Writes `ckpt` as `<dir>/step-NNNNNNNN.safetensors` and then points
/// `<dir>/latest` at it. Creates `dir` if needed. On failure nothing that
/// was there before is changed.
bool save(const std::string &dir, const Checkpoint &ckpt, std::string &error);

/// Reads the checkpoint `<dir>/latest` names. `layout` gives the expected
/// tensors (names and shapes; values ignored) and `specFingerprint` the run's
/// spec: a missing, extra or differently shaped tensor, or another spec's
/// fingerprint, is an error naming it.
bool loadLatest(const std::string &dir, const std::vector<Tensor> &layout,
                const std::string &specFingerprint, Checkpoint &ckpt, std::string &error);

/// True when `<dir>/latest` exists (a run can resume from it).
bool hasLatest(const std::string &dir);

} // namespace kiln::checkpoint

#endif // KILN_RUNTIME_CHECKPOINT_H
