//===- Batch.h - token batches for evaluating a language model ------------===//
//
// A batch is `rows` token rows of `seqLen` ids each, from a JSON file or
// drawn from a seeded generator. The file is an array of rows of ids, or
// {"tokens": [rows], "loss_mask": [rows of 0/1]} where loss_mask[b][j] = 1
// marks token j as one to learn (SFT: the completion, not the prompt).
// Next-token training reads it as tokens[b, i], targets[b, i] =
// tokens[b, i + 1] and a loss mask over positions: position i counts when
// token i + 1 is to be learned; the last position (whose target is unknown,
// set to 0) never counts.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_BATCH_H
#define KILN_REFERENCE_BATCH_H

#include "dialects/kiln/reference/Parameters.h"

#include <string>
#include <vector>

namespace kiln::reference {

struct TokenBatch {
  int64_t rows = 0, seqLen = 0;
  std::vector<int64_t> ids;  ///< rows * seqLen, row-major
  std::vector<double> learn; ///< per token, 1 = learn it; empty = learn all
  /// GRPO's rollout data (train.stage "grpo"): an advantage per row, and
  /// per token the sampling policy's and the reference model's log-probs
  /// of the target. Empty for other stages.
  std::vector<double> advantages, oldLogprobs, refLogprobs;
};

/// Uniform ids in [0, vocab) from the seeded stream "batch"; GRPO rollout
/// data from the stream "grpo": advantages uniform in [-1.5, 1.5] and
/// log-probs in [-6, -0.5], spread enough that ratios fall on both sides of
/// the clip bounds.
TokenBatch seededBatch(int64_t rows, int64_t seqLen, int64_t vocab, uint64_t seed);

/// The shape of the token rows in a batch file readBatchJson reads: the
/// number of rows and the length of the first. False, with `error`, when
/// the file is not such a batch (readBatchJson then checks every row).
bool readBatchShape(const std::string &path, int64_t &rows, int64_t &seqLen,
                    std::string &error);

/// Reads `rows` rows of `seqLen` ids in [0, vocab), with an optional
/// loss_mask; `requireMask` (SFT) makes a missing mask an error.
bool readBatchJson(const std::string &path, int64_t rows, int64_t seqLen,
                   int64_t vocab, TokenBatch &batch, std::string &error,
                   bool requireMask = false);

/// Fills the "tokens", "targets" and "loss_mask" inputs of `sig` in `args`,
/// and GRPO's "advantages", "old_logprobs" and "ref_logprobs" from the
/// batch's rollout data (an error if it has none).
bool bindNextTokenInputs(const TokenBatch &batch, const Signature &sig,
                         llvm::MutableArrayRef<RefTensor> args, std::string &error);

} // namespace kiln::reference

#endif // KILN_REFERENCE_BATCH_H
