//===- MoE.cuh - CUDA kernels of routing, dispatch/combine and balancing --===//
//
// The CUDA twins of runtime/kernels/MoE.h's non-GEMM kernels (the grouped
// GEMMs are GroupedGemm.cuh's). Each launcher has the host kernel's name, its
// parameters after a leading stream (device pointers) and its bool return:
// false, with the host's message, for the size checks the host makes before
// reading data; data errors (an expert index or a source entry out of range)
// are KILN_DEVICE_ERROR records instead, the bad element skipped.
//
// Decisions:
//   - No workspace: the launchers take exactly the host's buffers, so what
//     a kernel needs between passes lives in an output it has not written
//     yet (dispatch's per-chunk counts in `rows`, combine's row-of-pair
//     slots in `out`, combine_grad's in `dweights`, balance_loss_grad's
//     fractions in the first dlogits row of each sequence), and per-token
//     scores are recomputed instead of kept in a scratch row (ScoreRow: the
//     same float operations as routerScoresRow, so the same bits).
//   - Positions are computed on the device, deterministically: dispatch is
//     the host's stable counting sort (expert-major, dropped pairs last,
//     pairs in increasing order within an expert) built from per-chunk
//     counts, a prefix over chunks per expert and a prefix over experts, no
//     atomics; its offsets stay on the device for the grouped GEMMs.
//   - Reference order (bit-identical to the host on the CPU shim, and what
//     the GPU runs too): router, router_grad, expert_capacity, dispatch,
//     dispatch_grad / combine (rows summed per token in increasing row
//     order), combine_grad's drows, balance_loss_grad.
//   - GPU-only variants (#if KILN_CUDA_DEVICE): expert_load (a block per
//     expert, an integer sum: the same bits), combine_grad's dweights (a
//     warp per pair over hidden: within rounding) and balance_loss (one
//     block; shared fractions, a fixed tree over tokens: within rounding;
//     a scalar output and no workspace leave no room for a grid of blocks).
//   - combine, dispatch_grad and combine_grad require `source` to be
//     dispatch's permutation (KilnMoEOps.td says it is): a pair no row names
//     is reported (kSourceNotPermutation) where the host would sum
//     duplicates. combine / dispatch_grad with top_k > 32 or hidden < top_k
//     scan every row per token instead (exact for any source, slow).
//   - The router keeps its groups as a 64-bit mask: n_group <= 64 (false
//     with a message beyond; DeepSeek-V3 has 8).
//   - On the GPU, expf and nvcc's FMA contraction make scores differ from
//     the host's in the last bits, so "bit-identical" is a CPU-shim claim.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_MOE_CUH
#define KILN_RUNTIME_KERNELS_CUDA_MOE_CUH

#include "runtime/kernels/MoE.h"
#include "runtime/kernels/MoEMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <initializer_list>
#include <string>
#include <utility>

