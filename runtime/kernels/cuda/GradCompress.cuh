//===- GradCompress.cuh - CUDA kernels of top-k gradient compression ------===//
//
// The CUDA twins of runtime/kernels/GradCompress.h (kiln.topk_compress /
// kiln.topk_decompress; GradCompressMath.h defines the message format and
// the math). Same names, the host's parameters after a stream, the host's
// bool and messages for its size checks; a message index outside [0, n) is
// a KILN_DEVICE_ERROR (index: the rank), the entry skipped.
//
// topk_compress, deterministically and as the host selects: keys are the
// bits of |acc| (NaN as +inf; for non-negative floats the bit order is the
// value order), K is the k-th largest key, and the kept elements are those
// above K plus the lowest-indexed ones equal to K: exactly nth_element's
// set under the host's order (larger magnitude first, ties to the lower
// index), written in increasing index order.
//   - acc = grad + residual is formed once, into newResidual when it is
//     given (it may be `residual`: in place), so every kernel reads the same
//     float; the kept elements then get acc - sent, the others keep acc.
//   - The selection: on the CPU shim one thread (K found bit by bit, 32
//     counting passes, then a walk in index order: the reference kernel);
//     on the GPU one block (a radix select over 4 digits of 8 bits with
//     integer shared-memory histograms, then a compaction by block scans in
//     index order). Both give the host's message bit for bit; one block is
//     the cost of having no workspace (a grid-wide select needs somewhere
//     to put its partial counts) and suits tensors up to a few 10^7.
//   - Quantization and the residual: a thread per kept element.
// topk_decompress: the ranks' messages added in rank order, one launch per
// rank, a thread per entry (the indices of a message increase, so no two
// threads of a launch share an element): the host's sums bit for bit. An
// index that does not increase is reported (kTopkIndicesNotIncreasing) and
// skipped, where the host would add it: no valid message has one.
// Messages are read and written byte by byte (a rank's message starts at
// rank * (4 + 5k) bytes, not always 4-aligned).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_GRADCOMPRESS_CUH
#define KILN_RUNTIME_KERNELS_CUDA_GRADCOMPRESS_CUH

#include "runtime/kernels/GradCompressMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cfloat>
#include <cstring>
#include <string>

namespace kiln::cuda {

/// A message index outside [0, n) (index: the rank).
constexpr int32_t kBadTopkIndex = 307;
/// A message index not above the one before it (index: the rank).
constexpr int32_t kTopkIndicesNotIncreasing = 308;

namespace topk {

__device__ __forceinline__ uint32_t load4(const unsigned char *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
__device__ __forceinline__ void store4(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}
__device__ __forceinline__ uint32_t bitsOf(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
__device__ __forceinline__ float floatOf(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/// acc(i): a[i] + b[i], or a[i] where acc was formed into `a` (b null).
__device__ __forceinline__ float accAt(const float *a, const float *b, int64_t i) {
  return b ? a[i] + b[i] : a[i];
}
/// The selection key: |acc| with NaN as +inf, as bits.
__device__ __forceinline__ uint32_t keyOf(float acc) {
  const float m = fabsf(acc);
  return bitsOf(m != m ? INFINITY : m);
}

} // namespace topk

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

__global__ void topkAccKernel(const float *grad, const float *residual, int64_t n, float *acc) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    acc[i] = grad[i] + residual[i];
}

/// Reference order, one thread: K bit by bit, then the walk in index order
/// writing the indices (and the int8 scale: max over the kept, exact).
__global__ void topkSelectKernel(const float *a, const float *b, int64_t n, int64_t k, bool int8,
                                 unsigned char *message) {
  if (globalThread() != 0)
    return;
  uint32_t kth = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t candidate = kth | (1u << bit);
    int64_t atLeast = 0;
    for (int64_t i = 0; i < n; ++i)
      atLeast += topk::keyOf(topk::accAt(a, b, i)) >= candidate;
    if (atLeast >= k)
      kth = candidate;
  }
  int64_t equal = k;
  for (int64_t i = 0; i < n; ++i)
    equal -= topk::keyOf(topk::accAt(a, b, i)) > kth;
  unsigned char *indices = message + (int8 ? 4 : 0);
  float amax = 0.0f;
  bool finite = true;
  for (int64_t i = 0, j = 0; i < n && j < k; ++i) {
    const float acc = topk::accAt(a, b, i);
    const uint32_t key = topk::keyOf(acc);
    if (key > kth || (key == kth && equal-- > 0)) {
      topk::store4(indices + 4 * j++, uint32_t(int32_t(i)));
      const float v = fabsf(acc);
      finite = finite && v <= FLT_MAX;
      amax = v <= FLT_MAX ? (amax < v ? v : amax) : amax;
    }
  }
  if (int8)
    topk::store4(message, topk::bitsOf(finite ? amax / 127.0f : NAN));
}

#if KILN_CUDA_DEVICE
namespace topk {
/// Exclusive prefix of `v` over the block (blockDim.x a multiple of 32, at
/// most 1024), the block's total in `total`; `shared` holds 32 ints.
__device__ __forceinline__ int blockExclusiveScan(int v, int *shared, int &total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  int x = v;
  for (int o = 1; o < 32; o *= 2) {
    const int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o)
      x += y;
  }
  if (lane == 31)
    shared[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int w = lane < warps ? shared[lane] : 0;
    for (int o = 1; o < 32; o *= 2) {
      const int y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o)
        w += y;
    }
    if (lane < warps)
      shared[lane] = w;
  }
  __syncthreads();
  const int before = warp > 0 ? shared[warp - 1] : 0;
  total = shared[warps - 1];
  __syncthreads();
  return before + x - v;
}
} // namespace topk

