//===- Device.cuh - what every CUDA kernel family includes ----------------===//
//
// The CUDA kernel library (runtime/kernels/cuda/*.cuh, one self-contained
// header per op family, as llm.c's are) compiles two ways:
//
//   - under nvcc, for the GPU: kernels, then launchers that take a stream,
//     check shapes on the host and launch;
//   - as plain C++, for the CPU tests: this header then defines a small
//     grid-loop shim (blockIdx, threadIdx, blockDim and gridDim as
//     thread-local variables, launchOnHost running every thread of the grid
//     in order), so the kernel bodies that use no shared memory, warp
//     intrinsics or barriers run on the CPU and are compared with the host
//     kernels (test/unit/CudaKernelsShimTest.cpp). Kernels that need those
//     sit under `#if KILN_CUDA_DEVICE` and are compiled (and their
//     registers and spills recorded) in CI, run only where a GPU is lent.
//
// Kernels index with int64 (activations pass 2^31 elements at DeepSeek-V3
// sizes). A kernel that finds bad data (an id out of range, inconsistent
// offsets) records the first such error with KILN_DEVICE_ERROR rather than
// reading out of bounds; the runtime reads it after the step (one sync), and
// the CPU shim reads the same record.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_DEVICE_CUH
#define KILN_RUNTIME_KERNELS_CUDA_DEVICE_CUH

#include <cstdint>

#if defined(__CUDACC__)
#define KILN_CUDA_DEVICE 1
#include <cuda_runtime.h>
#else
#define KILN_CUDA_DEVICE 0
#include <algorithm>
#include <atomic>

// The grid-loop shim: CUDA's qualifiers vanish, the built-in indices are
// variables the loop sets.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
};
inline thread_local dim3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim, gridDim;
#endif

#include "runtime/kernels/KernelMath.h"
#include "runtime/kernels/cuda/Check.cuh"

namespace kiln::cuda {

/// This thread's index in a 1-D grid, and the grid's thread count.
__device__ __forceinline__ int64_t globalThread() {
  return int64_t(blockIdx.x) * int64_t(blockDim.x) + int64_t(threadIdx.x);
}
__device__ __forceinline__ int64_t gridThreads() {
  return int64_t(gridDim.x) * int64_t(blockDim.x);
}

/// Threads per block of the elementwise and per-row kernels.
constexpr int kBlock = 256;
/// Blocks for `n` items at one per thread, capped (grid-stride loops cover
/// the rest): 2^31 - 1 is CUDA's limit on gridDim.x.
inline unsigned blocksFor(int64_t n, int block = kBlock) {
  const int64_t blocks = (n + block - 1) / block;
  return unsigned(blocks < 1 ? 1 : blocks > 65535 * 32 ? 65535 * 32 : blocks);
}

/// The first bad-data error a kernel found: a code (a DeviceError) and the
/// index it concerns; code 0: none.
enum DeviceError : int32_t {
  kNoError = 0,
  kIdOutOfRange = 1,       ///< a token or class id outside [0, vocab)
  kBadExpertOffsets = 2,   ///< expert offsets not ascending within the rows
  kBadRouting = 3,         ///< an expert index outside [0, experts)
};
struct DeviceErrorRecord {
  int32_t code;
  int64_t index;
};

#if KILN_CUDA_DEVICE
// One per translation unit (whole-program compilation): a generated
// program is one .cu file, which reads it back with takeDeviceError().
static __device__ DeviceErrorRecord kilnDeviceError;
__device__ __forceinline__ void recordDeviceError(int32_t code, int64_t index) {
  if (atomicCAS(&kilnDeviceError.code, 0, code) == 0)
    kilnDeviceError.index = index;
}
/// The first error the kernels recorded since the last call (waits for
/// `stream`), cleared.
static inline DeviceErrorRecord takeDeviceError(cudaStream_t stream) {
  DeviceErrorRecord record{0, 0}, none{0, 0};
  KILN_CUDA_CHECK(cudaMemcpyFromSymbolAsync(&record, kilnDeviceError, sizeof(record), 0,
                                            cudaMemcpyDeviceToHost, stream));
  KILN_CUDA_CHECK(cudaMemcpyToSymbolAsync(kilnDeviceError, &none, sizeof(none), 0,
                                          cudaMemcpyHostToDevice, stream));
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream));
  return record;
}
#else
inline DeviceErrorRecord kilnDeviceError{0, 0};
inline void recordDeviceError(int32_t code, int64_t index) {
  if (kilnDeviceError.code == 0)
    kilnDeviceError = {code, index};
}
inline DeviceErrorRecord takeDeviceError() {
  const DeviceErrorRecord record = kilnDeviceError;
  kilnDeviceError = {0, 0};
  return record;
}