namespace kiln::cuda {

/// A source entry outside [0, tokens * top_k) (index: the row).
constexpr int32_t kBadSource = 301;
/// A pair that no row's source names: source is not dispatch's permutation
/// (index: the pair).
constexpr int32_t kSourceNotPermutation = 302;

/// Groups the router keeps as a bit mask (n_group <= 64).
constexpr int64_t kRouterMaxGroups = 64;
/// Rows per token combine / dispatch_grad sort in registers; beyond it (or
/// with hidden < top_k) they scan every row per token (exact, slow).
constexpr int64_t kCombineMaxTopK = 32;

namespace moe {

/// One token's router scores, recomputed per expert instead of stored:
/// routerScoresRow's operations (running max, sum in expert order).
struct ScoreRow {
  const float *logits;
  bool softmax;
  float m = 0.0f, sum = 0.0f;
  __device__ ScoreRow(const float *row, int64_t experts, bool useSoftmax)
      : logits(row), softmax(useSoftmax) {
    if (!softmax)
      return;
    m = row[0];
    for (int64_t e = 1; e < experts; ++e)
      m = row[e] > m ? row[e] : m;
    for (int64_t e = 0; e < experts; ++e)
      sum += kernels::expFaithful(row[e] - m);
  }
  __device__ float operator()(int64_t e) const {
    return softmax ? kernels::expFaithful(logits[e] - m) / sum : kernels::sigmoidf(logits[e]);
  }
};

/// routerScoresBackwardRow with ds in `dlogits` (overwritten in place).
__device__ inline void scoresBackwardInPlace(const ScoreRow &s, int64_t experts, float *dlogits) {
  float dot = 0.0f;
  if (s.softmax)
    for (int64_t e = 0; e < experts; ++e)
      dot += dlogits[e] * s(e);
  for (int64_t e = 0; e < experts; ++e) {
    const float se = s(e);
    dlogits[e] = s.softmax ? se * (dlogits[e] - dot) : dlogits[e] * se * (1.0f - se);
  }
}

/// balanceGradToken with ds in `dlogits`; `f` may be `dlogits` (each f[e]
/// is read before dlogits[e] is written).
__device__ inline void balanceGradRow(const float *logits, const float *f, int64_t experts,
                                      bool softmax, float q, float *dlogits) {
  const ScoreRow s(logits, experts, softmax);
  float z = 0.0f, fs = 0.0f;
  for (int64_t e = 0; e < experts; ++e) {
    const float se = s(e);
    z += se;
    fs += f[e] * se;
  }
  for (int64_t e = 0; e < experts; ++e)
    dlogits[e] = q * (f[e] - fs / z) / z;
  scoresBackwardInPlace(s, experts, dlogits);
}

/// Bucket of a dispatch pair: its expert, or `experts` (after every expert)
/// for a dropped pair and for a bad index.
__device__ __forceinline__ int64_t dispatchBucket(int32_t index, int64_t experts) {
  return index >= 0 && index < experts ? int64_t(index) : experts;
}

/// Row-of-pair slots of combine / dispatch_grad: slot k of token t is the
/// int32 at out[t * hidden + k] until the head kernel overwrites it.
__device__ __forceinline__ int32_t *tokenSlots(float *out, int64_t t, int64_t hidden) {
  return reinterpret_cast<int32_t *>(out + t * hidden);
}
constexpr int32_t kNoRow = 0x7fffffff; // sorts after every row

} // namespace moe

//===----------------------------------------------------------------------===//
// Kernels: routing
//===----------------------------------------------------------------------===//

/// routeToken per token (thread per token): scores recomputed, kept groups
/// as a bit mask, the top-k chosen into `indices` itself (the host's taken
/// list), ties to the lower index as argmaxExcluding breaks them.
__global__ void routerKernel(const float *logits, const float *bias, int64_t tokens,
                             int64_t experts, bool softmax, bool top2Sum, int64_t nGroup,
                             int64_t topkGroup, int64_t topK, bool norm, float scaling,
                             int32_t *indices, float *weights) {
  const int64_t perGroup = experts / nGroup;
  for (int64_t t = globalThread(); t < tokens; t += gridThreads()) {
    const moe::ScoreRow score(logits + t * experts, experts, softmax);
    auto choice = [&](int64_t e) { return score(e) + bias[e]; };
    uint64_t kept = ~uint64_t(0);
    if (nGroup > 1) {
      float groupScore[kRouterMaxGroups];
      for (int64_t g = 0; g < nGroup; ++g) {
        int64_t first = -1, second = -1;
        float v0 = 0.0f, v1 = 0.0f;
        for (int64_t i = 0; i < perGroup; ++i) {
          const float v = choice(g * perGroup + i);
          if (first < 0 || v > v0) {
            first = i;
            v0 = v;
          }
        }
        float sum = 0.0f;
        sum += v0;
        if (top2Sum && perGroup > 1) {
          for (int64_t i = 0; i < perGroup; ++i) {
            const float v = choice(g * perGroup + i);
            if (i != first && (second < 0 || v > v1)) {
              second = i;
              v1 = v;
            }
          }
          sum += v1;
        }
        groupScore[g] = sum;
      }
      kept = 0;
      for (int64_t i = 0; i < topkGroup; ++i) {
        int64_t best = -1;
        for (int64_t g = 0; g < nGroup; ++g)
          if (!((kept >> g) & 1u) && (best < 0 || groupScore[g] > groupScore[best]))
            best = g;
        kept |= uint64_t(1) << best;
      }
    }
    int32_t *idx = indices + t * topK;
    for (int64_t j = 0; j < topK; ++j) {
      int64_t best = -1;
      float bestValue = 0.0f;
      for (int64_t e = 0; e < experts; ++e) {
        bool used = false;
        for (int64_t i = 0; i < j; ++i)
          used = used || idx[i] == e;
        if (used)
          continue;
        const float v = (kept >> (e / perGroup)) & 1u ? choice(e) : -INFINITY;
        if (best < 0 || v > bestValue) {
          best = e;
          bestValue = v;
        }
      }
      idx[j] = int32_t(best);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < topK; ++j)
      sum += score(idx[j]);
    for (int64_t j = 0; j < topK; ++j) {
      float w = score(idx[j]);
      if (norm)
        w /= sum + 1e-20f;
      weights[t * topK + j] = w * scaling;
    }
  }
}

/// routerGradToken per token, ds accumulated in the dlogits row.
__global__ void routerGradKernel(const float *logits, const int32_t *indices, const float *dweights,
                                 int64_t tokens, int64_t experts, int64_t topK, bool softmax,
                                 bool norm, float scaling, float *dlogits) {
  for (int64_t t = globalThread(); t < tokens; t += gridThreads()) {
    const int32_t *idx = indices + t * topK;
    const float *dw = dweights + t * topK;
    bool ok = true;
    for (int64_t j = 0; j < topK; ++j)
      if (idx[j] < 0 || idx[j] >= experts) {
        KILN_DEVICE_ERROR(kBadRouting, t * topK + j);
        ok = false;
      }
    if (!ok)
      continue;
    const moe::ScoreRow s(logits + t * experts, experts, softmax);
    float sum = 1e-20f, dot = 0.0f;
    for (int64_t j = 0; j < topK; ++j) {
      sum += s(idx[j]);
      dot += dw[j] * s(idx[j]);
    }
    float *ds = dlogits + t * experts;
    for (int64_t e = 0; e < experts; ++e)
      ds[e] = 0.0f;
    for (int64_t l = 0; l < topK; ++l)
      ds[idx[l]] += norm ? scaling * (dw[l] / sum - dot / (sum * sum)) : scaling * dw[l];
    moe::scoresBackwardInPlace(s, experts, ds);
  }
}

/// Thread per (group, expert): the expert's pairs of the group in order, the
/// first `capacity` kept; the expert-0 thread also drops bad indices.
__global__ void expertCapacityKernel(const int32_t *indices, int64_t groups, int64_t groupPairs,
                                     int64_t experts, int64_t capacity, int32_t *kept) {
  for (int64_t i = globalThread(); i < groups * experts; i += gridThreads()) {
    const int64_t g = i / experts, e = i % experts;
    int64_t taken = 0;
    for (int64_t p = g * groupPairs; p < (g + 1) * groupPairs; ++p) {
      if (indices[p] == e)
        kept[p] = taken++ < capacity ? int32_t(e) : -1;
      else if (e == 0 && (indices[p] < 0 || indices[p] >= experts)) {
        KILN_DEVICE_ERROR(kBadRouting, p);
        kept[p] = -1;
      }
    }
  }
}

/// Thread per expert: count of the expert among indices (-1 counts for none).
__global__ void expertLoadKernel(const int32_t *indices, int64_t count, int64_t experts,
                                 float *load) {
  for (int64_t e = globalThread(); e < experts; e += gridThreads()) {
    int64_t n = 0;
    for (int64_t i = 0; i < count; ++i) {
      n += indices[i] == e;
      if (e == 0 && (indices[i] < -1 || indices[i] >= experts))
        KILN_DEVICE_ERROR(kBadRouting, i);
    }
    load[e] = float(n);
  }
}

#if KILN_CUDA_DEVICE
/// GPU: block per expert, an integer sum (the same count in any order).
__global__ void expertLoadBlockKernel(const int32_t *indices, int64_t count, int64_t experts,
                                      float *load) {
  __shared__ long long shared[32];
  for (int64_t e = blockIdx.x; e < experts; e += gridDim.x) {
    long long n = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      n += indices[i] == e;
      if (e == 0 && (indices[i] < -1 || indices[i] >= experts))
        KILN_DEVICE_ERROR(kBadRouting, i);
    }
    n = blockSum(n, shared);
    if (threadIdx.x == 0)
      load[e] = float(n);
  }
}
#endif

