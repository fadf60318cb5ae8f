//===- Optimizer.cuh - CUDA kernels of the training step's optimizer ops --===//
//
// The CUDA twins of runtime/kernels/Optimizer.h: lr_schedule, global_norm,
// clip_scale, adamw (f32 or bf16 moments, with or without the 2:4 mask),
// grad_scaler and bias_update, with MoEMath.h's per-element math.
//
// The step's scalars live in device memory. The host program reads a
// scalar buffer with `*p` (the step, the learning rate, the clip scale, the
// loss-scale state); on the GPU that would be a sync per read, so where the
// host kernel takes such a scalar by value the launcher takes the device
// pointer (`const int64_t *step`, `const float *lr`, ...), and where the
// host returns one (clipScale) the launcher writes it through a device
// pointer, its first parameter. Everything else is the host's parameters
// after the stream. adamw, maskedAdamw and biasUpdate take one optional
// parameter more, last: `skip`, kiln.grad_scaler's device flag, which the
// host program tests with `if (!*skip)` around the call; here the kernels
// read it and leave the state untouched when it is set. The bool results
// and the error strings stay: argument checks the host can make (sizes,
// attributes) fail the launcher as on the host; checks of device data (a
// step below 1, a bad loss-scale state) are KILN_DEVICE_ERROR records
// (codes below), and those kernels then write nothing, as the host writes
// nothing when it returns false.
//
// Exactness:
//   - lr_schedule, clip_scale, grad_scaler, bias_update (one thread each, or
//     a thread per expert that sums the loads in the host's order) and the
//     AdamW elements: the host's float operations, so the CPU shim gives
//     the host's bits. On the GPU, nvcc's -fmad contractions (adamwElement's
//     beta * m + (1 - beta) * g) and its expf / cosf / pow put them within
//     an ulp or so (bit for bit with -fmad=false, except those functions).
//     The bias corrections 1 - beta^t are the host's f64 expression, once
//     per thread.
//   - global_norm: the reference kernel is one thread summing the squares in
//     the host's order (sumOfSquaresChunk per 4096-element chunk, chunks
//     added in order).
//     On the GPU a deterministic two-pass reduction: a fixed grid of
//     kNormBlocks blocks, each thread summing a fixed strided set of
//     elements in f64, a fixed shuffle tree per block into one partial per
//     block, then one block adding the partials in a fixed tree. The result
//     does not depend on timing or on the device; it differs from the host
//     only by f64 rounding before the one rounding to f32 (so almost always
//     not at all). The tensor pointers (a host array in the host program)
//     travel by value in the kernel parameters, kNormBatch at a time, and a
//     running f64 total in stream-ordered scratch joins the batches in order.
//
// No float atomics anywhere: every result is the same run to run.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_OPTIMIZER_CUH
#define KILN_RUNTIME_KERNELS_CUDA_OPTIMIZER_CUH

#include "runtime/kernels/MoEMath.h"
#include "runtime/kernels/PrecisionMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cmath>
#include <string>