/// Runs `kernel` over every thread of `grid` x `block`, in order, one at a
/// time (no shared memory, no barriers: see the file comment).
template <typename... Params, typename... Args>
void launchOnHost(void (*kernel)(Params...), dim3 grid, dim3 block, Args &&...args) {
  gridDim = grid;
  blockDim = block;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx)
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx) {
              blockIdx = dim3(bx, by, bz);
              threadIdx = dim3(tx, ty, tz);
              kernel(args...);
            }
}
#endif

#define KILN_DEVICE_ERROR(code, index) ::kiln::cuda::recordDeviceError((code), (index))

} // namespace kiln::cuda

// KILN_LAUNCH(kernel, grid, block, sharedBytes, stream, args...): a launch
// on `stream` under nvcc (checked at once), the grid loop on the CPU shim
// (where sharedBytes must be 0 and the stream is ignored).
#if KILN_CUDA_DEVICE
#define KILN_LAUNCH(kernel, grid, block, sharedBytes, stream, ...)                          \
  do {                                                                                     \
    kernel<<<(grid), (block), (sharedBytes), (stream)>>>(__VA_ARGS__);                     \
    KILN_CUDA_LAUNCHED();                                                                  \
  } while (0)
#else
using cudaStream_t = struct CUstream_st *;
#define KILN_LAUNCH(kernel, grid, block, sharedBytes, stream, ...)                          \
  do {                                                                                     \
    KILN_LAUNCH_CHECK((sharedBytes) == 0, "the CPU shim runs no shared memory");           \
    (void)(stream);                                                                        \
    ::kiln::cuda::launchOnHost(kernel, (grid), (block), __VA_ARGS__);                      \
  } while (0)
#endif

namespace kiln::cuda {
#if KILN_CUDA_DEVICE
/// Sum of `v` over the block, in every thread (blockDim.x a multiple of 32,
/// at most 1024): a shuffle tree per warp, then one over the warps' sums in
/// `shared` (32 values). A fixed tree: the same bits every run. The block's
/// threads must all call it; `shared` is free again when it returns.
template <typename T> __device__ __forceinline__ T blockSum(T v, T *shared) {
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[lane] : T(0);
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2)
      v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x == 0)
    shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}
#endif

/// Device memory one launcher's kernels share, allocated and freed in
/// stream order (cudaMallocAsync / cudaFreeAsync: no sync, served from the
/// stream's pool after the first step); host memory on the CPU shim.
class StreamScratch {
public:
  StreamScratch(cudaStream_t stream, size_t bytes) : stream(stream) {
#if KILN_CUDA_DEVICE
    if (bytes > 0)
      KILN_CUDA_CHECK(cudaMallocAsync(&data, bytes, stream));
#else
    data = bytes > 0 ? ::operator new(bytes) : nullptr;
#endif
  }
  ~StreamScratch() {
#if KILN_CUDA_DEVICE
    if (data)
      KILN_CUDA_CHECK(cudaFreeAsync(data, stream));
#else
    ::operator delete(data);
#endif
  }
  StreamScratch(const StreamScratch &) = delete;
  StreamScratch &operator=(const StreamScratch &) = delete;
  /// The scratch from byte `offset` on, as T (offset a multiple of 8).
  template <typename T> T *at(size_t offset = 0) const {
    return reinterpret_cast<T *>(static_cast<char *>(data) + offset);
  }

private:
  cudaStream_t stream;
  void *data = nullptr;
};
} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_DEVICE_CUH
