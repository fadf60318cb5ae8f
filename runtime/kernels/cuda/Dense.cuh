//===- Dense.cuh - CUDA kernels of the dense kiln ops (GEMMs aside) -------===//
//
// The CUDA twins of runtime/kernels/Dense.h's non-GEMM kernels (the linear
// GEMMs are in Gemm.cuh, through cuBLASLt): each launcher has the host
// kernel's name and parameters (device pointers) after a leading stream,
// so the codegen spells a launch for either target from one description.
// The per-element and per-row math is DenseMath.h's, so the results are the
// host kernels' bit for bit where the order of operations is the same:
//
//   - elementwise kernels: one element per thread (grid-stride);
//   - rows: the reference-order kernel (one thread per row, the host's
//     summation order, run on the CPU shim in the tests), and on the GPU a
//     block per row reducing in shared memory (a different summation order:
//     within float rounding of the host, which scripts/gpu-check.sh bounds);
//   - column sums over rows: rmsNormBackward's dgamma sums fixed chunks of
//     kernels::kDgammaChunkRows rows per (chunk, column) thread, then the
//     chunks in order, the host's order (DenseMath.h), so the same bits on
//     the GPU too and no atomics; the embedding gradient has one thread per
//     column, tokens in order, as the host's column blocks (a token's row is
//     data-dependent: chunk partials would need vocab x hidden floats per
//     chunk).
//
// Token ids outside [0, vocab), which the host kernels refuse, are
// KILN_DEVICE_ERROR(kIdOutOfRange, position): embeddingForward writes zeros
// for that token's row, embeddingBackward leaves the token out of the sums.
//
// rmsNormBackward needs per-row scratch (1 / rms, and on the GPU the
// chunks' partial dgamma): StreamScratch, stream-ordered device memory
// (cudaMallocAsync from the device's pool), host memory on the shim.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_DENSE_CUH
#define KILN_RUNTIME_KERNELS_CUDA_DENSE_CUH

#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/cuda/Device.cuh"

namespace kiln::cuda {

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

__global__ void siluForwardKernel(float *y, const float *x, int64_t n) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    y[i] = kernels::siluValue(x[i]);
}

__global__ void siluBackwardKernel(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    dx[i] = dy[i] * kernels::siluDerivative(x[i]);
}

/// Reference order: thread i normalises row i as the host loop does.
__global__ void rmsNormForwardRowKernel(float *y, const float *x, const float *gamma,
                                        int64_t rows, int64_t hidden, float epsilon) {
  for (int64_t i = globalThread(); i < rows; i += gridThreads()) {
    const float *px = x + i * hidden;
    float *py = y + i * hidden;
    const float inv = kernels::rmsInverseRow(px, hidden, epsilon);
    for (int64_t j = 0; j < hidden; ++j)
      py[j] = px[j] * inv * gamma[j];
  }
}

__global__ void swigluForwardKernel(float *y, const float *gate, const float *up, int64_t n) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    y[i] = kernels::swigluValue(gate[i], up[i]);
}

__global__ void swigluBackwardKernel(float *dgate, float *dup, const float *dy,
                                     const float *gate, const float *up, int64_t n) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    kernels::swigluGradient(dy[i], gate[i], up[i], &dgate[i], &dup[i]);
}

/// y may be x: each thread reads its element before writing it.
__global__ void scaleKernel(float *y, const float *x, int64_t n, float factor) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    y[i] = factor * x[i];
}

__global__ void zeroKernel(float *y, int64_t n) {
  for (int64_t i = globalThread(); i < n; i += gridThreads())
    y[i] = 0.0f;
}

/// One thread per output element: out[t, c] = table[ids[t], c].
__global__ void embeddingForwardKernel(float *out, const float *table, const int32_t *ids,
                                       int64_t tokens, int64_t vocab, int64_t hidden) {
  for (int64_t e = globalThread(); e < tokens * hidden; e += gridThreads()) {
    const int64_t t = e / hidden, c = e % hidden, id = ids[t];
    if (id < 0 || id >= vocab) {
      KILN_DEVICE_ERROR(kIdOutOfRange, t);
      out[e] = 0.0f;
      continue;
    }
    out[e] = table[id * hidden + c];
  }
}

/// One thread per column, tokens in order, into a zeroed dtable: the host's
/// column blocks' order, so the same bits.
__global__ void embeddingBackwardKernel(float *dtable, const float *dout, const int32_t *ids,
                                        int64_t tokens, int64_t vocab, int64_t hidden) {
  for (int64_t c = globalThread(); c < hidden; c += gridThreads())
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t id = ids[t];
      if (id < 0 || id >= vocab) {
        KILN_DEVICE_ERROR(kIdOutOfRange, t);
        continue;
      }
      dtable[id * hidden + c] += dout[t * hidden + c];
    }
}

