//===- MoEMath.h - per-token math of routing, balancing and the optimizer -===//
//
// The per-token and per-element math of the MoE kernels (router scores,
// grouped top-k selection, router and balance-loss gradients) and of the
// training-step kernels (AdamW, learning-rate schedule, clipping, bias
// update), marked KILN_HD so that the host loops in MoE.cpp / Optimizer.cpp
// and future CUDA kernels run the same code. Functions take caller-provided
// scratch instead of allocating, so they run inside a CUDA thread too. The
// f64 ground truth is dialects/kiln/reference/{MoE,Grad,Train}Rules.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_MOEMATH_H
#define KILN_RUNTIME_MOEMATH_H

#include "runtime/kernels/KernelMath.h"

namespace kiln::kernels {

/// scores[0..experts) = sigmoid(logits) or softmax(logits) (kiln.router step 1).
KILN_HD void routerScoresRow(const float *logits, int64_t experts, bool softmax,
                             float *scores) {
  if (!softmax) {
    for (int64_t e = 0; e < experts; ++e)
      scores[e] = sigmoidf(logits[e]);
    return;
  }
  float m = logits[0];
  for (int64_t e = 1; e < experts; ++e)
    m = logits[e] > m ? logits[e] : m;
  float sum = 0.0f;
  for (int64_t e = 0; e < experts; ++e)
    sum += (scores[e] = expFaithful(logits[e] - m));
  for (int64_t e = 0; e < experts; ++e)
    scores[e] /= sum;
}

/// dlogits from the score gradient ds: sigmoid ds*s*(1-s); softmax
/// s*(ds - sum_f ds[f] s[f]).
KILN_HD void routerScoresBackwardRow(const float *s, const float *ds, int64_t experts,
                                     bool softmax, float *dlogits) {
  float dot = 0.0f;
  if (softmax)
    for (int64_t e = 0; e < experts; ++e)
      dot += ds[e] * s[e];
  for (int64_t e = 0; e < experts; ++e)
    dlogits[e] = softmax ? s[e] * (ds[e] - dot) : ds[e] * s[e] * (1.0f - s[e]);
}

/// Index of the largest values[i] over i in [0, n) not yet in taken[0..ntaken);
/// ties go to the lower index (kiln.router's tie rule). -1 if none is left.
KILN_HD int64_t argmaxExcluding(const float *values, int64_t n, const int32_t *taken,
                                int64_t ntaken) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i) {
    bool used = false;
    for (int64_t j = 0; j < ntaken; ++j)
      used = used || taken[j] == i;
    if (!used && (best < 0 || values[i] > values[best]))
      best = i;
  }
  return best;
}

/// Routing of one token (kiln.router steps 1-5). Scratch: scores and choice
/// [experts], groupScore [nGroup], keptGroups [topkGroup].
KILN_HD void routeToken(const float *logits, const float *bias, int64_t experts,
                        bool softmax, bool top2Sum, int64_t nGroup, int64_t topkGroup,
                        int64_t topK, bool norm, float scaling, float *scores,
                        float *choice, float *groupScore, int32_t *keptGroups,
                        int32_t *indices, float *weights) {
  routerScoresRow(logits, experts, softmax, scores);
  for (int64_t e = 0; e < experts; ++e)
    choice[e] = scores[e] + bias[e];
  if (nGroup > 1) {
    int64_t perGroup = experts / nGroup;
    for (int64_t g = 0; g < nGroup; ++g) {
      const float *members = choice + g * perGroup;
      int32_t best[2];
      int64_t count = top2Sum && perGroup > 1 ? 2 : 1;
      float sum = 0.0f;
      for (int64_t i = 0; i < count; ++i) {
        best[i] = int32_t(argmaxExcluding(members, perGroup, best, i));
        sum += members[best[i]];
      }
      groupScore[g] = sum;
    }
    for (int64_t i = 0; i < topkGroup; ++i)
      keptGroups[i] = int32_t(argmaxExcluding(groupScore, nGroup, keptGroups, i));
    for (int64_t e = 0; e < experts; ++e) {
      bool kept = false;
      for (int64_t i = 0; i < topkGroup; ++i)
        kept = kept || keptGroups[i] == e / perGroup;
      if (!kept)
        choice[e] = -INFINITY;
    }
  }
  for (int64_t j = 0; j < topK; ++j)
    indices[j] = int32_t(argmaxExcluding(choice, experts, indices, j));
  float sum = 0.0f;
  for (int64_t j = 0; j < topK; ++j)
    sum += scores[indices[j]];
  for (int64_t j = 0; j < topK; ++j) {
    float w = scores[indices[j]];
    if (norm)
      w /= sum + 1e-20f;
    weights[j] = w * scaling;
  }
}

