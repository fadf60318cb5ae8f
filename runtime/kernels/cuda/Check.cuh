//===- Check.cuh - checked CUDA, cuBLASLt and NCCL calls -------------------===//
//
// Every CUDA, cuBLASLt and NCCL call of the runtime and the launchers goes
// through one of these, which stops with "file:line: call: message" on
// failure, as nccl-tests' CUDACHECK / NCCLCHECK do: a failed launch or
// library call mid-step leaves device state no later step can trust.
// KILN_LAUNCH_CHECK(cond, ...) is the launchers' shape check (a compiler
// bug if it fails, as runtime/kernels/KernelCheck.h's is on the host).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_CHECK_CUH
#define KILN_RUNTIME_KERNELS_CUDA_CHECK_CUH

#include "runtime/kernels/KernelCheck.h"

#define KILN_LAUNCH_CHECK(cond, ...) KILN_KERNEL_CHECK(cond, __VA_ARGS__)

#if defined(__CUDACC__)
#include <cstdio>
#include <cstdlib>
#include <cublasLt.h>
#include <cuda_runtime.h>

#define KILN_CUDA_CHECK(call)                                                              \
  do {                                                                                     \
    cudaError_t kilnStatus_ = (call);                                                      \
    if (kilnStatus_ != cudaSuccess) {                                                      \
      std::fprintf(stderr, "%s:%d: %s: CUDA error %s: %s\n", __FILE__, __LINE__, #call,    \
                   cudaGetErrorName(kilnStatus_), cudaGetErrorString(kilnStatus_));        \
      std::exit(EXIT_FAILURE);                                                             \
    }                                                                                      \
  } while (0)

#define KILN_CUBLAS_CHECK(call)                                                            \
  do {                                                                                     \
    cublasStatus_t kilnStatus_ = (call);                                                   \
    if (kilnStatus_ != CUBLAS_STATUS_SUCCESS) {                                            \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS error %d (%s)\n", __FILE__, __LINE__, #call,  \
                   int(kilnStatus_), cublasLtGetStatusString(kilnStatus_));                \
      std::exit(EXIT_FAILURE);                                                             \
    }                                                                                      \
  } while (0)

/// After a <<<>>> launch: a bad configuration shows up here, not at the
/// next sync.
#define KILN_CUDA_LAUNCHED() KILN_CUDA_CHECK(cudaGetLastError())
#endif

#if defined(KILN_HAVE_NCCL)
#include <nccl.h>
#define KILN_NCCL_CHECK(call)                                                              \
  do {                                                                                     \
    ncclResult_t kilnStatus_ = (call);                                                     \
    if (kilnStatus_ != ncclSuccess) {                                                      \
      std::fprintf(stderr, "%s:%d: %s: NCCL error %d (%s)\n", __FILE__, __LINE__, #call,    \
                   int(kilnStatus_), ncclGetErrorString(kilnStatus_));                     \
      std::exit(EXIT_FAILURE);                                                             \
    }                                                                                      \
  } while (0)
#endif

#endif // KILN_RUNTIME_KERNELS_CUDA_CHECK_CUH
