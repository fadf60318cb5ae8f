//===- ScoreProgram.h - The contract between a generated score program and the driver -*- C++ -*-===//
//
// For GRPO (train.stage "grpo") kilnc emits, next to the step, the step's
// own forward with its loss replaced by the log-probability of each target
// token (tools/kilnc/Pipeline.h buildScoreKernels): the old policy's and
// the reference model's log-probs of sampled completions come from the same
// kernels the step's forward runs, so at the first update the ratio is
// exactly 1 (TRL's and verl's sampler/trainer mismatch cannot happen).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_SCOREPROGRAM_H
#define KILN_RUNTIME_DRIVER_SCOREPROGRAM_H

#include <cstdint>
#include <string>

namespace kiln::driver {

class KernelProfile;

struct ScoreBuffers {
  const float *const *params; ///< indexed like ScoreDesc::paramNames; read only
  const int32_t *tokens;      ///< [rows, seqLen]
  const int32_t *targets;     ///< [rows, seqLen]
  float *logprobs;            ///< out: [rows, seqLen], log softmax(logits / T)[target]
  unsigned char *arena;       ///< arenaBytes, 64-byte aligned
  KernelProfile *profile = nullptr;
};

using ScoreFn = bool (*)(const ScoreBuffers &buffers, std::string &error);

struct ScoreDesc {
  /// Hugging Face names of the parameters read, each one of the training
  /// ModelDesc's.
  const char *const *paramNames;
  int64_t numParams;
  int64_t rows, seqLen;
  uint64_t arenaBytes;
  ScoreFn score;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_SCOREPROGRAM_H
