//===- GrpoProgram.h - What a GRPO executable's driver is told -*- C++ -*-===//
//
// A spec with train.stage "grpo" compiles to a step whose loss is
// kiln.grpo_loss over rollout inputs (advantages, old and reference
// log-probs), a decode program that samples the rollouts
// (DecodeProgram.h), and a score program that computes the log-probs
// (ScoreProgram.h). GrpoDesc carries train.grpo's options (frontend/Spec.h
// GrpoConfig, where each is documented) and the score program to the
// driver's GRPO loop.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_GRPOPROGRAM_H
#define KILN_RUNTIME_DRIVER_GRPOPROGRAM_H

#include "runtime/driver/ScoreProgram.h"

#include <cstdint>

namespace kiln::driver {

struct GrpoDesc {
  int64_t promptsPerStep;
  int64_t samplesPerPrompt;
  int64_t maxNewTokens;
  double temperature, topP;
  int64_t topK;
  double clipLow, clipHigh;
  double beta;
  int64_t refUpdateEvery;
  bool normalizeAdvantages; ///< "group-norm" (true) or "group-mean"
  double advantageEps;
  int64_t updatesPerBatch;
  double accuracyReward, formatReward;
  bool maskTruncated;
  const ScoreDesc *score;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_GRPOPROGRAM_H