/// kiln.router_grad for one token. Scratch: s and ds [experts].
KILN_HD void routerGradToken(const float *logits, const int32_t *indices,
                             const float *dweights, int64_t experts, int64_t topK,
                             bool softmax, bool norm, float scaling, float *s, float *ds,
                             float *dlogits) {
  routerScoresRow(logits, experts, softmax, s);
  float sum = 1e-20f, dot = 0.0f;
  for (int64_t j = 0; j < topK; ++j) {
    sum += s[indices[j]];
    dot += dweights[j] * s[indices[j]];
  }
  for (int64_t e = 0; e < experts; ++e)
    ds[e] = 0.0f;
  for (int64_t l = 0; l < topK; ++l)
    ds[indices[l]] += norm ? scaling * (dweights[l] / sum - dot / (sum * sum))
                           : scaling * dweights[l];
  routerScoresBackwardRow(s, ds, experts, softmax, dlogits);
}

/// sum_i f[i] s'[i] of one token, s' = s / sum(s) (kiln.balance_loss's
/// per-token term times T). Scratch: s [experts].
KILN_HD float balanceTokenTerm(const float *logits, const float *f, int64_t experts,
                               bool softmax, float *s) {
  routerScoresRow(logits, experts, softmax, s);
  float z = 0.0f;
  for (int64_t e = 0; e < experts; ++e)
    z += s[e];
  float term = 0.0f;
  for (int64_t e = 0; e < experts; ++e)
    term += f[e] * (s[e] / z);
  return term;
}

/// kiln.balance_loss_grad for one token, q = dloss / (sequences * T).
/// Scratch: s and ds [experts].
KILN_HD void balanceGradToken(const float *logits, const float *f, int64_t experts,
                              bool softmax, float q, float *s, float *ds, float *dlogits) {
  routerScoresRow(logits, experts, softmax, s);
  float z = 0.0f, fs = 0.0f;
  for (int64_t e = 0; e < experts; ++e) {
    z += s[e];
    fs += f[e] * s[e];
  }
  for (int64_t e = 0; e < experts; ++e)
    ds[e] = q * (f[e] - fs / z) / z;
  routerScoresBackwardRow(s, ds, experts, softmax, dlogits);
}

/// One AdamW element update in place; correction1/2 = 1 - beta^t.
KILN_HD void adamwElement(float &p, float &m, float &v, float grad, float gradScale,
                          float lr, float beta1, float beta2, float eps, float decay,
                          float correction1, float correction2) {
  float g = grad * gradScale;
  m = beta1 * m + (1.0f - beta1) * g;
  v = beta2 * v + (1.0f - beta2) * g * g;
  p = p * decay - lr * (m / correction1) / (sqrtf(v / correction2) + eps);
}

/// kiln.lr_schedule at 1-based step t: linear warmup, cosine decay to minLr.
KILN_HD float lrAtStep(int64_t t, float lr, float minLr, int64_t warmup, int64_t total) {
  if (t <= warmup)
    return lr * float(t) / float(warmup);
  float span = float(total - warmup) > 1.0f ? float(total - warmup) : 1.0f;
  float progress = float(t - warmup) / span;
  progress = progress < 0.0f ? 0.0f : (progress > 1.0f ? 1.0f : progress);
  return minLr + (lr - minLr) / 2.0f * (1.0f + cosf(3.14159265358979323846f * progress));
}

/// kiln.global_norm's sum of squares of x[begin, end) (one chunk), in f64,
/// in a fixed order: eight running sums over the elements j = begin + 8q + l
/// (l = 0..7; the tail adds to sum 0), added as a fixed tree. Eight
/// independent sums let the host vectorize a reduction that a single f64
/// chain would bind to the add latency; the order never depends on threads.
KILN_HD double sumOfSquaresChunk(const float *x, int64_t begin, int64_t end) {
  double lane[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  int64_t j = begin;
  for (; j + 8 <= end; j += 8)
    for (int l = 0; l < 8; ++l)
      lane[l] += double(x[j + l]) * double(x[j + l]);
  for (; j < end; ++j)
    lane[0] += double(x[j]) * double(x[j]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/// kiln.clip_scale: min(1, maxNorm / (norm + 1e-6)); maxNorm = 0 disables.
KILN_HD float clipScaleOf(float norm, float maxNorm) {
  if (maxNorm == 0.0f)
    return 1.0f;
  float s = maxNorm / (norm + 1e-6f);
  return s < 1.0f ? s : 1.0f;
}

/// kiln.bias_update for one expert: bias + speed * sign(mean - load).
KILN_HD float biasStep(float bias, float load, float meanLoad, float speed) {
  float d = meanLoad - load;
  return bias + speed * float((d > 0.0f) - (d < 0.0f));
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_MOEMATH_H