//===----------------------------------------------------------------------===//
// Kernels: dispatch (a stable counting sort in chunks of `chunk` pairs)
//===----------------------------------------------------------------------===//

/// Thread per (chunk c, bucket b): the bucket's pairs in the chunk; into
/// offsets[b] with one chunk, else counts[c * buckets + b]. The dropped
/// bucket's threads report bad indices.
__global__ void dispatchCountKernel(const int32_t *indices, int64_t pairs, int64_t experts,
                                    int64_t chunk, int64_t chunks, int32_t *counts,
                                    int32_t *offsets) {
  const int64_t buckets = experts + 1;
  for (int64_t i = globalThread(); i < chunks * buckets; i += gridThreads()) {
    const int64_t c = i / buckets, b = i % buckets;
    const int64_t end = (c + 1) * chunk < pairs ? (c + 1) * chunk : pairs;
    int32_t n = 0;
    for (int64_t p = c * chunk; p < end; ++p) {
      n += moe::dispatchBucket(indices[p], experts) == b;
      if (b == experts && indices[p] != -1 && (indices[p] < 0 || indices[p] >= experts))
        KILN_DEVICE_ERROR(kBadRouting, p);
    }
    (chunks == 1 ? offsets[b] : counts[c * buckets + b]) = n;
  }
}

/// Thread per bucket: its chunk counts become exclusive prefixes (the
/// bucket's rows before chunk c), its total goes to offsets[b].
__global__ void dispatchChunkPrefixKernel(int64_t buckets, int64_t chunks, int32_t *counts,
                                          int32_t *offsets) {
  for (int64_t b = globalThread(); b < buckets; b += gridThreads()) {
    int32_t run = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const int32_t n = counts[c * buckets + b];
      counts[c * buckets + b] = run;
      run += n;
    }
    offsets[b] = run;
  }
}

/// One thread: bucket totals -> bucket starts (offsets[experts] is where the
/// dropped pairs start).
__global__ void dispatchOffsetsKernel(int64_t buckets, int32_t *offsets) {
  if (globalThread() != 0)
    return;
  int32_t run = 0;
  for (int64_t b = 0; b < buckets; ++b) {
    const int32_t n = offsets[b];
    offsets[b] = run;
    run += n;
  }
}

/// Thread per (chunk, bucket): source[] of the bucket's pairs in the chunk,
/// in increasing pair order.
__global__ void dispatchPlaceKernel(const int32_t *indices, int64_t pairs, int64_t experts,
                                    int64_t chunk, int64_t chunks, const int32_t *counts,
                                    const int32_t *offsets, int32_t *source) {
  const int64_t buckets = experts + 1;
  for (int64_t i = globalThread(); i < chunks * buckets; i += gridThreads()) {
    const int64_t c = i / buckets, b = i % buckets;
    const int64_t end = (c + 1) * chunk < pairs ? (c + 1) * chunk : pairs;
    int64_t next = int64_t(offsets[b]) + (chunks == 1 ? 0 : counts[c * buckets + b]);
    for (int64_t p = c * chunk; p < end; ++p)
      if (moe::dispatchBucket(indices[p], experts) == b)
        source[next++] = int32_t(p);
  }
}

/// Element per thread: rows[r] = x[source[r] / topK].
__global__ void dispatchGatherKernel(const float *x, const int32_t *source, int64_t pairs,
                                     int64_t hidden, int64_t topK, float *rows) {
  for (int64_t i = globalThread(); i < pairs * hidden; i += gridThreads()) {
    const int64_t r = i / hidden, h = i % hidden;
    rows[i] = x[int64_t(source[r]) / topK * hidden + h];
  }
}

//===----------------------------------------------------------------------===//
// Kernels: combine and dispatch_grad (out[t] = sum of w(r) rows[r] over the
// rows of token t, in increasing r; w = weights[source[r]] or 1)
//===----------------------------------------------------------------------===//

__global__ void combineSlotsClearKernel(float *out, int64_t tokens, int64_t topK, int64_t hidden) {
  for (int64_t i = globalThread(); i < tokens * topK; i += gridThreads())
    moe::tokenSlots(out, i / topK, hidden)[i % topK] = -1;
}

