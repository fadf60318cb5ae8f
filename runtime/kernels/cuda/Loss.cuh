//===- Loss.cuh - CUDA kernels of kiln.cross_entropy and its gradient -----===//
//
// The CUDA twins of runtime/kernels/Loss.h: logits [positions, vocab] f32,
// targets [positions] int32, mask [positions] f32 (0: ignored, its target
// never read), an optional `count` (data parallelism's global token count,
// a device pointer) replacing sum(mask) as the divisor. The row math is
// DenseMath.h's (crossEntropyRow / crossEntropyGradRow and the pieces they
// finish with), so the host and the kernels compute the same formulas.
//
//   - reference order (the CPU shim, bit for bit with the host): one thread
//     per position running the host's row function, then one thread summing
//     the positions' losses (or the mask, for the gradient's divisor) in
//     position order in f64, as the host's serial loop does;
//   - on the GPU: a block per position (the vocabulary is up to 129,280 for
//     DeepSeek-V3): each thread keeps a running max and sum of exp(l - max)
//     over its strided logits (one read of the row), combined across the
//     block in a fixed tree; the max is exact, the sums within rounding of
//     the host. The positions' sum is one block's fixed f64 tree (exact for
//     0/1 masks). Deterministic run to run; no atomics.
//
// A target outside [0, vocab) at a position whose mask is not 0, which the
// host refuses, is KILN_DEVICE_ERROR(kIdOutOfRange, position): that
// position's loss counts as 0 (its mask still weighs), its gradient row is
// zero.
//
// The host's crossEntropyForward returns the loss; the launcher of the same
// signature does too, so it copies the loss back and waits for the stream.
// A step that keeps the loss on the device uses the overload with a leading
// `float *loss` (no sync); crossEntropyBackward has an overload taking
// `dloss` as a device pointer for the same reason (the codegen's host
// launch reads `*dloss` on the host).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_LOSS_CUH
#define KILN_RUNTIME_KERNELS_CUDA_LOSS_CUH

#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/cuda/Device.cuh"

