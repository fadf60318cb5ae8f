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
//   - column sums over rows (dgamma, the embedding gradient): one thread per
//     column, rows in order, as the host's column blocks are, so no atomics
//     and the same bits for any launch.
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

#if KILN_CUDA_DEVICE
/// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024):
/// warp shuffles, then one warp over the warps' sums in `shared` (32
/// floats).
__device__ __forceinline__ float blockSum(float v, float *shared) {
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[lane] : 0.0f;
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2)
      v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x == 0)
    shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads(); // shared may be reused by the caller's next blockSum
  return v;
}

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
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

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

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_DENSE_CUH
