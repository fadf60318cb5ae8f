//===- Optimizer.h - host kernels of the training step's optimizer ops ----===//
//
// f32 host launchers for kiln.lr_schedule, kiln.global_norm, kiln.clip_scale,
// kiln.grad_scaler, kiln.adamw (one parameter tensor, updated in place) and
// kiln.bias_update (KilnTrainOps.td). Bad arguments (a step below 1, mismatched sizes) return
// false with a message in `*error` (when non-null). global_norm sums squares
// in fixed 4096-element chunks combined in chunk order, so its result does
// not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_OPTIMIZER_H
#define KILN_RUNTIME_OPTIMIZER_H

#include <cstdint>
#include <string>

namespace kiln::kernels {

/// Learning rate at 1-based `step`.
bool lrSchedule(int64_t step, float lr, float minLr, int64_t warmupSteps,
                int64_t totalSteps, float *result, std::string *error = nullptr);

/// sqrt(sum of squares) over `count` tensors tensors[i] of sizes[i] elements.
bool globalNorm(const float *const *tensors, const int64_t *sizes, int64_t count,
                float *norm, std::string *error = nullptr);

/// min(1, maxNorm / (norm + 1e-6)), 1 when maxNorm is 0.
float clipScale(float norm, float maxNorm);

struct Bf16;

/// One AdamW step of param/m/v [size] in place, gradient grad * gradScale.
bool adamw(float *param, const float *grad, float *m, float *v, int64_t size, float lr,
           int64_t step, float gradScale, float beta1, float beta2, float eps,
           float weightDecay, std::string *error = nullptr);
/// The same with the moments stored in bf16 (train.optimizer.state_dtype):
/// each update computes in f32 and stores the new moments rounded.
bool adamw(float *param, const float *grad, Bf16 *m, Bf16 *v, int64_t size, float lr,
           int64_t step, float gradScale, float beta1, float beta2, float eps,
           float weightDecay, std::string *error = nullptr);

/// adamw with kiln.adamw's `mask` (kiln-sparsity-2-4): the update starts
/// from param, grad and the moments multiplied by mask [size] (0 or 1).
bool maskedAdamw(float *param, const float *grad, float *m, float *v, const float *mask,
                 int64_t size, float lr, int64_t step, float gradScale, float beta1, float beta2,
                 float eps, float weightDecay, std::string *error = nullptr);
bool maskedAdamw(float *param, const float *grad, Bf16 *m, Bf16 *v, const float *mask,
                 int64_t size, float lr, int64_t step, float gradScale, float beta1, float beta2,
                 float eps, float weightDecay, std::string *error = nullptr);

/// Dynamic loss scaling (kiln.grad_scaler, torch GradScaler.update): from
/// the scaled gradients' `norm` and the state (scale, growth tracker, AdamW
/// updates applied), whether to skip the step (norm inf or NaN), 1 / scale,
/// and the next state. The state outputs may alias the inputs.
bool gradScaler(float norm, float scale, int64_t tracker, int64_t updates, float growthFactor,
                float backoffFactor, int64_t growthInterval, bool *skip, float *invScale,
                float *newScale, int64_t *newTracker, int64_t *newUpdates,
                std::string *error = nullptr);

/// newBias[e] = bias[e] + speed * sign(mean(load) - load[e]) over `experts`.
bool biasUpdate(const float *bias, const float *load, int64_t experts, float speed,
                float *newBias, std::string *error = nullptr);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_OPTIMIZER_H