namespace kiln::cuda {

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Whether position i takes part (mask not 0) with a valid target; records
/// the error for a bad one.
__device__ __forceinline__ bool crossEntropyCounts(const int32_t *targets, const float *mask,
                                                   int64_t i, int64_t vocab) {
  if (mask[i] == 0)
    return false;
  if (targets[i] < 0 || targets[i] >= vocab) {
    KILN_DEVICE_ERROR(kIdOutOfRange, i);
    return false;
  }
  return true;
}

/// Reference order: thread i computes position i's loss (0 when masked).
__global__ void crossEntropyRowKernel(float *ce, const float *logits, const int32_t *targets,
                                      const float *mask, int64_t positions, int64_t vocab,
                                      float labelSmoothing) {
  for (int64_t i = globalThread(); i < positions; i += gridThreads())
    ce[i] = crossEntropyCounts(targets, mask, i, vocab)
                ? kernels::crossEntropyRow(logits + i * vocab, vocab, targets[i], labelSmoothing)
                : 0.0f;
}

/// Reference order, one thread: loss = sum mask ce / (count or sum mask),
/// positions in order in f64, as the host.
__global__ void crossEntropyLossKernel(float *loss, const float *ce, const float *mask,
                                       const float *count, int64_t positions) {
  if (globalThread() == 0)
    *loss = kernels::maskedMeanLoss(ce, mask, count, positions);
}

/// Reference order, one thread: the gradient's divisor, count or sum mask.
__global__ void crossEntropyWeightKernel(double *weight, const float *mask, const float *count,
                                         int64_t positions) {
  if (globalThread() != 0)
    return;
  double sum = 0;
  for (int64_t i = 0; i < positions; ++i)
    sum += mask[i];
  *weight = count ? double(*count) : sum;
}

/// dloss * mask[i] / weight, as the host rounds it; 0 where the row is
/// zero.
__device__ __forceinline__ float crossEntropyFactor(const float *mask, int64_t i,
                                                    const double *weight, float dloss,
                                                    const float *dlossDevice) {
  const double w = *weight;
  if (w == 0)
    return 0.0f;
  const float d = dlossDevice ? *dlossDevice : dloss;
  return float(double(d) * mask[i] / w);
}

/// Reference order: thread i writes position i's gradient row (the host's
/// row function; zero when masked or the divisor is 0).
__global__ void crossEntropyGradRowKernel(float *dlogits, const float *logits,
                                          const int32_t *targets, const float *mask,
                                          const double *weight, int64_t positions, int64_t vocab,
                                          float labelSmoothing, float dloss,
                                          const float *dlossDevice) {
  for (int64_t i = globalThread(); i < positions; i += gridThreads()) {
    float *d = dlogits + i * vocab;
    if (!crossEntropyCounts(targets, mask, i, vocab) || *weight == 0) {
      for (int64_t c = 0; c < vocab; ++c)
        d[c] = 0.0f;
      continue;
    }
    kernels::crossEntropyGradRow(logits + i * vocab, vocab, targets[i], labelSmoothing,
                                 crossEntropyFactor(mask, i, weight, dloss, dlossDevice), d);
  }
}

#if KILN_CUDA_DEVICE
/// A running softmax denominator: max and sum of exp(l - max) over some
/// logits, and their plain sum (label smoothing's mean).
struct SoftmaxStats {
  float max, sum, total;
};

/// Stats over a and b's logits together. A part whose max is the combined
/// max keeps its sum as is (also when both are -inf: no inf - inf).
__device__ __forceinline__ SoftmaxStats combineStats(SoftmaxStats a, SoftmaxStats b) {
  const float m = fmaxf(a.max, b.max);
  const float sa = a.max == m ? a.sum : a.sum * kernels::expFaithful(a.max - m);
  const float sb = b.max == m ? b.sum : b.sum * kernels::expFaithful(b.max - m);
  return {m, sa + sb, a.total + b.total};
}

/// The stats of logits row[0..vocab) over the block: each thread's strided
/// running stats, then warp shuffles and one warp over the warps' stats
/// (blockDim.x a multiple of 32, at most 1024). Every thread gets the
/// result.
__device__ __forceinline__ SoftmaxStats blockSoftmaxStats(const float *row, int64_t vocab,
                                                          SoftmaxStats *shared) {
  SoftmaxStats s{-INFINITY, 0.0f, 0.0f};
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    const float l = row[c];
    s.total += l;
    if (l > s.max) {
      s.sum = s.sum * kernels::expFaithful(s.max - l) + 1.0f;
      s.max = l;
    } else {
      s.sum += kernels::expFaithful(l - s.max);
    }
  }
  for (int offset = 16; offset > 0; offset /= 2)
    s = combineStats(s, {__shfl_xor_sync(0xffffffffu, s.max, offset),
                         __shfl_xor_sync(0xffffffffu, s.sum, offset),
                         __shfl_xor_sync(0xffffffffu, s.total, offset)});
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    shared[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < int(blockDim.x / 32) ? shared[lane] : SoftmaxStats{-INFINITY, 0.0f, 0.0f};
    for (int offset = 16; offset > 0; offset /= 2)
      s = combineStats(s, {__shfl_xor_sync(0xffffffffu, s.max, offset),
                           __shfl_xor_sync(0xffffffffu, s.sum, offset),
                           __shfl_xor_sync(0xffffffffu, s.total, offset)});
    if (lane == 0)
      shared[0] = s;
  }
  __syncthreads();
  return shared[0];
}

