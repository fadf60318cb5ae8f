//===- Grpo.cuh - CUDA kernels of token_logprobs and the GRPO loss --------===//
//
// The CUDA twins of runtime/kernels/Grpo.h: tokenLogprobs, grpoLossForward
// and grpoLossBackward, on GrpoMath.h's rows (temperedLogprob, grpoToken,
// grpoGradRow, grpoRowWeight) and cross_entropy's row math (DenseMath.h).
//
// Signatures: the host's parameters after the stream, except for the two
// scalars the host program passes or takes by value, which live in device
// memory on the GPU: grpoLossForward writes the loss through `float *loss`
// (its first parameter) instead of returning it, and grpoLossBackward reads
// dloss through `const float *dloss` (the host program passes `*dloss`).
// `count` was a pointer already. A target outside [0, vocab) at a position
// the host reads (every position for token_logprobs, mask != 0 for the
// loss) is a kIdOutOfRange record with the position as index, where the
// host stops with KILN_KERNEL_CHECK; the position is then skipped (no out,
// loss 0, a zero dlogits row).
//
// Two kernels per op, as Dense.cuh's rows:
//   - reference order (the CPU shim): a thread per position, the host's
//     loop (GrpoMath.h's functions; the gradient row uses its own row of
//     dlogits as the scratch row of logits / T, as the host does), and a
//     single thread for the row weights and the loss sum, in the host's
//     f64 serial order: bit for bit the host's;
//   - on the GPU a block per position (kGrpoRowThreads threads striding the
//     vocabulary): max, then the sums of exp(z - m) and of z by fixed
//     shuffle-and-shared trees, finished by crossEntropyFromSums /
//     crossEntropyGradValue; a thread per row sums the mask in f64 in the
//     host's order; one block adds rows' token counts and the weighted
//     losses in fixed f64 trees. Within f32 rounding of the host (a
//     different summation order over the vocabulary, the GPU's expf / logf);
//     the batch's token count is exact for 0/1 masks. Deterministic: no
//     atomics, fixed trees.
// The per-position losses (forward) and row weights (backward) go through
// stream-ordered scratch (Device.cuh's StreamScratch).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_GRPO_CUH
#define KILN_RUNTIME_KERNELS_CUDA_GRPO_CUH

#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/GrpoMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cstddef>