/// Thread per row: slot (p / topK, p % topK) = r for p = source[r].
__global__ void combineSlotsScatterKernel(const int32_t *source, int64_t pairs, int64_t topK,
                                          int64_t hidden, float *out) {
  for (int64_t r = globalThread(); r < pairs; r += gridThreads()) {
    const int32_t p = source[r];
    if (p < 0 || p >= pairs) {
      KILN_DEVICE_ERROR(kBadSource, r);
      continue;
    }
    moe::tokenSlots(out, p / topK, hidden)[p % topK] = int32_t(r);
  }
}

/// Thread per token: its slots sorted into increasing row order, pairs that
/// no row named reported and moved last.
__global__ void combineSlotsSortKernel(int64_t tokens, int64_t topK, int64_t hidden, float *out) {
  for (int64_t t = globalThread(); t < tokens; t += gridThreads()) {
    int32_t *slot = moe::tokenSlots(out, t, hidden);
    for (int64_t k = 0; k < topK; ++k)
      if (slot[k] < 0) {
        KILN_DEVICE_ERROR(kSourceNotPermutation, t * topK + k);
        slot[k] = moe::kNoRow;
      }
    for (int64_t k = 1; k < topK; ++k) {
      const int32_t r = slot[k];
      int64_t j = k;
      for (; j > 0 && slot[j - 1] > r; --j)
        slot[j] = slot[j - 1];
      slot[j] = r;
    }
  }
}

/// Element per thread for h >= topK (the slots stay): the host's sum.
__global__ void combineBodyKernel(const float *rows, const float *weights, const int32_t *source,
                                  int64_t tokens, int64_t topK, int64_t hidden, float *out) {
  const int64_t body = hidden - topK;
  for (int64_t i = globalThread(); i < tokens * body; i += gridThreads()) {
    const int64_t t = i / body, h = topK + i % body;
    const int32_t *slot = moe::tokenSlots(out, t, hidden);
    float y = 0.0f;
    for (int64_t k = 0; k < topK && slot[k] != moe::kNoRow; ++k) {
      const float w = weights ? weights[source[slot[k]]] : 1.0f;
      y += w * rows[int64_t(slot[k]) * hidden + h];
    }
    out[t * hidden + h] = y;
  }
}

/// Thread per token for h < topK: the slots read into registers first.
__global__ void combineHeadKernel(const float *rows, const float *weights, const int32_t *source,
                                  int64_t tokens, int64_t topK, int64_t hidden, float *out) {
  for (int64_t t = globalThread(); t < tokens; t += gridThreads()) {
    int32_t slot[kCombineMaxTopK];
    int64_t n = 0;
    for (; n < topK && moe::tokenSlots(out, t, hidden)[n] != moe::kNoRow; ++n)
      slot[n] = moe::tokenSlots(out, t, hidden)[n];
    for (int64_t h = 0; h < topK; ++h) {
      float y = 0.0f;
      for (int64_t k = 0; k < n; ++k) {
        const float w = weights ? weights[source[slot[k]]] : 1.0f;
        y += w * rows[int64_t(slot[k]) * hidden + h];
      }
      out[t * hidden + h] = y;
    }
  }
}

/// Fallback (hidden < topK or topK > kCombineMaxTopK): thread per token
/// scanning every row, exactly the host's sum for any source.
__global__ void combineScanKernel(const float *rows, const float *weights, const int32_t *source,
                                  int64_t tokens, int64_t topK, int64_t hidden, float *out) {
  const int64_t pairs = tokens * topK;
  for (int64_t t = globalThread(); t < tokens; t += gridThreads()) {
    float *y = out + t * hidden;
    for (int64_t h = 0; h < hidden; ++h)
      y[h] = 0.0f;
    for (int64_t r = 0; r < pairs; ++r) {
      const int32_t p = source[r];
      if (p < 0 || p >= pairs) {
        if (t == 0)
          KILN_DEVICE_ERROR(kBadSource, r);
        continue;
      }
      if (p / topK != t)
        continue;
      const float w = weights ? weights[p] : 1.0f;
      for (int64_t h = 0; h < hidden; ++h)
        y[h] += w * rows[r * hidden + h];
    }
  }
}

//===----------------------------------------------------------------------===//
// Kernels: combine_grad
//===----------------------------------------------------------------------===//

/// Element per thread: drows[r] = weights[p] dy[p / topK], p = source[r].
__global__ void combineGradRowsKernel(const float *weights, const int32_t *source, const float *dy,
                                      int64_t pairs, int64_t topK, int64_t hidden, float *drows) {
  for (int64_t i = globalThread(); i < pairs * hidden; i += gridThreads()) {
    const int64_t r = i / hidden, h = i % hidden;
    const int32_t p = source[r];
    if (p < 0 || p >= pairs) {
      if (h == 0)
        KILN_DEVICE_ERROR(kBadSource, r);
      continue;
    }
    drows[i] = weights[p] * dy[int64_t(p) / topK * hidden + h];
  }
}

/// dweights as int32 slots: -1, then the row of each pair.
__global__ void combineGradSlotsKernel(const int32_t *source, int64_t pairs, bool clear,
                                       float *dweights) {
  int32_t *slot = reinterpret_cast<int32_t *>(dweights);
  for (int64_t r = globalThread(); r < pairs; r += gridThreads()) {
    if (clear)
      slot[r] = -1;
    else if (source[r] >= 0 && source[r] < pairs)
      slot[source[r]] = int32_t(r);
  }
}