/// GPU: one block. Radix select of K (8-bit digits, most significant
/// first, integer histograms), then the compaction in index order, a chunk
/// of blockDim elements at a time.
__global__ void topkSelectBlockKernel(const float *a, const float *b, int64_t n, int64_t k,
                                      bool int8, unsigned char *message) {
  __shared__ unsigned int hist[256];
  __shared__ int scan[32];
  __shared__ uint32_t prefixShared;
  __shared__ long long remainShared;
  __shared__ unsigned int amaxBits;
  uint32_t prefix = 0;
  long long remain = k; // still to take among the keys matching prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += blockDim.x)
      hist[d] = 0;
    __syncthreads();
    const uint32_t mask = shift == 24 ? 0u : 0xFFFFFFFFu << (shift + 8);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const uint32_t key = topk::keyOf(topk::accAt(a, b, i));
      if ((key & mask) == prefix)
        atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      long long above = 0;
      int d = 255;
      for (; d > 0 && above + hist[d] < remain; --d)
        above += hist[d];
      prefixShared = prefix | uint32_t(d) << shift;
      remainShared = remain - above;
    }
    __syncthreads();
    prefix = prefixShared;
    remain = remainShared;
  }
  const uint32_t kth = prefix;
  const long long equal = remain;
  unsigned char *indices = message + (int8 ? 4 : 0);
  float amax = 0.0f;
  bool finite = true;
  long long equalSeen = 0, written = 0;
  for (int64_t base = 0; base < n && written < k; base += blockDim.x) {
    const int64_t i = base + threadIdx.x;
    const float acc = i < n ? topk::accAt(a, b, i) : 0.0f;
    const uint32_t key = topk::keyOf(acc);
    const int eq = i < n && key == kth;
    int eqTotal, selTotal;
    const int eqRank = topk::blockExclusiveScan(eq, scan, eqTotal);
    const int sel = (i < n && key > kth) || (eq && equalSeen + eqRank < equal);
    const int slot = topk::blockExclusiveScan(sel, scan, selTotal);
    if (sel) {
      topk::store4(indices + 4 * (written + slot), uint32_t(int32_t(i)));
      const float v = fabsf(acc);
      finite = finite && v <= FLT_MAX;
      amax = v <= FLT_MAX ? (amax < v ? v : amax) : amax;
    }
    equalSeen += eqTotal;
    written += selTotal;
  }
  if (threadIdx.x == 0)
    amaxBits = 0;
  __syncthreads();
  atomicMax(&amaxBits, topk::bitsOf(amax)); // non-negative floats: bit order is value order
  finite = __syncthreads_and(finite);
  if (int8 && threadIdx.x == 0)
    topk::store4(message, topk::bitsOf(finite ? topk::floatOf(amaxBits) / 127.0f : NAN));
}
#endif

/// Thread per kept element: its value (int8: quantized with the scale the
/// select wrote), and newResidual = acc - sent there.
__global__ void topkQuantizeKernel(const float *a, const float *b, int64_t k, bool int8,
                                   unsigned char *message, float *newResidual) {
  const unsigned char *indices = message + (int8 ? 4 : 0);
  unsigned char *values = message + (int8 ? 4 + 4 * k : 4 * k);
  const float scale = int8 ? topk::floatOf(topk::load4(message)) : 1.0f;
  for (int64_t j = globalThread(); j < k; j += gridThreads()) {
    const int64_t i = int32_t(topk::load4(indices + 4 * j));
    const float acc = topk::accAt(a, b, i);
    float sent = acc;
    if (int8) {
      float q = scale > 0.0f ? nearbyintf(acc / scale) : 0.0f;
      q = -127.0f < q ? q : -127.0f; // std::max(-127.0f, q)
      q = q < 127.0f ? q : 127.0f;   // std::min(127.0f, q)
      values[j] = (unsigned char)int8_t(q);
      sent = q * scale;
    } else {
      topk::store4(values + 4 * j, topk::bitsOf(acc));
    }
    if (newResidual)
      newResidual[i] = acc - sent;
  }
}

