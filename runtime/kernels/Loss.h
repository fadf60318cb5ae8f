//===- Loss.h - host kernels of kiln.cross_entropy and its gradient -------===//
//
// logits [positions, vocab] f32, targets [positions] int32, mask
// [positions] f32 (0 = ignored; a masked position's target is never read).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LOSS_H
#define KILN_RUNTIME_LOSS_H

#include <cstdint>

namespace kiln::kernels {

/// kiln.cross_entropy: sum_i mask[i] ce[i] / sum_i mask[i] (0 when the mask
/// sums to 0), ce[i] = (1 - eps) -log p[target] + eps mean_c(-log p[c]).
/// With `count` (data parallelism: the global batch's unmasked tokens), the
/// sum is divided by *count instead of sum(mask).
float crossEntropyForward(const float *logits, const int32_t *targets, const float *mask,
                          int64_t positions, int64_t vocab, float labelSmoothing,
                          const float *count = nullptr);

/// kiln.cross_entropy_grad: dlogits[i] = dloss mask[i] / sum(mask) (softmax
/// - (1 - eps) onehot - eps / vocab); zero rows where mask is 0 (all zero
/// when the mask sums to 0).
void crossEntropyBackward(float *dlogits, const float *logits, const int32_t *targets,
                          const float *mask, int64_t positions, int64_t vocab,
                          float labelSmoothing, float dloss, const float *count = nullptr);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_LOSS_H
