//===- Optimizer.cpp - host kernels of the training step's optimizer ops --===//
//
// lr_schedule, global_norm, clip_scale, adamw and bias_update in f32, with
// the per-element math in MoEMath.h. AdamW's bias corrections 1 - beta^t are
// computed once per call in f64 (as torch does in Python floats).
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Optimizer.h"
#include "runtime/kernels/MoEMath.h"
#include "runtime/kernels/PrecisionMath.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln::kernels {

static bool fail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

// ---------------------------------------------------------------------------
// kernel launchers

bool lrSchedule(int64_t step, float lr, float minLr, int64_t warmupSteps,
                int64_t totalSteps, float *result, std::string *error) {
  if (step < 1)
    return fail(error, "lr_schedule: step " + std::to_string(step) +
                           " is not a 1-based step (expected >= 1)");
  if (warmupSteps < 0 || totalSteps < 0)
    return fail(error, "lr_schedule: warmup_steps and total_steps must be >= 0");
  *result = lrAtStep(step, lr, minLr, warmupSteps, totalSteps);
  return true;
}

bool globalNorm(const float *const *tensors, const int64_t *sizes, int64_t count,
                float *norm, std::string *error) {
  constexpr int64_t kChunk = 4096;
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    if (sizes[i] < 0 || (sizes[i] > 0 && !tensors[i]))
      return fail(error, "global_norm: tensor " + std::to_string(i) +
                             " has a negative size or no data");
    const float *x = tensors[i];
    int64_t chunks = (sizes[i] + kChunk - 1) / kChunk;
    std::vector<double> partial(chunks);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      partial[c] = sumOfSquaresChunk(x, c * kChunk, std::min(sizes[i], (c + 1) * kChunk));
    }
    for (double p : partial) // chunk order: independent of the thread count
      total += p;
  }
  *norm = float(std::sqrt(total));
  return true;
}

float clipScale(float norm, float maxNorm) { return clipScaleOf(norm, maxNorm); }

/// adamwOf's element loop, one instance with the 2:4 mask and one without:
/// a branch on the mask inside the loop (and sqrtf's errno call, see
/// CMakeLists.txt) kept it from vectorizing; r1-mini's AdamW went from 46 to
/// 15 ms per step. Without a mask the factor 1 is left out, which is the
/// same bits (x * 1 = x, signed zeros and NaNs included).
template <bool Masked, typename Moment>
static void adamwLoop(float *param, const float *grad, Moment *m, Moment *v, const float *mask,
                      int64_t size, float lr, float gradScale, float beta1, float beta2,
                      float eps, float decay, float correction1, float correction2) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < size; ++i) {
    float mi = widen(m[i]), vi = widen(v[i]), gi = grad[i];
    if constexpr (Masked) {
      const float keep = mask[i];
      mi *= keep;
      vi *= keep;
      gi *= keep;
      param[i] *= keep;
    }
    adamwElement(param[i], mi, vi, gi, gradScale, lr, beta1, beta2, eps, decay, correction1,
                 correction2);
    m[i] = narrowTo<Moment>(mi);
    v[i] = narrowTo<Moment>(vi);
  }
}

/// AdamW over moments stored as `Moment` (float, or Bf16: widened to f32
/// for the update, stored rounded to nearest even).
/// With a `mask` (maskedAdamw), param, grad and the moments are multiplied
/// by it first.
template <typename Moment>
static bool adamwOf(float *param, const float *grad, Moment *m, Moment *v, const float *mask,
                    int64_t size, float lr, int64_t step, float gradScale, float beta1,
                    float beta2, float eps, float weightDecay, std::string *error) {
  if (step < 1)
    return fail(error, "adamw: step " + std::to_string(step) +
                           " is not a 1-based step (expected >= 1)");
  if (size < 0)
    return fail(error, "adamw: negative size " + std::to_string(size));
  float correction1 = float(1.0 - std::pow(double(beta1), double(step)));
  float correction2 = float(1.0 - std::pow(double(beta2), double(step)));
  float decay = 1.0f - lr * weightDecay;
  if (mask)
    adamwLoop<true>(param, grad, m, v, mask, size, lr, gradScale, beta1, beta2, eps, decay,
                    correction1, correction2);
  else
    adamwLoop<false>(param, grad, m, v, nullptr, size, lr, gradScale, beta1, beta2, eps, decay,
                     correction1, correction2);
  return true;
}

bool adamw(float *param, const float *grad, float *m, float *v, int64_t size, float lr,
           int64_t step, float gradScale, float beta1, float beta2, float eps,
           float weightDecay, std::string *error) {
  return adamwOf(param, grad, m, v, nullptr, size, lr, step, gradScale, beta1, beta2, eps,
                 weightDecay, error);
}

bool adamw(float *param, const float *grad, Bf16 *m, Bf16 *v, int64_t size, float lr,
           int64_t step, float gradScale, float beta1, float beta2, float eps,
           float weightDecay, std::string *error) {
  return adamwOf(param, grad, m, v, nullptr, size, lr, step, gradScale, beta1, beta2, eps,
                 weightDecay, error);
}

bool maskedAdamw(float *param, const float *grad, float *m, float *v, const float *mask,
                 int64_t size, float lr, int64_t step, float gradScale, float beta1, float beta2,
                 float eps, float weightDecay, std::string *error) {
  return adamwOf(param, grad, m, v, mask, size, lr, step, gradScale, beta1, beta2, eps,
                 weightDecay, error);
}

bool maskedAdamw(float *param, const float *grad, Bf16 *m, Bf16 *v, const float *mask,
                 int64_t size, float lr, int64_t step, float gradScale, float beta1, float beta2,
                 float eps, float weightDecay, std::string *error) {
  return adamwOf(param, grad, m, v, mask, size, lr, step, gradScale, beta1, beta2, eps,
                 weightDecay, error);
}

bool gradScaler(float norm, float scale, int64_t tracker, int64_t updates, float growthFactor,
                float backoffFactor, int64_t growthInterval, bool *skip, float *invScale,
                float *newScale, int64_t *newTracker, int64_t *newUpdates, std::string *error) {
  if (!(scale > 0) || !std::isfinite(scale) || tracker < 0 || updates < 0 || growthInterval < 1)
    return fail(error, "grad_scaler: expected a finite scale > 0, tracker and updates >= 0 and "
                       "growth_interval >= 1, got scale " +
                           std::to_string(scale) + ", tracker " + std::to_string(tracker) +
                           ", updates " + std::to_string(updates) + ", interval " +
                           std::to_string(growthInterval));
  const bool overflow = !std::isfinite(norm);
  *skip = overflow;
  *invScale = float(1.0 / double(scale)); // GradScaler: scale.double().reciprocal().float()
  if (overflow) {
    *newScale = scale * backoffFactor;
    *newTracker = 0;
    *newUpdates = updates;
    return true;
  }
  *newUpdates = updates + 1;
  if (tracker + 1 == growthInterval) {
    *newScale = scale * growthFactor;
    *newTracker = 0;
  } else {
    *newScale = scale;
    *newTracker = tracker + 1;
  }
  return true;
}

bool biasUpdate(const float *bias, const float *load, int64_t experts, float speed,
                float *newBias, std::string *error) {
  if (experts < 1)
    return fail(error, "bias_update: experts must be >= 1, got " + std::to_string(experts));
  double sum = 0.0;
  for (int64_t e = 0; e < experts; ++e)
    sum += load[e];
  float mean = float(sum / double(experts));
  for (int64_t e = 0; e < experts; ++e)
    newBias[e] = biasStep(bias[e], load[e], mean, speed);
  return true;
}

} // namespace kiln::kernels
