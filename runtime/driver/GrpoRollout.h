//===- GrpoRollout.h - One GRPO step's rollouts, rewards and batch -*- C++ -*-===//
//
// What a GRPO step trains on (DeepSeekMath's GRPO as R1 runs it): P
// problems of the arithmetic corpus for the step (GrpoRewards.h,
// reproducible from (seed, step)), G completions of each sampled from the
// current policy with the decode program (Generate.h; seeded per step,
// prompt and sample), rule-based rewards (accuracy and R1's format),
// group-relative advantages (GrpoAdvantages.h), and the log-probs of every
// completion token under the sampling policy and the reference model from
// the score program (ScoreProgram.h: the step's own forward, so the ratio
// at the first update is exactly 1).
//
// Row p * G + g of the step's batch holds prompt p's completion g: tokens
// are prompt + completion (right-padded with 0), targets the next tokens,
// and the loss mask 1 where the target is a completion token (the stop
// token included). A completion cut by the token budget rather than ended
// by its stop token gets no loss when train.grpo.mask_truncated (DAPO's
// overlong filtering). The budget is min(max_new_tokens, seq_len + 1 -
// the step's longest prompt), so that every rollout fits a row.
//
// The reference model starts as the policy this runner was created with
// and becomes the current policy every ref_update_every steps.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_GRPOROLLOUT_H
#define KILN_RUNTIME_DRIVER_GRPOROLLOUT_H

#include "runtime/comm/Communicator.h"
#include "runtime/driver/DecodeProgram.h"
#include "runtime/driver/GrpoProgram.h"
#include "runtime/driver/Metrics.h"
#include "runtime/driver/TrainState.h"

#include <optional>
#include <string>
#include <vector>

namespace kiln::driver {

/// The step's GRPO inputs, [rows, seqLen] but advantages [rows]; owned by
/// the caller.
struct GrpoBatch {
  int32_t *tokens, *targets;
  float *lossMask, *advantages, *oldLogprobs, *refLogprobs;
};

/// Reads fixed rollouts into `batch` (`train --rollouts FILE.json`, to
/// check a GRPO step against a reference): one JSON object with "tokens",
/// "targets", "loss_mask", "old_logprobs", "ref_logprobs" ([rows][seqLen])
/// and "advantages" ([rows]) of the global batch (model.batch x model.dp
/// rows), of which data-parallel rank `dpRank` keeps its own; ids in
/// [0, vocab), mask values 0 or 1, every number finite. Errors name the
/// file and field.
bool readRollouts(const std::string &path, const ModelDesc &model, int dpRank,
                  const GrpoBatch &batch, std::string &error);

class GrpoRollout {
public:
  /// Binds the decode and score programs' parameters by name to the
  /// training parameters (`layouts[i]` is `params[i]`, the whole model) and
  /// copies them as the reference model. With `dp` (data parallelism, the
  /// ranks of model.dp), rank r samples prompts [r P / dp, (r + 1) P / dp)
  /// of each step, whole groups, into its rows of the global batch, with
  /// the streams one rank sampling every prompt would use, and the metrics
  /// are the global batch's. Fails if a name is missing or the programs
  /// disagree with the step's batch (rows, seqLen, vocab, prompts per rank).
  static std::optional<GrpoRollout> create(const ModelDesc &model, const DecodeDesc &decode,
                                           const GrpoDesc &grpo,
                                           const std::vector<detail::ParamLayout> &layouts,
                                           float *const *params, comm::Communicator *dp,
                                           std::string &error);

  /// Samples step `step`'s rollouts from the current parameters and fills
  /// `batch`, and the GRPO fields of `metrics`.
  bool prepare(uint64_t seed, uint64_t step, const GrpoBatch &batch, StepMetrics &metrics,
               std::string &error);

  /// Before update u >= 2 of the same rollouts: scores them under the
  /// updated policy and counts the completion tokens the clip bounds cut;
  /// `metrics.clipFraction` becomes their fraction over the updates so far.
  bool measureClipping(const GrpoBatch &batch, StepMetrics &metrics, std::string &error);

  /// After step `step`: the reference becomes the policy every
  /// ref_update_every steps.
  void finishStep(uint64_t step);

  /// The reference model as checkpoint rank state ("rank_state.grpo_
  /// reference.<name>", flat), which `state` then writes with every
  /// checkpoint; and back from a checkpoint's rank state when resuming
  /// (an error if it lacks any of it: not a GRPO checkpoint).
  void exposeReference(detail::TrainState &state) const;
  bool restoreReference(const std::vector<checkpoint::Tensor> &rankState, std::string &error);

private:
  GrpoRollout(const ModelDesc &model, const DecodeDesc &decode, const GrpoDesc &grpo,
              comm::Communicator *dp)
      : model(&model), decode(&decode), grpo(&grpo), dp(dp) {}
  /// Sums `values` over the data-parallel ranks (nothing on one rank).
  bool sumOverRanks(double *values, size_t count, comm::ReduceOp op, std::string &error);
  bool score(const std::vector<const float *> &params, const GrpoBatch &batch, float *out,
             std::string &error);

  const ModelDesc *model;
  const DecodeDesc *decode;
  const GrpoDesc *grpo;
  comm::Communicator *dp;
  std::vector<const float *> decodeParams, scoreParams, scoreRefParams;
  std::vector<detail::AlignedArray<float>> reference; ///< like grpo->score->paramNames
  detail::AlignedArray<unsigned char> scoreArena;
  uint64_t clippedTokens = 0, clipCountedTokens = 0;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_GRPOROLLOUT_H