/// Reference order: thread i computes row i's dx and 1 / rms as the host
/// loop does.
__global__ void rmsNormBackwardRowKernel(float *dx, float *inv, const float *dy, const float *x,
                                         const float *gamma, int64_t rows, int64_t hidden,
                                         float epsilon) {
  for (int64_t i = globalThread(); i < rows; i += gridThreads())
    inv[i] = kernels::rmsNormGradRow(dx + i * hidden, dy + i * hidden, x + i * hidden, gamma,
                                     hidden, epsilon);
}

/// dgamma's first pass (the host's order, DenseMath.h's kDgammaChunkRows):
/// partial[k, j] = sum_i dy[i, j] (x[i, j] inv[i]) over rows
/// [k kernels::kDgammaChunkRows, (k + 1) kernels::kDgammaChunkRows), one thread per (chunk,
/// column). No shared memory: the shim runs it too.
__global__ void rmsNormDgammaChunkKernel(float *partial, const float *dy, const float *x,
                                         const float *inv, int64_t rows, int64_t hidden) {
  const int64_t chunks = (rows + kernels::kDgammaChunkRows - 1) / kernels::kDgammaChunkRows;
  for (int64_t e = globalThread(); e < chunks * hidden; e += gridThreads()) {
    const int64_t k = e / hidden, j = e % hidden, i0 = k * kernels::kDgammaChunkRows,
                  i1 = i0 + kernels::kDgammaChunkRows < rows ? i0 + kernels::kDgammaChunkRows : rows;
    float sum = 0.0f;
    for (int64_t i = i0; i < i1; ++i)
      sum += dy[i * hidden + j] * (x[i * hidden + j] * inv[i]);
    partial[e] = sum;
  }
}

/// dgamma's second pass: out[j] = sum_k partial[k, j], chunks in order.
__global__ void columnSumKernel(float *out, const float *partial, int64_t parts,
                                int64_t columns) {
  for (int64_t j = globalThread(); j < columns; j += gridThreads()) {
    float sum = 0.0f;
    for (int64_t k = 0; k < parts; ++k)
      sum += partial[k * columns + j];
    out[j] = sum;
  }
}

#if KILN_CUDA_DEVICE
/// GPU order: block b normalises row b, its threads striding the columns.
__global__ void rmsNormForwardBlockKernel(float *y, const float *x, const float *gamma,
                                          int64_t hidden, float epsilon) {
  __shared__ float shared[32];
  const float *px = x + int64_t(blockIdx.x) * hidden;
  float *py = y + int64_t(blockIdx.x) * hidden;
  float sumSquares = 0.0f;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
    sumSquares += px[j] * px[j];
  const float inv = rsqrtf(blockSum(sumSquares, shared) / float(hidden) + epsilon);
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
    py[j] = px[j] * inv * gamma[j];
}

