//===- KernelMath.h - per-element math shared by host and CUDA kernels ----===//
//
// Each kernel's math lives once: scalar functions marked KILN_HD compile as
// plain C++ for the host target and as __host__ __device__ under nvcc, so
// the CPU tests cover what the GPU runs. Host loops (OpenMP) and CUDA kernels
// call these; GEMMs go to OpenBLAS / cuBLASLt instead.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELMATH_H
#define KILN_RUNTIME_KERNELMATH_H

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__ inline
#else
#define KILN_HD inline
#endif

namespace kiln::kernels {

KILN_HD float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

} // namespace kiln::kernels

#endif // KILN_RUNTIME_KERNELMATH_H