namespace kiln::cuda {

/// A step below 1 (lr_schedule, adamw); the index is the step.
constexpr int32_t kBadOptimizerStep = 400 + 1;
/// A loss-scale state grad_scaler rejects; the index is the in: 1 the
/// scale (not finite and > 0), 2 the growth tracker, 3 the updates (< 0).
constexpr int32_t kBadScalerState = 400 + 2;

/// global_norm's tensors per launch (their pointers and sizes are kernel
/// parameters: 32 x 16 bytes), and the fixed grid of its GPU pass.
constexpr int kNormBatch = 32;
constexpr int kNormBlocks = 1024;
constexpr int kNormThreads = 256;
/// The host's chunk of the f64 sum of squares.
constexpr int64_t kNormChunk = 4096;

struct NormBatch {
  const float *tensors[kNormBatch];
  int64_t sizes[kNormBatch];
  int count;
};

/// AdamW's bias correction 1 - beta^step, in f64 as Optimizer.cpp computes
/// it (torch does it in Python floats).
__host__ __device__ inline float adamwCorrection(float beta, int64_t step) {
  return float(1.0 - std::pow(double(beta), double(step)));
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

__global__ void lrScheduleKernel(const int64_t *step, float lr, float minLr, int64_t warmupSteps,
                                 int64_t totalSteps, float *result) {
  const int64_t t = *step;
  if (t < 1) {
    KILN_DEVICE_ERROR(kBadOptimizerStep, t);
    return;
  }
  *result = kernels::lrAtStep(t, lr, minLr, warmupSteps, totalSteps);
}

__global__ void clipScaleKernel(float *scale, const float *norm, float maxNorm) {
  *scale = kernels::clipScaleOf(*norm, maxNorm);
}

/// Reference order: one thread adds the batch's chunks to *total as the
/// host does (f64 chunk sums, chunks in order), from 0 when `first`.
__global__ void globalNormSerialKernel(NormBatch batch, double *total, bool first) {
  double sum = first ? 0.0 : *total;
  for (int i = 0; i < batch.count; ++i) {
    const float *x = batch.tensors[i];
    for (int64_t c0 = 0; c0 < batch.sizes[i]; c0 += kNormChunk) {
      const int64_t end = c0 + kNormChunk < batch.sizes[i] ? c0 + kNormChunk : batch.sizes[i];
      sum += kernels::sumOfSquaresChunk(x, c0, end);
    }
  }
  *total = sum;
}

/// *norm = sqrt(*total) rounded to f32 (0 for no tensors: *total unset).
__global__ void globalNormFinishKernel(float *norm, const double *total, bool empty) {
  *norm = empty ? 0.0f : float(std::sqrt(*total));
}

/// One AdamW step over `size` elements (Optimizer.cpp's adamwOf): moments
/// widened to f32, updated, stored rounded; with a mask, param, grad and
/// the moments multiplied by it first. Nothing when *skip is set or the
/// step is bad.
template <typename Moment>
__global__ void adamwKernel(float *param, const float *grad, Moment *m, Moment *v,
                            const float *mask, int64_t size, const float *lrPtr,
                            const int64_t *stepPtr, const float *gradScalePtr, float beta1,
                            float beta2, float eps, float weightDecay, const bool *skip) {
  if (skip && *skip)
    return;
  const int64_t step = *stepPtr;
  if (step < 1) {
    if (globalThread() == 0)
      KILN_DEVICE_ERROR(kBadOptimizerStep, step);
    return;
  }
  const float lr = *lrPtr, gradScale = *gradScalePtr;
  const float correction1 = adamwCorrection(beta1, step);
  const float correction2 = adamwCorrection(beta2, step);
  const float decay = 1.0f - lr * weightDecay;
  for (int64_t i = globalThread(); i < size; i += gridThreads()) {
    const float keep = mask ? mask[i] : 1.0f;
    float mi = kernels::widen(m[i]) * keep, vi = kernels::widen(v[i]) * keep;
    float p = param[i] * keep;
    kernels::adamwElement(p, mi, vi, grad[i] * keep, gradScale, lr, beta1, beta2, eps, decay,
                          correction1, correction2);
    param[i] = p;
    m[i] = kernels::narrowTo<Moment>(mi);
    v[i] = kernels::narrowTo<Moment>(vi);
  }
}

/// The loss-scale update of kiln.grad_scaler (one thread); reads every
/// input before writing, since the state outputs may alias them.
__global__ void gradScalerKernel(const float *normPtr, const float *scalePtr,
                                 const int64_t *trackerPtr, const int64_t *updatesPtr,
                                 float growthFactor, float backoffFactor, int64_t growthInterval,
                                 bool *skip, float *invScale, float *newScale, int64_t *newTracker,
                                 int64_t *newUpdates) {
  const float norm = *normPtr, scale = *scalePtr;
  const int64_t tracker = *trackerPtr, updates = *updatesPtr;
  const bool badScale = !(scale > 0) || !std::isfinite(scale);
  if (badScale || tracker < 0 || updates < 0) {
    KILN_DEVICE_ERROR(kBadScalerState, badScale ? 1 : tracker < 0 ? 2 : 3);
    return;
  }
  const bool overflow = !std::isfinite(norm);
  *skip = overflow;
  *invScale = float(1.0 / double(scale)); // GradScaler: scale.double().reciprocal().float()
  if (overflow) {
    *newScale = scale * backoffFactor;
    *newTracker = 0;
    *newUpdates = updates;
    return;
  }
  *newUpdates = updates + 1;
  if (tracker + 1 == growthInterval) {
    *newScale = scale * growthFactor;
    *newTracker = 0;
  } else {
    *newScale = scale;
    *newTracker = tracker + 1;
  }
}

/// Thread e: newBias[e]; each thread sums the loads in the host's order
/// (experts are few: 256 at DeepSeek-V3's size), so no reduction is shared.
__global__ void biasUpdateKernel(const float *bias, const float *load, int64_t experts, float speed,
                                 float *newBias, const bool *skip) {
  if (skip && *skip)
    return;
  for (int64_t e = globalThread(); e < experts; e += gridThreads()) {
    double sum = 0.0;
    for (int64_t f = 0; f < experts; ++f)
      sum += load[f];
    const float mean = float(sum / double(experts));
    newBias[e] = kernels::biasStep(bias[e], load[e], mean, speed);
  }
}

#if KILN_CUDA_DEVICE
/// Pass 1 on the GPU: block b's f64 sum of squares over its fixed share of
/// the batch (thread t of the kNormBlocks x kNormThreads grid takes
/// elements t, t + grid, ..., four loads in flight) into partials[b].
__global__ void __launch_bounds__(kNormThreads)
    globalNormPartialKernel(NormBatch batch, double *partials) {
  __shared__ double shared[32];
  const int64_t stride = gridThreads();
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  for (int i = 0; i < batch.count; ++i) {
    const float *x = batch.tensors[i];
    const int64_t n = batch.sizes[i];
    int64_t j = globalThread();
    for (; j + 3 * stride < n; j += 4 * stride) {
      const float a = x[j], b = x[j + stride], c = x[j + 2 * stride], d = x[j + 3 * stride];
      acc[0] += double(a) * double(a);
      acc[1] += double(b) * double(b);
      acc[2] += double(c) * double(c);
      acc[3] += double(d) * double(d);
    }
    for (; j < n; j += stride)
      acc[0] += double(x[j]) * double(x[j]);
  }
  const double sum = blockSum((acc[0] + acc[1]) + (acc[2] + acc[3]), shared);
  if (threadIdx.x == 0)
    partials[blockIdx.x] = sum;
}

/// Pass 2: one block of kNormBlocks threads adds the partials in a fixed
/// tree to *total (from 0 when `first`).
__global__ void __launch_bounds__(kNormBlocks)
    globalNormCombineKernel(const double *partials, double *total, bool first) {
  __shared__ double shared[32];
  const double sum = blockSum(partials[threadIdx.x], shared);
  if (threadIdx.x == 0)
    *total = first ? sum : *total + sum;
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

namespace detail {
inline bool optimizerFail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

template <typename Moment>
bool launchAdamw(cudaStream_t stream, float *param, const float *grad, Moment *m, Moment *v,
                 const float *mask, int64_t size, const float *lr, const int64_t *step,
                 const float *gradScale, float beta1, float beta2, float eps, float weightDecay,
                 std::string *error, const bool *skip) {
  if (size < 0)
    return optimizerFail(error, "adamw: negative size " + std::to_string(size));
  // Even for size 0 the step is checked (the host's first check).
  KILN_LAUNCH(adamwKernel<Moment>, blocksFor(size), kBlock, 0, stream, param, grad, m, v, mask,
              size, lr, step, gradScale, beta1, beta2, eps, weightDecay, skip);
  return true;
}
} // namespace detail

/// The step is a device scalar (the host takes its value); a step below 1
/// is a kBadOptimizerStep record, and *result is then left as it was.
inline bool lrSchedule(cudaStream_t stream, const int64_t *step, float lr, float minLr,
                       int64_t warmupSteps, int64_t totalSteps, float *result,
                       std::string *error = nullptr) {
  if (warmupSteps < 0 || totalSteps < 0)
    return detail::optimizerFail(error, "lr_schedule: warmup_steps and total_steps must be >= 0");
  KILN_LAUNCH(lrScheduleKernel, 1, 1, 0, stream, step, lr, minLr, warmupSteps, totalSteps, result);
  return true;
}

/// `tensors` and `sizes` are host arrays (the host program's ptrs[] and
/// sizes[]) of device tensors; *norm is a device scalar.
inline bool globalNorm(cudaStream_t stream, const float *const *tensors, const int64_t *sizes,
                       int64_t count, float *norm, std::string *error = nullptr) {
  for (int64_t i = 0; i < count; ++i)
    if (sizes[i] < 0 || (sizes[i] > 0 && !tensors[i]))
      return detail::optimizerFail(error, "global_norm: tensor " + std::to_string(i) +
                                              " has a negative size or no data");
#if KILN_CUDA_DEVICE
  StreamScratch scratch(stream, sizeof(double) * (1 + kNormBlocks));
  double *total = scratch.at<double>(), *partials = total + 1;
#else
  StreamScratch scratch(stream, sizeof(double));
  double *total = scratch.at<double>();
#endif
  for (int64_t first = 0; first < count; first += kNormBatch) {
    NormBatch batch{};
    batch.count = int(count - first < kNormBatch ? count - first : kNormBatch);
    for (int i = 0; i < batch.count; ++i) {
      batch.tensors[i] = tensors[first + i];
      batch.sizes[i] = sizes[first + i];
    }
#if KILN_CUDA_DEVICE
    KILN_LAUNCH(globalNormPartialKernel, kNormBlocks, kNormThreads, 0, stream, batch, partials);
    KILN_LAUNCH(globalNormCombineKernel, 1, kNormBlocks, 0, stream, partials, total, first == 0);
#else
    KILN_LAUNCH(globalNormSerialKernel, 1, 1, 0, stream, batch, total, first == 0);
#endif
  }
  KILN_LAUNCH(globalNormFinishKernel, 1, 1, 0, stream, norm, total, count == 0);
  return true;
}

/// The host returns the scale; here *scale (a device scalar, first) gets
/// it, from the device scalar *norm.
inline void clipScale(cudaStream_t stream, float *scale, const float *norm, float maxNorm) {
  KILN_LAUNCH(clipScaleKernel, 1, 1, 0, stream, scale, norm, maxNorm);
}

/// lr, step and gradScale are device scalars; a set *skip (optional, a
/// device flag) leaves param and the moments as they were.
inline bool adamw(cudaStream_t stream, float *param, const float *grad, float *m, float *v,
                  int64_t size, const float *lr, const int64_t *step, const float *gradScale,
                  float beta1, float beta2, float eps, float weightDecay,
                  std::string *error = nullptr, const bool *skip = nullptr) {
  return detail::launchAdamw(stream, param, grad, m, v, nullptr, size, lr, step, gradScale, beta1,
                             beta2, eps, weightDecay, error, skip);
}
inline bool adamw(cudaStream_t stream, float *param, const float *grad, kernels::Bf16 *m,
                  kernels::Bf16 *v, int64_t size, const float *lr, const int64_t *step,
                  const float *gradScale, float beta1, float beta2, float eps, float weightDecay,
                  std::string *error = nullptr, const bool *skip = nullptr) {
  return detail::launchAdamw(stream, param, grad, m, v, nullptr, size, lr, step, gradScale, beta1,
                             beta2, eps, weightDecay, error, skip);
}

inline bool maskedAdamw(cudaStream_t stream, float *param, const float *grad, float *m, float *v,
                        const float *mask, int64_t size, const float *lr, const int64_t *step,
                        const float *gradScale, float beta1, float beta2, float eps,
                        float weightDecay, std::string *error = nullptr,
                        const bool *skip = nullptr) {
  return detail::launchAdamw(stream, param, grad, m, v, mask, size, lr, step, gradScale, beta1,
                             beta2, eps, weightDecay, error, skip);
}
inline bool maskedAdamw(cudaStream_t stream, float *param, const float *grad, kernels::Bf16 *m,
                        kernels::Bf16 *v, const float *mask, int64_t size, const float *lr,
                        const int64_t *step, const float *gradScale, float beta1, float beta2,
                        float eps, float weightDecay, std::string *error = nullptr,
                        const bool *skip = nullptr) {
  return detail::launchAdamw(stream, param, grad, m, v, mask, size, lr, step, gradScale, beta1,
                             beta2, eps, weightDecay, error, skip);
}

/// norm, scale, tracker and updates are device scalars (the host takes
/// their values); a bad state is a kBadScalerState record (nothing
/// written). growthInterval is an attribute, checked here.
inline bool gradScaler(cudaStream_t stream, const float *norm, const float *scale,
                       const int64_t *tracker, const int64_t *updates, float growthFactor,
                       float backoffFactor, int64_t growthInterval, bool *skip, float *invScale,
                       float *newScale, int64_t *newTracker, int64_t *newUpdates,
                       std::string *error = nullptr) {
  if (growthInterval < 1)
    return detail::optimizerFail(
        error, "grad_scaler: expected a finite scale > 0, tracker and updates >= 0 and "
               "growth_interval >= 1, got interval " +
                   std::to_string(growthInterval));
  KILN_LAUNCH(gradScalerKernel, 1, 1, 0, stream, norm, scale, tracker, updates, growthFactor,
              backoffFactor, growthInterval, skip, invScale, newScale, newTracker, newUpdates);
  return true;
}

/// A set *skip (optional, a device flag) leaves newBias as it was.
inline bool biasUpdate(cudaStream_t stream, const float *bias, const float *load, int64_t experts,
                       float speed, float *newBias, std::string *error = nullptr,
                       const bool *skip = nullptr) {
  if (experts < 1)
    return detail::optimizerFail(error, "bias_update: experts must be >= 1, got " +
                                            std::to_string(experts));
  KILN_LAUNCH(biasUpdateKernel, blocksFor(experts), kBlock, 0, stream, bias, load, experts, speed,
              newBias, skip);
  return true;
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_OPTIMIZER_CUH