/// Thread per pair: 0 + the dot of its row with dy of its token (the host's
/// acc over the one row a permutation gives it), in hidden order.
__global__ void combineGradWeightsKernel(const float *rows, const float *dy, int64_t pairs,
                                         int64_t topK, int64_t hidden, float *dweights) {
  for (int64_t p = globalThread(); p < pairs; p += gridThreads()) {
    const int32_t r = reinterpret_cast<const int32_t *>(dweights)[p];
    if (r < 0) {
      KILN_DEVICE_ERROR(kSourceNotPermutation, p);
      dweights[p] = 0.0f;
      continue;
    }
    const float *row = rows + int64_t(r) * hidden, *g = dy + p / topK * hidden;
    float dot = 0.0f;
    for (int64_t h = 0; h < hidden; ++h)
      dot += row[h] * g[h];
    float acc = 0.0f;
    acc += dot;
    dweights[p] = acc;
  }
}

#if KILN_CUDA_DEVICE
/// GPU: warp per pair, lanes striding hidden, a fixed shuffle tree.
__global__ void combineGradWeightsWarpKernel(const float *rows, const float *dy, int64_t pairs,
                                             int64_t topK, int64_t hidden, float *dweights) {
  const int lane = threadIdx.x % 32;
  for (int64_t p = globalThread() / 32; p < pairs; p += gridThreads() / 32) {
    const int32_t r = reinterpret_cast<const int32_t *>(dweights)[p];
    __syncwarp();
    if (r < 0) {
      if (lane == 0) {
        KILN_DEVICE_ERROR(kSourceNotPermutation, p);
        dweights[p] = 0.0f;
      }
      continue;
    }
    const float *row = rows + int64_t(r) * hidden, *g = dy + p / topK * hidden;
    float dot = 0.0f;
    for (int64_t h = lane; h < hidden; h += 32)
      dot += row[h] * g[h];
    for (int offset = 16; offset > 0; offset /= 2)
      dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    if (lane == 0)
      dweights[p] = 0.0f + dot;
  }
}
#endif

//===----------------------------------------------------------------------===//
// Kernels: sequence-wise balance loss
//===----------------------------------------------------------------------===//

/// f[e] of one sequence: N / (K T) times the count of e among its pairs.
__device__ inline float balanceFraction(const int32_t *seqIndices, int64_t seqPairs, int64_t e,
                                        float scale) {
  int64_t n = 0;
  for (int64_t i = 0; i < seqPairs; ++i)
    n += seqIndices[i] == e;
  return float(n) * scale;
}

/// One thread, the host's order throughout; f is recounted at each use (a
/// scalar output leaves nowhere to keep it), so this is the CPU shim's
/// kernel: the GPU runs balanceLossBlockKernel.
__global__ void balanceLossKernel(const float *logits, const int32_t *indices, int64_t tokens,
                                  int64_t experts, int64_t topK, int64_t seqLen, bool softmax,
                                  float scale, int64_t sequences, float *loss) {
  if (globalThread() != 0)
    return;
  for (int64_t i = 0; i < tokens * topK; ++i)
    if (indices[i] < 0 || indices[i] >= experts)
      KILN_DEVICE_ERROR(kBadRouting, i);
  float sum = 0.0f;
  for (int64_t seq = 0; seq < tokens / seqLen; ++seq) {
    const int32_t *seqIndices = indices + seq * seqLen * topK;
    float acc = 0.0f;
    for (int64_t t = seq * seqLen; t < (seq + 1) * seqLen; ++t) {
      const moe::ScoreRow s(logits + t * experts, experts, softmax);
      float z = 0.0f, term = 0.0f;
      for (int64_t e = 0; e < experts; ++e)
        z += s(e);
      for (int64_t e = 0; e < experts; ++e)
        term += balanceFraction(seqIndices, seqLen * topK, e, scale) * (s(e) / z);
      acc += term;
    }
    sum += acc / float(seqLen);
  }
  *loss = sum / float(sequences);
}

#if KILN_CUDA_DEVICE
/// GPU: one block; per sequence the counts (integer shared atomics: exact)
/// and f in shared memory, the token terms summed by a fixed tree.
__global__ void balanceLossBlockKernel(const float *logits, const int32_t *indices, int64_t tokens,
                                       int64_t experts, int64_t topK, int64_t seqLen, bool softmax,
                                       float scale, int64_t sequences, float *loss) {
  extern __shared__ float f[]; // [experts], then int counts [experts]
  __shared__ float sums[32];
  int *counts = reinterpret_cast<int *>(f + experts);
  float sum = 0.0f;
  for (int64_t seq = 0; seq < tokens / seqLen; ++seq) {
    for (int64_t e = threadIdx.x; e < experts; e += blockDim.x)
      counts[e] = 0;
    __syncthreads();
    for (int64_t i = seq * seqLen * topK + threadIdx.x; i < (seq + 1) * seqLen * topK;
         i += blockDim.x) {
      if (indices[i] < 0 || indices[i] >= experts)
        KILN_DEVICE_ERROR(kBadRouting, i);
      else
        atomicAdd(&counts[indices[i]], 1);
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < experts; e += blockDim.x)
      f[e] = float(counts[e]) * scale;
    __syncthreads();
    float partial = 0.0f;
    for (int64_t t = seq * seqLen + threadIdx.x; t < (seq + 1) * seqLen; t += blockDim.x) {
      const moe::ScoreRow s(logits + t * experts, experts, softmax);
      float z = 0.0f, term = 0.0f;
      for (int64_t e = 0; e < experts; ++e)
        z += s(e);
      for (int64_t e = 0; e < experts; ++e)
        term += f[e] * (s(e) / z);
      partial += term;
    }
    const float acc = blockSum(partial, sums);
    sum += acc / float(seqLen);
  }
  if (threadIdx.x == 0)
    *loss = sum / float(sequences);
}
#endif