/// GPU order: block b computes row b's dx and 1 / rms (the host's formula,
/// its two row sums reduced across the block).
__global__ void rmsNormBackwardBlockKernel(float *dx, float *inv, const float *dy,
                                           const float *x, const float *gamma, int64_t hidden,
                                           float epsilon) {
  __shared__ float shared[32];
  const int64_t row = int64_t(blockIdx.x) * hidden;
  const float *px = x + row, *pdy = dy + row;
  float *pdx = dx + row;
  float sumSquares = 0.0f;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
    sumSquares += px[j] * px[j];
  const float r = 1.0f / sqrtf(blockSum(sumSquares, shared) / float(hidden) + epsilon);
  float gn = 0.0f;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
    gn += pdy[j] * gamma[j] * (px[j] * r);
  const float meanGN = blockSum(gn, shared) / float(hidden);
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
    pdx[j] = r * (pdy[j] * gamma[j] - px[j] * r * meanGN);
  if (threadIdx.x == 0)
    inv[blockIdx.x] = r;
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

inline void embeddingForward(cudaStream_t stream, float *out, const float *table,
                             const int32_t *ids, int64_t tokens, int64_t vocab, int64_t hidden) {
  KILN_LAUNCH_CHECK(tokens >= 0 && vocab > 0 && hidden > 0,
                    "expects tokens >= 0, vocab > 0, hidden > 0, got %lld, %lld, %lld",
                    (long long)tokens, (long long)vocab, (long long)hidden);
  if (tokens > 0)
    KILN_LAUNCH(embeddingForwardKernel, blocksFor(tokens * hidden), kBlock, 0, stream, out,
                table, ids, tokens, vocab, hidden);
}

inline void embeddingBackward(cudaStream_t stream, float *dtable, const float *dout,
                              const int32_t *ids, int64_t tokens, int64_t vocab,
                              int64_t hidden) {
  KILN_LAUNCH_CHECK(tokens >= 0 && vocab > 0 && hidden > 0,
                    "expects tokens >= 0, vocab > 0, hidden > 0, got %lld, %lld, %lld",
                    (long long)tokens, (long long)vocab, (long long)hidden);
  KILN_LAUNCH(zeroKernel, blocksFor(vocab * hidden), kBlock, 0, stream, dtable, vocab * hidden);
  if (tokens > 0)
    KILN_LAUNCH(embeddingBackwardKernel, blocksFor(hidden), kBlock, 0, stream, dtable, dout, ids,
                tokens, vocab, hidden);
}

inline void siluForward(cudaStream_t stream, float *y, const float *x, int64_t n) {
  KILN_LAUNCH_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
  if (n > 0)
    KILN_LAUNCH(siluForwardKernel, blocksFor(n), kBlock, 0, stream, y, x, n);
}

inline void siluBackward(cudaStream_t stream, float *dx, const float *dy, const float *x,
                         int64_t n) {
  KILN_LAUNCH_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
  if (n > 0)
    KILN_LAUNCH(siluBackwardKernel, blocksFor(n), kBlock, 0, stream, dx, dy, x, n);
}

inline void rmsNormForward(cudaStream_t stream, float *y, const float *x, const float *gamma,
                           int64_t rows, int64_t hidden, float epsilon) {
  KILN_LAUNCH_CHECK(rows >= 0 && hidden > 0 && epsilon >= 0,
                    "expects rows >= 0, hidden > 0, epsilon >= 0, got %lld, %lld, %g",
                    (long long)rows, (long long)hidden, epsilon);
  if (rows == 0)
    return;
#if KILN_CUDA_DEVICE
  KILN_LAUNCH_CHECK(rows <= 0x7fffffff, "expects at most 2^31 - 1 rows, got %lld",
                    (long long)rows);
  KILN_LAUNCH(rmsNormForwardBlockKernel, unsigned(rows), kBlock, 0, stream, y, x, gamma, hidden,
              epsilon);
#else
  KILN_LAUNCH(rmsNormForwardRowKernel, blocksFor(rows), kBlock, 0, stream, y, x, gamma, rows,
              hidden, epsilon);
#endif
}

inline void rmsNormBackward(cudaStream_t stream, float *dx, float *dgamma, const float *dy,
                            const float *x, const float *gamma, int64_t rows, int64_t hidden,
                            float epsilon) {
  KILN_LAUNCH_CHECK(rows >= 0 && hidden > 0 && epsilon >= 0,
                    "expects rows >= 0, hidden > 0, epsilon >= 0, got %lld, %lld, %g",
                    (long long)rows, (long long)hidden, epsilon);
  StreamScratch invScratch(stream, sizeof(float) * size_t(rows));
  float *inv = invScratch.at<float>();
#if KILN_CUDA_DEVICE
  KILN_LAUNCH_CHECK(rows <= 0x7fffffff, "expects at most 2^31 - 1 rows, got %lld",
                    (long long)rows);
  if (rows > 0)
    KILN_LAUNCH(rmsNormBackwardBlockKernel, unsigned(rows), kBlock, 0, stream, dx, inv, dy, x,
                gamma, hidden, epsilon);
#else
  if (rows > 0)
    KILN_LAUNCH(rmsNormBackwardRowKernel, blocksFor(rows), kBlock, 0, stream, dx, inv, dy, x,
                gamma, rows, hidden, epsilon);
#endif
  const int64_t chunks = (rows + kernels::kDgammaChunkRows - 1) / kernels::kDgammaChunkRows;
  StreamScratch partialScratch(stream, sizeof(float) * size_t(chunks * hidden));
  float *partial = partialScratch.at<float>();
  if (chunks > 0)
    KILN_LAUNCH(rmsNormDgammaChunkKernel, blocksFor(chunks * hidden), kBlock, 0, stream, partial,
                dy, x, inv, rows, hidden);
  KILN_LAUNCH(columnSumKernel, blocksFor(hidden), kBlock, 0, stream, dgamma, partial, chunks,
              hidden);
}

inline void swigluForward(cudaStream_t stream, float *y, const float *gate, const float *up,
                          int64_t n) {
  KILN_LAUNCH_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
  if (n > 0)
    KILN_LAUNCH(swigluForwardKernel, blocksFor(n), kBlock, 0, stream, y, gate, up, n);
}

inline void swigluBackward(cudaStream_t stream, float *dgate, float *dup, const float *dy,
                           const float *gate, const float *up, int64_t n) {
  KILN_LAUNCH_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
  if (n > 0)
    KILN_LAUNCH(swigluBackwardKernel, blocksFor(n), kBlock, 0, stream, dgate, dup, dy, gate, up,
                n);
}

inline void scale(cudaStream_t stream, float *y, const float *x, int64_t n, float factor) {
  KILN_LAUNCH_CHECK(n >= 0, "expects n >= 0, got %lld", (long long)n);
  if (n > 0)
    KILN_LAUNCH(scaleKernel, blocksFor(n), kBlock, 0, stream, y, x, n, factor);
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_DENSE_CUH
