//===- Loss.cpp - host kernels of kiln.cross_entropy and its gradient -----===//
//
// One task per position (row); the per-row losses are then summed serially
// in position order (in f64), so the result does not depend on the thread
// count.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Loss.h"
#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/KernelCheck.h"

#include <algorithm>
#include <vector>

namespace kiln::kernels {

static void checkTargets(const int32_t *targets, const float *mask, int64_t positions,
                         int64_t vocab, float labelSmoothing) {
  KILN_KERNEL_CHECK(positions >= 0 && vocab > 0,
                    "expects positions >= 0 and vocab > 0, got %lld, %lld",
                    (long long)positions, (long long)vocab);
  KILN_KERNEL_CHECK(labelSmoothing >= 0 && labelSmoothing <= 1,
                    "expects label_smoothing in [0, 1], got %g", labelSmoothing);
  for (int64_t i = 0; i < positions; ++i)
    KILN_KERNEL_CHECK(mask[i] == 0 || (targets[i] >= 0 && targets[i] < vocab),
                      "target %d at position %lld is outside [0, %lld)", targets[i],
                      (long long)i, (long long)vocab);
}

//===----------------------------------------------------------------------===//
// kernel launchers
//===----------------------------------------------------------------------===//

float crossEntropyForward(const float *logits, const int32_t *targets, const float *mask,
                          int64_t positions, int64_t vocab, float labelSmoothing,
                          const float *count) {
  checkTargets(targets, mask, positions, vocab, labelSmoothing);
  std::vector<float> ce(positions, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < positions; ++i)
    if (mask[i] != 0)
      ce[i] = crossEntropyRow(logits + i * vocab, vocab, targets[i], labelSmoothing);
  return maskedMeanLoss(ce.data(), mask, count, positions);
}

void crossEntropyBackward(float *dlogits, const float *logits, const int32_t *targets,
                          const float *mask, int64_t positions, int64_t vocab,
                          float labelSmoothing, float dloss, const float *count) {
  checkTargets(targets, mask, positions, vocab, labelSmoothing);
  double weight = 0;
  for (int64_t i = 0; i < positions; ++i)
    weight += mask[i];
  if (count)
    weight = *count;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < positions; ++i) {
    float *d = dlogits + i * vocab;
    if (weight == 0 || mask[i] == 0) {
      std::fill_n(d, vocab, 0.0f);
      continue;
    }
    float factor = float(double(dloss) * mask[i] / weight);
    crossEntropyGradRow(logits + i * vocab, vocab, targets[i], labelSmoothing, factor, d);
  }
}

} // namespace kiln::kernels