namespace kiln::cuda {

/// Threads of the GPU's block-per-position kernels, and of its one-block
/// sums over rows and positions.
constexpr int kGrpoRowThreads = 512;
constexpr int kGrpoSumThreads = 1024;

/// The attributes and shapes every GRPO kernel takes.
struct GrpoShape {
  int64_t rows, seq, vocab;
  float temperature, clipLow, clipHigh, beta;
  kernels::GrpoAggregation aggregation;
  int64_t maxTokens;
};

/// Whether position i's target may be read (mask != 0 where there is a
/// mask); a bad one is recorded.
__device__ inline bool grpoTargetOk(const int32_t *targets, int64_t i, int64_t vocab) {
  if (targets[i] >= 0 && targets[i] < vocab)
    return true;
  KILN_DEVICE_ERROR(kIdOutOfRange, i);
  return false;
}

/// grpoRowWeight of row b given its mask sum and the batch's.
__device__ inline double grpoWeightOf(const GrpoShape &s, double rowTokens, double batchTokens,
                                      const float *count) {
  return kernels::grpoRowWeight(s.aggregation, rowTokens, double(s.rows), batchTokens, s.maxTokens,
                                count != nullptr, count ? double(*count) : 0.0);
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Reference order: thread i takes position i as Grpo.cpp does.
__global__ void tokenLogprobsKernel(float *out, const float *logits, const int32_t *targets,
                                    int64_t positions, int64_t vocab, float temperature) {
  for (int64_t i = globalThread(); i < positions; i += gridThreads())
    if (grpoTargetOk(targets, i, vocab))
      out[i] = kernels::temperedLogprob(logits + i * vocab, vocab, targets[i], temperature);
}

/// Reference order: loss[i] of each position (0 where the mask is).
__global__ void grpoTokenLossKernel(float *loss, const float *logits, const int32_t *targets,
                                    const float *mask, const float *advantages,
                                    const float *oldLogprobs, const float *refLogprobs,
                                    GrpoShape s) {
  for (int64_t i = globalThread(); i < s.rows * s.seq; i += gridThreads()) {
    loss[i] = 0.0f;
    if (mask[i] == 0 || !grpoTargetOk(targets, i, s.vocab))
      continue;
    const float lp =
        kernels::temperedLogprob(logits + i * s.vocab, s.vocab, targets[i], s.temperature);
    loss[i] = kernels::grpoToken(lp, oldLogprobs[i], refLogprobs[i], advantages[i / s.seq],
                                 s.clipLow, s.clipHigh, s.beta)
                  .loss;
  }
}

/// The batch's mask sum in position order, f64 (Grpo.cpp's rowWeights).
__device__ inline double grpoBatchTokensSerial(const float *mask, int64_t positions) {
  double batch = 0;
  for (int64_t i = 0; i < positions; ++i)
    batch += mask[i];
  return batch;
}

/// Row b's mask sum in position order, f64.
__device__ inline double grpoRowTokens(const float *mask, int64_t b, int64_t seq) {
  double tokens = 0;
  for (int64_t t = 0; t < seq; ++t)
    tokens += mask[b * seq + t];
  return tokens;
}

/// Reference order, one thread: the loss as grpoLossForward sums it.
__global__ void grpoLossSumSerialKernel(float *out, const float *loss, const float *mask,
                                        GrpoShape s, const float *count) {
  const double batch = grpoBatchTokensSerial(mask, s.rows * s.seq);
  double total = 0;
  for (int64_t b = 0; b < s.rows; ++b) {
    const double weight = grpoWeightOf(s, grpoRowTokens(mask, b, s.seq), batch, count);
    for (int64_t i = b * s.seq; i < (b + 1) * s.seq; ++i)
      if (mask[i] != 0)
        total += double(mask[i]) * weight * loss[i];
  }
  *out = float(total);
}

/// Reference order, one thread: weights[b] as rowWeights computes them.
__global__ void grpoRowWeightsSerialKernel(double *weights, const float *mask, GrpoShape s,
                                           const float *count) {
  const double batch = grpoBatchTokensSerial(mask, s.rows * s.seq);
  for (int64_t b = 0; b < s.rows; ++b)
    weights[b] = grpoWeightOf(s, grpoRowTokens(mask, b, s.seq), batch, count);
}

/// Reference order: thread i writes dlogits row i as Grpo.cpp does.
__global__ void grpoLossGradRowKernel(float *dlogits, const float *logits, const int32_t *targets,
                                      const float *mask, const float *advantages,
                                      const float *oldLogprobs, const float *refLogprobs,
                                      const float *dloss, const double *weights, GrpoShape s) {
  for (int64_t i = globalThread(); i < s.rows * s.seq; i += gridThreads()) {
    float *d = dlogits + i * s.vocab;
    const double weight = double(mask[i]) * weights[i / s.seq];
    if ((mask[i] != 0 && !grpoTargetOk(targets, i, s.vocab)) || weight == 0) {
      for (int64_t c = 0; c < s.vocab; ++c)
        d[c] = 0.0f;
      continue;
    }
    kernels::grpoGradRow(d, logits + i * s.vocab, s.vocab, targets[i], s.temperature,
                         oldLogprobs[i], refLogprobs[i], advantages[i / s.seq], s.clipLow,
                         s.clipHigh, s.beta, *dloss, weight);
  }
}

/// Thread b: rowTokens[b], row b's mask sum in the host's order (the GPU's
/// first step towards the row weights).
__global__ void grpoRowTokensKernel(double *rowTokens, const float *mask, int64_t rows,
                                    int64_t seq) {
  for (int64_t b = globalThread(); b < rows; b += gridThreads())
    rowTokens[b] = grpoRowTokens(mask, b, seq);
}

#if KILN_CUDA_DEVICE
struct GrpoMax {
  __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};
struct GrpoAdd {
  template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};

/// `op` over the block, every thread getting the result: a shuffle tree per
/// warp, then each thread combines the warps' values from `shared` (32) in
/// warp order. Fixed trees: the same bits every run.
template <typename T, typename Op>
__device__ __forceinline__ T grpoBlockReduce(T v, T *shared, Op op) {
  for (int offset = 16; offset > 0; offset /= 2)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (threadIdx.x % 32 == 0)
    shared[threadIdx.x / 32] = v;
  __syncthreads();
  v = shared[0];
  for (int w = 1; w < int(blockDim.x / 32); ++w)
    v = op(v, shared[w]);
  __syncthreads(); // shared is reused by the next reduction
  return v;
}

/// The block's row of logits / T: its max, sum exp(z - m) and sum z.
struct GrpoRowSums {
  float m, sum, total;
};
__device__ __forceinline__ GrpoRowSums grpoBlockRowSums(const float *row, int64_t vocab,
                                                        float temperature, float *shared) {
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
    m = GrpoMax()(m, row[c] / temperature);
  m = grpoBlockReduce(m, shared, GrpoMax());
  float sum = 0.0f, total = 0.0f;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    const float z = row[c] / temperature;
    sum += kernels::expFaithful(z - m);
    total += z;
  }
  sum = grpoBlockReduce(sum, shared, GrpoAdd());
  total = grpoBlockReduce(total, shared, GrpoAdd());
  return {m, sum, total};
}

/// log softmax(row / T)[target] from the block's sums.
__device__ __forceinline__ float grpoBlockLogprob(const float *row, int64_t vocab, int32_t target,
                                                  float temperature, float *shared) {
  const GrpoRowSums r = grpoBlockRowSums(row, vocab, temperature, shared);
  return -kernels::crossEntropyFromSums(r.m, r.sum, r.total, row[target] / temperature, vocab,
                                        0.0f);
}

/// Block p takes positions p, p + blocks, ...
__global__ void __launch_bounds__(kGrpoRowThreads)
    tokenLogprobsBlockKernel(float *out, const float *logits, const int32_t *targets,
                             int64_t positions, int64_t vocab, float temperature) {
  __shared__ float shared[32];
  for (int64_t i = blockIdx.x; i < positions; i += gridDim.x) {
    const int32_t target = targets[i];
    if (target < 0 || target >= vocab) {
      if (threadIdx.x == 0)
        KILN_DEVICE_ERROR(kIdOutOfRange, i);
      continue;
    }
    const float lp = grpoBlockLogprob(logits + i * vocab, vocab, target, temperature, shared);
    if (threadIdx.x == 0)
      out[i] = lp;
  }
}

__global__ void __launch_bounds__(kGrpoRowThreads)
    grpoTokenLossBlockKernel(float *loss, const float *logits, const int32_t *targets,
                             const float *mask, const float *advantages, const float *oldLogprobs,
                             const float *refLogprobs, GrpoShape s) {
  __shared__ float shared[32];
  for (int64_t i = blockIdx.x; i < s.rows * s.seq; i += gridDim.x) {
    const int32_t target = targets[i];
    const bool bad = mask[i] != 0 && (target < 0 || target >= s.vocab);
    if (bad && threadIdx.x == 0)
      KILN_DEVICE_ERROR(kIdOutOfRange, i);
    if (mask[i] == 0 || bad) {
      if (threadIdx.x == 0)
        loss[i] = 0.0f;
      continue;
    }
    const float lp = grpoBlockLogprob(logits + i * s.vocab, s.vocab, target, s.temperature, shared);
    if (threadIdx.x == 0)
      loss[i] = kernels::grpoToken(lp, oldLogprobs[i], refLogprobs[i], advantages[i / s.seq],
                                   s.clipLow, s.clipHigh, s.beta)
                    .loss;
  }
}

/// One block: the batch's mask sum over rowTokens (a fixed tree), then,
/// with `loss`, the weighted loss sum into *out; without, the row weights
/// over rowTokens (each thread replaces the entries it read).
__global__ void __launch_bounds__(kGrpoSumThreads)
    grpoRowSumsBlockKernel(double *rowTokens, float *out, const float *loss, const float *mask,
                           GrpoShape s, const float *count) {
  __shared__ double shared[32];
  double batch = 0;
  for (int64_t b = threadIdx.x; b < s.rows; b += blockDim.x)
    batch += rowTokens[b];
  batch = grpoBlockReduce(batch, shared, GrpoAdd());
  if (!loss) {
    for (int64_t b = threadIdx.x; b < s.rows; b += blockDim.x)
      rowTokens[b] = grpoWeightOf(s, rowTokens[b], batch, count);
    return;
  }
  double total = 0;
  for (int64_t i = threadIdx.x; i < s.rows * s.seq; i += blockDim.x)
    if (mask[i] != 0)
      total += double(mask[i]) * grpoWeightOf(s, rowTokens[i / s.seq], batch, count) * loss[i];
  total = grpoBlockReduce(total, shared, GrpoAdd());
  if (threadIdx.x == 0)
    *out = float(total);
}

/// Block p writes dlogits rows p, p + blocks, ...: the row's sums, then
/// each element from its softmax probability (crossEntropyGradValue).
__global__ void __launch_bounds__(kGrpoRowThreads)
    grpoLossGradBlockKernel(float *dlogits, const float *logits, const int32_t *targets,
                            const float *mask, const float *advantages, const float *oldLogprobs,
                            const float *refLogprobs, const float *dloss, const double *weights,
                            GrpoShape s) {
  __shared__ float shared[32];
  for (int64_t i = blockIdx.x; i < s.rows * s.seq; i += gridDim.x) {
    float *d = dlogits + i * s.vocab;
    const float *row = logits + i * s.vocab;
    const int32_t target = targets[i];
    const double weight = double(mask[i]) * weights[i / s.seq];
    const bool bad = mask[i] != 0 && (target < 0 || target >= s.vocab);
    if (bad && threadIdx.x == 0)
      KILN_DEVICE_ERROR(kIdOutOfRange, i);
    if (bad || weight == 0) {
      for (int64_t c = threadIdx.x; c < s.vocab; c += blockDim.x)
        d[c] = 0.0f;
      continue;
    }
    const GrpoRowSums r = grpoBlockRowSums(row, s.vocab, s.temperature, shared);
    const float lp = -kernels::crossEntropyFromSums(r.m, r.sum, r.total,
                                                    row[target] / s.temperature, s.vocab, 0.0f);
    const kernels::GrpoTerm<float> term = kernels::grpoToken(
        lp, oldLogprobs[i], refLogprobs[i], advantages[i / s.seq], s.clipLow, s.clipHigh, s.beta);
    const float factor = float(-double(*dloss) * weight * term.dLossDlp / s.temperature);
    const float inv = 1.0f / r.sum, uniform = 0.0f / float(s.vocab);
    for (int64_t c = threadIdx.x; c < s.vocab; c += blockDim.x)
      d[c] = kernels::crossEntropyGradValue(
          kernels::expFaithful(row[c] / s.temperature - r.m) * inv, c == target, 0.0f, uniform,
          factor);
  }
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

namespace detail {
/// Grpo.cpp's checkGrpo, its target check aside (device data here).
inline void checkGrpoShape(const GrpoShape &s) {
  KILN_LAUNCH_CHECK(s.rows >= 0 && s.seq >= 0 && s.vocab > 0,
                    "expects rows, seq >= 0 and vocab > 0, got %lld, %lld, %lld", (long long)s.rows,
                    (long long)s.seq, (long long)s.vocab);
  KILN_LAUNCH_CHECK(s.temperature > 0, "expects temperature > 0, got %g", s.temperature);
  KILN_LAUNCH_CHECK(s.clipLow >= 0 && s.clipLow < 1 && s.clipHigh >= 0,
                    "expects clip_low in [0, 1) and clip_high >= 0, got %g and %g", s.clipLow,
                    s.clipHigh);
  KILN_LAUNCH_CHECK(s.beta >= 0, "expects beta >= 0, got %g", s.beta);
  KILN_LAUNCH_CHECK(
      s.aggregation != kernels::GrpoAggregation::SeqMeanTokenSumNorm || s.maxTokens > 0,
      "expects max_tokens > 0 with seq-mean-token-sum-norm, got %lld", (long long)s.maxTokens);
}

/// Blocks for a block per item, capped (the kernels grid-stride).
inline unsigned grpoBlocksFor(int64_t items) {
  return unsigned(items < 1 ? 1 : items < 65535 * 32 ? items : 65535 * 32);
}
} // namespace detail

inline void tokenLogprobs(cudaStream_t stream, float *out, const float *logits,
                          const int32_t *targets, int64_t positions, int64_t vocab,
                          float temperature) {
  KILN_LAUNCH_CHECK(positions >= 0 && vocab > 0,
                    "expects positions >= 0 and vocab > 0, got %lld, %lld", (long long)positions,
                    (long long)vocab);
  KILN_LAUNCH_CHECK(temperature > 0, "expects temperature > 0, got %g", temperature);
  if (positions == 0)
    return;
#if KILN_CUDA_DEVICE
  KILN_LAUNCH(tokenLogprobsBlockKernel, detail::grpoBlocksFor(positions), kGrpoRowThreads, 0,
              stream, out, logits, targets, positions, vocab, temperature);
#else
  KILN_LAUNCH(tokenLogprobsKernel, blocksFor(positions), kBlock, 0, stream, out, logits, targets,
              positions, vocab, temperature);
#endif
}

/// The host returns the loss; here it goes to *loss (a device scalar).
inline void grpoLossForward(cudaStream_t stream, float *loss, const float *logits,
                            const int32_t *targets, const float *mask, const float *advantages,
                            const float *oldLogprobs, const float *refLogprobs, int64_t rows,
                            int64_t seq, int64_t vocab, float temperature, float clipLow,
                            float clipHigh, float beta, kernels::GrpoAggregation aggregation,
                            int64_t maxTokens, const float *count = nullptr) {
  const GrpoShape s{rows, seq, vocab, temperature, clipLow, clipHigh, beta, aggregation, maxTokens};
  detail::checkGrpoShape(s);
  const int64_t positions = rows * seq;
#if KILN_CUDA_DEVICE
  // rowTokens [rows] f64, then the positions' losses [positions] f32.
  StreamScratch scratch(stream, sizeof(double) * rows + sizeof(float) * positions);
  double *rowTokens = scratch.at<double>();
  float *tokenLoss = scratch.at<float>(sizeof(double) * rows);
  if (positions > 0)
    KILN_LAUNCH(grpoTokenLossBlockKernel, detail::grpoBlocksFor(positions), kGrpoRowThreads, 0,
                stream, tokenLoss, logits, targets, mask, advantages, oldLogprobs, refLogprobs, s);
  if (rows > 0)
    KILN_LAUNCH(grpoRowTokensKernel, blocksFor(rows), kBlock, 0, stream, rowTokens, mask, rows,
                seq);
  KILN_LAUNCH(grpoRowSumsBlockKernel, 1, kGrpoSumThreads, 0, stream, rowTokens, loss, tokenLoss,
              mask, s, count);
#else
  StreamScratch scratch(stream, sizeof(float) * positions);
  float *tokenLoss = scratch.at<float>();
  if (positions > 0)
    KILN_LAUNCH(grpoTokenLossKernel, blocksFor(positions), kBlock, 0, stream, tokenLoss, logits,
                targets, mask, advantages, oldLogprobs, refLogprobs, s);
  KILN_LAUNCH(grpoLossSumSerialKernel, 1, 1, 0, stream, loss, tokenLoss, mask, s, count);
#endif
}

/// dloss is a device scalar (the host program passes its value).
inline void grpoLossBackward(cudaStream_t stream, float *dlogits, const float *logits,
                             const int32_t *targets, const float *mask, const float *advantages,
                             const float *oldLogprobs, const float *refLogprobs, const float *dloss,
                             int64_t rows, int64_t seq, int64_t vocab, float temperature,
                             float clipLow, float clipHigh, float beta,
                             kernels::GrpoAggregation aggregation, int64_t maxTokens,
                             const float *count = nullptr) {
  const GrpoShape s{rows, seq, vocab, temperature, clipLow, clipHigh, beta, aggregation, maxTokens};
  detail::checkGrpoShape(s);
  const int64_t positions = rows * seq;
  if (positions == 0)
    return;
  StreamScratch scratch(stream, sizeof(double) * rows);
  double *weights = scratch.at<double>();
#if KILN_CUDA_DEVICE
  KILN_LAUNCH(grpoRowTokensKernel, blocksFor(rows), kBlock, 0, stream, weights, mask, rows, seq);
  KILN_LAUNCH(grpoRowSumsBlockKernel, 1, kGrpoSumThreads, 0, stream, weights, nullptr, nullptr,
              mask, s, count);
  KILN_LAUNCH(grpoLossGradBlockKernel, detail::grpoBlocksFor(positions), kGrpoRowThreads, 0, stream,
              dlogits, logits, targets, mask, advantages, oldLogprobs, refLogprobs, dloss, weights,
              s);
#else
  KILN_LAUNCH(grpoRowWeightsSerialKernel, 1, 1, 0, stream, weights, mask, s, count);
  KILN_LAUNCH(grpoLossGradRowKernel, blocksFor(positions), kBlock, 0, stream, dlogits, logits,
              targets, mask, advantages, oldLogprobs, refLogprobs, dloss, weights, s);
#endif
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_GRPO_CUH