__global__ void topkZeroKernel(int64_t n, float *out) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    out[i] = 0.0f;
}

/// Thread per entry of rank `rank`'s message: out[index] += value.
__global__ void topkDecompressAddKernel(const unsigned char *message, int64_t rank, int64_t n,
                                        int64_t k, bool int8, float *out) {
  const unsigned char *indices = message + (int8 ? 4 : 0);
  const unsigned char *values = message + (int8 ? 4 + 4 * k : 4 * k);
  const float scale = int8 ? topk::floatOf(topk::load4(message)) : 1.0f;
  for (int64_t j = globalThread(); j < k; j += gridThreads()) {
    const int32_t index = int32_t(topk::load4(indices + 4 * j));
    if (index < 0 || index >= n) {
      KILN_DEVICE_ERROR(kBadTopkIndex, rank);
      continue;
    }
    if (j > 0 && int32_t(topk::load4(indices + 4 * (j - 1))) >= index) {
      KILN_DEVICE_ERROR(kTopkIndicesNotIncreasing, rank);
      continue;
    }
    out[index] +=
        int8 ? float(int8_t(values[j])) * scale : topk::floatOf(topk::load4(values + 4 * j));
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

namespace topk {
/// GradCompress.cpp's checkSizes, same message.
inline bool checkSizes(const char *op, int64_t n, int64_t k, std::string *error) {
  if (n < 1 || k < 1 || k > n) {
    if (error)
      *error = std::string(op) + ": expects 1 <= k <= n, got k " + std::to_string(k) + " of n " +
               std::to_string(n);
    return false;
  }
  return true;
}
} // namespace topk

inline bool topkCompress(cudaStream_t stream, const float *grad, const float *residual, int64_t n,
                         int64_t k, bool int8, int8_t *message, float *newResidual,
                         std::string *error = nullptr) {
  if (!topk::checkSizes("topk_compress", n, k, error))
    return false;
  KILN_LAUNCH_CHECK(n <= 0x7fffffff, "expects at most 2^31 - 1 elements (int32 indices), got %lld",
                    (long long)n);
  // acc formed once: into newResidual when given, else recomputed per use.
  const float *a = grad, *b = residual;
  if (newResidual) {
    KILN_LAUNCH(topkAccKernel, blocksFor(n), kBlock, 0, stream, grad, residual, n, newResidual);
    a = newResidual;
    b = nullptr;
  }
  unsigned char *bytes = reinterpret_cast<unsigned char *>(message);
#if KILN_CUDA_DEVICE
  KILN_LAUNCH(topkSelectBlockKernel, 1, 1024, 0, stream, a, b, n, k, int8, bytes);
#else
  KILN_LAUNCH(topkSelectKernel, 1, 1, 0, stream, a, b, n, k, int8, bytes);
#endif
  KILN_LAUNCH(topkQuantizeKernel, blocksFor(k), kBlock, 0, stream, a, b, k, int8, bytes,
              newResidual);
  return true;
}

inline bool topkDecompress(cudaStream_t stream, const int8_t *messages, int64_t ranks, int64_t n,
                           int64_t k, bool int8, float *out, std::string *error = nullptr) {
  if (!topk::checkSizes("topk_decompress", n, k, error))
    return false;
  if (ranks < 1) {
    if (error)
      *error = "topk_decompress: expects ranks >= 1, got " + std::to_string(ranks);
    return false;
  }
  KILN_LAUNCH(topkZeroKernel, blocksFor(n), kBlock, 0, stream, n, out);
  const int64_t bytes = kernels::topkMessageBytes(k, int8);
  const unsigned char *base = reinterpret_cast<const unsigned char *>(messages);
  for (int64_t r = 0; r < ranks; ++r) // rank order: the host's sum per element
    KILN_LAUNCH(topkDecompressAddKernel, blocksFor(k), kBlock, 0, stream, base + r * bytes, r, n, k,
                int8, out);
  return true;
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_GRADCOMPRESS_CUH