/// Thread per (sequence, expert): f into the sequence's first dlogits row
/// (its holder, computed last); expert 0's threads report bad indices.
__global__ void balanceFractionsKernel(const int32_t *indices, int64_t tokens, int64_t experts,
                                       int64_t topK, int64_t seqLen, float scale, float *dlogits) {
  for (int64_t i = globalThread(); i < tokens / seqLen * experts; i += gridThreads()) {
    const int64_t seq = i / experts, e = i % experts;
    const int32_t *seqIndices = indices + seq * seqLen * topK;
    if (e == 0)
      for (int64_t j = 0; j < seqLen * topK; ++j)
        if (seqIndices[j] < 0 || seqIndices[j] >= experts)
          KILN_DEVICE_ERROR(kBadRouting, seq * seqLen * topK + j);
    dlogits[seq * seqLen * experts + e] = balanceFraction(seqIndices, seqLen * topK, e, scale);
  }
}

/// Thread per token (holders = false: every token but each sequence's first)
/// or per sequence (holders = true: the first tokens, in place over f).
/// q = dloss / (sequences * T), dloss read on the device when dlossDevice.
__global__ void balanceLossGradKernel(const float *logits, const float *dlossDevice, float dloss,
                                      int64_t tokens, int64_t experts, int64_t seqLen,
                                      int64_t sequences, bool softmax, bool holders,
                                      float *dlogits) {
  const float d = dlossDevice ? *dlossDevice : dloss;
  const float q = float(double(d) / double(sequences * seqLen));
  const int64_t n = holders ? tokens / seqLen : tokens;
  for (int64_t i = globalThread(); i < n; i += gridThreads()) {
    const int64_t t = holders ? i * seqLen : i;
    if (!holders && t % seqLen == 0)
      continue;
    moe::balanceGradRow(logits + t * experts, dlogits + (t - t % seqLen) * experts, experts,
                        softmax, q, dlogits + t * experts);
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// Threads per block of the kernels with a long loop per thread (a token, an
/// expert): small blocks spread a few thousand threads over every SM.
constexpr int kMoERowBlock = 64;

namespace moe {

inline bool fail(std::string *error, const std::string &message) {
  if (error)
    *error = message;
  return false;
}

/// MoE.cpp's checkPositive, same messages.
inline bool checkPositive(std::string *error, const char *op,
                          std::initializer_list<std::pair<const char *, int64_t>> sizes) {
  for (auto [name, value] : sizes)
    if (value < 1)
      return fail(error,
                  std::string(op) + ": " + name + " must be >= 1, got " + std::to_string(value));
  return true;
}

/// dispatch_grad and combine (weights null: dispatch_grad).
inline bool sumRowsIntoTokens(cudaStream_t stream, const char *kernel, const float *rows,
                              const float *weights, const int32_t *source, int64_t tokens,
                              int64_t topK, int64_t hidden, float *out, std::string *error) {
  if (!checkPositive(error, kernel, {{"tokens", tokens}, {"top_k", topK}, {"hidden", hidden}}))
    return false;
  const int64_t pairs = tokens * topK;
  if (topK > kCombineMaxTopK || hidden < topK) {
    KILN_LAUNCH(combineScanKernel, blocksFor(tokens, kMoERowBlock), kMoERowBlock, 0, stream, rows,
                weights, source, tokens, topK, hidden, out);
    return true;
  }
  KILN_LAUNCH(combineSlotsClearKernel, blocksFor(pairs), kBlock, 0, stream, out, tokens, topK,
              hidden);
  KILN_LAUNCH(combineSlotsScatterKernel, blocksFor(pairs), kBlock, 0, stream, source, pairs, topK,
              hidden, out);
  KILN_LAUNCH(combineSlotsSortKernel, blocksFor(tokens), kBlock, 0, stream, tokens, topK, hidden,
              out);
  if (hidden > topK)
    KILN_LAUNCH(combineBodyKernel, blocksFor(tokens * (hidden - topK)), kBlock, 0, stream, rows,
                weights, source, tokens, topK, hidden, out);
  KILN_LAUNCH(combineHeadKernel, blocksFor(tokens, kMoERowBlock), kMoERowBlock, 0, stream, rows,
              weights, source, tokens, topK, hidden, out);
  return true;
}

} // namespace moe

inline bool router(cudaStream_t stream, const float *logits, const float *bias, int64_t tokens,
                   int64_t experts, const kernels::RouterConfig &c, int32_t *indices,
                   float *weights, std::string *error = nullptr) {
  if (!moe::checkPositive(error, "router",
                          {{"tokens", tokens},
                           {"experts", experts},
                           {"n_group", c.nGroup},
                           {"topk_group", c.topkGroup},
                           {"top_k", c.topK}}))
    return false;
  if (experts % c.nGroup != 0 || c.topkGroup > c.nGroup)
    return moe::fail(error, "router: expects n_group dividing " + std::to_string(experts) +
                                " experts and topk_group <= n_group, got n_group " +
                                std::to_string(c.nGroup) + ", topk_group " +
                                std::to_string(c.topkGroup));
  const int64_t eligible = c.nGroup > 1 ? c.topkGroup * (experts / c.nGroup) : experts;
  if (c.topK > eligible)
    return moe::fail(error, "router: top_k " + std::to_string(c.topK) + " exceeds the " +
                                std::to_string(eligible) + " experts of the kept groups");
  if (c.nGroup > kRouterMaxGroups)
    return moe::fail(error, "router: the CUDA router keeps groups as a 64-bit mask, got n_group " +
                                std::to_string(c.nGroup));
  KILN_LAUNCH(routerKernel, blocksFor(tokens, kMoERowBlock), kMoERowBlock, 0, stream, logits, bias,
              tokens, experts, c.softmax, c.top2Sum, c.nGroup, c.topkGroup, c.topK, c.normTopkProb,
              c.routedScalingFactor, indices, weights);
  return true;
}

inline bool routerGrad(cudaStream_t stream, const float *logits, const int32_t *indices,
                       const float *dweights, int64_t tokens, int64_t experts, int64_t topK,
                       bool softmax, bool normTopkProb, float routedScalingFactor, float *dlogits,
                       std::string *error = nullptr) {
  if (!moe::checkPositive(error, "router_grad",
                          {{"tokens", tokens}, {"experts", experts}, {"top_k", topK}}))
    return false;
  KILN_LAUNCH(routerGradKernel, blocksFor(tokens, kMoERowBlock), kMoERowBlock, 0, stream, logits,
              indices, dweights, tokens, experts, topK, softmax, normTopkProb, routedScalingFactor,
              dlogits);
  return true;
}

inline bool expertCapacity(cudaStream_t stream, const int32_t *indices, int64_t tokens,
                           int64_t topK, int64_t experts, int64_t groupTokens, int64_t capacity,
                           int32_t *kept, std::string *error = nullptr) {
  if (!moe::checkPositive(error, "expert_capacity",
                          {{"tokens", tokens},
                           {"top_k", topK},
                           {"num_experts", experts},
                           {"group_tokens", groupTokens},
                           {"capacity", capacity}}))
    return false;
  if (tokens % groupTokens != 0)
    return moe::fail(error, "expert_capacity: group_tokens " + std::to_string(groupTokens) +
                                " does not divide the " + std::to_string(tokens) + " tokens");
  const int64_t groups = tokens / groupTokens;
  KILN_LAUNCH(expertCapacityKernel, blocksFor(groups * experts, kMoERowBlock), kMoERowBlock, 0,
              stream, indices, groups, groupTokens * topK, experts, capacity, kept);
  return true;
}

inline bool expertLoad(cudaStream_t stream, const int32_t *indices, int64_t count, int64_t experts,
                       float *load, std::string *error = nullptr) {
  if (!moe::checkPositive(error, "expert_load", {{"experts", experts}}))
    return false;
#if KILN_CUDA_DEVICE
  KILN_LAUNCH(expertLoadBlockKernel, blocksFor(experts, 1), kBlock, 0, stream, indices, count,
              experts, load);
#else
  KILN_LAUNCH(expertLoadKernel, blocksFor(experts, kMoERowBlock), kMoERowBlock, 0, stream, indices,
              count, experts, load);
#endif
  return true;
}

/// Positions on the device: per-chunk counts (kept in `rows` until the
/// gather overwrites it; chunk >= 2 buckets makes them fit in `pairs`
/// int32), prefixes, placement, gather. No host sync.
inline bool dispatch(cudaStream_t stream, const float *x, const int32_t *indices, int64_t tokens,
                     int64_t hidden, int64_t topK, int64_t experts, float *rows, int32_t *offsets,
                     int32_t *source, std::string *error = nullptr) {
  if (!moe::checkPositive(
          error, "dispatch",
          {{"tokens", tokens}, {"hidden", hidden}, {"top_k", topK}, {"num_experts", experts}}))
    return false;
  const int64_t pairs = tokens * topK, buckets = experts + 1;
  KILN_LAUNCH_CHECK(pairs <= 0x7fffffff, "expects at most 2^31 - 1 pairs, got %lld",
                    (long long)pairs);
  const int64_t chunk = 2 * buckets > 1024 ? 2 * buckets : 1024;
  const int64_t chunks = (pairs + chunk - 1) / chunk;
  int32_t *counts = reinterpret_cast<int32_t *>(rows);
  KILN_LAUNCH(dispatchCountKernel, blocksFor(chunks * buckets), kBlock, 0, stream, indices, pairs,
              experts, chunk, chunks, counts, offsets);
  if (chunks > 1)
    KILN_LAUNCH(dispatchChunkPrefixKernel, blocksFor(buckets, kMoERowBlock), kMoERowBlock, 0,
                stream, buckets, chunks, counts, offsets);
  KILN_LAUNCH(dispatchOffsetsKernel, 1, 1, 0, stream, buckets, offsets);
  KILN_LAUNCH(dispatchPlaceKernel, blocksFor(chunks * buckets), kBlock, 0, stream, indices, pairs,
              experts, chunk, chunks, counts, offsets, source);
  KILN_LAUNCH(dispatchGatherKernel, blocksFor(pairs * hidden), kBlock, 0, stream, x, source, pairs,
              hidden, topK, rows);
  return true;
}

inline bool dispatchGrad(cudaStream_t stream, const float *drows, const int32_t *source,
                         int64_t tokens, int64_t topK, int64_t hidden, float *dx,
                         std::string *error = nullptr) {
  return moe::sumRowsIntoTokens(stream, "dispatch_grad", drows, nullptr, source, tokens, topK,
                                hidden, dx, error);
}

inline bool combine(cudaStream_t stream, const float *rows, const float *weights,
                    const int32_t *source, int64_t tokens, int64_t topK, int64_t hidden, float *out,
                    std::string *error = nullptr) {
  return moe::sumRowsIntoTokens(stream, "combine", rows, weights, source, tokens, topK, hidden, out,
                                error);
}

inline bool combineGrad(cudaStream_t stream, const float *rows, const float *weights,
                        const int32_t *source, const float *dy, int64_t tokens, int64_t topK,
                        int64_t hidden, float *drows, float *dweights,
                        std::string *error = nullptr) {
  if (!moe::checkPositive(error, "combine_grad",
                          {{"tokens", tokens}, {"top_k", topK}, {"hidden", hidden}}))
    return false;
  const int64_t pairs = tokens * topK;
  KILN_LAUNCH(combineGradRowsKernel, blocksFor(pairs * hidden), kBlock, 0, stream, weights, source,
              dy, pairs, topK, hidden, drows);
  KILN_LAUNCH(combineGradSlotsKernel, blocksFor(pairs), kBlock, 0, stream, source, pairs, true,
              dweights);
  KILN_LAUNCH(combineGradSlotsKernel, blocksFor(pairs), kBlock, 0, stream, source, pairs, false,
              dweights);
#if KILN_CUDA_DEVICE
  KILN_LAUNCH(combineGradWeightsWarpKernel, blocksFor(pairs * 32), kBlock, 0, stream, rows, dy,
              pairs, topK, hidden, dweights);
#else
  KILN_LAUNCH(combineGradWeightsKernel, blocksFor(pairs), kBlock, 0, stream, rows, dy, pairs, topK,
              hidden, dweights);
#endif
  return true;
}

namespace moe {

/// balance_loss[_grad]'s checks (MoE.cpp's selectionFractions, sizes only).
inline bool checkBalance(std::string *error, const char *op, int64_t tokens, int64_t experts,
                         int64_t topK, int64_t numSequences) {
  if (!checkPositive(error, op,
                     {{"tokens", tokens},
                      {"experts", experts},
                      {"top_k", topK},
                      {"num_sequences", numSequences}}))
    return false;
  if (tokens % numSequences != 0)
    return fail(error, std::string(op) + ": " + std::to_string(tokens) +
                           " tokens do not split into " + std::to_string(numSequences) +
                           " sequences");
  return true;
}

inline void balanceLossGradLaunch(cudaStream_t stream, const float *logits, const int32_t *indices,
                                  const float *dlossDevice, float dloss, int64_t tokens,
                                  int64_t experts, int64_t topK, int64_t numSequences, bool softmax,
                                  float *dlogits, int64_t totalSequences) {
  const int64_t seqLen = tokens / numSequences;
  const int64_t sequences = totalSequences > 0 ? totalSequences : numSequences;
  const float scale = float(double(experts) / double(topK * seqLen));
  KILN_LAUNCH(balanceFractionsKernel, blocksFor(numSequences * experts, kMoERowBlock), kMoERowBlock,
              0, stream, indices, tokens, experts, topK, seqLen, scale, dlogits);
  KILN_LAUNCH(balanceLossGradKernel, blocksFor(tokens, kMoERowBlock), kMoERowBlock, 0, stream,
              logits, dlossDevice, dloss, tokens, experts, seqLen, sequences, softmax, false,
              dlogits);
  KILN_LAUNCH(balanceLossGradKernel, blocksFor(numSequences, kMoERowBlock), kMoERowBlock, 0, stream,
              logits, dlossDevice, dloss, tokens, experts, seqLen, sequences, softmax, true,
              dlogits);
}

} // namespace moe

inline bool balanceLoss(cudaStream_t stream, const float *logits, const int32_t *indices,
                        int64_t tokens, int64_t experts, int64_t topK, int64_t numSequences,
                        bool softmax, float *loss, std::string *error = nullptr,
                        int64_t totalSequences = 0) {
  if (!moe::checkBalance(error, "balance_loss", tokens, experts, topK, numSequences))
    return false;
  const int64_t seqLen = tokens / numSequences;
  const int64_t sequences = totalSequences > 0 ? totalSequences : numSequences;
  const float scale = float(double(experts) / double(topK * seqLen));
#if KILN_CUDA_DEVICE
  if (experts <= 6144) { // f and the counts within the default 48 KiB
    KILN_LAUNCH(balanceLossBlockKernel, 1, 1024, size_t(experts) * 8, stream, logits, indices,
                tokens, experts, topK, seqLen, softmax, scale, sequences, loss);
    return true;
  }
#endif
  KILN_LAUNCH(balanceLossKernel, 1, 1, 0, stream, logits, indices, tokens, experts, topK, seqLen,
              softmax, scale, sequences, loss);
  return true;
}

/// dloss by value, as the host takes it (a scalar the caller holds on the
/// host); the overload below reads it from device memory instead.
inline bool balanceLossGrad(cudaStream_t stream, const float *logits, const int32_t *indices,
                            float dloss, int64_t tokens, int64_t experts, int64_t topK,
                            int64_t numSequences, bool softmax, float *dlogits,
                            std::string *error = nullptr, int64_t totalSequences = 0) {
  if (!moe::checkBalance(error, "balance_loss_grad", tokens, experts, topK, numSequences))
    return false;
  moe::balanceLossGradLaunch(stream, logits, indices, nullptr, dloss, tokens, experts, topK,
                             numSequences, softmax, dlogits, totalSequences);
  return true;
}

/// dloss as a device scalar (the loss gradient an earlier kernel wrote).
inline bool balanceLossGrad(cudaStream_t stream, const float *logits, const int32_t *indices,
                            const float *dloss, int64_t tokens, int64_t experts, int64_t topK,
                            int64_t numSequences, bool softmax, float *dlogits,
                            std::string *error = nullptr, int64_t totalSequences = 0) {
  if (!moe::checkBalance(error, "balance_loss_grad", tokens, experts, topK, numSequences))
    return false;
  moe::balanceLossGradLaunch(stream, logits, indices, dloss, 0.0f, tokens, experts, topK,
                             numSequences, softmax, dlogits, totalSequences);
  return true;
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_MOE_CUH
