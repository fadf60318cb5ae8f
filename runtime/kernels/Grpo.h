//===- Grpo.h - host kernels of token_logprobs and the GRPO loss ----------===//
//
// Launchers of kiln.token_logprobs (KilnLossOps.td), kiln.grpo_loss and
// kiln.grpo_loss_grad (KilnGradOps.td). logits [rows, seq, vocab] f32,
// targets [rows, seq] int32, mask / old_logprobs / ref_logprobs [rows, seq]
// f32, advantages [rows] f32. The per-token math is GrpoMath.h's; the
// log-softmax of a row is cross_entropy's (DenseMath.h).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_GRPO_H
#define KILN_RUNTIME_GRPO_H

#include "runtime/kernels/GrpoMath.h"

#include <cstdint>

namespace kiln::kernels {

/// kiln.token_logprobs: out[i] = log softmax(logits[i] / temperature)
/// [targets[i]] for each of `positions` rows of `vocab` logits; every
/// target must lie in [0, vocab).
void tokenLogprobs(float *out, const float *logits, const int32_t *targets, int64_t positions,
                   int64_t vocab, float temperature);

/// kiln.grpo_loss: the masked GRPO loss reduced by `aggregation`. A
/// position with mask 0 is never read beyond its target id. With `count`
/// (data parallelism: the global batch's token or row count), *count
/// replaces the outer denominator.
float grpoLossForward(const float *logits, const int32_t *targets, const float *mask,
                      const float *advantages, const float *oldLogprobs,
                      const float *refLogprobs, int64_t rows, int64_t seq, int64_t vocab,
                      float temperature, float clipLow, float clipHigh, float beta,
                      GrpoAggregation aggregation, int64_t maxTokens,
                      const float *count = nullptr);

/// kiln.grpo_loss_grad: dlogits[i] = dloss w[i] dl/dlp[i] (onehot - softmax
/// (logits[i] / T)) / T; zero rows where the weight w[i] is 0.
void grpoLossBackward(float *dlogits, const float *logits, const int32_t *targets,
                      const float *mask, const float *advantages, const float *oldLogprobs,
                      const float *refLogprobs, float dloss, int64_t rows, int64_t seq,
                      int64_t vocab, float temperature, float clipLow, float clipHigh,
                      float beta, GrpoAggregation aggregation, int64_t maxTokens,
                      const float *count = nullptr);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_GRPO_H