/// Sums of a and b over the block in a fixed tree (as blockSoftmaxStats);
/// every thread gets them.
__device__ __forceinline__ void blockSumPair(double &a, double &b, double *shared) {
  for (int offset = 16; offset > 0; offset /= 2) {
    a += __shfl_xor_sync(0xffffffffu, a, offset);
    b += __shfl_xor_sync(0xffffffffu, b, offset);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    shared[warp] = a;
    shared[32 + warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < int(blockDim.x / 32) ? shared[lane] : 0.0;
    b = lane < int(blockDim.x / 32) ? shared[32 + lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) {
      a += __shfl_xor_sync(0xffffffffu, a, offset);
      b += __shfl_xor_sync(0xffffffffu, b, offset);
    }
    if (lane == 0) {
      shared[0] = a;
      shared[32] = b;
    }
  }
  __syncthreads();
  a = shared[0];
  b = shared[32];
}

/// GPU order: block i computes position i's loss (0 when masked).
__global__ void crossEntropyForwardBlockKernel(float *ce, const float *logits,
                                               const int32_t *targets, const float *mask,
                                               int64_t vocab, float labelSmoothing) {
  __shared__ SoftmaxStats shared[32];
  const int64_t i = blockIdx.x;
  // The same answer in every thread: the branch is uniform over the block.
  const bool counts = mask[i] != 0 && targets[i] >= 0 && targets[i] < vocab;
  if (!counts) {
    if (threadIdx.x == 0) {
      if (mask[i] != 0)
        KILN_DEVICE_ERROR(kIdOutOfRange, i);
      ce[i] = 0.0f;
    }
    return;
  }
  const float *row = logits + i * vocab;
  const SoftmaxStats s = blockSoftmaxStats(row, vocab, shared);
  if (threadIdx.x == 0)
    ce[i] = kernels::crossEntropyFromSums(s.max, s.sum, s.total, row[targets[i]], vocab,
                                          labelSmoothing);
}

/// GPU order, one block: the loss from the positions' losses.
__global__ void crossEntropyLossBlockKernel(float *loss, const float *ce, const float *mask,
                                            const float *count, int64_t positions) {
  __shared__ double shared[64];
  double total = 0, weight = 0;
  for (int64_t i = threadIdx.x; i < positions; i += blockDim.x)
    if (mask[i] != 0) {
      total += double(mask[i]) * ce[i];
      weight += mask[i];
    }
  blockSumPair(total, weight, shared);
  if (count)
    weight = *count;
  if (threadIdx.x == 0)
    *loss = weight == 0 ? 0.0f : float(total / weight);
}

/// GPU order, one block: the gradient's divisor.
__global__ void crossEntropyWeightBlockKernel(double *weight, const float *mask,
                                              const float *count, int64_t positions) {
  __shared__ double shared[64];
  double sum = 0, unused = 0;
  for (int64_t i = threadIdx.x; i < positions; i += blockDim.x)
    sum += mask[i];
  blockSumPair(sum, unused, shared);
  if (threadIdx.x == 0)
    *weight = count ? double(*count) : sum;
}

/// GPU order: block i writes position i's gradient row from the block's
/// softmax stats: factor (exp(l - max) / sum - (1 - eps) onehot - eps /
/// vocab), as crossEntropyGradRow.
__global__ void crossEntropyBackwardBlockKernel(float *dlogits, const float *logits,
                                                const int32_t *targets, const float *mask,
                                                const double *weight, int64_t vocab,
                                                float labelSmoothing, float dloss,
                                                const float *dlossDevice) {
  __shared__ SoftmaxStats shared[32];
  const int64_t i = blockIdx.x;
  float *d = dlogits + i * vocab;
  const int64_t target = targets[i];
  const bool counts = mask[i] != 0 && target >= 0 && target < vocab;
  if (!counts || *weight == 0) {
    if (threadIdx.x == 0 && mask[i] != 0 && !counts)
      KILN_DEVICE_ERROR(kIdOutOfRange, i);
    for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
      d[c] = 0.0f;
    return;
  }
  const float *row = logits + i * vocab;
  const SoftmaxStats s = blockSoftmaxStats(row, vocab, shared);
  const float inv = 1.0f / s.sum, uniform = labelSmoothing / float(vocab);
  const float factor = crossEntropyFactor(mask, i, weight, dloss, dlossDevice);
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
    d[c] = kernels::crossEntropyGradValue(kernels::expFaithful(row[c] - s.max) * inv,
                                          c == target, labelSmoothing, uniform, factor);
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

inline void checkCrossEntropy(int64_t positions, int64_t vocab, float labelSmoothing) {
  KILN_LAUNCH_CHECK(positions >= 0 && vocab > 0,
                    "expects positions >= 0 and vocab > 0, got %lld, %lld",
                    (long long)positions, (long long)vocab);
  KILN_LAUNCH_CHECK(labelSmoothing >= 0 && labelSmoothing <= 1,
                    "expects label_smoothing in [0, 1], got %g", labelSmoothing);
#if KILN_CUDA_DEVICE
  KILN_LAUNCH_CHECK(positions <= 0x7fffffff, "expects at most 2^31 - 1 positions, got %lld",
                    (long long)positions);
#endif
}

/// kiln.cross_entropy into a device scalar `loss`, in stream order (no sync).
inline void crossEntropyForward(cudaStream_t stream, float *loss, const float *logits,
                                const int32_t *targets, const float *mask, int64_t positions,
                                int64_t vocab, float labelSmoothing,
                                const float *count = nullptr) {
  checkCrossEntropy(positions, vocab, labelSmoothing);
  StreamScratch ceScratch(stream, sizeof(float) * size_t(positions));
  float *ce = ceScratch.at<float>();
#if KILN_CUDA_DEVICE
  if (positions > 0)
    KILN_LAUNCH(crossEntropyForwardBlockKernel, unsigned(positions), kBlock, 0, stream, ce,
                logits, targets, mask, vocab, labelSmoothing);
  KILN_LAUNCH(crossEntropyLossBlockKernel, 1, kBlock, 0, stream, loss, ce, mask, count,
              positions);
#else
  if (positions > 0)
    KILN_LAUNCH(crossEntropyRowKernel, blocksFor(positions), kBlock, 0, stream, ce, logits,
                targets, mask, positions, vocab, labelSmoothing);
  KILN_LAUNCH(crossEntropyLossKernel, 1, 1, 0, stream, loss, ce, mask, count, positions);
#endif
}

/// kiln.cross_entropy, the host kernel's signature: returns the loss (a
/// copy back and a wait for `stream`).
inline float crossEntropyForward(cudaStream_t stream, const float *logits,
                                 const int32_t *targets, const float *mask, int64_t positions,
                                 int64_t vocab, float labelSmoothing,
                                 const float *count = nullptr) {
  StreamScratch loss(stream, sizeof(float));
  crossEntropyForward(stream, loss.at<float>(), logits, targets, mask, positions, vocab,
                      labelSmoothing, count);
  float value = 0.0f;
#if KILN_CUDA_DEVICE
  KILN_CUDA_CHECK(
      cudaMemcpyAsync(&value, loss.at<float>(), sizeof(float), cudaMemcpyDeviceToHost, stream));
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream));
#else
  value = *loss.at<float>();
#endif
  return value;
}

/// kiln.cross_entropy_grad with dloss a host value (`dlossDevice` null) or
/// a device scalar.
inline void crossEntropyBackwardImpl(cudaStream_t stream, float *dlogits, const float *logits,
                                     const int32_t *targets, const float *mask,
                                     int64_t positions, int64_t vocab, float labelSmoothing,
                                     float dloss, const float *dlossDevice, const float *count) {
  checkCrossEntropy(positions, vocab, labelSmoothing);
  if (positions == 0)
    return;
  StreamScratch weightScratch(stream, sizeof(double));
  double *weight = weightScratch.at<double>();
#if KILN_CUDA_DEVICE
  KILN_LAUNCH(crossEntropyWeightBlockKernel, 1, kBlock, 0, stream, weight, mask, count,
              positions);
  KILN_LAUNCH(crossEntropyBackwardBlockKernel, unsigned(positions), kBlock, 0, stream, dlogits,
              logits, targets, mask, weight, vocab, labelSmoothing, dloss, dlossDevice);
#else
  KILN_LAUNCH(crossEntropyWeightKernel, 1, 1, 0, stream, weight, mask, count, positions);
  KILN_LAUNCH(crossEntropyGradRowKernel, blocksFor(positions), kBlock, 0, stream, dlogits,
              logits, targets, mask, weight, positions, vocab, labelSmoothing, dloss,
              dlossDevice);
#endif
}

inline void crossEntropyBackward(cudaStream_t stream, float *dlogits, const float *logits,
                                 const int32_t *targets, const float *mask, int64_t positions,
                                 int64_t vocab, float labelSmoothing, float dloss,
                                 const float *count = nullptr) {
  crossEntropyBackwardImpl(stream, dlogits, logits, targets, mask, positions, vocab,
                           labelSmoothing, dloss, nullptr, count);
}

/// The same with dloss a device scalar (the loss's gradient buffer).
inline void crossEntropyBackward(cudaStream_t stream, float *dlogits, const float *logits,
                                 const int32_t *targets, const float *mask, int64_t positions,
                                 int64_t vocab, float labelSmoothing, const float *dloss,
                                 const float *count = nullptr) {
  KILN_LAUNCH_CHECK(dloss != nullptr, "expects a dloss buffer");
  crossEntropyBackwardImpl(stream, dlogits, logits, targets, mask, positions, vocab,
                           labelSmoothing, 0.0f, dloss, count);
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_LOSS_CUH
